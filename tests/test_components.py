"""The parts built from settings: Pinecone serves the vectors when it is configured."""

from __future__ import annotations

from pathlib import Path

from bot.components import open_components
from bot.settings import PROJECT_DIR, load_settings
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.pinecone_api import FakePinecone

HANDBOOK = str(PROJECT_DIR / "tests" / "fixtures" / "handbook")


async def test_pinecone_settings_index_into_pinecone_and_answer_from_it(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_pinecone: FakePinecone
) -> None:
    fake_pinecone.index_exists = False
    settings = load_settings(
        _env_file=None,
        data_dir=tmp_path,
        knowledge_sources=[HANDBOOK],
        tts_provider="none",
        embeddings_model="embed-small",
        embeddings_api_key=fake_openai.api_key,
        embeddings_base_url=fake_openai.base_url,
        pinecone_api_key=fake_pinecone.api_key,
        pinecone_index=fake_pinecone.index_name,
        pinecone_api_url=fake_pinecone.url,
        pinecone_namespace="handbook",
    )
    async with open_components(settings) as parts:
        assert parts.providers["vectors"] == f"pinecone:{fake_pinecone.index_name}/handbook"
        assert parts.providers["embeddings"] == "embed-small"
        report = await parts.reindex()
        assert report.errors == [] and report.added > 0
        assert len(fake_pinecone.created) == 1  # the index did not exist: it was created
        assert len(fake_pinecone.ids("handbook")) == parts.index.chunk_count()

        answer = await parts.agent.answer("test:1", "What time does the library open on Saturdays?")
        assert not answer.declined and answer.retrieved
        assert "library.md" in answer.retrieved[0].chunk.source
        assert len(fake_pinecone.requests("/query")) >= 1  # the dense half came from Pinecone


async def test_without_pinecone_the_vectors_stay_in_sqlite(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, data_dir=tmp_path, tts_provider="none")
    async with open_components(settings) as parts:
        assert parts.vectors is None and parts.providers["vectors"] == "none"
