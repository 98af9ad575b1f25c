"""The record of indexing runs (table `index_runs` in the index database): when each started
and finished, what it added, changed, removed and left unchanged, and its errors by source."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rag.types import IndexReport

RunStatus = Literal["running", "ok", "failed", "interrupted"]
KEEP_RUNS = 200  # older records are pruned when a run starts

_SCHEMA = """
CREATE TABLE IF NOT EXISTS index_runs (
    id INTEGER PRIMARY KEY,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    added INTEGER NOT NULL DEFAULT 0,
    changed INTEGER NOT NULL DEFAULT 0,
    removed INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    chunks INTEGER NOT NULL DEFAULT 0,
    failure TEXT
);
CREATE TABLE IF NOT EXISTS index_run_errors (
    run_id INTEGER NOT NULL REFERENCES index_runs(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS index_run_errors_run ON index_run_errors(run_id);
"""


@dataclass(frozen=True)
class IndexRun:
    """One recorded run. `failure` says why a run stopped part-way (status `failed`);
    `errors` are the sources that could not be indexed in a run that went on."""

    id: int
    trigger: str
    status: RunStatus
    started_at: float
    finished_at: float | None
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks: int = 0
    failure: str | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["errors"] = [{"source": source, "message": message} for source, message in self.errors]
        data["duration_s"] = None if self.duration_s is None else round(self.duration_s, 3)
        return data


class RunLog:
    """Reads and writes run records in the SQLite file at `path`; each call opens its own
    short connection, so it is safe from any thread and beside an open `IndexStore`."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30.0)) as conn:
            conn.execute("PRAGMA foreign_keys=ON")
            with conn:  # one transaction: committed, or rolled back on an exception
                yield conn

    def start(self, trigger: str) -> int:
        """Record a run starting now; runs left `running` by a stopped process become
        `interrupted`. Returns the new run's id."""
        with self._connect() as conn:
            conn.execute("UPDATE index_runs SET status = 'interrupted' WHERE status = 'running'")
            cursor = conn.execute(
                "INSERT INTO index_runs(trigger, status, started_at) VALUES (?, 'running', ?)",
                (trigger, time.time()),
            )
            conn.execute(
                "DELETE FROM index_runs WHERE id <= (SELECT max(id) FROM index_runs) - ?",
                (KEEP_RUNS,),
            )
            return int(cursor.lastrowid or 0)

    def finish(self, run_id: int, report: IndexReport, failure: str | None = None) -> None:
        """Record the end of run `run_id`: `ok`, or `failed` when `failure` says why."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE index_runs SET status = ?, finished_at = ?, added = ?, changed = ?,"
                " removed = ?, unchanged = ?, chunks = ?, failure = ? WHERE id = ?",
                (
                    "failed" if failure else "ok",
                    time.time(),
                    report.added,
                    report.changed,
                    report.removed,
                    report.unchanged,
                    report.chunks,
                    failure,
                    run_id,
                ),
            )
            conn.executemany(
                "INSERT INTO index_run_errors(run_id, source, message) VALUES (?, ?, ?)",
                [(run_id, source, message) for source, message in report.errors],
            )

    def last(self, limit: int = 10) -> list[IndexRun]:
        """The latest `limit` runs, newest first, with their errors."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, trigger, status, started_at, finished_at, added, changed, removed,"
                " unchanged, chunks, failure FROM index_runs ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
            errors: dict[int, list[tuple[str, str]]] = {row[0]: [] for row in rows}
            if rows:
                marks = ",".join("?" * len(rows))
                for run_id, source, message in conn.execute(
                    "SELECT run_id, source, message FROM index_run_errors"  # noqa: S608
                    f" WHERE run_id IN ({marks}) ORDER BY rowid",
                    list(errors),
                ):
                    errors[run_id].append((source, message))
        return [
            IndexRun(
                id=row[0],
                trigger=row[1],
                status=row[2],
                started_at=row[3],
                finished_at=row[4],
                added=row[5],
                changed=row[6],
                removed=row[7],
                unchanged=row[8],
                chunks=row[9],
                failure=row[10],
                errors=errors[row[0]],
            )
            for row in rows
        ]
