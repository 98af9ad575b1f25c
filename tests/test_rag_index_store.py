"""The SQLite index store: schema versioning."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rag.index_store import SCHEMA_VERSION, IndexStore


def test_an_index_of_an_older_schema_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE documents (doc_id TEXT PRIMARY KEY, source TEXT)")
    old.execute("CREATE VIRTUAL TABLE chunks_fts USING fts5(title, section, text)")
    old.execute("INSERT INTO documents VALUES ('d1', 'old.md')")
    old.commit()
    old.close()

    store = IndexStore(path)
    try:
        assert store.documents() == {}
        assert store.chunk_count() == 0
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        conn.close()
    finally:
        store.close()
