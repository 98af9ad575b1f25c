"""The pipeline degrades politely: bad audio, empty text, failing speech providers."""

from __future__ import annotations

import io
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bot.components import Components, open_components
from bot.settings import PROJECT_DIR, load_settings
from handlers.messages import IncomingMessage, Media
from rag.language import phrase
from speech.errors import AudioTooLong, CorruptAudio, SilentAudio
from speech.transcode import to_voice_note
from speech.types import Pcm
from tests.fakes.openai_api import FakeOpenAI

HANDBOOK = str(PROJECT_DIR / "tests" / "fixtures" / "handbook")


def components_for(tmp_path: Path, **overrides: Any) -> Any:
    settings = load_settings(
        _env_file=None, data_dir=tmp_path, knowledge_sources=[HANDBOOK], **overrides
    )
    return open_components(settings)


async def ready(components: Components) -> Components:
    await components.ensure_indexed()
    return components


def message(text: str | None = None, audio: bytes | None = None, **kw: Any) -> IncomingMessage:
    media = Media(mime_type="audio/ogg", data=audio) if audio is not None else None
    return IncomingMessage(
        channel="test", chat_id="1", message_id="m1", text=text, media=media, **kw
    )


async def test_corrupt_and_silent_audio_get_polite_replies(tmp_path: Path) -> None:
    async with components_for(tmp_path) as parts:
        await ready(parts)
        corrupt = await parts.pipeline.handle(message(audio=b"OggS" + b"\x00garbage" * 50))
        assert corrupt.text == CorruptAudio.user_message
        assert corrupt.error == "CorruptAudio"

        silence = await to_voice_note(Pcm(b"\x00\x00" * 16000 * 2, 16000))
        silent = await parts.pipeline.handle(message(audio=silence.data))
        assert silent.text == SilentAudio.user_message
        assert silent.voice is None


async def test_over_long_audio_is_refused_politely_in_the_users_language(
    tmp_path: Path, speak: Callable[[str], Awaitable[bytes]]
) -> None:
    audio = await speak("How many books can I borrow from the library at once?")
    async with components_for(tmp_path, max_audio_seconds=1.0) as parts:
        english = await parts.pipeline.handle(message(audio=audio))
        indonesian = await parts.pipeline.handle(message(audio=audio, language="id"))
    assert english.error == indonesian.error == "AudioTooLong"
    assert english.text == AudioTooLong.user_message
    assert indonesian.text == phrase("AudioTooLong", "id")
    assert indonesian.text.startswith("Pesan suara itu terlalu panjang")


async def test_empty_text_asks_for_a_question(tmp_path: Path) -> None:
    async with components_for(tmp_path) as parts:
        reply = await parts.pipeline.handle(message(text="   "))
        assert reply.text == phrase("empty", "en")
        assert reply.error == "EmptyMessage"


async def test_failing_speech_to_text_asks_the_user_to_type(
    tmp_path: Path, fake_openai: FakeOpenAI, speak: Callable[[str], Awaitable[bytes]]
) -> None:
    audio = await speak("How many books can I borrow?")
    async with components_for(
        tmp_path,
        stt_provider="openai",
        openai_api_key="sk-wrong",
        openai_base_url=fake_openai.base_url,
        llm_model="unused",
    ) as parts:
        await ready(parts)
        reply = await parts.pipeline.handle(message(audio=audio, want_voice=False))
    assert reply.text == phrase("stt_failed", "en")
    assert "type" in reply.text
    assert fake_openai.calls("/audio/transcriptions"), "the real client reached the fake"


async def test_openai_speech_providers_by_settings_alone(
    tmp_path: Path, fake_openai: FakeOpenAI, speak: Callable[[str], Awaitable[bytes]]
) -> None:
    fake_openai.transcript_text = "How many books can I borrow?"
    fake_openai.chat_handler = lambda body: "Up to ten books at a time [1]."
    audio = await speak("How many books can I borrow?")
    async with components_for(
        tmp_path,
        stt_provider="openai",
        tts_provider="openai",
        openai_api_key=fake_openai.api_key,
        openai_base_url=fake_openai.base_url,
    ) as parts:
        await ready(parts)
        reply = await parts.pipeline.handle(message(audio=audio))
    assert reply.transcript == "How many books can I borrow?"
    assert reply.text == "Up to ten books at a time [1]."
    assert reply.sources[0].source.endswith("library.md")
    upload = fake_openai.calls("/audio/transcriptions")[0].body["file"]
    with wave.open(io.BytesIO(upload)) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (16000, 1)
        assert wav.getnframes() > 16000  # the real spoken question, not a stub
    spoken = fake_openai.calls("/audio/speech")[0].body["input"]
    assert "[1]" not in spoken and "ten books" in spoken
    assert reply.voice is not None and reply.voice.data.startswith(b"OggS")


async def test_failing_text_to_speech_still_sends_the_text(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_models = {"broken-tts"}
    async with components_for(
        tmp_path,
        tts_provider="openai",
        openai_tts_model="broken-tts",
        openai_api_key=fake_openai.api_key,
        openai_base_url=fake_openai.base_url,
        llm_model="missing-llm",
    ) as parts:
        await ready(parts)
        fake_openai.fail_models.add("missing-llm")
        reply = await parts.pipeline.handle(message(text="How many books can I borrow?"))
    assert "ten books" in reply.text  # extractive fallback when the LLM fails too
    assert reply.voice is None
    assert reply.error is None
    assert fake_openai.calls("/audio/speech")
