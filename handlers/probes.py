"""Quick checks of the messaging channels for `python -m bot doctor`: each logs in with the
configured credentials and reads the channel's own view of this bot, returning one line of
detail or raising `ProbeError`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from handlers.errors import ProbeError

if TYPE_CHECKING:
    from bot.settings import Settings

RECENT_ERROR_S = 3600.0  # a webhook delivery error younger than this fails the check


async def telegram(settings: Settings, seconds: float) -> str:
    """getMe with TELEGRAM_BOT_TOKEN, then getWebhookInfo compared with PUBLIC_BASE_URL."""
    from telegram import Bot
    from telegram.error import InvalidToken, NetworkError, TelegramError
    from telegram.request import HTTPXRequest

    assert settings.telegram_bot_token is not None
    token = settings.telegram_bot_token.get_secret_value()
    base = settings.telegram_api_base_url
    request = HTTPXRequest(connect_timeout=seconds, read_timeout=seconds, write_timeout=seconds)
    bot = Bot(token, base_url=base, base_file_url=settings.telegram_file_base_url, request=request)
    try:
        async with bot:  # initialize() calls getMe
            username = bot.username
            info = await bot.get_webhook_info()
    except InvalidToken as exc:
        raise ProbeError(
            f"{base} refused TELEGRAM_BOT_TOKEN (HTTP 401/404): the token is wrong",
            "copy the bot's token from @BotFather (/token) into TELEGRAM_BOT_TOKEN",
        ) from exc
    except NetworkError as exc:  # TimedOut included
        raise ProbeError(
            f"cannot reach {base}: {_without(token, exc)}",
            "check TELEGRAM_API_BASE_URL and that this machine can reach it",
        ) from exc
    except TelegramError as exc:
        raise ProbeError(
            f"Telegram answered: {_without(token, exc)}", "see the Bot API's message above"
        ) from exc
    return f"@{username}; " + _webhook(settings, info)


def _without(token: str, exc: Exception) -> str:
    return (str(exc) or type(exc).__name__).replace(token, "<token>")


def _webhook(settings: Settings, info: Any) -> str:
    """The webhook Telegram holds, checked against the one PUBLIC_BASE_URL implies."""
    from handlers.telegram import WEBHOOK_PATH

    registered = info.url or ""
    pending = f"{info.pending_update_count} update(s) waiting"
    if not settings.public_base_url:
        if registered:
            return f"webhook {registered} ({pending}); no PUBLIC_BASE_URL here"
        return "no webhook: polling (`serve --telegram-polling`)"
    expected = settings.public_base_url.rstrip("/") + WEBHOOK_PATH
    set_webhook = "run `python -m bot telegram set-webhook` (with serve running)"
    if settings.telegram_webhook_secret is None:
        raise ProbeError(
            "PUBLIC_BASE_URL is set but TELEGRAM_WEBHOOK_SECRET is not: serve refuses the webhook",
            f"set TELEGRAM_WEBHOOK_SECRET (1-256 of A-Z a-z 0-9 _ -), then {set_webhook}",
        )
    if not registered:
        raise ProbeError(f"no webhook registered; Telegram should call {expected}", set_webhook)
    if registered != expected:
        raise ProbeError(f"Telegram calls {registered}, not {expected}", set_webhook)
    error = info.last_error_message
    when = info.last_error_date
    if error and when is not None:
        age = time.time() - when.timestamp()
        if age < RECENT_ERROR_S:
            raise ProbeError(
                f"Telegram's last delivery to {registered} failed {age / 60:.0f} min ago:"
                f" {error} ({pending})",
                "check that serve is up behind PUBLIC_BASE_URL and that TELEGRAM_WEBHOOK_SECRET"
                f" is the registered one (else {set_webhook})",
            )
        return f"webhook {registered} ({pending}); an older error: {error}"
    return f"webhook {registered} ({pending})"


# --- Twilio (WhatsApp) ---------------------------------------------------------------------
async def twilio(settings: Settings, seconds: float) -> str:
    """Fetch the account with TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN through the twilio client,
    at TWILIO_API_BASE_URL; the webhook URLs Twilio must be given, from PUBLIC_BASE_URL."""
    import asyncio

    import aiohttp
    from twilio.base.exceptions import TwilioException
    from twilio.http.async_http_client import AsyncTwilioHttpClient
    from twilio.rest import Client

    from handlers.whatsapp import WEBHOOK_PATH

    assert settings.twilio_account_sid is not None and settings.twilio_auth_token is not None
    sid, token = settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value()
    base = settings.twilio_api_base_url
    http = AsyncTwilioHttpClient(timeout=seconds)
    client = Client(sid, token, http_client=http, environment={"TWILIO_ACCOUNT_SID": sid})
    client.api.base_url = base
    try:
        async with asyncio.timeout(seconds):
            account = await client.api.v2010.account.fetch_async()
    except TwilioException as exc:
        status = getattr(exc, "status", None)
        if status in (401, 403, 404):
            raise ProbeError(
                f"{base} refused TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN (HTTP {status}):"
                " the auth token is wrong",
                "copy the Account SID and Auth Token from the Twilio console into"
                " TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
            ) from exc
        raise ProbeError(
            f"Twilio answered: {_without(token, exc)}", "see Twilio's message above"
        ) from exc
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise ProbeError(
            f"cannot reach {base}: {_without(token, exc)}",
            "check TWILIO_API_BASE_URL and that this machine can reach it",
        ) from exc
    finally:
        await http.close()
    status = getattr(account, "status", None)
    if status != "active":
        raise ProbeError(
            f"account {sid} is {status}", "reactivate the account in the Twilio console"
        )
    public = (settings.public_base_url or "").rstrip("/")
    return (
        f"account {account.friendly_name} ({status}); sender {settings.twilio_whatsapp_number};"
        f" the sender's webhook must be {public}{WEBHOOK_PATH}"
    )
