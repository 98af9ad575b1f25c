"""Dense vectors in a Pinecone index (the `VectorStore` used when PINECONE_API_KEY is set).

Vector ids are chunk ids, `{doc_id}:{ordinal}`, so a document's vectors share the prefix
`{doc_id}:` and are found again with `list` (serverless indexes cannot delete by metadata).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from rag.errors import IndexingError, RagError, RetrievalError
from rag.vector_store import VectorItem, VectorStats

if TYPE_CHECKING:
    from pinecone import Pinecone
    from pinecone.index import Index

log = logging.getLogger(__name__)

UPSERT_BATCH = 100  # vectors per upsert request
DELETE_BATCH = 1000  # ids per delete request (the API's limit)
QUERY_TIMEOUT = 10.0  # seconds; a question waits no longer for its dense half
T = TypeVar("T")


def vector_metadata(item: VectorItem) -> dict[str, Any]:
    """What each vector carries to cite its passage without the index: document, source,
    title, section and content hash."""
    chunk = item.chunk
    return {
        "doc_id": chunk.doc_id,
        "source": chunk.source,
        "title": chunk.title,
        "section": chunk.section,
        "content_hash": chunk.content_hash,
    }


class PineconeVectors:
    """One namespace of a Pinecone index, through the official client.

    The index is found by `host` when given, or else by `index_name` through the control
    plane (`api_url`, default Pinecone's own), and created there (serverless on `cloud` in
    `region`, cosine, the embeddings' dimension) when it does not exist and vectors are written.
    """

    def __init__(
        self,
        api_key: str,
        *,
        index_name: str | None = None,
        host: str | None = None,
        namespace: str = "",
        cloud: str = "aws",
        region: str = "us-east-1",
        api_url: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not (index_name or host):
            raise ValueError("PineconeVectors needs an index name or a host")
        self.index_name = index_name
        self.host = host
        self.namespace = namespace
        self.cloud = cloud
        self.region = region
        self.name = f"pinecone:{index_name or host}/{namespace}"
        self._api_key = api_key
        self._api_url = api_url
        self._timeout = timeout
        self._client: Pinecone | None = None
        self._index: Index | None = None
        self._lock = threading.Lock()

    # --- the client ----------------------------------------------------------------------------

    def _pinecone(self) -> Pinecone:
        if self._client is None:
            from pinecone import Pinecone

            self._client = Pinecone(
                api_key=self._api_key, host=self._api_url, timeout=self._timeout
            )
        return self._client

    def _open(self, dimension: int | None) -> Index:
        """The data-plane client, resolving (and, given a `dimension`, creating) the index."""
        with self._lock:
            if self._index is not None:
                return self._index
            pc = self._pinecone()
            host = self.host or self._resolve_host(pc, dimension)
            self._index = pc.index(host=host)
            return self._index

    def _resolve_host(self, pc: Pinecone, dimension: int | None) -> str:
        from pinecone import NotFoundError, ServerlessSpec

        assert self.index_name is not None
        try:
            description = pc.describe_index(self.index_name)
        except NotFoundError:
            if dimension is None:
                raise RetrievalError(
                    f"the Pinecone index {self.index_name!r} does not exist yet; index first"
                ) from None
            log.info(
                "creating the Pinecone index %s (%s %s, %d dimensions)",
                self.index_name,
                self.cloud,
                self.region,
                dimension,
            )
            description = pc.create_index(
                name=self.index_name,
                dimension=dimension,
                metric="cosine",
                spec=ServerlessSpec(cloud=self.cloud, region=self.region),
            )
        if not description.host:
            raise RetrievalError(f"the Pinecone index {self.index_name!r} has no host yet")
        return description.host

    @contextmanager
    def _errors(self, kind: type[RagError], action: str) -> Iterator[None]:
        """Turn the client's failures into the rag package's errors, naming the index."""
        try:
            yield
        except RagError:
            raise
        except Exception as exc:  # the client raises its own errors and httpx's
            raise kind(f"Pinecone {action} on {self.name} failed: {exc}") from exc

    async def _call(self, kind: type[RagError], action: str, work: Callable[[], T]) -> T:
        def run() -> T:
            with self._errors(kind, action):
                return work()

        return await asyncio.to_thread(run)

    # --- VectorStore -----------------------------------------------------------------------

    async def upsert(self, documents: Mapping[str, Sequence[VectorItem]]) -> None:
        """Write the vectors in batches of `UPSERT_BATCH`, then delete the documents' older
        vectors that are not among them (a shorter new version leaves none behind)."""
        items = [item for group in documents.values() for item in group]
        dimension = len(items[0].vector) if items else None

        def write() -> None:
            index = self._open(dimension)
            records = [
                {"id": i.chunk.id, "values": list(i.vector), "metadata": vector_metadata(i)}
                for i in items
            ]
            for start in range(0, len(records), UPSERT_BATCH):
                index.upsert(
                    vectors=records[start : start + UPSERT_BATCH], namespace=self.namespace
                )
            written = {item.chunk.id for item in items}
            stale = [
                vector_id
                for doc_id in documents
                for vector_id in self._ids_of(index, doc_id)
                if vector_id not in written
            ]
            self._delete_ids(index, stale)

        await self._call(IndexingError, "upsert", write)

    async def delete_documents(self, doc_ids: Sequence[str]) -> None:
        def delete() -> None:
            index = self._open(None)
            self._delete_ids(index, [v for doc_id in doc_ids for v in self._ids_of(index, doc_id)])

        await self._call(IndexingError, "delete", delete)

    async def query(self, vector: Sequence[float], k: int) -> list[tuple[str, float]]:
        def query() -> list[tuple[str, float]]:
            response = self._open(None).query(
                vector=list(vector),
                top_k=k,
                namespace=self.namespace,
                include_metadata=False,
                timeout=QUERY_TIMEOUT,
            )
            return [(match.id, float(match.score)) for match in response.matches]

        if k <= 0:
            return []
        return await self._call(RetrievalError, "query", query)

    async def is_empty(self) -> bool:
        """Always False: asking would cost a request per question."""
        return False

    async def stats(self) -> VectorStats:
        def stats() -> VectorStats:
            response = self._open(None).describe_index_stats()
            summary = response.namespaces.get(self.namespace or "__default__")
            if summary is None and not self.namespace:
                summary = response.namespaces.get("")
            count = summary.vector_count if summary is not None else 0
            return VectorStats(count, response.dimension)

        return await self._call(RetrievalError, "describe_index_stats", stats)

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                if self._index is not None:
                    self._index.close()
                if self._client is not None:
                    self._client.close()
                self._index = self._client = None

        await asyncio.to_thread(close)

    # --- helpers -------------------------------------------------------------------------------

    def _ids_of(self, index: Index, doc_id: str) -> list[str]:
        """Every vector id of one document (its chunk ids share the prefix `{doc_id}:`)."""
        ids: list[str] = []
        token: str | None = None
        while True:
            page = index.list_paginated(
                prefix=f"{doc_id}:", namespace=self.namespace, pagination_token=token
            )
            ids.extend(item.id for item in page.vectors if item.id)
            token = page.pagination.next if page.pagination is not None else None
            if not token:
                return ids

    def _delete_ids(self, index: Index, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), DELETE_BATCH):
            index.delete(ids=list(ids[start : start + DELETE_BATCH]), namespace=self.namespace)
