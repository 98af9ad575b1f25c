"""Per-user limits: questions per minute, hour and day (sliding windows) and daily LLM token
budgets, counted in SQLite under DATA_DIR so that a restart resets nothing.

`await limits.admit(user)` -> Verdict(allowed, retry_after_s, window) for every channel; users
are `channel:user id` (`user_key`). A broken limits file never stops answers: the error is
logged and the question allowed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

DAY = 86400.0
PRUNE_EVERY = 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS admissions (user TEXT NOT NULL, key TEXT, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS admissions_user ON admissions (user, at);
CREATE UNIQUE INDEX IF NOT EXISTS admissions_key ON admissions (user, key) WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS admissions_at ON admissions (at);
CREATE TABLE IF NOT EXISTS llm_tokens (
    user TEXT NOT NULL, at REAL NOT NULL, tokens INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS llm_tokens_user ON llm_tokens (user, at);
CREATE INDEX IF NOT EXISTS llm_tokens_at ON llm_tokens (at);
"""


def user_key(channel: str, user_id: str) -> str:
    """The limited party: one person on one channel (`telegram:42`, `api:203.0.113.9`)."""
    return f"{channel}:{user_id}"


@dataclass(frozen=True)
class Verdict:
    """`allowed`, else the `window` that refused (minute, hour, day, tokens_user, tokens_total)
    and the seconds until the next question would be allowed (HTTP Retry-After)."""

    allowed: bool
    retry_after_s: float = 0.0
    window: str | None = None


ALLOWED = Verdict(True)


@dataclass(frozen=True)
class LimitPolicy:
    """The limits in force; 0 turns one off."""

    per_minute: int = 0
    per_hour: int = 0
    per_day: int = 0
    tokens_per_user: int = 0
    tokens_total: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> LimitPolicy:
        return cls(
            settings.rate_limit_per_minute,
            settings.rate_limit_per_hour,
            settings.rate_limit_per_day,
            settings.llm_daily_tokens_per_user,
            settings.llm_daily_tokens_total,
        )

    @property
    def windows(self) -> list[tuple[str, float, int]]:
        """(name, seconds, limit) of each rate limit that is on."""
        every = (("minute", 60.0, self.per_minute), ("hour", 3600.0, self.per_hour))
        return [w for w in (*every, ("day", DAY, self.per_day)) if w[2] > 0]

    @property
    def budgets(self) -> bool:
        return bool(self.tokens_per_user or self.tokens_total)


def rate_verdict(
    times: Sequence[float], now: float, windows: list[tuple[str, float, int]]
) -> Verdict:
    """Whether one more question fits every window, given the sorted times of those admitted.

    Refused: the window whose wait is the longest, and that wait (until enough of its oldest
    questions leave it)."""
    worst = ALLOWED
    for name, seconds, limit in windows:
        recent = [t for t in times if t > now - seconds]
        if len(recent) >= limit:
            wait = max(0.0, recent[len(recent) - limit] + seconds - now)
            if worst.allowed or wait > worst.retry_after_s:
                worst = Verdict(False, wait, name)
    return worst


class Limits:
    """The limits of one bot in one SQLite file (WAL), on a private thread; opened lazily, so
    with every limit off no file is created."""

    def __init__(
        self, path: Path | str, policy: LimitPolicy, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.policy = policy
        self.clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="limits")
        self._conn: sqlite3.Connection | None = None
        self._pruned_at = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.path("limits.sqlite3"), LimitPolicy.from_settings(settings))

    async def admit(
        self, user: str, key: str | None = None, *, now: float | None = None
    ) -> Verdict:
        """Count one question of `user` if every rate window has room, else refuse it.

        `key` (e.g. the channel's message id) makes it idempotent: a question admitted once is
        admitted again without counting twice (a retried message)."""
        windows = self.policy.windows
        if not windows:
            return ALLOWED
        at = self.clock() if now is None else now
        longest = max(seconds for _, seconds, _ in windows)

        def work(conn: sqlite3.Connection) -> Verdict:
            if (
                key is not None
                and conn.execute(
                    "SELECT 1 FROM admissions WHERE user = ? AND key = ?", (user, key)
                ).fetchone()
            ):
                return ALLOWED
            times = [
                row[0]
                for row in conn.execute(
                    "SELECT at FROM admissions WHERE user = ? AND at > ? ORDER BY at",
                    (user, at - longest),
                )
            ]
            verdict = rate_verdict(times, at, windows)
            if verdict.allowed:
                conn.execute(
                    "INSERT INTO admissions (user, key, at) VALUES (?, ?, ?)", (user, key, at)
                )
            return verdict

        return await self._safely(work, at, f"admitting {user}", ALLOWED)

    async def llm_budget(self, user: str, *, now: float | None = None) -> Verdict:
        """Whether `user` (and everyone together) still has LLM tokens left in the last 24 h."""
        policy = self.policy
        if not policy.budgets:
            return ALLOWED
        at = self.clock() if now is None else now

        def work(conn: sqlite3.Connection) -> Verdict:
            checks = (
                ("tokens_user", user, policy.tokens_per_user),
                ("tokens_total", None, policy.tokens_total),
            )
            for window, owner, budget in checks:
                if not budget:
                    continue
                where = "at > ?" if owner is None else "user = ? AND at > ?"
                params = (at - DAY,) if owner is None else (owner, at - DAY)
                used, oldest = conn.execute(
                    f"SELECT COALESCE(SUM(tokens), 0), MIN(at) FROM llm_tokens WHERE {where}",  # noqa: S608
                    params,
                ).fetchone()
                if used >= budget:
                    return Verdict(False, max(0.0, oldest + DAY - at), window)
            return ALLOWED

        return await self._safely(work, at, f"reading the token budget of {user}", ALLOWED)

    async def spend_tokens(self, user: str, tokens: int, *, now: float | None = None) -> None:
        """Charge `tokens` of an answer to `user` (and so to the total)."""
        if not self.policy.budgets or tokens <= 0:
            return
        at = self.clock() if now is None else now

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO llm_tokens (user, at, tokens) VALUES (?, ?, ?)", (user, at, tokens)
            )

        await self._safely(work, at, f"charging {tokens} tokens to {user}", None)

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)

    # --- plumbing ------------------------------------------------------------------------
    async def _safely(
        self, work: Callable[[sqlite3.Connection], T], now: float, what: str, fallback: T
    ) -> T:
        """`work` in one transaction on the private thread; on an SQLite error, log it and
        return `fallback` (limits protect the bot; they must not stop it)."""

        def run() -> T:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                if now - self._pruned_at > PRUNE_EVERY:
                    conn.execute("DELETE FROM admissions WHERE at < ?", (now - DAY,))
                    conn.execute("DELETE FROM llm_tokens WHERE at < ?", (now - DAY,))
                    self._pruned_at = now
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, run)
        except sqlite3.Error:
            log.exception("limits %s: %s failed; allowing it", self.path, what)
            return fallback

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=15.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "PRAGMA synchronous=NORMAL"
            )  # losing the last counts to a power cut is fine
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn
