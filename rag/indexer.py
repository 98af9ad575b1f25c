"""Incremental indexing of folders, files, globs, web pages and sitemaps into an `IndexStore`
(and its vectors)."""

from __future__ import annotations

import asyncio
import glob
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

import aiohttp

from rag.chunking import chunk_document
from rag.embeddings import passage_text
from rag.errors import IndexingError, RagError
from rag.index_store import IndexStore, StoredDocument
from rag.loaders import SUPPORTED_SUFFIXES, load_document
from rag.text import sha256_hex
from rag.types import Embedder, IndexReport
from rag.vector_store import VectorStore, sync_vectors
from rag.web_sources import (
    FetchError,
    Page,
    WebOptions,
    discover_urls,
    fetch,
    is_url,
    open_session,
    sitemap_scope,
)

log = logging.getLogger(__name__)

# Bump when loading or chunking changes, so that every document is cut again.
PIPELINE_VERSION = "5"
EMBED_BATCH = 64

Outcome = Literal["added", "changed", "unchanged"]


@dataclass(frozen=True)
class SourceFilter:
    """Include and exclude globs over a document's path or URL. A pattern without `/` matches
    the file name; one with `/` the whole path or URL, or its tail (`drafts/*` matches
    `/srv/docs/drafts/a.md`); `*` also matches across `/`. With includes, a document must match
    one; it must match no exclude."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @staticmethod
    def _matches(source: str, pattern: str) -> bool:
        if "/" not in pattern:
            name = source.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            return fnmatchcase(name, pattern)
        return fnmatchcase(source, pattern) or fnmatchcase(source, "*/" + pattern.lstrip("/"))

    def accepts(self, source: str) -> bool:
        if self.include and not any(self._matches(source, p) for p in self.include):
            return False
        return not any(self._matches(source, p) for p in self.exclude)


@dataclass
class Discovery:
    """The files found under the sources, and what could not be looked at."""

    files: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


def doc_id_for(source: str) -> str:
    """A stable document id derived from its source path or URL."""
    return sha256_hex(source)[:16]


def discover(sources: Sequence[str], filters: SourceFilter | None = None) -> Discovery:
    """Expand folders (recursively), files and globs (`**` included) into supported files that
    `filters` accept. URL sources are left to `discover_urls`."""
    found = Discovery()
    seen: set[Path] = set()
    filters = filters or SourceFilter()

    def add(path: Path) -> None:
        resolved = path.resolve()
        if resolved not in seen and filters.accepts(resolved.as_posix()):
            seen.add(resolved)
            found.files.append(resolved)

    for source in sources:
        pattern = os.path.expanduser(source.strip())
        if not pattern:
            continue
        if is_url(pattern):
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


def _params(chunk_max_chars: int) -> str:
    return f"pipeline={PIPELINE_VERSION};max_chars={chunk_max_chars}"


def _store_document(
    store: IndexStore,
    data: bytes,
    name: str,
    source: str,
    previous: StoredDocument | None,
    *,
    chunk_max_chars: int,
    mtime_ns: int,
    content_hash: str,
) -> tuple[Outcome, int]:
    """Load, chunk and store one document in place of its previous version (one transaction:
    a failure leaves the previous version whole)."""
    doc = load_document(data, name)
    doc_id = doc_id_for(source)
    chunks = chunk_document(
        doc, doc_id=doc_id, source=source, content_hash=content_hash, max_chars=chunk_max_chars
    )
    params = _params(chunk_max_chars)
    stored = StoredDocument(doc_id, source, doc.title, content_hash, params, mtime_ns, len(data))
    store.replace_document(stored, chunks)
    return ("changed" if previous is not None else "added"), len(chunks)


def unchanged_by_stat(
    paths: Sequence[Path], stored: dict[str, StoredDocument], *, chunk_max_chars: int
) -> set[Path]:
    """The files whose size and modification time match their indexed version (a stat each)."""
    params = _params(chunk_max_chars)
    same: set[Path] = set()
    for path in paths:
        previous = stored.get(str(path))
        if previous is None or previous.params != params:
            continue
        try:
            stat = path.stat()
        except OSError:
            continue  # index_file reports it
        if (previous.mtime_ns, previous.size) == (stat.st_mtime_ns, stat.st_size):
            same.add(path)
    return same


def index_file(
    store: IndexStore,
    path: Path,
    previous: StoredDocument | None,
    *,
    chunk_max_chars: int,
) -> tuple[Outcome, int]:
    """Bring one file's index entry up to date; returns what happened and the chunks written."""
    params = _params(chunk_max_chars)
    stat = path.stat()
    same = previous is not None and previous.params == params
    if same and previous and (previous.mtime_ns, previous.size) == (stat.st_mtime_ns, stat.st_size):
        return "unchanged", 0
    data = path.read_bytes()
    content_hash = sha256_hex(data)
    if same and previous and previous.content_hash == content_hash:
        store.touch_document(previous.doc_id, stat.st_mtime_ns, stat.st_size)
        return "unchanged", 0
    return _store_document(
        store,
        data,
        path.name,
        str(path),
        previous,
        chunk_max_chars=chunk_max_chars,
        mtime_ns=stat.st_mtime_ns,
        content_hash=content_hash,
    )


def index_page(
    store: IndexStore, page: Page, previous: StoredDocument | None, *, chunk_max_chars: int
) -> tuple[Outcome, int]:
    """Bring one fetched web page's index entry up to date (a hash check when unchanged)."""
    content_hash = sha256_hex(page.data)
    same = previous is not None and previous.params == _params(chunk_max_chars)
    if same and previous and previous.content_hash == content_hash:
        outcome: tuple[Outcome, int] = ("unchanged", 0)
    else:
        outcome = _store_document(
            store,
            page.data,
            page.name,
            page.url,
            previous,
            chunk_max_chars=chunk_max_chars,
            mtime_ns=0,
            content_hash=content_hash,
        )
    store.set_page_validators(doc_id_for(page.url), content_hash, page.etag, page.last_modified)
    return outcome


def _count(report: IndexReport, outcome: Outcome, written: int) -> None:
    setattr(report, outcome, getattr(report, outcome) + 1)
    report.chunks += written


async def index_sources(
    sources: list[str],
    store: IndexStore,
    embedder: Embedder | None = None,
    *,
    chunk_max_chars: int = 1200,
    filters: SourceFilter | None = None,
    web: WebOptions | None = None,
    report: IndexReport | None = None,
    vectors: VectorStore | None = None,
) -> IndexReport:
    """Index `sources` (folders, files, globs, page and sitemap URLs) incrementally; returns
    what changed, filled into `report` when given (so a run that raises part-way has counted
    what it did).

    Unchanged files cost a stat (and a hash when the modification time moved); unchanged pages
    a conditional request (and a hash when the server ignores it). Changed documents are
    replaced, each in one transaction; indexed documents no longer found are deleted, except
    under a folder that is missing right now or a sitemap that cannot be read (both reported
    as errors). A document that fails to load or fetch is reported in `errors` and its previous
    version stays. `chunks` counts chunks written. Any other failure (of the store, say) ends
    the run with that exception; every document is then at its old or its new version.
    With an embedder, vectors are kept in the index, or in `vectors` (Pinecone) when given.
    """
    report = report if report is not None else IndexReport()
    filters = filters or SourceFilter()
    urls = [source.strip() for source in sources if is_url(source)]
    found = await asyncio.to_thread(discover, sources, filters)
    report.errors.extend(found.errors)
    stored = await asyncio.to_thread(store.documents)
    same = await asyncio.to_thread(
        unchanged_by_stat, found.files, stored, chunk_max_chars=chunk_max_chars
    )
    report.unchanged += len(same)
    for path in found.files:
        if path in same:
            continue
        source = str(path)
        try:
            outcome, written = await asyncio.to_thread(
                index_file, store, path, stored.get(source), chunk_max_chars=chunk_max_chars
            )
        except (IndexingError, OSError) as exc:
            report.errors.append((source, str(exc) or type(exc).__name__))
            continue
        _count(report, outcome, written)
    present = {str(path) for path in found.files}
    kept_under: list[str] = []
    if urls:
        pages, kept_under = await _index_urls(
            urls, store, stored, report, filters, web or WebOptions(), chunk_max_chars
        )
        present.update(pages)
    gone = [
        doc.doc_id
        for source, doc in stored.items()
        if source not in present
        and not _under(source, found.missing)
        and not source.startswith(tuple(kept_under))
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


async def _index_urls(
    urls: list[str],
    store: IndexStore,
    stored: dict[str, StoredDocument],
    report: IndexReport,
    filters: SourceFilter,
    options: WebOptions,
    chunk_max_chars: int,
) -> tuple[list[str], list[str]]:
    """Fetch and index the pages of the URL sources; returns the pages listed, and the URL
    prefixes under which indexed pages are kept because their sitemap could not be read."""
    params = _params(chunk_max_chars)
    slots = asyncio.Semaphore(options.concurrency)

    async def one(session: aiohttp.ClientSession, url: str) -> None:
        previous = stored.get(url)
        validators: tuple[str | None, str | None] = (None, None)
        if previous is not None and previous.params == params:
            validators = await asyncio.to_thread(
                store.page_validators, previous.doc_id, previous.content_hash
            )
        try:
            async with slots:
                page = await fetch(
                    session, url, options, etag=validators[0], last_modified=validators[1]
                )
            if page is None:
                _count(report, "unchanged", 0)
                return
            outcome, written = await asyncio.to_thread(
                index_page, store, page, previous, chunk_max_chars=chunk_max_chars
            )
        except (FetchError, IndexingError) as exc:
            report.errors.append((url, str(exc)))
            return
        _count(report, outcome, written)

    async with open_session(options) as session:
        found = await discover_urls(urls, session, options)
        report.errors.extend(found.errors)
        pages = [url for url in found.pages if filters.accepts(url)]
        try:
            async with asyncio.TaskGroup() as group:
                for url in pages:
                    group.create_task(one(session, url))
        except BaseExceptionGroup as failures:  # the first failure ends the run
            raise failures.exceptions[0] from None
    return pages, [sitemap_scope(url) for url in found.failed_sitemaps]


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
