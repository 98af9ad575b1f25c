"""The conversation store turns database failures into StorageError and never stays locked."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage.conversations import ConversationStore
from storage.errors import StorageError


async def test_a_database_held_by_another_process_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    async with ConversationStore(path, lock_wait=0.2) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StorageError, match="database is locked"):
                await store.touch("telegram:1")
        finally:
            other.execute("ROLLBACK")
            other.close()
        # Rolled back, not stuck: the next write goes through.
        await store.touch("telegram:1")
        assert await store.expire(max_age_seconds=3600) == 0
