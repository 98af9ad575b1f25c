"""Reading API request bodies within size limits: a JSON message, or a multipart `audio` part.

Content-Length is checked before anything is read, and the limit is enforced again while
reading, so a chunked upload without a length cannot grow past it either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from bot.api_errors import ApiError

MULTIPART_SLACK = 16_384  # bytes of boundaries, part headers and small fields around the audio
_AUDIO_TYPES = ("audio/", "video/")  # browsers label WebM and MP4 recordings video/* at times
_GENERIC_TYPES = {"", "application/octet-stream", "application/ogg"}


@dataclass(frozen=True)
class Upload:
    """The audio of a multipart request: its bytes, declared type and file name."""

    data: bytes
    mime_type: str | None
    filename: str | None


def too_large(what: str, limit: int) -> ApiError:
    """The 413 refusal for `what` over `limit` bytes."""
    return ApiError(413, "payload_too_large", f"The {what} is larger than {limit} bytes.")


def require_type(request: web.Request, expected: str) -> None:
    """415 unless the request's Content-Type is `expected` (parameters such as charset aside)."""
    if request.content_type != expected:
        given = request.content_type or "none"
        raise ApiError(
            415, "unsupported_media_type", f"Send Content-Type {expected} (got {given})."
        )


def check_length(request: web.Request, limit: int, what: str) -> None:
    """413 at once when the declared Content-Length is over `limit`."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(what, limit)


async def read_body(request: web.Request, limit: int, what: str = "request body") -> bytes:
    """The whole body, refusing (413) as soon as it grows past `limit` bytes."""
    check_length(request, limit, what)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65_536):
        size += len(chunk)
        if size > limit:
            raise too_large(what, limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_message(request: web.Request, limit: int) -> str:
    """The `message` of a JSON body `{"message": "..."}`; 415, 413 or 400 (with the reason)."""
    require_type(request, "application/json")
    body = await read_body(request, limit)
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "bad_request", f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", 'The body must be a JSON object: {"message": "..."}.')
    message = data.get("message")
    if message is None:
        raise ApiError(400, "bad_request", 'The field "message" is missing.')
    if not isinstance(message, str):
        raise ApiError(400, "bad_request", 'The field "message" must be a string.')
    if not message.strip():
        raise ApiError(400, "bad_request", 'The field "message" is empty.')
    return message.strip()


async def _read_part(part: BodyPartReader, limit: int, what: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(65_536):
        size += len(chunk)
        if size > limit:
            raise too_large(what, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _check_audio_type(part: BodyPartReader) -> str | None:
    declared = part.headers.get(hdrs.CONTENT_TYPE, "")
    mime = declared.split(";")[0].strip().lower()
    if mime not in _GENERIC_TYPES and not mime.startswith(_AUDIO_TYPES):
        raise ApiError(
            415, "unsupported_media_type", f"The audio part must be audio/* (got {mime})."
        )
    return declared or None


async def read_audio(request: web.Request, limit: int) -> Upload:
    """The multipart/form-data part named `audio` (at most `limit` bytes); other fields are
    skipped. 415 for another body type or a non-audio part, 413 too large, 400 no audio part."""
    require_type(request, "multipart/form-data")
    check_length(request, limit + MULTIPART_SLACK, "audio upload")
    try:
        reader = await request.multipart()
        upload: Upload | None = None
        spare = MULTIPART_SLACK  # what the other fields may take together
        while (part := await reader.next()) is not None:
            if isinstance(part, MultipartReader):
                raise ApiError(400, "bad_request", "Nested multipart bodies are not accepted.")
            if part.name == "audio" and upload is None:
                mime = _check_audio_type(part)
                data = await _read_part(part, limit, "audio")
                upload = Upload(data, mime, part.filename)
            else:
                spare -= len(await _read_part(part, spare, "form data around the audio"))
    except (ValueError, HttpProcessingError) as exc:  # no boundary, a broken part, ...
        raise ApiError(400, "bad_request", f"The multipart body is malformed: {exc}.") from None
    if upload is None:
        raise ApiError(400, "bad_request", 'The multipart field "audio" is missing.')
    return upload
