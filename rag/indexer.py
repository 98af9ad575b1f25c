"""Incremental indexing of folders, files and globs into an `IndexStore` (and its vectors)."""

from __future__ import annotations

import asyncio
import glob
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rag.chunking import chunk_document
from rag.embeddings import passage_text
from rag.errors import IndexingError, RagError
from rag.index_store import IndexStore, StoredDocument
from rag.loaders import SUPPORTED_SUFFIXES, load_document
from rag.text import sha256_hex
from rag.types import Embedder, IndexReport
from rag.vector_store import VectorStore, sync_vectors

log = logging.getLogger(__name__)

# Bump when loading or chunking changes, so that every document is cut again.
PIPELINE_VERSION = "5"
EMBED_BATCH = 64

Outcome = Literal["added", "changed", "unchanged"]


@dataclass
class Discovery:
    """The files found under the sources, and what could not be looked at."""

    files: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


def doc_id_for(source: str) -> str:
    """A stable document id derived from its source path or URL."""
    return sha256_hex(source)[:16]


def discover(sources: list[str]) -> Discovery:
    """Expand folders (recursively), files and globs (`**` included) into supported files."""
    found = Discovery()
    seen: set[Path] = set()

    def add(path: Path) -> None:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            found.files.append(resolved)

    for source in sources:
        pattern = os.path.expanduser(source.strip())
        if not pattern:
            continue
        if pattern.startswith(("http://", "https://")):
            found.errors.append((source, "URL sources are not supported; index a local copy"))
            continue
        if glob.has_magic(pattern):
            for match in sorted(glob.glob(pattern, recursive=True)):
                path = Path(match)
                if path.is_file() and path.suffix.lower() in SUPPORTED_SUFFIXES:
                    add(path)
            continue
        path = Path(pattern)
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                relative = file.relative_to(path).parts
                hidden = any(part.startswith(".") for part in relative)
                if not hidden and file.is_file() and file.suffix.lower() in SUPPORTED_SUFFIXES:
                    add(file)
        elif path.is_file():
            add(path)
        else:
            found.missing.append(path.resolve())
            found.errors.append((source, "not found"))
    return found


def _under(source: str, folders: list[Path]) -> bool:
    path = Path(source)
    return any(path == folder or folder in path.parents for folder in folders)


def index_file(
    store: IndexStore,
    path: Path,
    previous: StoredDocument | None,
    *,
    chunk_max_chars: int,
) -> tuple[Outcome, int]:
    """Bring one file's index entry up to date; returns what happened and the chunks written."""
    params = f"pipeline={PIPELINE_VERSION};max_chars={chunk_max_chars}"
    source = str(path)
    stat = path.stat()
    same = previous is not None and previous.params == params
    if same and previous and (previous.mtime_ns, previous.size) == (stat.st_mtime_ns, stat.st_size):
        return "unchanged", 0
    data = path.read_bytes()
    content_hash = sha256_hex(data)
    if previous is not None and previous.params == params and previous.content_hash == content_hash:
        store.touch_document(previous.doc_id, stat.st_mtime_ns, stat.st_size)
        return "unchanged", 0
    doc = load_document(data, path.name)
    doc_id = doc_id_for(source)
    chunks = chunk_document(
        doc, doc_id=doc_id, source=source, content_hash=content_hash, max_chars=chunk_max_chars
    )
    stored = StoredDocument(
        doc_id, source, doc.title, content_hash, params, stat.st_mtime_ns, stat.st_size
    )
    store.replace_document(stored, chunks)
    return ("changed" if previous is not None else "added"), len(chunks)


async def index_sources(
    sources: list[str],
    store: IndexStore,
    embedder: Embedder | None = None,
    *,
    chunk_max_chars: int = 1200,
    vectors: VectorStore | None = None,
) -> IndexReport:
    """Index `sources` incrementally and return what changed.

    Unchanged files cost a stat (and a hash when the modification time moved); changed files
    are replaced atomically; indexed files no longer found under `sources` are deleted, except
    under a source that is missing right now (reported as an error). A file that fails to load
    is reported in `errors` and its previous version stays. `chunks` counts chunks written.
    With an embedder, vectors are kept in the index, or in `vectors` (Pinecone) when given.
    """
    report = IndexReport()
    found = await asyncio.to_thread(discover, sources)
    report.errors.extend(found.errors)
    stored = await asyncio.to_thread(store.documents)
    for path in found.files:
        source = str(path)
        try:
            outcome, written = await asyncio.to_thread(
                index_file, store, path, stored.get(source), chunk_max_chars=chunk_max_chars
            )
        except (IndexingError, OSError) as exc:
            report.errors.append((source, str(exc) or type(exc).__name__))
            continue
        setattr(report, outcome, getattr(report, outcome) + 1)
        report.chunks += written
    present = {str(path) for path in found.files}
    gone = [
        doc.doc_id
        for source, doc in stored.items()
        if source not in present and not _under(source, found.missing)
    ]
    report.removed = await asyncio.to_thread(store.delete_documents, gone)
    if embedder is not None:
        try:
            if vectors is None:
                await embed_missing(store, embedder)
            else:
                await sync_vectors(store, embedder, vectors)
        except RagError as exc:
            report.errors.append(("embeddings", str(exc)))
    return report


async def embed_missing(store: IndexStore, embedder: Embedder, batch: int = EMBED_BATCH) -> int:
    """Embed every chunk that has no vector from `embedder` yet; returns how many were."""
    await asyncio.to_thread(store.drop_vectors_except, embedder.name)
    pending = await asyncio.to_thread(store.chunks_without_vectors, embedder.name)
    done = 0
    for start in range(0, len(pending), batch):
        rows = pending[start : start + batch]
        vectors = await embedder.embed([passage_text(chunk) for _, chunk in rows])
        if len(vectors) != len(rows):
            raise IndexingError(f"the embedder returned {len(vectors)} vectors for {len(rows)}")
        pairs = [(rowid, vector) for (rowid, _), vector in zip(rows, vectors, strict=True)]
        await asyncio.to_thread(store.put_vectors, embedder.name, pairs)
        done += len(rows)
    if done:
        log.info("embedded %d chunks with %s", done, embedder.name)
    return done
