"""Logging set-up for the CLI and the server."""

from __future__ import annotations

import logging

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


def setup_logging(level: str = "INFO") -> None:
    """Plain, timestamped lines on stderr; chatty libraries only from WARNING up."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for name in NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
