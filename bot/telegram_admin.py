"""`python -m bot telegram set-webhook | delete-webhook | info`: the webhook's registration."""

from __future__ import annotations

import json

from bot.errors import SettingsError
from bot.settings import Settings


async def run_telegram_command(settings: Settings, action: str, drop_pending: bool) -> int:
    """Register, remove or show the webhook through the Bot API; prints what Telegram says."""
    from handlers.telegram import ALLOWED_UPDATES, WEBHOOK_PATH, build_application

    if settings.telegram_bot_token is None:
        raise SettingsError("TELEGRAM_BOT_TOKEN is required")
    app = build_application(settings)
    async with app.bot as bot:
        if action == "set-webhook":
            if not settings.public_base_url or not settings.public_base_url.startswith("https://"):
                raise SettingsError("PUBLIC_BASE_URL must be the bot's https:// address")
            if settings.telegram_webhook_secret is None:
                raise SettingsError("TELEGRAM_WEBHOOK_SECRET is required for the webhook")
            url = settings.public_base_url.rstrip("/") + WEBHOOK_PATH
            await bot.set_webhook(
                url,
                secret_token=settings.telegram_webhook_secret.get_secret_value(),
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=drop_pending,
                max_connections=40,
            )
            print(f"webhook set: {url} (updates: {', '.join(ALLOWED_UPDATES)})")
        elif action == "delete-webhook":
            await bot.delete_webhook(drop_pending_updates=drop_pending)
            print("webhook deleted; `serve --telegram-polling` can fetch updates now")
        info = await bot.get_webhook_info()
        print(json.dumps(info.to_dict(), indent=2, default=str))
    return 0
