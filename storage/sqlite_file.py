"""One SQLite file worked on from a private thread, so the event loop never waits for the disk."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from storage.errors import StorageError

T = TypeVar("T")


class SqliteFile:
    """A connection opened on first use (WAL, the `schema` applied) and used by one thread."""

    def __init__(self, path: Path | str, schema: str, label: str) -> None:
        self.path = Path(path)
        self._schema = schema
        self._label = label
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=label)
        self._conn: sqlite3.Connection | None = None

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)` on the private thread; sqlite errors become StorageError."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, work)

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return work(self._connection())
        except sqlite3.Error as exc:
            raise StorageError(f"{self._label} {self.path}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=15, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(self._schema)
            self._conn = conn
        return self._conn

    async def close(self) -> None:
        def shut(conn: sqlite3.Connection) -> None:
            conn.close()

        if self._conn is not None:
            await self.run(shut)
            self._conn = None
        self._executor.shutdown(wait=True)
