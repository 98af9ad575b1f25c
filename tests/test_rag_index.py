"""Incremental indexing into the SQLite store: counts across runs, failures, sources, vectors
(in SQLite and in Pinecone)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.embeddings import OpenAIEmbedder
from rag.errors import RetrievalError
from rag.index_store import IndexStore, StoredDocument
from rag.indexer import discover, doc_id_for, index_sources
from rag.text import fts_phrase
from rag.types import Chunk
from rag.vector_pinecone import PineconeVectors
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.pinecone_api import FakePinecone

CORPUS = Path(__file__).parent / "fixtures" / "corpus_small"
CORPUS_FILES = 8


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    shutil.copytree(CORPUS, folder)
    return folder


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IndexStore]:
    index = IndexStore(tmp_path / "data" / "index.sqlite3")
    yield index
    index.close()


def matching_sources(store: IndexStore, word: str) -> set[str]:
    with store.snapshot():
        rows = store.match(fts_phrase(word), limit=50, weights=(1, 1, 1, 1))
        return {chunk.source for chunk in store.chunks(r for r, _ in rows).values()}


async def test_incremental_runs_count_added_unchanged_changed_removed(
    docs: Path, store: IndexStore
) -> None:
    first = await index_sources([str(docs)], store)
    assert (first.added, first.changed, first.removed, first.unchanged) == (CORPUS_FILES, 0, 0, 0)
    assert first.errors == []
    assert first.chunks == store.chunk_count() > CORPUS_FILES
    assert store.document_count() == CORPUS_FILES

    second = await index_sources([str(docs)], store)
    assert (second.added, second.changed, second.removed) == (0, 0, 0)
    assert (second.unchanged, second.chunks) == (CORPUS_FILES, 0)

    backups = docs / "backups.md"
    os.utime(backups, ns=(1_000_000_000, 1_000_000_000))  # touched, same content
    touched = await index_sources([str(docs)], store)
    assert (touched.unchanged, touched.changed) == (CORPUS_FILES, 0)
    assert store.documents()[str(backups)].mtime_ns == 1_000_000_000

    backups.write_text("# Backups\n\nSnapshots now go to object storage buckets.\n")
    (docs / "kubernetes.md").unlink()
    (docs / "faq.md").write_text("# FAQ\n\n## Is Lumen free?\n\nYes, it is open source.\n")
    third = await index_sources([str(docs)], store)
    assert (third.added, third.changed, third.removed, third.unchanged) == (1, 1, 1, 6)
    assert matching_sources(store, "buckets") == {str(backups)}
    assert matching_sources(store, "zstd") == set()  # the old text of backups.md is gone
    assert matching_sources(store, "helm") == set()  # kubernetes.md is gone
    assert str(docs / "faq.md") in matching_sources(store, "open source")


async def test_a_failing_file_is_reported_and_keeps_its_previous_version(
    docs: Path, store: IndexStore
) -> None:
    await index_sources([str(docs)], store)
    broken = docs / "authentication.md"
    broken.write_bytes(b"\x00\x01 binary garbage \x00")
    (docs / "extra.txt").write_text("Extra notes\n\nA brand new page about quotas.\n")
    report = await index_sources([str(docs)], store)
    assert [source for source, _ in report.errors] == [str(broken)]
    assert "binary" in report.errors[0][1]
    assert (report.added, report.removed, report.unchanged) == (1, 0, CORPUS_FILES - 1)
    assert matching_sources(store, "revoke") == {str(broken)}  # the old version still answers
    assert str(docs / "extra.txt") in matching_sources(store, "quotas")

    broken.write_text("# Authentication\n\nTokens are now called access keys.\n")
    fixed = await index_sources([str(docs)], store)
    assert (fixed.changed, fixed.errors) == (1, [])
    assert matching_sources(store, "revoke") == set()


async def test_sources_are_folders_files_and_globs(
    docs: Path, store: IndexStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    (docs / ".hidden").mkdir()
    (docs / ".hidden" / "secret.md").write_text("# Secret\n\nNot for the index.\n")
    (docs / "nested" / "deeper").mkdir(parents=True)
    (docs / "nested" / "deeper" / "notes.markdown").write_text("# Notes\n\nNested words.\n")
    (docs / "image.png").write_bytes(b"\x89PNG")
    folder = discover([str(docs)])
    names = sorted(path.name for path in folder.files)
    assert "secret.md" not in names and "image.png" not in names
    assert "notes.markdown" in names and len(names) == CORPUS_FILES + 1

    monkeypatch.chdir(docs.parent)
    relative = discover(["docs/**/*.markdown", "docs/tls.html", "docs/*.txt"])
    assert sorted(p.name for p in relative.files) == ["notes.markdown", "tls.html", "upgrading.txt"]
    assert all(p.is_absolute() for p in relative.files)
    absolute = discover([str(docs / "**" / "*.md")])
    assert len(absolute.files) == 6  # `**` does not enter hidden folders
    unsupported = await index_sources([str(docs / "image.png")], store)
    assert unsupported.errors and "unsupported" in unsupported.errors[0][1]


async def test_sources_no_longer_listed_are_removed_but_missing_ones_are_kept(
    docs: Path, store: IndexStore, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "runbook.md").write_text("# Runbook\n\nPage the on-call engineer.\n")
    first = await index_sources([str(docs), str(other)], store)
    assert first.added == CORPUS_FILES + 1

    shutil.rmtree(other)
    missing = await index_sources([str(docs), str(other)], store)
    assert missing.errors == [(str(other), "not found")]
    assert missing.removed == 0  # an unmounted folder does not empty the index
    assert matching_sources(store, "on-call")

    dropped = await index_sources([str(docs)], store)
    assert dropped.removed == 1 and not matching_sources(store, "on-call")


async def test_a_new_chunk_size_rebuilds_every_document(docs: Path, store: IndexStore) -> None:
    await index_sources([str(docs)], store, chunk_max_chars=1200)
    before = store.chunk_count()
    report = await index_sources([str(docs)], store, chunk_max_chars=300)
    assert report.changed == CORPUS_FILES and report.unchanged == 0
    assert store.chunk_count() > before
    stored = {doc.doc_id for doc in store.documents().values()}
    assert stored == {doc_id_for(str(p)) for p in docs.iterdir() if p.is_file()}
    assert {c.doc_id for c in store.doc_chunks(doc_id_for(str(docs / "tls.html")))} == {
        doc_id_for(str(docs / "tls.html"))
    }


async def test_replacing_a_document_is_atomic(store: IndexStore) -> None:
    doc = StoredDocument("d1", "/x.md", "X", "h1", "p", 1, 1)
    store.replace_document(doc, [Chunk("d1:0", "d1", "X", "", "/x.md", "first version", "h1")])
    duplicate = Chunk("dup", "d1", "X", "", "/x.md", "second version", "h2")
    with pytest.raises(sqlite3.IntegrityError):
        store.replace_document(doc, [duplicate, duplicate])
    assert [c.text for c in store.doc_chunks("d1")] == ["first version"]
    assert store.match(fts_phrase("second"), limit=5, weights=(1, 1, 1, 1)) == []
    assert store.documents()["/x.md"].content_hash == "h1"


async def test_the_store_serves_many_threads_and_refuses_use_after_close(
    docs: Path, tmp_path: Path
) -> None:
    store = IndexStore(tmp_path / "threads.sqlite3")
    await index_sources([str(docs)], store)
    (docs / "backups.md").write_text("# Backups\n\nSnapshots go to a zstd archive.\n")
    reads = asyncio.gather(
        *(asyncio.to_thread(matching_sources, store, word) for word in ["helm", "zstd"] * 8)
    )
    found, report = await asyncio.gather(reads, index_sources([str(docs)], store))
    assert all(len(sources) == 1 for sources in found)
    assert report.changed == 1
    store.close()
    with pytest.raises(RetrievalError, match="closed"):
        await asyncio.to_thread(store.chunk_count)


async def test_embeddings_are_made_once_per_new_chunk(
    docs: Path, store: IndexStore, fake_openai: FakeOpenAI
) -> None:
    embedder = OpenAIEmbedder(
        "embed-small", base_url=fake_openai.base_url, api_key=fake_openai.api_key, batch_size=16
    )
    first = await index_sources([str(docs)], store, embedder)
    assert first.errors == []
    assert store.vector_count("embed-small") == store.chunk_count()
    calls = len(fake_openai.calls("/embeddings"))
    assert calls == -(-store.chunk_count() // 16)  # batches of 16
    assert all(len(call.body["input"]) <= 16 for call in fake_openai.calls("/embeddings"))

    await index_sources([str(docs)], store, embedder)
    assert len(fake_openai.calls("/embeddings")) == calls  # nothing new to embed

    (docs / "backups.md").write_text("# Backups\n\nOne short section.\n")
    await index_sources([str(docs)], store, embedder)
    new_calls = fake_openai.calls("/embeddings")[calls:]
    assert [len(call.body["input"]) for call in new_calls] == [1]
    assert "One short section." in new_calls[0].body["input"][0]
    assert store.vector_count("embed-small") == store.chunk_count()


async def test_an_embedding_failure_is_reported_and_bm25_still_works(
    docs: Path, store: IndexStore, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_models.add("broken-model")
    embedder = OpenAIEmbedder(
        "broken-model", base_url=fake_openai.base_url, api_key=fake_openai.api_key, max_retries=0
    )
    report = await index_sources([str(docs)], store, embedder)
    assert report.added == CORPUS_FILES
    assert len(report.errors) == 1 and report.errors[0][0] == "embeddings"
    assert "broken-model" in report.errors[0][1]
    assert store.vector_count("broken-model") == 0
    assert matching_sources(store, "helm")


async def test_pinecone_stays_in_step_with_incremental_runs(
    docs: Path, store: IndexStore, fake_openai: FakeOpenAI, fake_pinecone: FakePinecone
) -> None:
    embedder = OpenAIEmbedder(
        "embed-small", base_url=fake_openai.base_url, api_key=fake_openai.api_key
    )
    vectors = PineconeVectors(fake_pinecone.api_key, host=fake_pinecone.url, namespace="kb")

    def chunk_ids() -> set[str]:
        return {c.id for doc in store.documents().values() for c in store.doc_chunks(doc.doc_id)}

    try:
        first = await index_sources([str(docs)], store, embedder, vectors=vectors)
        assert first.errors == [] and first.added == CORPUS_FILES
        assert fake_pinecone.ids("kb") == chunk_ids() and len(chunk_ids()) == first.chunks
        assert store.vector_count("embed-small") == 0  # the vectors live in Pinecone only
        upserts = fake_pinecone.requests("/vectors/upsert")
        assert all(len(call.body["vectors"]) <= 100 for call in upserts)
        backups = docs / "backups.md"
        backups_id = doc_id_for(str(backups))
        old_hash = fake_pinecone.vector(f"{backups_id}:0", "kb").metadata["content_hash"]

        calls = len(fake_pinecone.calls)
        embedded = len(fake_openai.calls("/embeddings"))
        second = await index_sources([str(docs)], store, embedder, vectors=vectors)
        assert second.unchanged == CORPUS_FILES and second.errors == []
        assert len(fake_pinecone.calls) == calls  # nothing to write, nothing asked
        assert len(fake_openai.calls("/embeddings")) == embedded

        backups.write_text("# Backups\n\nSnapshots now go to object storage buckets.\n")
        (docs / "kubernetes.md").unlink()
        (docs / "faq.md").write_text("# FAQ\n\n## Is Lumen free?\n\nYes, it is open source.\n")
        third = await index_sources([str(docs)], store, embedder, vectors=vectors)
        assert (third.added, third.changed, third.removed, third.errors) == (1, 1, 1, [])
        assert fake_pinecone.ids("kb") == chunk_ids()  # old passages and kubernetes.md gone
        assert f"{backups_id}:1" not in fake_pinecone.ids("kb")
        new_inputs = [
            t for c in fake_openai.calls("/embeddings")[embedded:] for t in c.body["input"]
        ]
        assert len(new_inputs) == 2  # only the changed and the new document were embedded
        metadata = fake_pinecone.vector(f"{backups_id}:0", "kb").metadata
        assert metadata["content_hash"] != old_hash
        assert metadata["source"] == str(backups) and metadata["title"] == "Backups"
    finally:
        await vectors.aclose()


async def test_a_pinecone_failure_fails_the_run_and_the_next_run_catches_up(
    docs: Path, store: IndexStore, fake_openai: FakeOpenAI, fake_pinecone: FakePinecone
) -> None:
    embedder = OpenAIEmbedder(
        "embed-small", base_url=fake_openai.base_url, api_key=fake_openai.api_key
    )
    vectors = PineconeVectors(fake_pinecone.api_key, host=fake_pinecone.url)
    real_key, fake_pinecone.api_key = fake_pinecone.api_key, "rotated-key"
    try:
        failed = await index_sources([str(docs)], store, embedder, vectors=vectors)
        assert failed.added == CORPUS_FILES
        assert [source for source, _ in failed.errors] == ["embeddings"]
        assert "Pinecone upsert" in failed.errors[0][1] and "Invalid API Key" in failed.errors[0][1]
        assert fake_pinecone.ids() == set()
        assert matching_sources(store, "helm")  # BM25 is indexed all the same

        fake_pinecone.api_key = real_key
        caught_up = await index_sources([str(docs)], store, embedder, vectors=vectors)
        assert caught_up.unchanged == CORPUS_FILES and caught_up.errors == []
        assert len(fake_pinecone.ids()) == store.chunk_count()
    finally:
        await vectors.aclose()
