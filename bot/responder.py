"""Answers one inbox message: runs the command or the pipeline, keeps the reply, delivers it.

The reply is stored before the first part is sent, so a retry after a crash re-sends only the
parts not yet delivered and never asks the agent twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from bot.components import Components
from bot.limits import user_key
from bot.settings import Settings
from handlers.commands import CommandContext, run_command
from handlers.messages import IncomingMessage, Media, Reply
from rag.language import phrase, wait_phrase
from speech.language import language_code
from speech.types import VoiceNote
from storage.chat_prefs import ChatPrefs, ChatPrefsStore
from storage.inbox import Inbox, InboxItem

log = logging.getLogger(__name__)


class Channel(Protocol):
    """What the responder needs from a messaging channel: its name, how it sends one text
    message and one voice note; which parts are still to send is the responder's business."""

    name: str
    title: str  # for people: "Telegram"
    command_prefix: str
    voice_limit: int  # bytes: a larger voice note is skipped (the text still goes)

    def media(self, item: InboxItem) -> Media | None: ...

    def activity(self, item: InboxItem, voice: bool) -> AbstractAsyncContextManager[None]: ...

    def texts(self, reply: Reply) -> list[str]:
        """The reply as the channel's messages, in order, each within its length limit."""
        ...

    async def send_text(self, item: InboxItem, number: int, text: str, part: str) -> None: ...

    async def send_voice(self, item: InboxItem, voice: VoiceNote, part: str) -> None: ...


async def deliver_parts(
    channel: Channel,
    item: InboxItem,
    reply: Reply,
    sent: set[str],
    record: Callable[[str], Awaitable[None]],
    prefix: str = "",
) -> None:
    """Send each part of `reply` not in `sent` (`text:0`, `text:1`, ..., then `voice`, each
    after `prefix`), recording each once sent: a retry sends only what is missing."""
    for number, text in enumerate(channel.texts(reply)):
        part = f"{prefix}text:{number}"
        if part not in sent:
            await channel.send_text(item, number, text, part)
            await record(part)
    voice, part = reply.voice, f"{prefix}voice"
    if voice is None or part in sent:
        return
    if len(voice.data) > channel.voice_limit:
        log.warning(
            "voice reply of %d bytes to %s is over %s's %g MB; text only",
            len(voice.data),
            item.chat_key,
            channel.title,
            channel.voice_limit / 1_000_000,
        )
        return
    await channel.send_voice(item, voice, part)
    await record(part)


def wants_voice(settings: Settings, prefs: ChatPrefs, spoken: bool) -> bool:
    """Voice replies: the chat's `/voice on|off`, else VOICE_REPLIES (auto: when the user spoke)."""
    if prefs.voice is not None:
        return prefs.voice
    return settings.voice_replies == "always" or (settings.voice_replies == "auto" and spoken)


class Responder:
    """`process(item)` for the dispatcher; `apologize(item, error)` when it gives up."""

    def __init__(
        self,
        components: Components,
        inbox: Inbox,
        prefs: ChatPrefsStore,
        channels: dict[str, Channel],
    ) -> None:
        self.components = components
        self.inbox = inbox
        self.prefs = prefs
        self.channels = channels
        self._index_ready = False
        self._told: dict[str, float] = {}  # who was told "no" (wait, refused), until when

    async def process(self, item: InboxItem) -> None:
        channel = self.channels[item.channel]
        if not self._index_ready:  # a first start: wait for the documents before answering
            await self.components.ensure_indexed()
            self._index_ready = True
        if item.reply is not None:
            reply = Reply.from_stored(item.reply, item.voice)
        else:
            reply = await self._answer(item, channel)
            await self.inbox.save_reply(
                item.id, reply.to_stored(), reply.voice.data if reply.voice else None
            )
        if not reply.text and reply.voice is None:  # told already (see _tell_once): no new send
            log.info("not answering %s %s: told already", item.chat_key, item.message_id)
            return
        await self._deliver(channel, item, reply)
        kind = item.kind
        if kind == "message":
            kind = "text" if channel.media(item) is None else "voice"
        self.components.metrics.message(item.channel, kind)

    async def apologize(self, item: InboxItem, error: BaseException) -> None:
        channel = self.channels[item.channel]
        language = self._language(item, self.prefs.get(item.chat_key))
        reply = Reply(text=phrase("internal_error", language), language=language)
        await self._deliver(channel, item, reply, prefix="apology:")

    async def _deliver(
        self, channel: Channel, item: InboxItem, reply: Reply, prefix: str = ""
    ) -> None:
        """Send the parts not sent yet; the time it took and its failures go to the metrics."""
        metrics = self.components.metrics
        started = time.perf_counter()
        try:
            await deliver_parts(channel, item, reply, item.sent_parts, self._recorder(item), prefix)
        except Exception:
            metrics.stage_error("send")
            raise
        took = time.perf_counter() - started
        metrics.stage_seconds("send", took)
        log.debug("delivered %s%s reply in %.0f ms", prefix, item.chat_key, took * 1000)

    def _recorder(self, item: InboxItem) -> Callable[[str], Awaitable[None]]:
        async def record(part: str) -> None:
            item.sent_parts.add(part)
            await self.inbox.record_part(item.id, part)

        return record

    @staticmethod
    def _language(item: InboxItem, prefs: ChatPrefs) -> str | None:
        return prefs.language or language_code(item.payload.get("language_code"))

    async def _answer(self, item: InboxItem, channel: Channel) -> Reply:
        prefs = self.prefs.get(item.chat_key)
        language = self._language(item, prefs)
        payload = item.payload
        if item.kind == "command":
            context = CommandContext(
                thread_id=item.chat_key,
                prefs=self.prefs,
                forget=self.components.conversations.reset,
                language=language,
                prefix=channel.command_prefix,
            )
            return await run_command(payload["command"], payload.get("args", []), context)
        if item.kind == "refused":  # once a day per chat: each refusal is a paid send
            text = phrase("refused", language) if self._tell_once(item.chat_key, 86400) else ""
            return Reply(text=text, language=language, error="refused")
        if item.kind == "unsupported":
            return Reply(text=phrase(item.kind, language), language=language, error=item.kind)
        limited = await self._over_rate_limit(item, language)
        if limited is not None:
            return limited
        media = channel.media(item)
        voice = wants_voice(self.components.settings, prefs, spoken=media is not None)
        message = IncomingMessage(
            channel=item.channel,
            chat_id=item.chat_id,
            message_id=item.message_id,
            user_id=payload.get("user_id", ""),
            text=payload.get("text"),
            media=media,
            meta={"user_name": payload.get("user_name"), "inbox_id": item.id},
            want_voice=voice,
            # A language fixed by /lang also steers speech recognition; otherwise it is detected.
            language=prefs.language,
        )
        async with channel.activity(item, voice):
            return await self.components.pipeline.handle(message)

    async def _over_rate_limit(self, item: InboxItem, language: str | None) -> Reply | None:
        """A polite "try again in ..." when the user is over a rate limit (questions only:
        commands and refusals are free); None to answer. Counted once per message."""
        limits = self.components.limits
        if limits is None:
            return None
        user = user_key(item.channel, item.payload.get("user_id") or item.chat_id)
        verdict = await limits.admit(user, key=item.message_id)
        if verdict.allowed:
            return None
        log.info(
            "%s is over the per-%s limit; asked to wait %.0f s",
            user,
            verdict.window,
            verdict.retry_after_s,
        )
        self.components.metrics.limited(item.channel, verdict.window or "rate")
        if not self._tell_once(user, verdict.retry_after_s):  # a flood gets one notice
            return Reply(text="", language=language, error="RateLimited")
        wait = wait_phrase(verdict.retry_after_s, language)
        return Reply(
            text=phrase("rate_limited", language).format(wait=wait),
            language=language,
            error="RateLimited",
        )

    def _tell_once(self, who: str, seconds: float) -> bool:
        """True the first time `who` is told "no" in `seconds` (then silence until they pass):
        a flood of messages gets one notice, not one paid send each. Kept in memory only: a
        restart may tell once more."""
        now = time.monotonic()
        if self._told.get(who, 0.0) > now:
            return False
        if len(self._told) > 10_000:  # forget the notices that have run out
            self._told = {k: until for k, until in self._told.items() if until > now}
        self._told[who] = now + max(seconds, 1.0)
        return True
