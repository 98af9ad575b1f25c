"""Shared pytest fixtures: isolated settings, real synthesized speech, local fake servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings, load_settings
from rag.embeddings import build_embedder
from rag.embeddings_local import LocalEmbedder
from speech.factory import SpeechServices, build_speech
from speech.transcode import to_voice_note
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.pinecone_api import FakePinecone

SettingsFactory = Callable[..., Settings]
Speak = Callable[[str], Awaitable[bytes]]


# --- settings --------------------------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def _isolated_settings_environment() -> Iterator[None]:
    """No setting comes from the developer's shell or .env: tests pass what they need."""
    with pytest.MonkeyPatch.context() as patch:
        for name in Settings.model_fields:
            patch.delenv(name.upper(), raising=False)
        patch.setitem(Settings.model_config, "env_file", None)
        yield


@pytest.fixture(scope="session")
def session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DATA_DIR shared by the session (the assembled Whisper model is cached there once)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def settings_factory(session_data_dir: Path) -> SettingsFactory:
    """`settings_factory(**overrides)` -> Settings; DATA_DIR is the session's unless overridden.

    Pass `data_dir=tmp_path` for a test that writes state of its own.
    """

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"data_dir": session_data_dir, **overrides}
        return load_settings(_env_file=None, **values)

    return make


@pytest.fixture(scope="session")
def settings(settings_factory: SettingsFactory) -> Settings:
    """Default, offline settings: Whisper, Piper and the local emotion detector."""
    return settings_factory(stt_provider="whisper", tts_provider="piper", emotion_api_url=None)


# --- models ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
async def local_embedder(settings_factory: SettingsFactory) -> LocalEmbedder:
    """The packaged MiniLM model, built from EMBEDDINGS_MODEL=local and loaded once per session."""
    built = build_embedder(settings_factory(embeddings_model="local"))
    assert isinstance(built, LocalEmbedder)
    await built.warm_up()
    return built


# --- speech ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
async def speech(settings: Settings) -> AsyncIterator[SpeechServices]:
    """The offline speech services, models loaded once for the whole session."""
    services = build_speech(settings)
    await services.warm_up()
    yield services
    await services.aclose()


@pytest.fixture(scope="session")
def speak(speech: SpeechServices) -> Speak:
    """`await speak(text)` -> bytes of an OGG/Opus voice note of Piper saying `text`.

    Real speech, as a user's voice note would arrive; cached per text for the session.
    """
    cache: dict[str, bytes] = {}
    locks: dict[str, asyncio.Lock] = {}
    tts = speech.tts
    assert tts is not None, "the session's speech services have Piper TTS"

    async def speak_text(text: str) -> bytes:
        if not text.strip():
            raise ValueError("speak() needs some words")
        async with locks.setdefault(text, asyncio.Lock()):
            if text not in cache:
                note = await to_voice_note(await tts.synthesize(text))
                cache[text] = note.data
        return cache[text]

    return speak_text


# --- fake servers ----------------------------------------------------------------------------
@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """A fresh local OpenAI-compatible API per test."""
    fake = await FakeOpenAI().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_pinecone() -> AsyncIterator[FakePinecone]:
    """A fresh local Pinecone (control and data plane, one index) per test."""
    fake = await FakePinecone().start()
    yield fake
    await fake.stop()
