"""Vector stores: one suite for SQLite and Pinecone, then Pinecone's wire details through the
real client against a local fake (batching, id prefixes, pagination, index lookup, failures)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from rag.errors import IndexingError, RetrievalError
from rag.index_store import IndexStore, StoredDocument
from rag.types import Chunk
from rag.vector_pinecone import PineconeVectors
from rag.vector_store import SqliteVectors, VectorItem, VectorStore
from tests.fakes.pinecone_api import FakePinecone

DIM = 8


def unit(slot: int, tilt: float = 0.0) -> list[float]:
    """A unit vector along axis `slot`, tilted towards the next axis."""
    vec = [0.0] * DIM
    vec[slot % DIM] = 1.0
    vec[(slot + 1) % DIM] = tilt
    norm = math.sqrt(1.0 + tilt * tilt)
    return [v / norm for v in vec]


def chunks_of(doc_id: str, count: int, content_hash: str = "h1") -> list[Chunk]:
    return [
        Chunk(
            f"{doc_id}:{n}",
            doc_id,
            f"Title {doc_id}",
            f"Section {n}",
            f"/docs/{doc_id}.md",
            f"text {n}",
            content_hash,
        )
        for n in range(count)
    ]


def put_document(store: IndexStore, doc_id: str, chunks: list[Chunk]) -> None:
    doc = StoredDocument(doc_id, f"/docs/{doc_id}.md", doc_id, "h", "p", 1, 1)
    store.replace_document(doc, chunks)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[IndexStore]:
    store = IndexStore(tmp_path / "index.sqlite3")
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "pinecone"])
async def vectors(
    request: pytest.FixtureRequest, index: IndexStore, fake_pinecone: FakePinecone
) -> AsyncIterator[VectorStore]:
    store: VectorStore
    if request.param == "sqlite":
        store = SqliteVectors(index, "test-model")
    else:
        store = PineconeVectors(fake_pinecone.api_key, host=fake_pinecone.url, namespace="t")
    yield store
    await store.aclose()


# --- the shared suite --------------------------------------------------------------------------


async def test_query_finds_the_nearest_chunks_best_first(
    vectors: VectorStore, index: IndexStore
) -> None:
    alpha, beta = chunks_of("alpha", 3), chunks_of("beta", 2)
    put_document(index, "alpha", alpha)
    put_document(index, "beta", beta)
    await vectors.upsert(
        {
            "alpha": [VectorItem(c, unit(n, tilt=0.3)) for n, c in enumerate(alpha)],
            "beta": [VectorItem(c, unit(n + 3, tilt=0.3)) for n, c in enumerate(beta)],
        }
    )
    nearest = await vectors.query(unit(3, tilt=0.5), 3)
    assert [key for key, _ in nearest] == ["beta:0", "beta:1", "alpha:2"]
    scores = [score for _, score in nearest]
    assert scores[0] == pytest.approx(1.15 / math.sqrt(1.09 * 1.25))
    assert scores == sorted(scores, reverse=True)
    assert await vectors.query(unit(0), 0) == []
    stats = await vectors.stats()
    assert (stats.count, stats.dimension) == (5, DIM)


async def test_a_shorter_new_version_leaves_no_vectors_behind(
    vectors: VectorStore, index: IndexStore
) -> None:
    old = chunks_of("alpha", 4)
    put_document(index, "alpha", old)
    await vectors.upsert({"alpha": [VectorItem(c, unit(n)) for n, c in enumerate(old)]})
    new = chunks_of("alpha", 2, content_hash="h2")
    put_document(index, "alpha", new)
    await vectors.upsert({"alpha": [VectorItem(c, unit(n + 4)) for n, c in enumerate(new)]})
    assert (await vectors.stats()).count == 2
    nearest = await vectors.query(unit(4), 10)
    assert sorted(key for key, _ in nearest) == ["alpha:0", "alpha:1"]
    assert nearest[0] == ("alpha:0", pytest.approx(1.0))


async def test_deleting_documents_deletes_only_their_vectors(
    vectors: VectorStore, index: IndexStore
) -> None:
    groups = {doc_id: chunks_of(doc_id, 2) for doc_id in ("alpha", "beta", "alphabet")}
    for doc_id, chunks in groups.items():
        put_document(index, doc_id, chunks)
    await vectors.upsert(
        {
            doc_id: [VectorItem(c, unit(n)) for n, c in enumerate(cs)]
            for doc_id, cs in groups.items()
        }
    )
    await vectors.delete_documents(["alpha", "missing"])
    nearest = await vectors.query(unit(0), 10)
    assert sorted(key for key, _ in nearest) == ["alphabet:0", "alphabet:1", "beta:0", "beta:1"]
    await vectors.delete_documents(["beta", "alphabet"])
    assert await vectors.query(unit(0), 10) == []
    assert (await vectors.stats()).count == 0


# --- SQLite ------------------------------------------------------------------------------------


async def test_sqlite_vectors_know_when_they_are_empty(index: IndexStore) -> None:
    vectors = SqliteVectors(index, "test-model")
    assert await vectors.is_empty()
    chunks = chunks_of("alpha", 1)
    put_document(index, "alpha", chunks)
    await vectors.upsert({"alpha": [VectorItem(chunks[0], unit(0))]})
    assert not await vectors.is_empty()
    assert await SqliteVectors(index, "other-model").is_empty()
    with pytest.raises(RetrievalError, match="dimension"):
        await vectors.query([1.0, 0.0], 3)


# --- Pinecone through its client ---------------------------------------------------------------


async def test_pinecone_upserts_in_batches_with_metadata_and_its_headers(
    fake_pinecone: FakePinecone,
) -> None:
    vectors = PineconeVectors(fake_pinecone.api_key, host=fake_pinecone.url, namespace="kb")
    chunks = chunks_of("big", 250)
    try:
        await vectors.upsert({"big": [VectorItem(c, unit(n)) for n, c in enumerate(chunks)]})
        upserts = fake_pinecone.requests("/vectors/upsert")
        assert [len(call.body["vectors"]) for call in upserts] == [100, 100, 50]
        assert all(call.body["namespace"] == "kb" for call in upserts)
        assert all(call.headers["Api-Key"] == fake_pinecone.api_key for call in upserts)
        assert all(call.headers.get("X-Pinecone-Api-Version") for call in upserts)
        assert fake_pinecone.ids("kb") == {c.id for c in chunks}
        assert fake_pinecone.vector("big:7", "kb").metadata == {
            "doc_id": "big",
            "source": "/docs/big.md",
            "title": "Title big",
            "section": "Section 7",
            "content_hash": "h1",
        }
        # The ids of a document are listed page by page, by their prefix.
        lists = fake_pinecone.requests("/vectors/list")
        assert [call.query.get("prefix") for call in lists] == ["big:"] * 3
        assert [call.query.get("paginationToken") for call in lists] == [None, "100", "200"]
        assert fake_pinecone.requests("/vectors/delete") == []

        await vectors.upsert({"big": [VectorItem(chunks[0], unit(1))]})
        deletes = fake_pinecone.requests("/vectors/delete")
        assert sorted(id_ for call in deletes for id_ in call.body["ids"]) == sorted(
            c.id for c in chunks[1:]
        )
        assert fake_pinecone.ids("kb") == {"big:0"}
        assert fake_pinecone.ids() == set()  # the default namespace is untouched
    finally:
        await vectors.aclose()


async def test_pinecone_finds_its_index_by_name_or_creates_it(
    fake_pinecone: FakePinecone,
) -> None:
    fake_pinecone.index_exists = False
    vectors = PineconeVectors(
        fake_pinecone.api_key,
        index_name=fake_pinecone.index_name,
        api_url=fake_pinecone.url,
        cloud="gcp",
        region="europe-west4",
    )
    try:
        with pytest.raises(RetrievalError, match="does not exist yet"):
            await vectors.query(unit(0), 3)
        assert fake_pinecone.created == []
        chunks = chunks_of("alpha", 2)
        await vectors.upsert({"alpha": [VectorItem(c, unit(n)) for n, c in enumerate(chunks)]})
        (created,) = fake_pinecone.created
        assert created["name"] == fake_pinecone.index_name
        assert created["deployment"] == {
            "deployment_type": "managed",
            "cloud": "gcp",
            "region": "europe-west4",
        }
        (field,) = created["schema"]["fields"].values()
        assert (field["type"], field["dimension"], field["metric"]) == (
            "dense_vector",
            DIM,
            "cosine",
        )
        assert [key for key, _ in await vectors.query(unit(1), 1)] == ["alpha:1"]
    finally:
        await vectors.aclose()

    # Another process finds the index by its name, without creating it again.
    again = PineconeVectors(
        fake_pinecone.api_key, index_name=fake_pinecone.index_name, api_url=fake_pinecone.url
    )
    try:
        assert (await again.stats()).count == 2
        assert len(fake_pinecone.created) == 1
    finally:
        await again.aclose()


async def test_pinecone_failures_are_rag_errors_that_name_the_index(
    fake_pinecone: FakePinecone,
) -> None:
    vectors = PineconeVectors("revoked-key", host=fake_pinecone.url, namespace="kb")
    chunks = chunks_of("alpha", 1)
    try:
        with pytest.raises(IndexingError, match=r"Pinecone upsert on pinecone:.*/kb failed"):
            await vectors.upsert({"alpha": [VectorItem(chunks[0], unit(0))]})
        with pytest.raises(IndexingError, match="Pinecone delete"):
            await vectors.delete_documents(["alpha"])
        with pytest.raises(RetrievalError, match="Pinecone query"):
            await vectors.query(unit(0), 3)
        with pytest.raises(RetrievalError, match="describe_index_stats"):
            await vectors.stats()
    finally:
        await vectors.aclose()
    assert fake_pinecone.ids("kb") == set()
    assert {call.headers["Api-Key"] for call in fake_pinecone.calls} == {"revoked-key"}
