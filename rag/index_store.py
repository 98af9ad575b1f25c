"""The embedded search index: documents, chunks, an FTS5 (BM25) table and vectors in SQLite.

Calls are synchronous and may come from any thread (one connection per thread, writes
serialized); async callers run them with `asyncio.to_thread`.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rag.errors import RetrievalError
from rag.text import identifier_parts
from rag.types import Chunk

log = logging.getLogger(__name__)

FloatMatrix = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

SCHEMA_VERSION = 2  # raise with every change to _SCHEMA

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    params TEXT NOT NULL,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    indexed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    title TEXT NOT NULL,
    section TEXT NOT NULL,
    source TEXT NOT NULL,
    text TEXT NOT NULL,
    content_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
-- Prose and code of a chunk are indexed apart, so that code can weigh less.
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, section, text, code,
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.rowid;
END;
CREATE TABLE IF NOT EXISTS vectors (
    chunk_rowid INTEGER PRIMARY KEY REFERENCES chunks(rowid) ON DELETE CASCADE,
    model TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL
);
-- The document versions an external vector store (Pinecone) holds vectors of.
CREATE TABLE IF NOT EXISTS vector_sync (
    target TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (target, doc_id)
);
-- HTTP validators of a web page's stored version, for conditional requests.
CREATE TABLE IF NOT EXISTS page_validators (
    doc_id TEXT PRIMARY KEY REFERENCES documents(doc_id) ON DELETE CASCADE,
    content_hash TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT
);
INSERT OR IGNORE INTO meta(key, value) VALUES ('generation', '0');
"""

_CHUNK_COLUMNS = "rowid, id, doc_id, title, section, source, text, content_hash"
_CODE_BLOCK = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?(?:^ {0,3}\1[ \t]*$|\Z)", re.DOTALL | re.M)

ColumnWeights = tuple[float, float, float, float]


def split_code(text: str) -> tuple[str, str]:
    """The prose of a chunk's text and its fenced code blocks, apart."""
    code = [match.group(0) for match in _CODE_BLOCK.finditer(text)]
    return _CODE_BLOCK.sub("\n", text), "\n".join(code)


@dataclass(frozen=True)
class StoredDocument:
    """What the index remembers about one source file."""

    doc_id: str
    source: str
    title: str
    content_hash: str
    params: str
    mtime_ns: int
    size: int
    indexed_at: float = 0.0


class IndexStore:
    """SQLite (WAL) index under a file path; safe to share between threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._vector_cache: tuple[int, str, IntArray, FloatMatrix] | None = None
        self._doc_ids_cache: tuple[int, dict[int, str]] | None = None
        self._closed = False
        with self._write_lock:
            self._migrate(self._conn())

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Create the schema; an index of another schema version is dropped and rebuilt by the
        next indexing run (it holds only what the documents can give again)."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " AND name NOT LIKE 'chunks_fts_%'"
            )
        ]
        if tables and version != SCHEMA_VERSION:
            log.warning(
                "index %s has schema %d, not %d: rebuilding it", self.path, version, SCHEMA_VERSION
            )
            conn.execute("BEGIN IMMEDIATE")
            for name in (
                "chunks_fts",
                "vectors",
                "vector_sync",
                "page_validators",
                "chunks",
                "documents",
                "meta",
            ):
                conn.execute(f"DROP TABLE IF EXISTS {name}")
            conn.execute("COMMIT")
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # --- connections -------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RetrievalError("the index store is closed")
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (serialized in this process) that bumps the generation."""
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one consistent state of the index, even while it is re-indexed
        (a WAL read transaction on this thread's connection)."""
        conn = self._conn()
        if conn.in_transaction:  # nested: the outer snapshot already holds one
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened (from any thread)."""
        self._closed = True
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def generation(self) -> int:
        """A number that changes whenever the index content changes."""
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    # --- documents ---------------------------------------------------------------------------

    def documents(self) -> dict[str, StoredDocument]:
        """Every indexed document, by source."""
        rows = self._conn().execute(
            "SELECT doc_id, source, title, content_hash, params, mtime_ns, size, indexed_at"
            " FROM documents"
        )
        return {row[1]: StoredDocument(*row) for row in rows}

    def document_count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM documents").fetchone()[0])

    def replace_document(self, doc: StoredDocument, chunks: Sequence[Chunk]) -> None:
        """Store `doc` and its chunks in place of any previous version, atomically."""
        with self._write() as conn:
            conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc.doc_id,))
            conn.execute(
                "INSERT INTO documents(doc_id, source, title, content_hash, params, mtime_ns, size,"
                " indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(doc_id) DO UPDATE SET"
                " source = excluded.source, title = excluded.title,"
                " content_hash = excluded.content_hash, params = excluded.params,"
                " mtime_ns = excluded.mtime_ns, size = excluded.size,"
                " indexed_at = excluded.indexed_at",
                (
                    doc.doc_id,
                    doc.source,
                    doc.title,
                    doc.content_hash,
                    doc.params,
                    doc.mtime_ns,
                    doc.size,
                    time.time(),
                ),
            )
            for position, c in enumerate(chunks):
                cursor = conn.execute(
                    "INSERT INTO chunks(id, doc_id, position, title, section, source, text,"
                    " content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        c.id,
                        c.doc_id,
                        position,
                        c.title,
                        c.section,
                        c.source,
                        c.text,
                        c.content_hash,
                    ),
                )
                prose, code = split_code(c.text)
                prose = f"{prose}\n{identifier_parts(prose)}"
                code = f"{code}\n{identifier_parts(code)}"
                conn.execute(
                    "INSERT INTO chunks_fts(rowid, title, section, text, code)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        cursor.lastrowid,
                        f"{c.title}\n{identifier_parts(c.title)}",
                        f"{c.section}\n{identifier_parts(c.section)}",
                        prose,
                        code,
                    ),
                )

    def touch_document(self, doc_id: str, mtime_ns: int, size: int) -> None:
        """Record a new modification time and size for an unchanged document."""
        with self._write_lock:
            self._conn().execute(
                "UPDATE documents SET mtime_ns = ?, size = ? WHERE doc_id = ?",
                (mtime_ns, size, doc_id),
            )

    def page_validators(self, doc_id: str, content_hash: str) -> tuple[str | None, str | None]:
        """The ETag and Last-Modified a web page had when its version `content_hash` was
        fetched ((None, None) when unknown, or recorded for another version)."""
        row = (
            self._conn()
            .execute(
                "SELECT etag, last_modified FROM page_validators"
                " WHERE doc_id = ? AND content_hash = ?",
                (doc_id, content_hash),
            )
            .fetchone()
        )
        return (row[0], row[1]) if row else (None, None)

    def set_page_validators(
        self, doc_id: str, content_hash: str, etag: str | None, last_modified: str | None
    ) -> None:
        """Remember the validators of a stored web page (forgotten with the document)."""
        with self._write_lock:
            self._conn().execute(
                "INSERT OR REPLACE INTO page_validators(doc_id, content_hash, etag, last_modified)"
                " SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM documents WHERE doc_id = ?)",
                (doc_id, content_hash, etag, last_modified, doc_id),
            )

    def delete_documents(self, doc_ids: Iterable[str]) -> int:
        """Delete documents with their chunks and vectors; returns how many existed."""
        ids = list(doc_ids)
        if not ids:
            return 0
        with self._write() as conn:
            conn.executemany("DELETE FROM chunks WHERE doc_id = ?", [(i,) for i in ids])
            cursor = conn.executemany("DELETE FROM documents WHERE doc_id = ?", [(i,) for i in ids])
            return cursor.rowcount

    # --- chunks and full-text search ---------------------------------------------------------

    def chunk_count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM chunks").fetchone()[0])

    def _rows_where_in(self, select: str, column: str, keys: Iterable[Any]) -> Iterator[Any]:
        """Rows of `select ... WHERE column IN (keys)`, asked 500 keys at a time."""
        ids = list(dict.fromkeys(keys))
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            marks = ",".join("?" * len(batch))
            yield from self._conn().execute(f"{select} WHERE {column} IN ({marks})", batch)

    def chunks(self, rowids: Iterable[int]) -> dict[int, Chunk]:
        """Chunks by rowid (missing rowids are left out)."""
        select = f"SELECT {_CHUNK_COLUMNS} FROM chunks"  # noqa: S608 (a constant column list)
        rows = self._rows_where_in(select, "rowid", rowids)
        return {rowid: Chunk(*fields) for rowid, *fields in rows}

    def doc_chunks(self, doc_id: str) -> list[Chunk]:
        rows = self._conn().execute(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE doc_id = ? ORDER BY position",  # noqa: S608
            (doc_id,),
        )
        return [Chunk(*fields) for _, *fields in rows]

    def match(
        self, expression: str, *, limit: int, weights: ColumnWeights
    ) -> list[tuple[int, float]]:
        """(rowid, BM25 score: higher is better) for an FTS5 MATCH expression, best first.

        `weights` weigh the title, section, prose and code columns.
        """
        try:
            rows = (
                self._conn()
                .execute(
                    "SELECT rowid, -bm25(chunks_fts, ?, ?, ?, ?) AS score FROM chunks_fts"
                    " WHERE chunks_fts MATCH ? ORDER BY score DESC LIMIT ?",
                    (*weights, expression, limit),
                )
                .fetchall()
            )
        except sqlite3.OperationalError as exc:
            raise RetrievalError(f"full-text search failed: {exc}") from exc
        return [(int(rowid), float(score)) for rowid, score in rows]

    def chunk_doc_ids(self) -> dict[int, str]:
        """The document id of every chunk, by chunk rowid (cached until the index changes)."""
        generation = self.generation()
        cached = self._doc_ids_cache
        if cached is not None and cached[0] == generation:
            return cached[1]
        mapping = {
            int(rowid): str(doc_id)
            for rowid, doc_id in self._conn().execute("SELECT rowid, doc_id FROM chunks")
        }
        self._doc_ids_cache = (generation, mapping)
        return mapping

    def count_matches(self, expression: str) -> int:
        """How many chunks match an FTS5 expression (document frequency of a term)."""
        try:
            row = (
                self._conn()
                .execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (expression,))
                .fetchone()
            )
        except sqlite3.OperationalError as exc:
            raise RetrievalError(f"full-text search failed: {exc}") from exc
        return int(row[0])

    def matching_among(self, expression: str, rowids: Sequence[int]) -> set[int]:
        """The rowids among `rowids` whose chunk matches an FTS5 expression."""
        if not rowids:
            return set()
        marks = ",".join("?" * len(rowids))
        try:
            rows = self._conn().execute(
                f"SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid IN ({marks})",  # noqa: S608
                (expression, *rowids),
            )
            return {int(row[0]) for row in rows}
        except sqlite3.OperationalError as exc:
            raise RetrievalError(f"full-text search failed: {exc}") from exc

    # --- vectors -----------------------------------------------------------------------------

    def chunks_without_vectors(self, model: str) -> list[tuple[int, Chunk]]:
        """Chunks that have no vector from `model` yet, with their rowids."""
        rows = self._conn().execute(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks c WHERE NOT EXISTS"  # noqa: S608
            " (SELECT 1 FROM vectors v WHERE v.chunk_rowid = c.rowid AND v.model = ?)"
            " ORDER BY c.rowid",
            (model,),
        )
        return [(rowid, Chunk(*fields)) for rowid, *fields in rows]

    def put_vectors(self, model: str, rows: Sequence[tuple[int, Sequence[float]]]) -> None:
        """Store one vector per chunk rowid (float32), replacing older ones."""
        if not rows:
            return
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO vectors(chunk_rowid, model, dim, vector)"
                " SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM chunks WHERE rowid = ?)",
                [
                    (rowid, model, len(vec), np.asarray(vec, dtype=np.float32).tobytes(), rowid)
                    for rowid, vec in rows
                ],
            )

    def drop_vectors_except(self, model: str) -> int:
        """Delete vectors made by any other model; returns how many went."""
        with self._write() as conn:
            return conn.execute("DELETE FROM vectors WHERE model != ?", (model,)).rowcount

    def vector_count(self, model: str) -> int:
        row = self._conn().execute("SELECT count(*) FROM vectors WHERE model = ?", (model,))
        return int(row.fetchone()[0])

    def vector_matrix(self, model: str) -> tuple[IntArray, FloatMatrix]:
        """Rowids and unit-length vectors (one row each) of every chunk embedded by `model`."""
        generation = self.generation()
        cached = self._vector_cache
        if cached is not None and cached[0] == generation and cached[1] == model:
            return cached[2], cached[3]
        rows = (
            self._conn()
            .execute(
                "SELECT chunk_rowid, dim, vector FROM vectors WHERE model = ? ORDER BY chunk_rowid",
                (model,),
            )
            .fetchall()
        )
        dims = {dim for _, dim, _ in rows}
        if len(dims) > 1:
            dim = max(dims, key=lambda d: sum(1 for _, x, _ in rows if x == d))
            rows = [row for row in rows if row[1] == dim]
        rowids = np.array([row[0] for row in rows], dtype=np.int64)
        if rows:
            matrix = np.vstack([np.frombuffer(row[2], dtype=np.float32) for row in rows])
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
        else:
            matrix = np.zeros((0, 0), dtype=np.float32)
        self._vector_cache = (generation, model, rowids, matrix)
        return rowids, matrix

    def chunk_rowids(self, chunk_ids: Iterable[str]) -> dict[str, int]:
        """Rowids by chunk id (unknown ids are left out)."""
        rows = self._rows_where_in("SELECT id, rowid FROM chunks", "id", chunk_ids)
        return {str(chunk_id): int(rowid) for chunk_id, rowid in rows}

    def delete_vectors(self, doc_ids: Sequence[str]) -> None:
        """Delete the vectors (of every model) of these documents' chunks."""
        with self._write() as conn:
            conn.executemany(
                "DELETE FROM vectors WHERE chunk_rowid IN"
                " (SELECT rowid FROM chunks WHERE doc_id = ?)",
                [(doc_id,) for doc_id in doc_ids],
            )

    # --- what an external vector store holds ---------------------------------------------------

    def synced_versions(self, target: str) -> dict[str, str]:
        """The document versions whose vectors `target` holds, by document id."""
        rows = self._conn().execute(
            "SELECT doc_id, version FROM vector_sync WHERE target = ?", (target,)
        )
        return {str(doc_id): str(version) for doc_id, version in rows}

    def mark_synced(self, target: str, versions: dict[str, str]) -> None:
        """Record that `target` now holds the vectors of these document versions."""
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO vector_sync(target, doc_id, version) VALUES (?, ?, ?)",
                [(target, doc_id, version) for doc_id, version in versions.items()],
            )

    def forget_synced(self, target: str, doc_ids: Sequence[str]) -> None:
        """Record that `target` holds no vectors of these documents any more."""
        with self._write() as conn:
            conn.executemany(
                "DELETE FROM vector_sync WHERE target = ? AND doc_id = ?",
                [(target, doc_id) for doc_id in doc_ids],
            )
