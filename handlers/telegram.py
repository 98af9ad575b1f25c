"""The Telegram channel: python-telegram-bot inside the aiohttp app, webhook or polling.

Updates are checked, classified and stored in the inbox before the webhook answers 200; the
dispatcher later asks this channel for the media and to deliver the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from aiohttp import web

# Opt into PTB's timedelta durations (the int form is deprecated and warns on every access).
os.environ.setdefault("PTB_TIMEDELTA", "true")

from telegram import (
    Bot,
    InputFile,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)
from telegram.ext import AIORateLimiter, Application, ContextTypes, TypeHandler

from bot.errors import PermanentDeliveryError, TransientDeliveryError
from bot.settings import Settings
from handlers.messages import Media, Reply
from handlers.telegram_format import html_messages
from speech.errors import AudioTooLarge
from speech.types import VoiceNote
from storage.inbox import Inbox, InboxItem

log = logging.getLogger(__name__)

T = TypeVar("T")

CHANNEL = "telegram"
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
ALLOWED_UPDATES = ["message"]
VOICE_LIMIT = 1_000_000  # bytes: larger OGG/Opus files do not show as a voice bubble
ACTION_EVERY = 4.0  # seconds: a chat action shows for about 5 s


class ChatRateLimiter(AIORateLimiter):
    """PTB's limiter (30 messages/s overall, 20/min per group, waits out 429s) plus about one
    message per second per private chat, with a burst of two (an answer and its voice note)."""

    def __init__(self, per_chat_rate: float = 2, per_chat_period: float = 2, **kwargs: Any):
        super().__init__(**kwargs)
        self._per_chat = (per_chat_rate, per_chat_period)
        self._chat_limiters: dict[int, Any] = {}

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        chat_id = data.get("chat_id")
        if endpoint == "sendChatAction" or not isinstance(chat_id, int) or chat_id < 0:
            return await super().process_request(
                callback, args, kwargs, endpoint, data, rate_limit_args
            )
        async with self._chat_limiter(chat_id):
            return await super().process_request(
                callback, args, kwargs, endpoint, data, rate_limit_args
            )

    def _chat_limiter(self, chat_id: int) -> Any:
        from aiolimiter import AsyncLimiter

        if len(self._chat_limiters) > 1024:
            for key, limiter in list(self._chat_limiters.items()):
                if limiter.has_capacity(limiter.max_rate):
                    del self._chat_limiters[key]
        if chat_id not in self._chat_limiters:
            self._chat_limiters[chat_id] = AsyncLimiter(*self._per_chat)
        return self._chat_limiters[chat_id]


def build_application(
    settings: Settings, *, polling: bool = False
) -> Application[Any, Any, Any, Any, Any, Any]:
    """PTB's Application for these settings; without an Updater unless `polling`."""
    if settings.telegram_bot_token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    builder = (
        Application.builder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_file_base_url)
        .rate_limiter(ChatRateLimiter(max_retries=2))
        .connect_timeout(10)
        .read_timeout(30)
        .write_timeout(60)
        .pool_timeout(10)
        .connection_pool_size(64)
    )
    if not polling:
        builder = builder.updater(None)
    return builder.build()


class TelegramChannel:
    """Accepts updates into the inbox; fetches media and delivers replies for the dispatcher."""

    name = CHANNEL
    title = "Telegram"
    command_prefix = "/"
    voice_limit = VOICE_LIMIT

    def __init__(
        self,
        settings: Settings,
        inbox: Inbox,
        on_accepted: Callable[[], None],
        *,
        polling: bool = False,
    ) -> None:
        self.settings = settings
        self.inbox = inbox
        self.on_accepted = on_accepted
        self.polling = polling
        secret = settings.telegram_webhook_secret
        self._secret = secret.get_secret_value().encode() if secret else b""
        self.app = build_application(settings, polling=polling)
        self.app.add_handler(TypeHandler(Update, self._on_polled_update))
        self.app.add_error_handler(self._on_error)
        allowed = settings.telegram_allowed_chats
        self._allowed_ids = {int(a) for a in allowed if a.lstrip("-").isdigit()}
        self._allowed_names = {
            a.lstrip("@").lower() for a in allowed if not a.lstrip("-").isdigit()
        }

    @property
    def bot(self) -> Bot:
        bot: Bot = self.app.bot
        return bot

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """getMe, then (polling) drop any webhook and start fetching updates."""
        try:
            await self.app.initialize()
        except InvalidToken as exc:
            raise PermanentDeliveryError(f"Telegram refused TELEGRAM_BOT_TOKEN: {exc}") from exc
        except TelegramError as exc:
            raise TransientDeliveryError(
                f"cannot reach the Telegram Bot API at {self.settings.telegram_api_base_url}: {exc}"
            ) from exc
        await self.app.start()
        if self.polling and self.app.updater is not None:
            await self.bot.delete_webhook()
            await self.app.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
        log.info(
            "Telegram bot @%s ready (%s)",
            self.bot.username,
            "polling" if self.polling else "webhook",
        )

    async def stop_receiving(self) -> None:
        """Polling: stop fetching updates (the webhook stops with the web server)."""
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()

    async def stop(self) -> None:
        await self.stop_receiving()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    def routes(self) -> list[web.RouteDef]:
        return [] if self.polling else [web.post(WEBHOOK_PATH, self.webhook)]

    # --- accepting -------------------------------------------------------------------------
    async def webhook(self, request: web.Request) -> web.Response:
        """403 without the right secret (checked before parsing), 400 for what is not an
        update, 200 once the update is stored (or known), 503 when the inbox cannot store it."""
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if not self._secret or not hmac.compare_digest(given, self._secret):
            log.warning(
                "refused a Telegram webhook call from %s: wrong or missing secret", request.remote
            )
            return web.Response(status=403, text="forbidden")
        try:
            data = await request.json()
        except ValueError:
            return web.Response(status=400, text="body is not JSON")
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            return web.Response(status=400, text="not a Telegram update")
        try:
            update = Update.de_json(data, self.bot)
        except Exception as exc:  # PTB raises whatever a malformed field leads to
            log.warning("malformed Telegram update %s: %s", data.get("update_id"), exc)
            return web.Response(status=400, text="malformed update")
        try:
            await self.accept(update)
        except Exception:
            log.exception(
                "could not store Telegram update %s; Telegram will retry", update.update_id
            )
            return web.Response(status=503, text="try again")
        return web.Response(status=200)

    async def accept(self, update: Update) -> bool:
        """Store the update if it is for the bot; False when ignored or already accepted."""
        classified = self.classify(update)
        if classified is None:
            return False
        chat_id, kind, payload = classified
        new = await self.inbox.enqueue(CHANNEL, chat_id, str(update.update_id), kind, payload)
        if new:
            self.on_accepted()
        else:
            log.info("Telegram update %s was already accepted", update.update_id)
        return new

    def classify(self, update: Update) -> tuple[str, str, dict[str, Any]] | None:
        """(chat id, inbox kind, payload), or None for what the bot leaves alone."""
        msg = update.message
        if msg is None or msg.from_user is None or msg.from_user.is_bot:
            return None
        group = msg.chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)
        command = self._command(msg)
        if command == ("", []):  # a command meant for another bot
            return None
        if group and command is None and not self._addressed(msg):
            return None
        user = msg.from_user
        payload: dict[str, Any] = {
            "message_id": msg.message_id,
            "user_id": str(user.id),
            "user_name": user.full_name,
            "language_code": user.language_code,
            "group": group,
        }
        chat_id = str(msg.chat.id)
        if not self._allowed(msg):
            log.info("refusing Telegram chat %s (not in TELEGRAM_ALLOWED_CHATS)", chat_id)
            return chat_id, "refused", payload
        if command is not None:
            name, args = command
            return chat_id, "command", {**payload, "command": name, "args": args}
        media = _media_of(msg)
        if media is not None:
            return chat_id, "message", {**payload, "media": media, "text": msg.caption}
        text = msg.text
        if text is not None:
            if group:
                text = self._without_mention(msg, text)
            return chat_id, "message", {**payload, "text": text}
        if msg.effective_attachment is not None:
            return chat_id, "unsupported", payload
        return None  # a service message: someone joined, a title changed...

    def _command(self, msg: Message) -> tuple[str, list[str]] | None:
        """(name, args) for a command to this bot; ("", []) for another bot's; else None."""
        text = msg.text or ""
        if not text.startswith("/"):
            return None
        head, *args = text.split()
        name, _, target = head[1:].partition("@")
        if target and target.lower() != (self.bot.username or "").lower():
            return "", []
        return name.lower(), args

    def _addressed(self, msg: Message) -> bool:
        """In a group: mentioned by @username, or a reply to one of the bot's messages."""
        replied = msg.reply_to_message
        if (
            replied is not None
            and replied.from_user is not None
            and replied.from_user.id == self.bot.id
        ):
            return True
        username = f"@{self.bot.username}".lower()
        for entity, value in (msg.parse_entities() | msg.parse_caption_entities()).items():
            if entity.type == MessageEntity.MENTION and value.lower() == username:
                return True
            if (
                entity.type == MessageEntity.TEXT_MENTION
                and entity.user
                and entity.user.id == self.bot.id
            ):
                return True
        return False

    def _without_mention(self, msg: Message, text: str) -> str:
        mention = re.compile(rf"@{re.escape(self.bot.username or '')}\b", re.IGNORECASE)
        return mention.sub("", text).strip()

    def _allowed(self, msg: Message) -> bool:
        if not self._allowed_ids and not self._allowed_names:
            return True
        user = msg.from_user
        ids = {msg.chat.id, user.id if user else 0}
        names = {
            (msg.chat.username or "").lower(),
            ((user.username if user else None) or "").lower(),
        }
        return bool(ids & self._allowed_ids or (names - {""}) & self._allowed_names)

    async def _on_polled_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Polling confirms an update to Telegram with the next getUpdates, whatever happens
        here, so storing it is retried until it works (or the app stops)."""
        delay = 0.1
        while True:
            try:
                await self.accept(update)
                return
            except Exception:
                log.exception("could not store polled update %s; retrying", update.update_id)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        update_id = update.update_id if isinstance(update, Update) else None
        log.error("Telegram update %s could not be accepted", update_id, exc_info=context.error)

    # --- answering (called by the dispatcher) ---------------------------------------------------
    def media(self, item: InboxItem) -> Media | None:
        info = item.payload.get("media")
        if not info:
            return None
        file_id, size = info["file_id"], info.get("file_size")

        async def fetch() -> bytes:
            limit = self.settings.max_audio_bytes
            if size and size > limit:
                raise AudioTooLarge(f"Telegram file of {size} bytes is over {limit}")
            try:
                telegram_file = await self._call(self.bot.get_file(file_id), "getFile")
            except PermanentDeliveryError as exc:  # "temporarily unavailable" and the like
                raise TransientDeliveryError(str(exc)) from exc
            if telegram_file.file_size and telegram_file.file_size > limit:
                raise AudioTooLarge(f"Telegram file of {telegram_file.file_size} bytes")
            data = bytes(await self._call(telegram_file.download_as_bytearray(), "download"))
            if len(data) > limit:
                raise AudioTooLarge(f"Telegram file of {len(data)} bytes is over {limit}")
            return data

        return Media(mime_type=info.get("mime_type"), duration=info.get("duration"), fetch=fetch)

    @contextlib.asynccontextmanager
    async def activity(self, item: InboxItem, voice: bool) -> AsyncIterator[None]:
        """Shows `typing` (or `record_voice`) in the chat, refreshed until the reply is ready."""
        action = ChatAction.RECORD_VOICE if voice else ChatAction.TYPING
        task = asyncio.create_task(self._keep_showing(item.chat_id, action))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _keep_showing(self, chat_id: str, action: str) -> None:
        while True:
            try:
                await self.bot.send_chat_action(int(chat_id), action)
            except TelegramError as exc:
                log.debug("chat action for %s failed: %s", chat_id, exc)
            await asyncio.sleep(ACTION_EVERY)

    def texts(self, reply: Reply) -> list[str]:
        return html_messages(reply)

    async def send_text(self, item: InboxItem, number: int, text: str, part: str) -> None:
        """One HTML message; in a group the first one quotes the question."""
        quote = (
            ReplyParameters(message_id=item.payload["message_id"], allow_sending_without_reply=True)
            if number == 0 and item.payload.get("group") and item.payload.get("message_id")
            else None
        )
        await self._call(
            self.bot.send_message(
                int(item.chat_id),
                text,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_parameters=quote,
            ),
            "sendMessage",
        )

    async def send_voice(self, item: InboxItem, voice: VoiceNote, part: str) -> None:
        await self._call(
            self.bot.send_voice(
                int(item.chat_id),
                InputFile(voice.data, filename="answer.ogg"),
                duration=timedelta(seconds=round(voice.duration)),
            ),
            "sendVoice",
        )

    async def _call(self, request: Awaitable[T], method: str) -> T:
        """Await a Bot API call, turning Telegram's errors into retry-or-not delivery errors."""
        try:
            return await request
        except RetryAfter as exc:
            wait = exc.retry_after
            seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            raise TransientDeliveryError(
                f"{method}: flood control, retry in {seconds:.0f} s", seconds
            ) from exc
        except (Forbidden, InvalidToken) as exc:  # blocked, kicked, or the token revoked
            raise PermanentDeliveryError(f"{method}: {exc}", reachable=False) from exc
        except ChatMigrated as exc:  # the group became a supergroup with another id
            raise PermanentDeliveryError(
                f"{method}: the chat moved to {exc.new_chat_id}", reachable=False
            ) from exc
        except BadRequest as exc:
            if "too big" in str(exc).lower():
                raise AudioTooLarge(f"{method}: {exc}") from exc
            raise PermanentDeliveryError(f"{method}: {exc}") from exc
        except TelegramError as exc:  # NetworkError, TimedOut, server errors
            raise TransientDeliveryError(f"{method}: {exc}") from exc


def _is_audio(mime_type: str | None) -> bool:
    mime = (mime_type or "").lower()
    return mime.startswith("audio/") or mime in ("application/ogg", "video/ogg")


def _media_of(msg: Message) -> dict[str, Any] | None:
    """The audio this message carries (voice, audio, a video note's sound, an audio document)."""
    attachment: Any = msg.voice or msg.audio or msg.video_note
    if attachment is None and msg.document and _is_audio(msg.document.mime_type):
        attachment = msg.document
    if attachment is None:
        return None
    duration = getattr(attachment, "duration", None)
    if isinstance(duration, timedelta):
        duration = duration.total_seconds()
    mime = getattr(attachment, "mime_type", None) or ("video/mp4" if msg.video_note else None)
    return {
        "file_id": attachment.file_id,
        "file_size": attachment.file_size,
        "mime_type": mime,
        "duration": duration,
    }
