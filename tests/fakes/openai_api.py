"""A local OpenAI-compatible API (chat, embeddings, transcription, speech) that tests start."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer

EMBEDDING_DIM = 256
_WORD = re.compile(r"[a-z0-9]+")


def bag_of_words_vector(text: str, dim: int = EMBEDDING_DIM) -> list[float]:
    """A deterministic embedding: hashed, crudely stemmed words, L2-normalised."""
    vec = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        if len(word) > 3 and word.endswith("s"):
            word = word[:-1]
        slot = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
        vec[slot % dim] += 1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def tone_pcm(seconds: float = 1.0, rate: int = 24_000, freq: float = 220.0) -> bytes:
    """A sine tone as s16le mono PCM (what OpenAI's `pcm` speech format returns)."""
    count = int(seconds * rate)
    return b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / rate))) for i in range(count)
    )


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


ChatHandler = Callable[[dict[str, Any]], str]


@dataclass
class FakeOpenAI(FakeServer):
    """Start with `await fake.start()`; point clients at `fake.base_url` with `fake.api_key`."""

    api_key: str = "sk-test-key"
    chat_handler: ChatHandler | None = None
    fail_models: set[str] = field(default_factory=set)
    transcript_text: str = "hello from the fake transcriber"
    transcript_language: str = "english"
    speech_pcm: bytes = field(default_factory=tone_pcm)
    models: list[str] = field(
        default_factory=lambda: [
            "gpt-4o-mini",
            "text-embedding-3-small",
            "whisper-1",
            "gpt-4o-mini-tts",
        ]
    )
    requests: list[Recorded] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def calls(self, path_suffix: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(path_suffix)]

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_get("/v1/models", self._models)
        return app

    # --- helpers -----------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    @staticmethod
    def _error(status: int, message: str, kind: str) -> web.Response:
        body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        return web.json_response(body, status=status)

    async def _begin(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            body: dict[str, Any] = {}
            for key, value in form.items():
                body[key] = value.file.read() if isinstance(value, web.FileField) else value
        else:
            body = await request.json()
        self.requests.append(Recorded(request.path, body, dict(request.headers)))
        if not self._authorized(request):
            return body, self._error(401, "Incorrect API key provided", "invalid_request_error")
        if body.get("model") in self.fail_models:
            return body, self._error(500, "The model is overloaded", "server_error")
        return body, None

    # --- endpoints ---------------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        self.requests.append(Recorded(request.path, {}, dict(request.headers)))
        if not self._authorized(request):
            return self._error(401, "Incorrect API key provided", "invalid_request_error")
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "fake"}
            for name in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.Response:
        body, error = await self._begin(request)
        if error is not None:
            return error
        content = self.chat_handler(body) if self.chat_handler else "I have no instructions."
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion_tokens = len(content.split())
        return web.json_response(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    async def _embeddings(self, request: web.Request) -> web.Response:
        body, error = await self._begin(request)
        if error is not None:
            return error
        inputs = body["input"]
        if isinstance(inputs, str):
            inputs = [inputs]
        data = []
        for i, text in enumerate(inputs):
            vector = bag_of_words_vector(text if isinstance(text, str) else json.dumps(text))
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = sum(len(str(t).split()) for t in inputs)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _transcriptions(self, request: web.Request) -> web.Response:
        body, error = await self._begin(request)
        if error is not None:
            return error
        if not body.get("file"):
            return self._error(400, "file is required", "invalid_request_error")
        fmt = body.get("response_format", "json")
        if fmt == "text":
            return web.Response(text=self.transcript_text)
        payload: dict[str, Any] = {"text": self.transcript_text}
        if fmt == "verbose_json":
            payload.update(language=self.transcript_language, duration=1.0, segments=[])
        return web.json_response(payload)

    async def _speech(self, request: web.Request) -> web.Response:
        body, error = await self._begin(request)
        if error is not None:
            return error
        if not str(body.get("input", "")).strip():
            return self._error(400, "input is required", "invalid_request_error")
        fmt = body.get("response_format", "mp3")
        if fmt != "pcm":
            return self._error(
                400, f"this fake serves only pcm, not {fmt}", "invalid_request_error"
            )
        return web.Response(body=self.speech_pcm, content_type="application/octet-stream")
