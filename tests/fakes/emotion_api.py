"""A local emotion-recognition HTTP service (aiohttp): POST /predict with `audio` and `text`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer


@dataclass
class EmotionRequest:
    text: str | None
    audio: bytes | None
    audio_filename: str | None
    audio_content_type: str | None


@dataclass
class FakeEmotionApi(FakeServer):
    """Answers `response` as JSON with `status`, after `delay` seconds; records each request."""

    response: Any = field(default_factory=lambda: {"label": "happy", "score": 0.87})
    status: int = 200
    delay: float = 0.0
    requests: list[EmotionRequest] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.origin

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/predict", self._predict)
        return app

    async def _predict(self, request: web.Request) -> web.Response:
        form = await request.post()
        audio, text = form.get("audio"), form.get("text")
        record = EmotionRequest(text if isinstance(text, str) else None, None, None, None)
        if isinstance(audio, web.FileField):
            record.audio = audio.file.read()
            record.audio_filename = audio.filename
            record.audio_content_type = audio.content_type
        self.requests.append(record)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.json_response({"error": "model crashed"}, status=self.status)
        return web.json_response(self.response)
