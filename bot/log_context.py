"""One id per message in every log line: a context variable that a logging filter copies into
each record (worker threads started with `asyncio.to_thread` inherit it)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

MESSAGE_ID: ContextVar[str | None] = ContextVar("message_id", default=None)


def current_message() -> str | None:
    """The id of the message being handled in this context, if any."""
    return MESSAGE_ID.get()


@contextmanager
def bind_message(message_id: str, *, override: bool = True) -> Iterator[str]:
    """Log lines inside the block carry `message_id` (e.g. `telegram:123456`, `api:<uuid>`).

    With `override=False` an id already bound by the caller is kept. Yields the id in force."""
    outer = MESSAGE_ID.get()
    if outer is not None and not override:
        yield outer
        return
    token = MESSAGE_ID.set(message_id)
    try:
        yield message_id
    finally:
        MESSAGE_ID.reset(token)


class MessageIdFilter(logging.Filter):
    """Sets `record.message_id` (None outside a message); attach it to handlers, not loggers,
    so records from every logger get it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.message_id = MESSAGE_ID.get()
        return True
