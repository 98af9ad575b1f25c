"""Retrieval on a small realistic corpus: ranking, coverage both ways, safety, dense fusion."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.metrics import Metrics
from bot.settings import Settings
from rag.embeddings import OpenAIEmbedder, build_embedder
from rag.embeddings_local import LocalEmbedder
from rag.index_store import IndexStore
from rag.indexer import index_sources
from rag.retrieval import HybridRetriever, RetrievalConfig, build_retriever, rrf
from rag.text import analyze_query, content_terms
from rag.types import Embedder
from rag.vector_pinecone import PineconeVectors
from rag.vector_store import VectorItem, VectorStore, build_vector_store
from tests.fakes.openai_api import FakeOpenAI, bag_of_words_vector
from tests.fakes.pinecone_api import FakePinecone
from tests.scrape import parse

CORPUS = Path(__file__).parent / "fixtures" / "corpus_small"

# Paraphrased questions (not the documents' wording) and the file that answers each.
QUESTIONS = [
    ("How do I put Lumen on an Ubuntu server?", "install.md"),
    ("How can I confirm the server is healthy after installing?", "install.md"),
    ("Where does the server look for its settings file?", "configuration.md"),
    ("How do I override a config key without editing the file?", "configuration.md"),
    ("How do I get logs as JSON?", "configuration.md"),
    ("How long are delivered events retained?", "configuration.md"),
    ("How do I run several replicas on Kubernetes?", "kubernetes.md"),
    ("Which probes does the Helm chart set up?", "kubernetes.md"),
    ("How do I serve the ingest port over HTTPS?", "tls.html"),
    ("Can Lumen get certificates from Let's Encrypt automatically?", "tls.html"),
    ("How do I swap an expiring certificate without a restart?", "tls.html"),
    ("How do I make a new API key for my CI pipeline?", "authentication.md"),
    ("A token leaked, how do I invalidate it?", "authentication.md"),
    ("How are incoming webhooks verified?", "authentication.md"),
    ("How do I back up the data while the server keeps running?", "backups.md"),
    ("How do I run a nightly backup automatically?", "backups.md"),
    ("How do I bring back data from a snapshot?", "backups.md"),
    ("Senders get connection refused, what should I check?", "troubleshooting.md"),
    ("What happens to an event after every retry has failed?", "troubleshooting.md"),
    ("The disk filled up, what now?", "troubleshooting.md"),
    ("How do I go back to the previous release after a bad upgrade?", "upgrading.txt"),
    ("What does the service need in terms of memory and disk before I set it up?", "install.md"),
    ("How much memory should I give each pod?", "kubernetes.md"),
    ("What happens when a webhook body is too large?", "configuration.md"),
]
OFF_TOPIC = [
    "What is the capital of France?",
    "Who won the 2018 World Cup?",
    "how do I bake sourdough bread",
    "What's a good recipe for vegetable curry?",
    "Who painted the Mona Lisa?",
    "How do I center a div with CSS?",
]
HOSTILE = [
    'token" OR "x',
    "(backup",
    "backup)",
    "NEAR(backup restore, 2)",
    "backup NEAR restore",
    "back*",
    "-backup",
    "^backup",
    "title:backup",
    "{title section}: backup",
    "text : restore OR snapshot",
    "backup AND NOT restore",
    '"unbalanced quote',
    "'; DROP TABLE chunks; --",
    "\\\\ \x00 \u200b 🙂 ümlaut",
    "backup " * 300,
]

SettingsFactory = Callable[..., Settings]


@dataclass
class Backend:
    """An indexed corpus and where its vectors live: none (BM25 alone), SQLite or Pinecone."""

    name: str
    store: IndexStore
    embedder: Embedder | None = None
    vectors: VectorStore | None = None

    def retriever(self, config: RetrievalConfig | None = None) -> HybridRetriever:
        return HybridRetriever(
            self.store, self.embedder, min_coverage=0.5, config=config, vectors=self.vectors
        )


@pytest.fixture(scope="module", params=["bm25", "sqlite", "pinecone"])
async def backend(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    local_embedder: LocalEmbedder,
) -> AsyncIterator[Backend]:
    """The corpus indexed once per backend (vectors of the packaged MiniLM model in SQLite or
    in Pinecone); the same tests then run against each."""
    name = request.param
    index = IndexStore(tmp_path_factory.mktemp(f"retrieval-{name}") / "index.sqlite3")
    async with AsyncExitStack() as stack:
        stack.callback(index.close)
        embedder: Embedder | None = None if name == "bm25" else local_embedder
        vectors: VectorStore | None = None
        if name == "pinecone":
            pinecone = await FakePinecone().start()
            stack.push_async_callback(pinecone.stop)
            vectors = PineconeVectors(pinecone.api_key, host=pinecone.url, namespace="docs")
            stack.push_async_callback(vectors.aclose)
        report = await index_sources([str(CORPUS)], index, embedder, vectors=vectors)
        assert report.errors == [] and report.added == 8
        yield Backend(name, index, embedder, vectors)


@pytest.fixture
def store(backend: Backend) -> IndexStore:
    return backend.store


@pytest.fixture
def retriever(backend: Backend) -> HybridRetriever:
    return backend.retriever()


def file_of(source: str) -> str:
    return Path(source).name


async def test_paraphrased_questions_find_their_document(retriever: HybridRetriever) -> None:
    ranks = []
    for question, expected in QUESTIONS:
        result = await retriever.search(question, 4)
        files = [file_of(hit.chunk.source) for hit in result.hits]
        ranks.append(files.index(expected) + 1 if expected in files else None)
    misses = [(q, rank) for (q, _), rank in zip(QUESTIONS, ranks, strict=True) if rank != 1]
    assert sum(rank == 1 for rank in ranks) / len(ranks) >= 0.8, misses
    assert all(rank is not None for rank in ranks), misses  # every answer is in the top 4


async def test_hits_are_ranked_diverse_and_carry_their_chunk(
    backend: Backend, retriever: HybridRetriever
) -> None:
    result = await retriever.search("How do I rotate TLS certificates without restarting?", 4)
    assert result.query == "How do I rotate TLS certificates without restarting?"
    assert len(result.hits) == 4
    best = result.hits[0].chunk
    assert file_of(best.source) == "tls.html" and best.title == "Enabling TLS"
    assert best.section == "Mutual TLS for consumers > Rotating certificates"
    assert "SIGHUP" in best.text
    scores = [hit.score for hit in result.hits]
    assert scores == sorted(scores, reverse=True)
    # One passage per document first, then the best others: two documents hold the words,
    # and vectors bring in passages of others that are close in meaning.
    documents = 2 if backend.embedder is None else 4
    assert len({hit.chunk.doc_id for hit in result.hits}) == documents
    broad = await retriever.search("server data configuration restart", 5)
    docs = [hit.chunk.doc_id for hit in broad.hits]
    assert len(docs) == 5 and len(set(docs)) == 5  # one passage per document in the top k


async def test_one_document_may_fill_the_top_k_when_asked(backend: Backend) -> None:
    unlimited = backend.retriever(RetrievalConfig(max_per_doc=0))
    result = await unlimited.search("certificates TLS certificate files", 3)
    assert [file_of(hit.chunk.source) for hit in result.hits] == ["tls.html"] * 3


async def test_in_domain_questions_are_covered(retriever: HybridRetriever) -> None:
    covered = [(await retriever.search(q, 4)).covered for q, _ in QUESTIONS]
    assert sum(covered) / len(covered) >= 0.8
    for question in (
        "How do I get logs as JSON?",
        "How do I back up the data while the server keeps running?",
        "Which probes does the Helm chart set up?",
    ):
        result = await retriever.search(question, 4)
        assert result.covered and result.coverage >= 0.8, question


async def test_off_topic_questions_are_not_covered(retriever: HybridRetriever) -> None:
    for question in OFF_TOPIC:
        result = await retriever.search(question, 4)
        assert not result.covered, question
        assert result.coverage < 0.3, question


async def test_questions_without_content_words_return_nothing(retriever: HybridRetriever) -> None:
    for question in ("", "   ", "what is it?", "how do I do that?", "?!"):
        result = await retriever.search(question, 4)
        assert (result.hits, result.coverage, result.covered) == ([], 0.0, False)
    assert (await retriever.search("backup", 0)).hits == []


async def test_user_text_never_reaches_fts5_as_syntax(
    retriever: HybridRetriever, store: IndexStore
) -> None:
    chunks_before = store.chunk_count()
    for query in HOSTILE:
        result = await retriever.search(query, 4)
        assert 0.0 <= result.coverage <= 1.0
        if "backup" in query and "DROP" not in query:
            assert file_of(result.hits[0].chunk.source) == "backups.md", query
    assert store.chunk_count() == chunks_before
    assert (await retriever.search("title:backup", 4)).hits  # a word, not a column filter


def test_query_analysis_quotes_terms_and_expands_synonyms() -> None:
    terms = {t.text: t for t in analyze_query("How do I set up TLS and remove old certs?")}
    assert terms["tls"].weight == 1.0 and terms["tls"].is_original
    assert terms["setup"].origin == "set" and terms["setup"].weight < 1.0
    assert terms["delete"].origin == "remove" and terms["delete"].credit < 1.0
    assert "how" not in terms and "do" not in terms and "i" not in terms
    colour = {t.text: t for t in analyze_query("change the colour")}
    assert colour["color"].weight == 1.0 and colour["color"].origin == "colour"
    assert content_terms("Bagaimana cara memasang Lumen di server?") == [
        "memasang",
        "lumen",
        "server",
    ]
    assert content_terms("Why won't it start?") == ["start"]


def test_rrf_prefers_items_ranked_well_by_both() -> None:
    fused = rrf([[1, 2, 3], [3, 1, 4]], k=60)
    assert [item for item, _ in fused] == [1, 3, 2, 4]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)


@pytest.mark.parametrize("where", ["sqlite", "pinecone"])
async def test_dense_vectors_are_fused_with_bm25(
    where: str,
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    fake_pinecone: FakePinecone,
    settings_factory: SettingsFactory,
) -> None:
    pinecone = {"pinecone_api_key": fake_pinecone.api_key, "pinecone_host": fake_pinecone.url}
    settings = settings_factory(
        data_dir=tmp_path,
        embeddings_model="embed-small",
        embeddings_api_key=fake_openai.api_key,
        embeddings_base_url=fake_openai.base_url,
        min_coverage=0.5,
        **(pinecone if where == "pinecone" else {}),
    )
    embedder = build_embedder(settings)
    assert isinstance(embedder, OpenAIEmbedder) and embedder.name == "embed-small"
    vectors = build_vector_store(settings)
    assert (vectors is None) == (where == "sqlite")
    store = IndexStore(settings.path("index.sqlite3"))
    try:
        await index_sources([str(CORPUS)], store, embedder, vectors=vectors)
        retriever = build_retriever(settings, store, embedder, vectors)
        calls = len(fake_openai.calls("/embeddings"))
        result = await retriever.search("How do I run a nightly backup automatically?", 4)
        assert len(fake_openai.calls("/embeddings")) == calls + 1  # the query was embedded
        assert file_of(result.hits[0].chunk.source) == "backups.md" and result.covered
        assert all(hit.score <= 2 / 61 for hit in result.hits)  # fused by reciprocal rank
        assert len(fake_pinecone.requests("/query")) == (where == "pinecone")

        # A passage that shares no word with the question enters through its vector alone.
        question = "zebra quagga okapi"
        target = next(
            chunk
            for chunk in store.chunks(range(1, 200)).values()
            if file_of(chunk.source) == "upgrading.txt"
        )
        assert retriever.vectors is not None
        item = VectorItem(target, bag_of_words_vector(question))
        await retriever.vectors.upsert({target.doc_id: [item]})
        dense_only = await retriever.search(question, 4)
        assert file_of(dense_only.hits[0].chunk.source) == "upgrading.txt"
        assert dense_only.hits[0].chunk == target
        assert not dense_only.covered and dense_only.coverage == 0.0
    finally:
        if vectors is not None:
            await vectors.aclose()
        store.close()


async def test_a_failing_embedder_falls_back_to_bm25(
    store: IndexStore, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    embedder = OpenAIEmbedder(
        "gone-model", base_url=fake_openai.base_url, api_key=fake_openai.api_key, max_retries=0
    )
    await embedder_vectors(store, embedder)
    fake_openai.fail_models.add("gone-model")
    metrics = Metrics()
    retriever = HybridRetriever(store, embedder, min_coverage=0.5, observer=metrics)
    with caplog.at_level(logging.WARNING, logger="rag.retrieval"):
        result = await retriever.search("How do I bring back data from a snapshot?", 4)
    assert file_of(result.hits[0].chunk.source) == "backups.md"
    assert result.hits[0].score > 1  # a BM25 score, not a fused one
    assert "dense retrieval skipped" in caplog.text
    scraped = parse(metrics.render().decode())
    fallback = {"component": "embeddings", "from_": "gone-model", "to": "bm25"}
    assert scraped.value("suara_provider_fallbacks_total", **fallback) == 1
    assert scraped.value("suara_stage_errors_total", stage="retrieve") == 1


async def embedder_vectors(store: IndexStore, embedder: OpenAIEmbedder) -> None:
    rows = store.chunks_without_vectors(embedder.name)
    vectors = await embedder.embed([chunk.text for _, chunk in rows])
    store.put_vectors(embedder.name, [(r, v) for (r, _), v in zip(rows, vectors, strict=True)])


def test_no_embedder_without_a_model(settings_factory: SettingsFactory) -> None:
    assert build_embedder(settings_factory()) is None


async def test_a_failing_pinecone_falls_back_to_bm25(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    fake_pinecone: FakePinecone,
    caplog: pytest.LogCaptureFixture,
) -> None:
    embedder = OpenAIEmbedder(
        "embed-small", base_url=fake_openai.base_url, api_key=fake_openai.api_key
    )
    vectors = PineconeVectors(fake_pinecone.api_key, host=fake_pinecone.url, namespace="kb")
    store = IndexStore(tmp_path / "index.sqlite3")
    try:
        report = await index_sources([str(CORPUS)], store, embedder, vectors=vectors)
        assert report.errors == [] and fake_pinecone.ids("kb")
        metrics = Metrics()
        retriever = HybridRetriever(
            store, embedder, min_coverage=0.5, vectors=vectors, observer=metrics
        )
        question = "How do I bring back data from a snapshot?"
        fused = await retriever.search(question, 4)
        assert fused.hits[0].score < 1 and fused.similarity is not None

        fake_pinecone.api_key = "rotated-key"  # every request is refused from now on
        with caplog.at_level(logging.WARNING, logger="rag.retrieval"):
            result = await retriever.search(question, 4)
        assert file_of(result.hits[0].chunk.source) == "backups.md" and result.covered
        assert result.hits[0].score > 1 and result.similarity is None  # BM25 alone
        assert "dense retrieval skipped" in caplog.text and "Pinecone query" in caplog.text
        fallback = {"component": "vectors", "from_": vectors.name, "to": "bm25"}
        scraped = parse(metrics.render().decode())
        assert scraped.value("suara_provider_fallbacks_total", **fallback) == 1
    finally:
        await vectors.aclose()
        store.close()
