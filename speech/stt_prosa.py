"""Streaming speech-to-text with Prosa (Indonesian) over a websocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from speech.errors import NoSpeech, ProviderError
from speech.language import language_code
from speech.pcm import resample
from speech.transcode import ASR_SAMPLE_RATE
from speech.types import Pcm, Transcript

if TYPE_CHECKING:
    from bot.settings import Settings

logger = logging.getLogger(__name__)

CHUNK_BYTES = 16_000  # half a second of 16 kHz s16le, as Prosa's example client sends
DEFAULT_LANGUAGE = "id"


class ProsaStt:
    """One websocket session per transcription.

    Protocol: header `x-api-key`; a JSON config message; binary PCM chunks; an empty binary
    frame to finish. The server answers JSON messages (created, status, partial, result,
    metadata, quota) and closes with 1000; the transcript is the `result` texts in order.
    """

    name = "prosa"

    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        model: str = "stt-general-online",
        timeout: float = 30.0,
        language: str | None = None,
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.model = model
        self.timeout = timeout
        self.language = language_code(language)

    @classmethod
    def from_settings(cls, settings: Settings) -> ProsaStt:
        if settings.prosa_api_key is None or not settings.prosa_url:
            raise ValueError("PROSA_URL and PROSA_API_KEY are required by STT_PROVIDER=prosa")
        return cls(
            url=settings.prosa_url,
            api_key=settings.prosa_api_key.get_secret_value(),
            model=settings.prosa_model,
            timeout=settings.prosa_timeout,
            language=settings.stt_language,
        )

    def _config(self) -> dict[str, Any]:
        return {
            "label": "suara",
            "model": self.model,
            "include_filler": False,
            "include_partial": False,
            "audio": {"format": "s16le", "channels": 1, "sample_rate": ASR_SAMPLE_RATE},
        }

    async def transcribe(self, pcm: Pcm, language: str | None = None) -> Transcript:
        chosen = self.language or language_code(language) or DEFAULT_LANGUAGE
        audio = resample(pcm, ASR_SAMPLE_RATE).data
        try:
            async with asyncio.timeout(self.timeout):
                results = await self._session(audio)
        except TimeoutError as exc:
            logger.warning("Prosa timed out after %.1f s (%s)", self.timeout, self.url)
            raise ProviderError(f"Prosa STT timed out after {self.timeout:g} s") from exc
        except InvalidStatus as exc:
            status = exc.response.status_code
            logger.warning("Prosa refused the connection: HTTP %d (%s)", status, self.url)
            hint = " (check PROSA_API_KEY)" if status in (401, 403) else ""
            raise ProviderError(f"Prosa STT refused the connection: HTTP {status}{hint}") from exc
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            reason = exc.rcvd.reason if exc.rcvd else ""
            logger.warning("Prosa closed the stream abnormally: %s %s", code, reason)
            raise ProviderError(
                f"Prosa STT closed the stream: code {code} {reason}".strip()
            ) from exc
        except (WebSocketException, OSError) as exc:
            logger.warning("Prosa connection failed (%s): %s", self.url, exc)
            raise ProviderError(f"Prosa STT connection failed: {exc}") from exc
        text = " ".join(part.strip() for part in results if part.strip())
        if not text:
            raise NoSpeech(f"Prosa heard no words in {pcm.duration:.1f} s")
        return Transcript(text=text, language=chosen)

    async def _session(self, audio: bytes) -> list[str]:
        async with connect(
            self.url,
            additional_headers={"x-api-key": self.api_key},
            open_timeout=self.timeout,
            close_timeout=2,
            max_size=2**22,
        ) as ws:
            sender = asyncio.create_task(self._send(ws, audio))
            try:
                results = await self._receive(ws)
            except BaseException:
                sender.cancel()
                with contextlib.suppress(BaseException):
                    await sender
                raise
            await sender
        return results

    async def _send(self, ws: ClientConnection, audio: bytes) -> None:
        await ws.send(json.dumps(self._config()))
        for start in range(0, len(audio), CHUNK_BYTES):
            await ws.send(audio[start : start + CHUNK_BYTES])
        await ws.send(b"")

    async def _receive(self, ws: ClientConnection) -> list[str]:
        results: list[str] = []
        async for raw in ws:  # ends on a normal close; raises ConnectionClosedError otherwise
            message = self._parse(raw)
            kind = message.get("type")
            if kind == "result":
                results.append(str(message.get("transcript") or ""))
            elif kind == "created":
                logger.debug("Prosa job %s created", message.get("id"))
            elif kind == "metadata":
                logger.debug("Prosa metadata: %s", message)
                if message.get("max_reached"):
                    logger.warning("Prosa stopped at its maximum duration: %s", message)
            elif kind == "quota":
                logger.warning("Prosa quota alert: %s", message)
            elif kind == "error" or "error" in message:
                raise ProviderError(f"Prosa STT error: {message.get('error') or message}")
        return results

    @staticmethod
    def _parse(raw: str | bytes) -> dict[str, Any]:
        try:
            message = json.loads(raw)
        except ValueError as exc:
            raise ProviderError(f"Prosa sent a message that is not JSON: {raw[:80]!r}") from exc
        if not isinstance(message, dict):
            raise ProviderError(f"Prosa sent an unexpected message: {raw[:80]!r}")
        return message
