"""Where dense vectors live, behind one small protocol: SQLite (the embedded default) or an
external store such as Pinecone, kept in step with the SQLite index of chunks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from rag.embeddings import passage_text
from rag.errors import IndexingError, RetrievalError
from rag.index_store import IndexStore, StoredDocument
from rag.types import Chunk, Embedder

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VectorItem:
    """One chunk and its embedding."""

    chunk: Chunk
    vector: Sequence[float]


@dataclass(frozen=True)
class VectorStats:
    """How many vectors a store holds, and their dimension when known."""

    count: int
    dimension: int | None = None


class VectorStore(Protocol):
    """Dense vectors keyed by chunk id (`Chunk.id`), grouped by document."""

    name: str

    async def upsert(self, documents: Mapping[str, Sequence[VectorItem]]) -> None:
        """Make `documents[doc_id]` the only vectors of each of those documents."""
        ...

    async def delete_documents(self, doc_ids: Sequence[str]) -> None:
        """Delete every vector of these documents."""
        ...

    async def query(self, vector: Sequence[float], k: int) -> list[tuple[str, float]]:
        """The `k` chunk ids nearest to `vector` with their cosine similarity, best first."""
        ...

    async def is_empty(self) -> bool:
        """True only when the store surely holds no vectors (spares embedding a question)."""
        ...

    async def stats(self) -> VectorStats: ...

    async def aclose(self) -> None: ...


class SqliteVectors:
    """The vectors table of an `IndexStore`, for one embedding model."""

    def __init__(self, store: IndexStore, model: str) -> None:
        self.store = store
        self.model = model
        self.name = "sqlite"

    async def upsert(self, documents: Mapping[str, Sequence[VectorItem]]) -> None:
        def write() -> None:
            self.store.delete_vectors(list(documents))
            items = [item for group in documents.values() for item in group]
            rowids = self.store.chunk_rowids([item.chunk.id for item in items])
            rows = [(rowids[i.chunk.id], i.vector) for i in items if i.chunk.id in rowids]
            self.store.put_vectors(self.model, rows)

        await asyncio.to_thread(write)

    async def delete_documents(self, doc_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.store.delete_vectors, list(doc_ids))

    async def query(self, vector: Sequence[float], k: int) -> list[tuple[str, float]]:
        return await asyncio.to_thread(self._query, vector, k)

    def _query(self, vector: Sequence[float], k: int) -> list[tuple[str, float]]:
        rowids, matrix = self.store.vector_matrix(self.model)
        if not len(rowids) or k <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32)
        if query.shape[0] != matrix.shape[1]:
            raise RetrievalError("the query vector has another dimension than the stored ones")
        query /= max(float(np.linalg.norm(query)), 1e-12)
        similarity = matrix @ query
        count = min(k, len(rowids))
        best = np.argpartition(-similarity, count - 1)[:count]
        best = best[np.argsort(-similarity[best])]
        chunks = self.store.chunks(int(rowids[i]) for i in best)
        return [
            (chunks[int(rowids[i])].id, float(similarity[i]))
            for i in best
            if int(rowids[i]) in chunks
        ]

    async def is_empty(self) -> bool:
        return await asyncio.to_thread(self.store.vector_count, self.model) == 0

    async def stats(self) -> VectorStats:
        rowids, matrix = await asyncio.to_thread(self.store.vector_matrix, self.model)
        return VectorStats(len(rowids), int(matrix.shape[1]) if len(rowids) else None)

    async def aclose(self) -> None:
        """Nothing to do: the index store is closed by its owner."""


def build_vector_store(settings: Settings) -> VectorStore | None:
    """Pinecone when PINECONE_API_KEY is set; else None: vectors stay in the SQLite index."""
    if settings.pinecone_api_key is None:
        return None
    from rag.vector_pinecone import PineconeVectors

    return PineconeVectors(
        settings.pinecone_api_key.get_secret_value(),
        index_name=settings.pinecone_index,
        host=settings.pinecone_host,
        namespace=settings.pinecone_namespace,
        cloud=settings.pinecone_cloud,
        region=settings.pinecone_region,
        api_url=settings.pinecone_api_url,
    )


def document_version(doc: StoredDocument, model: str) -> str:
    """What a document's vectors were made from: the model, the content and the chunking."""
    return f"{model};{doc.content_hash};{doc.params}"


async def sync_vectors(
    store: IndexStore, embedder: Embedder, vectors: VectorStore, batch: int = 64
) -> int:
    """Bring an external vector store in step with the index: the vectors of removed documents
    are deleted, those of new or changed ones (re-)embedded and replaced. Returns how many
    chunks were embedded.

    What the store holds is recorded per document in the index, only once it is written, so a
    run that fails is caught up by the next one.
    """
    documents = {doc.doc_id: doc for doc in await asyncio.to_thread(_documents, store)}
    synced = await asyncio.to_thread(store.synced_versions, vectors.name)
    gone = sorted(doc_id for doc_id in synced if doc_id not in documents)
    if gone:
        await vectors.delete_documents(gone)
        await asyncio.to_thread(store.forget_synced, vectors.name, gone)
        log.info("deleted the vectors of %d documents from %s", len(gone), vectors.name)
    pending = [
        doc
        for doc in documents.values()
        if synced.get(doc.doc_id) != document_version(doc, embedder.name)
    ]
    done = 0
    group: list[tuple[StoredDocument, list[Chunk]]] = []
    for position, doc in enumerate(pending):
        group.append((doc, await asyncio.to_thread(store.doc_chunks, doc.doc_id)))
        if sum(len(chunks) for _, chunks in group) >= batch or position == len(pending) - 1:
            done += await _write_group(store, embedder, vectors, group)
            group = []
    if done:
        log.info("embedded %d chunks with %s into %s", done, embedder.name, vectors.name)
    return done


def _documents(store: IndexStore) -> list[StoredDocument]:
    return list(store.documents().values())


async def _write_group(
    store: IndexStore,
    embedder: Embedder,
    vectors: VectorStore,
    group: list[tuple[StoredDocument, list[Chunk]]],
) -> int:
    chunks = [chunk for _, doc_chunks in group for chunk in doc_chunks]
    embedded = await embedder.embed([passage_text(chunk) for chunk in chunks]) if chunks else []
    if len(embedded) != len(chunks):
        raise IndexingError(f"the embedder returned {len(embedded)} vectors for {len(chunks)}")
    items = iter(embedded)
    documents = {
        doc.doc_id: [VectorItem(chunk, next(items)) for chunk in doc_chunks]
        for doc, doc_chunks in group
    }
    await vectors.upsert(documents)
    versions = {doc.doc_id: document_version(doc, embedder.name) for doc, _ in group}
    await asyncio.to_thread(store.mark_synced, vectors.name, versions)
    return len(chunks)
