"""Per-chat preferences set by commands: voice replies on or off, a fixed answer language."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from storage.errors import StorageError


@dataclass(frozen=True)
class ChatPrefs:
    voice: bool | None = None  # None: the VOICE_REPLIES default
    language: str | None = None  # None: follow the user's language


class ChatPrefsStore:
    """A small SQLite table; reads and writes are single-row and sub-millisecond, so they run
    on the caller's thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=15, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS chat_prefs ("
                " chat_key TEXT PRIMARY KEY, voice INTEGER, language TEXT)"
            )
        except sqlite3.Error as exc:
            raise StorageError(f"chat preferences {self.path}: {exc}") from exc

    def get(self, chat_key: str) -> ChatPrefs:
        row = self._execute(
            "SELECT voice, language FROM chat_prefs WHERE chat_key = ?", (chat_key,)
        ).fetchone()
        if row is None:
            return ChatPrefs()
        return ChatPrefs(None if row[0] is None else bool(row[0]), row[1])

    def set_voice(self, chat_key: str, voice: bool | None) -> None:
        self._execute(
            "INSERT INTO chat_prefs (chat_key, voice) VALUES (?, ?)"
            " ON CONFLICT (chat_key) DO UPDATE SET voice = excluded.voice",
            (chat_key, voice),
        )

    def set_language(self, chat_key: str, language: str | None) -> None:
        self._execute(
            "INSERT INTO chat_prefs (chat_key, language) VALUES (?, ?)"
            " ON CONFLICT (chat_key) DO UPDATE SET language = excluded.language",
            (chat_key, language),
        )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _execute(self, sql: str, params: tuple[object, ...]) -> sqlite3.Cursor:
        try:
            with self._lock:
                return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise StorageError(f"chat preferences {self.path}: {exc}") from exc
