"""A local Prosa streaming speech-to-text server (websockets) that tests start."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

CHUNK_LIMIT = 16_000


@dataclass
class ProsaSession:
    """What one client sent."""

    api_key: str | None
    config: dict[str, Any] | None = None
    chunks: list[bytes] = field(default_factory=list)
    ended: bool = False  # the empty binary frame arrived

    @property
    def audio(self) -> bytes:
        return b"".join(self.chunks)


@dataclass
class FakeProsa:
    """Speaks Prosa's protocol; "transcribes" by answering `results`, without a model.

    When `expected_audio` is set, the server checks that the PCM it received is exactly that
    and otherwise closes with 4400 (so a client that garbles audio fails its test).
    `hang=True` accepts the stream and then never answers. `close_code` other than 1000 ends
    the stream with that code instead of results.
    """

    api_key: str = "prosa-test-key"
    results: list[str] = field(default_factory=lambda: ["selamat pagi", "apa kabar"])
    expected_audio: bytes | None = None
    hang: bool = False
    close_code: int = 1000
    close_reason: str = ""
    sessions: list[ProsaSession] = field(default_factory=list)
    port: int = 0
    _server: Server | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v2/speech/stt"

    async def start(self) -> FakeProsa:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._check_key, max_size=2**22
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _check_key(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path != "/v2/speech/stt":
            return connection.respond(HTTPStatus.NOT_FOUND, "no such endpoint\n")
        if request.headers.get("x-api-key") != self.api_key:
            self.sessions.append(ProsaSession(api_key=request.headers.get("x-api-key")))
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid API key\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        headers: Headers = ws.request.headers if ws.request else Headers()
        session = ProsaSession(api_key=headers.get("x-api-key"))
        self.sessions.append(session)
        try:
            first = await ws.recv()
        except ConnectionClosed:  # a client that only checks the handshake (`bot doctor`)
            return
        if not isinstance(first, str):
            await ws.close(4000, "the first message must be the JSON config")
            return
        session.config = json.loads(first)
        await ws.send(json.dumps({"type": "created", "id": f"job-{len(self.sessions)}"}))
        await ws.send(json.dumps({"type": "status", "status": "started"}))
        async for frame in ws:
            if isinstance(frame, str):
                await ws.close(4000, "audio must be binary")
                return
            if len(frame) > CHUNK_LIMIT:
                await ws.close(4413, f"chunk of {len(frame)} bytes is too large")
                return
            if not frame:
                session.ended = True
                break
            session.chunks.append(frame)
            partial = " ".join(self.results)[: 4 * len(session.chunks)]
            await ws.send(json.dumps({"type": "partial", "transcript": partial}))
        if self.hang:  # silent until the client gives up and closes
            await ws.wait_closed()
            return
        if self.expected_audio is not None and session.audio != self.expected_audio:
            await ws.close(4400, "received audio differs from the expected PCM")
            return
        if self.close_code != 1000:
            await ws.close(self.close_code, self.close_reason)
            return
        await self._answer(ws, session)

    async def _answer(self, ws: ServerConnection, session: ProsaSession) -> None:
        seconds = len(session.audio) / 32_000
        step = seconds / max(len(self.results), 1)
        for i, text in enumerate(self.results):
            start, end = i * step, (i + 1) * step
            message = {"type": "result", "transcript": text, "time_start": start, "time_end": end}
            await ws.send(json.dumps(message))
        metadata = {
            "type": "metadata",
            "duration": seconds,
            "quota_used": int(seconds),
            "max_reached": False,
            "max_duration": 600.0,
        }
        await ws.send(json.dumps(metadata))
        await ws.close(1000)
