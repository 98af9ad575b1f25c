"""The HTTP API's refusals as JSON (`{"error", "message"}`), and the status of a pipeline Reply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from bot.errors import BotError
from handlers.messages import Reply
from speech.errors import AudioError, AudioTooLarge, SpeechError


class ApiError(BotError):
    """A request the API refuses: an HTTP status, a stable code and a message for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> web.Response:
        body = {"error": self.code, "message": self.message, **self.extra}
        return web.json_response(body, status=self.status, headers=self.headers)


def _names(cls: type[BaseException]) -> set[str]:
    return {cls.__name__}.union(*(_names(sub) for sub in cls.__subclasses__()))


# Reply.error holds the name of what went wrong; the audio's faults are the caller's (422).
_UNUSABLE = _names(AudioError) | {"EmptyMessage"}
_SPEECH_DOWN = _names(SpeechError) - _UNUSABLE


def reply_status(reply: Reply) -> tuple[int, str]:
    """The HTTP status and error code for a pipeline Reply: 200 for an answer (declined ones
    too), 413 audio or text too large, 422 audio unusable or without words, 503 speech service
    down, 500 anything else."""
    if reply.error is None:
        return 200, "ok"
    if reply.error == AudioTooLarge.__name__:
        return 413, "payload_too_large"
    if reply.error == "TextTooLong":
        return 413, "text_too_long"
    if reply.error in _UNUSABLE:
        return 422, "unusable_audio"
    if reply.error in _SPEECH_DOWN:
        return 503, "speech_unavailable"
    return 500, "internal_error"
