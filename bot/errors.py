"""The bot package's exception tree."""


class BotError(Exception):
    """Base of every error raised by the bot package."""


class SettingsError(BotError):
    """A setting is missing or wrong; the message names it."""


class DeliveryError(BotError):
    """A reply could not be delivered to its channel."""


class TransientDeliveryError(DeliveryError):
    """Worth retrying (network, rate limit, server error); `retry_after` when the channel said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help (the bot was blocked, the chat is gone, the request is refused).

    `reachable`: whether the chat can still receive a message (an apology)."""

    def __init__(self, message: str, reachable: bool = True) -> None:
        super().__init__(message)
        self.reachable = reachable
