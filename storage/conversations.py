"""Conversation memory: LangGraph's AsyncSqliteSaver plus thread bookkeeping for reset and TTL."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType

import aiosqlite
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from storage.errors import StorageError

log = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 15.0  # how long a write waits for another process holding the database


class ConversationStore:
    """Owns the checkpoint database; use as `async with ConversationStore(path) as store`."""

    def __init__(self, path: Path, lock_wait: float = LOCK_WAIT_SECONDS) -> None:
        self.path = path
        self.lock_wait = lock_wait
        self._conn: aiosqlite.Connection | None = None
        self._saver: AsyncSqliteSaver | None = None

    async def __aenter__(self) -> ConversationStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = await aiosqlite.connect(self.path, timeout=self.lock_wait)
            await self._conn.execute("PRAGMA journal_mode=WAL")
            # Memory, not the message log: a power cut may cost the last turn, never a message.
            await self._conn.execute("PRAGMA synchronous=NORMAL")
            await self._conn.execute(
                "CREATE TABLE IF NOT EXISTS threads ("
                " thread_id TEXT PRIMARY KEY, updated_at REAL NOT NULL)"
            )
            await self._conn.commit()
            self._saver = AsyncSqliteSaver(self._conn)
            await self._saver.setup()
        except (OSError, aiosqlite.Error) as exc:
            await self.close()
            raise StorageError(f"cannot open conversation store {self.path}: {exc}") from exc

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
            self._saver = None

    @property
    def checkpointer(self) -> AsyncSqliteSaver:
        if self._saver is None:
            raise StorageError("conversation store is not open")
        return self._saver

    @property
    def _db(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StorageError("conversation store is not open")
        return self._conn

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction, serialized with the checkpointer's; rolled back on failure so
        a failed statement never leaves the database locked."""
        async with self.checkpointer.lock:
            try:
                yield self._db
                await self._db.commit()
            except BaseException as exc:
                await self._db.rollback()
                if isinstance(exc, aiosqlite.Error):
                    raise StorageError(f"conversation store {self.path}: {exc}") from exc
                raise

    async def touch(self, thread_id: str) -> None:
        """Record that a thread was used now (drives expiry)."""
        async with self._writing() as db:
            await db.execute(
                "INSERT INTO threads(thread_id, updated_at) VALUES (?, ?)"
                " ON CONFLICT(thread_id) DO UPDATE SET updated_at = excluded.updated_at",
                (thread_id, time.time()),
            )

    async def compact(self, thread_id: str) -> int:
        """Keep only a thread's latest checkpoint (it holds the whole state); returns how many
        older checkpoints were dropped. Without this every turn adds several snapshots."""
        async with self._writing() as db:
            cursor = await db.execute(
                "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_id <"
                " (SELECT MAX(checkpoint_id) FROM checkpoints WHERE thread_id = ?)",
                (thread_id, thread_id),
            )
            await db.execute(
                "DELETE FROM writes WHERE thread_id = ? AND checkpoint_id <"
                " (SELECT MAX(checkpoint_id) FROM checkpoints WHERE thread_id = ?)",
                (thread_id, thread_id),
            )
            return cursor.rowcount

    async def reset(self, thread_id: str) -> None:
        """Forget one conversation."""
        await self.checkpointer.adelete_thread(thread_id)
        async with self._writing() as db:
            await db.execute("DELETE FROM threads WHERE thread_id = ?", (thread_id,))

    async def expire(self, max_age_seconds: float) -> int:
        """Forget conversations idle for longer than `max_age_seconds`; returns how many."""
        cutoff = time.time() - max_age_seconds
        try:
            async with self._db.execute(
                "SELECT thread_id FROM threads WHERE updated_at < ?", (cutoff,)
            ) as cursor:
                stale = [row[0] async for row in cursor]
        except aiosqlite.Error as exc:
            raise StorageError(f"conversation store {self.path}: {exc}") from exc
        for thread_id in stale:
            await self.reset(thread_id)
        if stale:
            log.info("expired %d idle conversations", len(stale))
        return len(stale)
