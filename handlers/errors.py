"""The exceptions of the handlers package (channels and the pipeline)."""


class HandlerError(Exception):
    """Root of the handlers package's own errors (deliveries raise bot.errors.DeliveryError)."""


class ProbeError(HandlerError):
    """A channel check of `python -m bot doctor` failed; `fix` says what to do about it."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix
