"""The messaging side of `serve`: the inbox, the configured channels and the dispatcher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from bot.components import Components
from bot.dispatcher import Dispatcher, DispatchPolicy
from bot.errors import SettingsError
from bot.responder import Channel, Responder
from bot.settings import Settings
from storage.chat_prefs import ChatPrefsStore
from storage.inbox import Inbox, SqliteInbox

log = logging.getLogger(__name__)

PRUNE_EVERY = 3600.0


class ServedChannel(Channel, Protocol):
    """A channel as `serve` runs it: its routes, and its start and stop."""

    def routes(self) -> list[web.RouteDef]: ...

    async def start(self) -> None: ...

    async def stop_receiving(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class ReportsHealth(Protocol):
    """A channel with figures of its own for /health (the WhatsApp channel's failures)."""

    async def health(self) -> dict[str, Any]: ...


def _twilio_configured(settings: Settings) -> bool:
    """Whether the WhatsApp channel is wanted; SettingsError naming what it lacks."""
    given = {
        "TWILIO_ACCOUNT_SID": settings.twilio_account_sid,
        "TWILIO_AUTH_TOKEN": settings.twilio_auth_token,
        "TWILIO_WHATSAPP_NUMBER": settings.twilio_whatsapp_number,
        "PUBLIC_BASE_URL": settings.public_base_url,
    }
    if settings.twilio_account_sid is None:
        if settings.twilio_auth_token is not None or settings.twilio_whatsapp_number is not None:
            raise SettingsError(
                "TWILIO_ACCOUNT_SID is required by TWILIO_AUTH_TOKEN / TWILIO_WHATSAPP_NUMBER"
            )
        return False
    missing = [name for name, value in given.items() if value is None]
    if missing:
        raise SettingsError(
            f"{', '.join(missing)} required for WhatsApp (TWILIO_ACCOUNT_SID is set);"
            " PUBLIC_BASE_URL is the address Twilio calls, used to check its signatures"
        )
    return True


class Messaging:
    """Built with the app (its routes are fixed then); `running(components)` serves it."""

    def __init__(self, settings: Settings, *, telegram_polling: bool = False) -> None:
        self.settings = settings
        self.inbox: Inbox = SqliteInbox(settings.path("inbox.sqlite3"))
        self.dispatcher: Dispatcher | None = None
        self.channels: dict[str, ServedChannel] = {}
        if settings.telegram_bot_token is not None:
            if settings.telegram_webhook_secret is None and not telegram_polling:
                raise SettingsError(
                    "TELEGRAM_WEBHOOK_SECRET is required for the Telegram webhook"
                    " (or serve with --telegram-polling)"
                )
            from handlers.telegram import TelegramChannel

            telegram = TelegramChannel(settings, self.inbox, self.wake, polling=telegram_polling)
            self.channels[telegram.name] = telegram
        if _twilio_configured(settings):
            from handlers.whatsapp import WhatsAppChannel

            whatsapp = WhatsAppChannel(settings, self.inbox, self.wake)
            self.channels[whatsapp.name] = whatsapp

    def routes(self) -> list[web.RouteDef]:
        return [route for channel in self.channels.values() for route in channel.routes()]

    async def health(self) -> dict[str, dict[str, Any]]:
        """What each channel that reports on itself says, for /health."""
        return {
            name: await channel.health()
            for name, channel in self.channels.items()
            if isinstance(channel, ReportsHealth)
        }

    def wake(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

    @asynccontextmanager
    async def running(self, components: Components) -> AsyncIterator[None]:
        """Start the channels (getMe), then the dispatcher; stop the channels first."""
        settings = self.settings
        prefs = ChatPrefsStore(settings.path("chats.sqlite3"))
        responder = Responder(components, self.inbox, prefs, dict(self.channels))
        self.dispatcher = Dispatcher(
            self.inbox,
            responder.process,
            responder.apologize,
            DispatchPolicy(
                concurrency=settings.inbox_concurrency,
                max_attempts=settings.inbox_max_attempts,
                retry_base=settings.inbox_retry_seconds,
            ),
        )
        started: list[ServedChannel] = []
        pruning = asyncio.create_task(self._prune(), name="inbox-prune")
        try:
            for channel in self.channels.values():
                await channel.start()
                started.append(channel)
            await self.dispatcher.start()
            yield
        finally:
            # Stop taking updates, let answers in progress finish sending, then close the bots.
            for channel in started:
                await channel.stop_receiving()
            await self.dispatcher.stop()
            for channel in started:
                await channel.stop()
            pruning.cancel()
            await asyncio.gather(pruning, return_exceptions=True)
            await self.inbox.close()
            prefs.close()

    async def _prune(self) -> None:
        """Forget finished messages after INBOX_RETENTION_DAYS (until then they dedupe)."""
        while True:
            try:
                removed = await self.inbox.prune(self.settings.inbox_retention_days * 86400)
                if removed:
                    log.info("pruned %d finished inbox messages", removed)
            except Exception:
                log.exception("pruning the inbox failed; will retry in an hour")
            await asyncio.sleep(PRUNE_EVERY)
