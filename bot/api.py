"""The HTTP API (`/v1/chat`, `/v1/audio`) and the web chat's endpoints (`/web/chat`,
`/web/audio`): one implementation, two doors, each with its own keys and channel name."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from bot.api_body import read_audio, read_message
from bot.api_errors import ApiError, reply_status
from bot.api_schema import schema_routes
from bot.limits import user_key
from bot.log_context import bind_message
from bot.settings import Settings
from bot.web import COMPONENTS
from bot.webchat import page_routes
from handlers.messages import IncomingMessage, Media, Reply
from rag.errors import RagError
from rag.language import phrase, wait_phrase
from speech.language import language_code

log = logging.getLogger(__name__)

CONVERSATION_HEADER = "X-Conversation-Id"
CONVERSATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


def is_loopback(host: str | None) -> bool:
    """Whether `host` (an address, or `localhost`) only reaches this machine."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def key_fingerprint(key: str) -> str:
    """A short, non-secret name of an API key, for threads, limits and logs."""
    return "key-" + hashlib.sha256(_digest(key)).hexdigest()[:12]


@dataclass(frozen=True)
class Caller:
    """Who asks and in which conversation. On /v1 `user_id` is the key's fingerprint and the
    conversation belongs to that key (`chat_id` = fingerprint/conversation), so two programs
    using the same conversation id never share memory; on the web chat `user_id` is the
    browser's address (a key in a page names nobody) and `chat_id` the conversation."""

    channel: str
    user_id: str
    conversation_id: str
    chat_id: str

    @property
    def thread_id(self) -> str:
        return f"{self.channel}:{self.chat_id}"

    @property
    def limited_as(self) -> str:
        """Whom the rate limits count: one conversation of one key (a key is a trusted program
        that serves many people); on the web chat one address, whatever conversation ids it
        sends."""
        party = self.user_id if self.channel == "web" else self.chat_id
        return user_key(self.channel, party)

    def message(self, message_id: str, **fields: Any) -> IncomingMessage:
        return IncomingMessage(
            channel=self.channel,
            chat_id=self.chat_id,
            user_id=self.user_id,
            message_id=message_id,
            **fields,
        )


@dataclass(frozen=True)
class Door:
    """A pair of answering endpoints under `prefix`: the channel they speak for, the header
    that carries their key and the keys' SHA-256 digests (none and not `open`: the door is off)."""

    channel: str
    prefix: str
    header: str
    keys: tuple[bytes, ...]
    open: bool = False
    off_message: str = "Not found."
    client_ip_header: str | None = None

    def identify(self, request: web.Request) -> Caller:
        """The caller, once the key is right (404 when off, 401 without the right key) and the
        conversation id is valid (400); a request without one starts a new conversation."""
        if not self.keys and not self.open:
            raise ApiError(404, "not_found", self.off_message)
        user_id = self._user_id(request)
        given = request.headers.get(CONVERSATION_HEADER)
        if given is None:
            conversation = uuid.uuid4().hex
        elif CONVERSATION_ID.fullmatch(given):
            conversation = given
        else:
            raise ApiError(
                400,
                "bad_request",
                f"{CONVERSATION_HEADER} must be 1-64 characters of A-Z a-z 0-9 . _ : -.",
            )
        if user_id is None:  # the web chat: the browser's address (CLIENT_IP_HEADER behind a proxy)
            return Caller(self.channel, client_address(request, self.client_ip_header),
                          conversation, conversation)  # fmt: skip
        return Caller(self.channel, user_id, conversation, f"{user_id}/{conversation}")

    def _user_id(self, request: web.Request) -> str | None:
        """The key's fingerprint (None on an open door); 401 when it is missing or wrong."""
        if self.open:
            return None
        given = request.headers.get(self.header)
        if not given:
            raise ApiError(
                401,
                "unauthorized",
                f"Send your key in the {self.header} header.",
                headers={"WWW-Authenticate": f'ApiKey header="{self.header}"'},
            )
        digest = _digest(given)
        matched: bytes | None = None
        for key in self.keys:  # every key is compared: the time tells nothing about which
            if hmac.compare_digest(digest, key):
                matched = key
        if matched is None:
            raise ApiError(
                401,
                "unauthorized",
                f"The key in {self.header} is not valid.",
                headers={"WWW-Authenticate": f'ApiKey header="{self.header}"'},
            )
        return "key-" + hashlib.sha256(matched).hexdigest()[:12]  # = key_fingerprint(given)


def api_door(settings: Settings) -> Door:
    """/v1: programs, with a key from API_KEYS in X-API-Key; off when API_KEYS is empty."""
    return Door(
        channel="api",
        prefix="/v1",
        header="X-API-Key",
        keys=tuple(_digest(key.get_secret_value()) for key in settings.api_keys),
        off_message="The HTTP API is off on this server (API_KEYS is not set).",
    )


def web_door(settings: Settings) -> Door:
    """/web: the web chat page; open without WEB_CHAT_KEY, off with WEB_CHAT=false."""
    key = settings.web_chat_key
    return Door(
        channel="web",
        prefix="/web",
        header="X-Web-Chat-Key",
        keys=(_digest(key.get_secret_value()),) if key is not None and settings.web_chat else (),
        open=settings.web_chat and key is None,
        off_message="The web chat is off on this server (WEB_CHAT=false).",
        client_ip_header=settings.client_ip_header,
    )


def client_address(request: web.Request, header: str | None) -> str:
    """The client's address: CLIENT_IP_HEADER when set (a trusted proxy's, e.g. Fly-Client-IP),
    else the connection's peer."""
    given = request.headers.get(header, "").strip() if header else ""
    return given or request.remote or "unknown"


def reply_body(reply: Reply, conversation_id: str) -> dict[str, Any]:
    """The JSON of an answer (the OpenAPI `Answer` schema)."""
    voice = reply.voice
    return {
        "conversation_id": conversation_id,
        "answer": reply.text,
        "declined": reply.declined,
        "language": reply.language,
        "emotion": (
            {"label": reply.emotion.label, "score": round(reply.emotion.score, 3)}
            if reply.emotion
            else None
        ),
        "sources": [
            {
                "title": s.title,
                "section": s.section,
                "source": s.source,
                "url": s.source if s.source.startswith(("http://", "https://")) else None,
                "score": s.score,
            }
            for s in reply.sources
        ],
        "transcript": reply.transcript,
        "voice": (
            {
                "mime_type": voice.mime_type,
                "duration": voice.duration,
                "data": base64.b64encode(voice.data).decode("ascii"),
            }
            if voice is not None
            else None
        ),
        "exec_time": {stage: round(ms, 1) for stage, ms in reply.timings.items()},
    }


class Api:
    """Answers through the same pipeline as the chat channels, one turn per conversation at a
    time; waits for the first index before the first answer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.doors = (api_door(settings), web_door(settings))
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._indexed = False
        self._index_lock = asyncio.Lock()
        self._warned_open = False

    def routes(self) -> list[web.RouteDef]:
        """POST {prefix}/chat and {prefix}/audio for each door."""
        routes = []
        for door in self.doors:
            routes.append(web.post(f"{door.prefix}/chat", self._handler(door, "chat")))
            routes.append(web.post(f"{door.prefix}/audio", self._handler(door, "audio")))
        return routes

    def _handler(self, door: Door, kind: Literal["chat", "audio"]) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            message_id = uuid.uuid4().hex  # every log line of this request carries it
            with bind_message(f"{door.channel}:{message_id}"):
                return await self._handle(request, door, kind, message_id)

        return handle

    async def _handle(
        self, request: web.Request, door: Door, kind: Literal["chat", "audio"], message_id: str
    ) -> web.StreamResponse:
        caller: Caller | None = None
        try:
            caller = door.identify(request)
            self._warn_if_open_to_others(door, request)
            await self.before_pipeline(request, caller, message_id)
            message = await self._read(request, caller, kind, message_id)
            return await self._answer(request, caller, message)
        except ApiError as exc:
            conversation = caller.conversation_id if caller else "-"
            level = logging.ERROR if exc.status >= 500 else logging.INFO
            log.log(
                level,
                "%s %s refused (conversation %s): %s",
                request.method,
                request.path,
                conversation,
                exc,
            )
            return exc.response()

    async def before_pipeline(self, request: web.Request, caller: Caller, message_id: str) -> None:
        """Called for every authenticated request before its body is read: the per-user rate
        limits (429 with Retry-After), counted per `Caller.limited_as`."""
        components = request.app[COMPONENTS]
        if components.limits is None:
            return
        verdict = await components.limits.admit(caller.limited_as, key=message_id)
        if verdict.allowed:
            return
        components.metrics.limited(caller.channel, verdict.window or "rate")
        language = language_code(request.headers.get("Accept-Language", "").split(",")[0])
        wait = wait_phrase(verdict.retry_after_s, language)
        raise ApiError(
            429,
            "rate_limited",
            phrase("rate_limited", language).format(wait=wait),
            headers={"Retry-After": str(max(1, math.ceil(verdict.retry_after_s)))},
            conversation_id=caller.conversation_id,
            retry_after_s=math.ceil(verdict.retry_after_s),
        )

    async def _read(
        self,
        request: web.Request,
        caller: Caller,
        kind: Literal["chat", "audio"],
        message_id: str,
    ) -> IncomingMessage:
        voice_replies = self.settings.voice_replies
        if kind == "chat":
            text = await read_message(request, self.settings.api_max_body_bytes)
            return caller.message(message_id, text=text, want_voice=voice_replies == "always")
        upload = await read_audio(request, self.settings.max_audio_bytes)
        media = Media(mime_type=upload.mime_type, data=upload.data)
        return caller.message(message_id, media=media, want_voice=voice_replies != "never")

    async def _answer(
        self, request: web.Request, caller: Caller, message: IncomingMessage
    ) -> web.Response:
        components = request.app[COMPONENTS]
        await self._ensure_indexed(request, caller)
        lock = self._locks.setdefault(caller.thread_id, asyncio.Lock())
        async with lock:
            try:
                reply = await components.pipeline.handle(message)
            except Exception as exc:
                log.exception(
                    "answering %s message %s failed",
                    caller.thread_id,
                    message.message_id,
                    extra={"thread_id": caller.thread_id},
                )
                raise ApiError(
                    500,
                    "internal_error",
                    phrase("internal_error", message.language),
                    conversation_id=caller.conversation_id,
                ) from exc
        components.metrics.message(caller.channel, "voice" if message.media else "text")
        status, code = reply_status(reply)
        if status != 200:
            raise ApiError(
                status,
                code,
                reply.text,
                reason=reply.error,
                conversation_id=caller.conversation_id,
                language=reply.language,
            )
        headers = {CONVERSATION_HEADER: caller.conversation_id}
        return web.json_response(reply_body(reply, caller.conversation_id), headers=headers)

    async def _ensure_indexed(self, request: web.Request, caller: Caller) -> None:
        """The first answer waits for the first index run (503 if it fails)."""
        if self._indexed:
            return
        async with self._index_lock:
            if self._indexed:
                return
            try:
                await request.app[COMPONENTS].ensure_indexed()
            except Exception as exc:  # IndexingError was logged with its traceback by reindex
                log.error(
                    "cannot answer %s before the first index: %s",
                    caller.thread_id,
                    exc,
                    exc_info=not isinstance(exc, RagError),
                )
                raise ApiError(
                    503,
                    "index_unavailable",
                    "The knowledge base is not indexed yet; please try again later.",
                    conversation_id=caller.conversation_id,
                ) from exc
            self._indexed = True

    def _warn_if_open_to_others(self, door: Door, request: web.Request) -> None:
        if door.open and not self._warned_open and not is_loopback(request.remote):
            self._warned_open = True
            log.warning(
                "the web chat (no WEB_CHAT_KEY) was used from %s: anyone who reaches this server"
                " can use it; set WEB_CHAT_KEY or WEB_CHAT=false",
                request.remote,
            )


def http_routes(settings: Settings) -> list[web.RouteDef]:
    """Every route of the API and the web chat: answering endpoints, /openapi.json and the page."""
    if settings.web_chat and settings.web_chat_key is None and not is_loopback(settings.host):
        log.warning(
            "the web chat at / is open without a key while HOST=%s accepts other machines;"
            " set WEB_CHAT_KEY, or WEB_CHAT=false",
            settings.host,
        )
    routes = Api(settings).routes() + schema_routes()
    if settings.web_chat:
        routes += page_routes()
    return routes
