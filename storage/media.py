"""Reply media (voice notes) served to the messaging provider at unguessable, expiring URLs.

Twilio fetches a reply's media from us after we send it, so the bytes outlive the request and a
restart: they live in SQLite until they expire.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from storage.sqlite_file import SqliteFile


@dataclass(frozen=True)
class StoredMedia:
    data: bytes
    content_type: str
    expires_at: float


class MediaStore(ABC):
    """Bytes by token until they expire."""

    @abstractmethod
    async def put(self, data: bytes, content_type: str, ttl: float, key: str | None = None) -> str:
        """Keep `data` for `ttl` seconds; returns its token. With `key`, the same unexpired key
        returns the token it already has (a retried send reuses its URL)."""

    @abstractmethod
    async def get(self, token: str) -> StoredMedia | None:
        """The media, or None when the token is unknown or expired."""

    @abstractmethod
    async def prune(self) -> int:
        """Forget expired media; returns how many."""

    @abstractmethod
    async def count(self) -> int:
        """Media not yet expired."""

    @abstractmethod
    async def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS media (
    token TEXT PRIMARY KEY,
    key TEXT UNIQUE,
    content_type TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS media_expiry ON media (expires_at);
"""


class SqliteMediaStore(MediaStore):
    """The media table in one SQLite file under DATA_DIR."""

    def __init__(self, path: Path | str) -> None:
        self._file = SqliteFile(path, _SCHEMA, "media")

    @property
    def path(self) -> Path:
        return self._file.path

    async def put(self, data: bytes, content_type: str, ttl: float, key: str | None = None) -> str:
        def insert(conn: sqlite3.Connection) -> str:
            now = time.time()
            if key is not None:
                conn.execute("DELETE FROM media WHERE key = ? AND expires_at <= ?", (key, now))
                row = conn.execute("SELECT token FROM media WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    return str(row[0])
            token = secrets.token_urlsafe(32)
            conn.execute(
                "INSERT INTO media (token, key, content_type, data, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (token, key, content_type, data, now, now + ttl),
            )
            return token

        return await self._file.run(insert)

    async def get(self, token: str) -> StoredMedia | None:
        def select(conn: sqlite3.Connection) -> StoredMedia | None:
            row = conn.execute(
                "SELECT data, content_type, expires_at FROM media"
                " WHERE token = ? AND expires_at > ?",
                (token, time.time()),
            ).fetchone()
            return None if row is None else StoredMedia(bytes(row[0]), row[1], row[2])

        return await self._file.run(select)

    async def prune(self) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM media WHERE expires_at <= ?", (time.time(),)).rowcount

        return await self._file.run(delete)

    async def count(self) -> int:
        def select(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT COUNT(*) FROM media WHERE expires_at > ?", (time.time(),)
            ).fetchone()
            return int(row[0])

        return await self._file.run(select)

    async def close(self) -> None:
        await self._file.close()
