"""Logging set-up for the CLI and the server: text lines for a terminal or JSON lines
(LOG_FORMAT), each carrying the id of the message being handled."""

from __future__ import annotations

import logging
import sys
from typing import IO, Literal

from pythonjsonlogger.json import JsonFormatter

from bot.log_context import MessageIdFilter

NOISY = (
    "httpx",
    "httpcore",
    "openai",
    "faster_whisper",
    "aiosqlite",
    "asyncio",
    "urllib3",
    "twilio",
)
LogFormat = Literal["text", "json"]


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [message id]: text`; the brackets only inside a message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(message_tag)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        message_id = getattr(record, "message_id", None)
        record.message_tag = f" [{message_id}]" if message_id else ""
        return super().format(record)


def json_formatter() -> logging.Formatter:
    """One JSON object per line: timestamp, level, logger, message, message_id, and extras."""
    return JsonFormatter(
        "{levelname}{name}{message}{message_id}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
    )


def log_handler(fmt: LogFormat = "text", stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler (stderr by default) in `fmt` that stamps each record's message id."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else TextFormatter())
    handler.addFilter(MessageIdFilter())
    return handler


def setup_logging(
    level: str = "INFO", fmt: LogFormat = "text", stream: IO[str] | None = None
) -> None:
    """Replace the root logger's handlers with one `log_handler`; chatty libraries only from
    WARNING up."""
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(log_handler(fmt, stream))
    root.setLevel(level)
    for name in NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
