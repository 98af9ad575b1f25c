"""Deliveries a channel reported as failed (a status callback, or a refusal when sending),
kept for an operator: which message, to whom, the provider's error code and message."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from storage.sqlite_file import SqliteFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS delivery_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    message_sid TEXT,
    recipient TEXT,
    status TEXT NOT NULL,
    error_code TEXT,
    error_message TEXT,
    at REAL NOT NULL,
    UNIQUE (channel, message_sid, status)
);
"""


@dataclass(frozen=True)
class DeliveryFailure:
    channel: str
    message_sid: str | None  # None when the provider refused the message outright
    recipient: str | None
    status: str  # failed, undelivered, refused
    error_code: str | None
    error_message: str | None
    at: float = 0.0


class DeliveryFailures:
    """An append-only SQLite table; a callback delivered twice is recorded once."""

    def __init__(self, path: Path | str) -> None:
        self._file = SqliteFile(path, _SCHEMA, "delivery-failures")

    async def record(self, failure: DeliveryFailure) -> bool:
        """Store it; False when this message's status was already recorded."""

        def insert(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO delivery_failures (channel, message_sid, recipient, status,"
                " error_code, error_message, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    failure.channel,
                    failure.message_sid,
                    failure.recipient,
                    failure.status,
                    failure.error_code,
                    failure.error_message,
                    failure.at or time.time(),
                ),
            )
            return cursor.rowcount == 1

        return await self._file.run(insert)

    async def recent(self, channel: str, limit: int = 50) -> list[DeliveryFailure]:
        def select(conn: sqlite3.Connection) -> list[DeliveryFailure]:
            rows = conn.execute(
                "SELECT channel, message_sid, recipient, status, error_code, error_message, at"
                " FROM delivery_failures WHERE channel = ? ORDER BY id DESC LIMIT ?",
                (channel, limit),
            ).fetchall()
            return [DeliveryFailure(*row) for row in rows]

        return await self._file.run(select)

    async def count(self, channel: str) -> int:
        def select(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT COUNT(*) FROM delivery_failures WHERE channel = ?", (channel,)
            ).fetchone()
            return int(row[0])

        return await self._file.run(select)

    async def prune(self, older_than_seconds: float) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM delivery_failures WHERE at < ?", (time.time() - older_than_seconds,)
            ).rowcount

        return await self._file.run(delete)

    async def close(self) -> None:
        await self._file.close()
