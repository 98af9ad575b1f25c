"""The durable inbox: every accepted message, its state, its stored reply and the parts sent.

`Inbox` is the interface the dispatcher uses; `SqliteInbox` is the embedded implementation.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from storage.errors import StorageError

T = TypeVar("T")

PENDING, DONE, PARKED = "pending", "done", "parked"


@dataclass
class InboxItem:
    """One accepted message as the dispatcher sees it."""

    id: int
    channel: str
    chat_id: str
    message_id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    received_at: float
    reply: dict[str, Any] | None = None
    voice: bytes | None = None
    sent_parts: set[str] = field(default_factory=set)

    @property
    def chat_key(self) -> str:
        return f"{self.channel}:{self.chat_id}"


@dataclass(frozen=True)
class InboxStats:
    pending: int
    parked: int
    done: int
    oldest_pending_age: float  # seconds; 0 when nothing waits


class Inbox(ABC):
    """What the channels and the dispatcher need from a durable inbox.

    Ordering contract: `claim` only ever hands out the oldest unfinished message of a chat, and
    never one whose chat has a message leased, so each chat's messages run strictly in order.
    """

    @abstractmethod
    async def enqueue(
        self, channel: str, chat_id: str, message_id: str, kind: str, payload: dict[str, Any]
    ) -> bool:
        """Store a message durably; False when (channel, message_id) was already accepted."""

    @abstractmethod
    async def claim(self, limit: int, lease_seconds: float) -> list[InboxItem]:
        """Lease up to `limit` chat heads that are due, counting one attempt each."""

    @abstractmethod
    async def save_reply(self, item_id: int, reply: dict[str, Any], voice: bytes | None) -> None:
        """Keep the computed reply, so a retry sends it instead of computing another."""

    @abstractmethod
    async def record_part(self, item_id: int, part: str) -> None:
        """Note that one part of the reply (a text chunk, the voice note) was delivered."""

    @abstractmethod
    async def complete(self, item_id: int) -> None: ...

    @abstractmethod
    async def retry(self, item_id: int, error: str, delay: float, *, counted: bool = True) -> None:
        """Release the lease and make the message due again after `delay` seconds;
        `counted=False` gives the attempt back (flood control is not a failure)."""

    @abstractmethod
    async def park(self, item_id: int, error: str) -> None:
        """Give up on a message, keeping it and its error for an operator."""

    @abstractmethod
    async def release(self, item_ids: Iterable[int]) -> None:
        """Drop leases and give their attempts back (a graceful stop is not a failure)."""

    @abstractmethod
    async def recover(self) -> int:
        """At start-up: release leases left by a process that died; returns how many."""

    @abstractmethod
    async def next_due_in(self) -> float | None:
        """Seconds until the earliest pending message becomes due (0: now; None: none)."""

    @abstractmethod
    async def stats(self) -> InboxStats: ...

    @abstractmethod
    async def parked(self, limit: int = 50) -> list[dict[str, Any]]:
        """The most recently parked messages with their errors."""

    @abstractmethod
    async def prune(self, older_than_seconds: float) -> int:
        """Forget finished messages older than that (their ids stop deduplicating)."""

    @abstractmethod
    async def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    chat_key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at REAL NOT NULL,
    lease_until REAL,
    owner TEXT,
    error TEXT,
    received_at REAL NOT NULL,
    finished_at REAL,
    reply TEXT,
    voice BLOB,
    UNIQUE (channel, message_id)
);
CREATE INDEX IF NOT EXISTS inbox_pending ON inbox (chat_key, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS inbox_status ON inbox (status, due_at);
CREATE INDEX IF NOT EXISTS inbox_finished ON inbox (finished_at) WHERE status != 'pending';
CREATE TABLE IF NOT EXISTS sent_parts (
    item_id INTEGER NOT NULL REFERENCES inbox (id) ON DELETE CASCADE,
    part TEXT NOT NULL,
    sent_at REAL NOT NULL,
    PRIMARY KEY (item_id, part)
);
"""

# The oldest pending message of each chat, when no message of that chat is leased.
_HEADS = """
SELECT i.id FROM (
    SELECT MIN(id) AS id FROM inbox INDEXED BY inbox_pending
    WHERE status = 'pending' GROUP BY chat_key
) AS head JOIN inbox AS i ON i.id = head.id
WHERE i.due_at <= :now
  AND (i.lease_until IS NULL OR (i.lease_until < :now AND i.owner != :owner))
ORDER BY i.id
LIMIT :limit
"""

# When the next chat head (the only messages `claim` hands out) becomes due.
_NEXT_DUE = """
SELECT MIN(i.due_at) FROM (
    SELECT MIN(id) AS id FROM inbox INDEXED BY inbox_pending
    WHERE status = 'pending' GROUP BY chat_key
) AS head JOIN inbox AS i ON i.id = head.id
WHERE i.lease_until IS NULL
"""


class SqliteInbox(Inbox):
    """The inbox in one SQLite file (WAL, synchronous=FULL: an accepted message survives power
    loss). Calls run on one private thread, so the event loop never waits for the disk.

    One process owns the file: `recover` releases every lease at start, and a lease this
    instance holds never expires while it runs (a slow answer is never claimed twice). A Postgres
    implementation would instead let leases expire and claim with FOR UPDATE SKIP LOCKED.
    """

    def __init__(self, path: Path | str, busy_timeout: float = 15.0) -> None:
        self.path = Path(path)
        self.owner = uuid.uuid4().hex[:12]
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox")
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._batch: list[tuple[tuple[str, ...], asyncio.Future[bool]]] = []
        self._batch_lock = threading.Lock()
        self._flush_pending = False

    # --- plumbing ------------------------------------------------------------------------
    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, work)

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            conn = self._connection()
            return work(conn)
        except sqlite3.Error as exc:
            raise StorageError(f"inbox {self.path}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    @staticmethod
    def _transaction(conn: sqlite3.Connection, work: Callable[[], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    # --- the interface -------------------------------------------------------------------
    async def enqueue(
        self, channel: str, chat_id: str, message_id: str, kind: str, payload: dict[str, Any]
    ) -> bool:
        """Group commit: messages arriving while a batch is being written go in the next one,
        so a burst costs one disk sync per batch instead of one per message."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        loop = asyncio.get_running_loop()
        accepted: asyncio.Future[bool] = loop.create_future()
        row = (channel, chat_id, f"{channel}:{chat_id}", message_id, kind, body)
        with self._batch_lock:
            self._batch.append((row, accepted))
            start_flush = not self._flush_pending
            self._flush_pending = True
        if start_flush:
            loop.run_in_executor(self._executor, self._flush, loop)
        return await accepted

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._batch_lock:
            batch, self._batch = self._batch, []
            self._flush_pending = False
        if not batch:
            return
        try:
            conn = self._connection()

            def insert_all() -> list[bool]:
                now = time.time()
                return [
                    conn.execute(
                        "INSERT OR IGNORE INTO inbox (channel, chat_id, chat_key, message_id,"
                        " kind, payload, due_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (*row, now, now),
                    ).rowcount
                    == 1
                    for row, _ in batch
                ]

            results = self._transaction(conn, insert_all)
        except Exception as exc:  # settle every waiter, whatever failed
            error = StorageError(f"inbox {self.path}: {exc}")
            for _, future in batch:
                loop.call_soon_threadsafe(_settle, future, None, error)
            return
        for (_, future), new in zip(batch, results, strict=True):
            loop.call_soon_threadsafe(_settle, future, new, None)

    async def claim(self, limit: int, lease_seconds: float) -> list[InboxItem]:
        if limit <= 0:
            return []

        def lease(conn: sqlite3.Connection) -> list[InboxItem]:
            def work() -> list[InboxItem]:
                now = time.time()
                ids = [
                    row[0]
                    for row in conn.execute(
                        _HEADS, {"now": now, "limit": limit, "owner": self.owner}
                    )
                ]
                if not ids:
                    return []
                marks = ",".join("?" * len(ids))
                conn.execute(
                    f"UPDATE inbox SET lease_until = ?, owner = ?, attempts = attempts + 1"  # noqa: S608
                    f" WHERE id IN ({marks})",
                    (now + lease_seconds, self.owner, *ids),
                )
                rows = conn.execute(
                    f"SELECT * FROM inbox WHERE id IN ({marks}) ORDER BY id",  # noqa: S608
                    ids,
                ).fetchall()
                parts: dict[int, set[str]] = {i: set() for i in ids}
                for item_id, part in conn.execute(
                    f"SELECT item_id, part FROM sent_parts WHERE item_id IN ({marks})",  # noqa: S608
                    ids,
                ):
                    parts[item_id].add(part)
                return [_item(row, parts[row["id"]]) for row in rows]

            return self._transaction(conn, work)

        return await self._run(lease)

    async def save_reply(self, item_id: int, reply: dict[str, Any], voice: bytes | None) -> None:
        body = json.dumps(reply, ensure_ascii=False)
        await self._update(
            "UPDATE inbox SET reply = ?, voice = ? WHERE id = ?", body, voice, item_id
        )

    async def record_part(self, item_id: int, part: str) -> None:
        await self._update(
            "INSERT OR IGNORE INTO sent_parts (item_id, part, sent_at) VALUES (?, ?, ?)",
            item_id,
            part,
            time.time(),
        )

    async def complete(self, item_id: int) -> None:
        await self._update(
            "UPDATE inbox SET status = 'done', lease_until = NULL, finished_at = ?, voice = NULL"
            " WHERE id = ?",
            time.time(),
            item_id,
        )

    async def retry(self, item_id: int, error: str, delay: float, *, counted: bool = True) -> None:
        await self._update(
            "UPDATE inbox SET lease_until = NULL, error = ?, due_at = ?,"
            " attempts = attempts - ? WHERE id = ?",
            error,
            time.time() + max(0.0, delay),
            0 if counted else 1,
            item_id,
        )

    async def park(self, item_id: int, error: str) -> None:
        await self._update(
            "UPDATE inbox SET status = 'parked', lease_until = NULL, error = ?, finished_at = ?"
            " WHERE id = ?",
            error,
            time.time(),
            item_id,
        )

    async def release(self, item_ids: Iterable[int]) -> None:
        ids = list(item_ids)
        if ids:
            marks = ",".join("?" * len(ids))
            await self._update(
                f"UPDATE inbox SET lease_until = NULL, attempts = MAX(0, attempts - 1)"  # noqa: S608
                f" WHERE id IN ({marks})",
                *ids,
            )

    async def recover(self) -> int:
        return await self._update(
            "UPDATE inbox SET lease_until = NULL"
            " WHERE status = 'pending' AND lease_until IS NOT NULL"
        )

    async def next_due_in(self) -> float | None:
        def earliest(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(_NEXT_DUE).fetchone()
            return None if row[0] is None else max(0.0, row[0] - time.time())

        return await self._run(earliest)

    async def stats(self) -> InboxStats:
        def count(conn: sqlite3.Connection) -> InboxStats:
            counts = dict(
                conn.execute("SELECT status, COUNT(*) FROM inbox GROUP BY status").fetchall()
            )
            oldest = conn.execute(
                "SELECT MIN(received_at) FROM inbox WHERE status = 'pending'"
            ).fetchone()[0]
            return InboxStats(
                pending=counts.get(PENDING, 0),
                parked=counts.get(PARKED, 0),
                done=counts.get(DONE, 0),
                oldest_pending_age=0.0 if oldest is None else max(0.0, time.time() - oldest),
            )

        return await self._run(count)

    async def parked(self, limit: int = 50) -> list[dict[str, Any]]:
        def rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            return [
                dict(row)
                for row in conn.execute(
                    "SELECT id, channel, chat_id, message_id, kind, attempts, error, received_at,"
                    " finished_at FROM inbox WHERE status = 'parked'"
                    " ORDER BY finished_at DESC LIMIT ?",
                    (limit,),
                )
            ]

        return await self._run(rows)

    async def prune(self, older_than_seconds: float) -> int:
        return await self._update(
            "DELETE FROM inbox WHERE status != 'pending' AND finished_at < ?",
            time.time() - older_than_seconds,
        )

    async def close(self) -> None:
        def shut(conn: sqlite3.Connection) -> None:
            conn.close()

        if self._conn is not None:
            await self._run(shut)
            self._conn = None
        self._executor.shutdown(wait=True)

    async def _update(self, sql: str, *params: Any) -> int:
        def write(conn: sqlite3.Connection) -> int:
            return self._transaction(conn, lambda: conn.execute(sql, params).rowcount)

        return await self._run(write)


def _settle(future: asyncio.Future[bool], result: bool | None, error: Exception | None) -> None:
    if future.done():  # the caller gave up waiting (its request was cancelled)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(bool(result))


def _item(row: sqlite3.Row, sent: set[str]) -> InboxItem:
    return InboxItem(
        id=row["id"],
        channel=row["channel"],
        chat_id=row["chat_id"],
        message_id=row["message_id"],
        kind=row["kind"],
        payload=json.loads(row["payload"]),
        attempts=row["attempts"],
        received_at=row["received_at"],
        reply=json.loads(row["reply"]) if row["reply"] else None,
        voice=row["voice"],
        sent_parts=sent,
    )
