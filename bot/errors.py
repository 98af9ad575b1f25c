"""The bot package's exception tree."""


class BotError(Exception):
    """Base of every error raised by the bot package."""


class SettingsError(BotError):
    """A setting is missing or wrong; the message names it."""
