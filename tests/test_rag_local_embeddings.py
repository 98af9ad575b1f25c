"""EMBEDDINGS_MODEL=local: the packaged MiniLM embedder, hybrid retrieval with it, its settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bot.errors import SettingsError
from bot.settings import PROJECT_DIR, Settings, _local_embeddings_problems
from rag.agent import Agent, build_graph
from rag.embeddings import build_embedder
from rag.embeddings_local import (
    INSTALL_HINT,
    PACKAGED_CALIBRATION,
    LocalEmbedder,
    LocalEmbedderError,
    _packaged_folder,
)
from rag.errors import RagError
from rag.index_store import IndexStore
from rag.indexer import index_sources
from rag.llm import build_chat_model
from rag.retrieval import HybridRetriever, build_retriever
from storage.conversations import ConversationStore

HANDBOOK = PROJECT_DIR / "tests" / "fixtures" / "handbook"

# Paraphrases that share no word with the handbook (BM25 finds nothing), and the section
# that answers each.
PARAPHRASES = [
    ("Can I quit a class midway through the term?", "enrolment.md", "Withdrawing from a course"),
    ("When can I visit the reading hall at weekends?", "library.md", "Opening hours"),
    (
        "How do I get onto the internet with my laptop?",
        "it-services.md",
        "Connecting to the campus Wi-Fi",
    ),
]
OFF_TOPIC = [
    "What is the boiling point of mercury?",
    "Who painted the Mona Lisa?",
    "How do I bake sourdough bread?",
    "What's the capital of Peru?",
]

SettingsFactory = Callable[..., Settings]


@pytest.fixture(scope="session")
def embedder(local_embedder: LocalEmbedder) -> LocalEmbedder:
    """The packaged model, loaded once per session."""
    return local_embedder


@pytest.fixture(scope="module")
async def hybrid_index(
    tmp_path_factory: pytest.TempPathFactory, embedder: LocalEmbedder
) -> AsyncIterator[IndexStore]:
    store = IndexStore(tmp_path_factory.mktemp("local-index") / "index.sqlite3")
    report = await index_sources([str(HANDBOOK)], store, embedder, chunk_max_chars=1200)
    assert report.errors == [] and report.added == 4
    assert store.vector_count(embedder.name) == store.chunk_count() > 0
    yield store
    store.close()


@pytest.fixture
def hybrid(
    hybrid_index: IndexStore, embedder: LocalEmbedder, settings_factory: SettingsFactory
) -> HybridRetriever:
    return build_retriever(settings_factory(embeddings_model="local"), hybrid_index, embedder)


def file_of(source: str) -> str:
    return Path(source).name


# --- the embedder ----------------------------------------------------------------------------
async def test_vectors_are_384_dimensional_unit_length_and_meaningful(
    embedder: LocalEmbedder,
) -> None:
    assert embedder.name == "local:all-MiniLM-L6-v2"
    texts = [
        "How do I reset my password?",
        "I forgot my login credentials and need new ones.",
        "The recipe needs two cups of flour and an egg.",
    ]
    vectors = np.asarray(await embedder.embed(texts))
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated + 0.3, (similar, unrelated)
    assert await embedder.embed([]) == []
    # The same text gives the same vector, alone or in a batch.
    alone = np.asarray((await embedder.embed([texts[2]]))[0])
    assert np.allclose(alone, vectors[2], atol=1e-5)


async def test_the_model_loads_once_however_many_threads_ask() -> None:
    fresh = LocalEmbedder()
    with ThreadPoolExecutor(max_workers=4) as pool:
        models = list(pool.map(lambda _: fresh.model(), range(8)))
    assert all(model is models[0] for model in models)
    vectors = await asyncio.gather(*(fresh.embed([f"question {n}"]) for n in range(4)))
    assert [len(v[0]) for v in vectors] == [384] * 4


async def test_a_folder_without_a_model_fails_with_a_rag_error(tmp_path: Path) -> None:
    broken = LocalEmbedder(tmp_path)
    assert broken.name == f"local:{tmp_path.resolve()}" and broken.calibration is None
    with pytest.raises(LocalEmbedderError, match="holds no sentence-transformers model") as err:
        await broken.embed(["anything"])
    assert isinstance(err.value, RagError) and str(tmp_path) in str(err.value)


def test_embeddings_model_selects_the_embedder(settings_factory: SettingsFactory) -> None:
    packaged = build_embedder(settings_factory(embeddings_model="local"))
    assert isinstance(packaged, LocalEmbedder) and packaged.folder is None
    assert packaged.calibration == PACKAGED_CALIBRATION
    folder = _packaged_folder()
    custom = build_embedder(settings_factory(embeddings_model=f"local:{folder}"))
    assert isinstance(custom, LocalEmbedder) and custom.folder == folder.resolve()
    assert custom.name == f"local:{folder.resolve()}"
    assert custom.calibration is None  # another model's cosines are on another scale


# --- hybrid retrieval with it ----------------------------------------------------------------
async def test_hybrid_finds_paraphrases_that_bm25_misses(
    hybrid: HybridRetriever, hybrid_index: IndexStore
) -> None:
    bm25 = HybridRetriever(hybrid_index, min_coverage=0.5)
    for question, expected_file, expected_section in PARAPHRASES:
        assert (await bm25.search(question, 3)).hits == [], question  # no word in common
        result = await hybrid.search(question, 3)
        best = result.hits[0].chunk
        assert (file_of(best.source), best.section) == (expected_file, expected_section), question
        assert result.similarity is not None and result.similarity > 0.35


async def test_hybrid_still_declines_off_topic_questions(hybrid: HybridRetriever) -> None:
    for question in OFF_TOPIC:
        result = await hybrid.search(question, 3)
        assert result.hits, question  # the nearest passages always exist...
        assert not result.covered, question  # ...but they are not about the question
        assert result.similarity is not None and result.similarity < PACKAGED_CALIBRATION.floor


async def test_hybrid_covers_a_question_the_handbook_answers(hybrid: HybridRetriever) -> None:
    result = await hybrid.search("How do I get on the wifi on campus?", 3)
    assert result.covered
    assert file_of(result.hits[0].chunk.source) == "it-services.md"


async def test_the_agent_declines_off_topic_in_hybrid_mode(
    tmp_path: Path, hybrid: HybridRetriever, settings_factory: SettingsFactory
) -> None:
    async with ConversationStore(tmp_path / "conversations.sqlite3") as conversations:
        settings = settings_factory(data_dir=tmp_path)
        graph = build_graph(hybrid, conversations.checkpointer, build_chat_model(settings))
        agent = Agent(graph, conversations)
        declined = await agent.answer("cli:1", "What is the boiling point of mercury?")
        assert declined.declined and declined.hits == []
        answered = await agent.answer("cli:2", "How do I get on the wifi on campus?")
        assert not answered.declined and "CampusNet" in answered.text


# --- settings ------------------------------------------------------------------------------
def test_local_needs_no_api_key(settings_factory: SettingsFactory) -> None:
    settings = settings_factory(embeddings_model="local")
    assert settings.embeddings_key is None


def test_a_missing_module_is_named_with_the_fix() -> None:
    problems = _local_embeddings_problems(
        "local", modules=["sentence_transformers", "suara_no_such_module"]
    )
    assert len(problems) == 1
    assert problems[0].startswith("EMBEDDINGS_MODEL")
    assert "suara_no_such_module" in problems[0] and "sentence_transformers" not in problems[0]
    assert INSTALL_HINT in problems[0] and "[local-embeddings]" in INSTALL_HINT
    assert _local_embeddings_problems("local") == []  # installed in the dev environment


def test_wrong_local_settings_fail_at_start_up(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError, match=r"EMBEDDINGS_MODEL \(.*missing.* is not a folder"):
        settings_factory(embeddings_model=f"local:{tmp_path / 'missing'}")
    with pytest.raises(SettingsError, match="EMBEDDINGS_API_KEY or OPENAI_API_KEY"):
        settings_factory(embeddings_model="text-embedding-3-small")
