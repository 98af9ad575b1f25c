"""OpenAI speech-to-text and text-to-speech against a local OpenAI-compatible fake."""

from __future__ import annotations

import io
import wave

import pytest

from speech.errors import ProviderError
from speech.factory import build_speech
from speech.language import language_code
from speech.stt_openai import OpenAiStt
from speech.transcode import to_pcm16k
from speech.tts_openai import OpenAiTts
from speech.types import Pcm
from tests.conftest import SettingsFactory, Speak
from tests.fakes.openai_api import FakeOpenAI, tone_pcm


async def voice(speak: Speak) -> Pcm:
    note = await speak("Can I renew my books online?")
    return await to_pcm16k(note, "audio/ogg", max_bytes=10**7, max_seconds=60, silence_dbfs=-50)


async def test_whisper_model_sends_wav_and_reads_the_language(
    fake_openai: FakeOpenAI, settings_factory: SettingsFactory, speak: Speak
) -> None:
    fake_openai.transcript_text = " Can I renew my books online? "
    settings = settings_factory(
        stt_provider="openai",
        tts_provider="none",
        openai_api_key=fake_openai.api_key,
        openai_base_url=fake_openai.base_url,
    )
    services = build_speech(settings)
    assert isinstance(services.stt, OpenAiStt) and services.tts is None
    pcm = await voice(speak)
    try:
        transcript = await services.stt.transcribe(pcm)
    finally:
        await services.aclose()
    assert transcript.text == "Can I renew my books online?"
    assert transcript.language == "en"  # verbose_json says "english"
    (call,) = fake_openai.calls("/audio/transcriptions")
    assert call.headers["Authorization"] == f"Bearer {fake_openai.api_key}"
    assert call.body["model"] == "whisper-1"
    assert call.body["response_format"] == "verbose_json"
    assert "language" not in call.body
    with wave.open(io.BytesIO(call.body["file"])) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16_000, 1, 2)
        assert wav.readframes(wav.getnframes()) == pcm.data


async def test_other_models_get_json_and_keep_the_requested_language(
    fake_openai: FakeOpenAI,
) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key=fake_openai.api_key, base_url=fake_openai.base_url)
    stt = OpenAiStt(client, model="gpt-4o-transcribe")
    try:
        transcript = await stt.transcribe(Pcm(tone_pcm(0.5, 16_000), 16_000), "id")
    finally:
        await stt.aclose()
    assert transcript.language == "id"
    (call,) = fake_openai.calls("/audio/transcriptions")
    assert (call.body["response_format"], call.body["language"]) == ("json", "id")


async def test_a_rejected_key_is_a_provider_error(
    fake_openai: FakeOpenAI, settings_factory: SettingsFactory
) -> None:
    settings = settings_factory(
        stt_provider="openai", openai_api_key="sk-wrong", openai_base_url=fake_openai.base_url
    )
    stt = OpenAiStt.from_settings(settings)
    with pytest.raises(ProviderError, match="whisper-1"):
        await stt.transcribe(Pcm(tone_pcm(0.5, 16_000), 16_000))
    await stt.aclose()
    assert fake_openai.calls("/audio/transcriptions")  # the real client reached the fake


async def test_tts_returns_24k_pcm(
    fake_openai: FakeOpenAI, settings_factory: SettingsFactory
) -> None:
    fake_openai.speech_pcm = tone_pcm(1.5, 24_000)
    settings = settings_factory(
        tts_provider="openai",
        openai_api_key=fake_openai.api_key,
        openai_base_url=fake_openai.base_url,
        openai_tts_voice="nova",
    )
    services = build_speech(settings)
    assert isinstance(services.tts, OpenAiTts)
    try:
        pcm = await services.tts.synthesize("The library opens at nine.")
        note = await services.voice_reply("**Nine** a.m. [1]\n\nSources:\n[1] library.md")
    finally:
        await services.aclose()
    assert pcm == Pcm(fake_openai.speech_pcm, 24_000)
    assert abs(pcm.duration - 1.5) < 1e-6
    first, second = fake_openai.calls("/audio/speech")
    assert first.body == {
        "model": "gpt-4o-mini-tts",
        "voice": "nova",
        "input": "The library opens at nine.",
        "response_format": "pcm",
    }
    assert second.body["input"] == "Nine a.m."  # the spoken form went to the provider
    assert note is not None and note.data.startswith(b"OggS")
    assert abs(note.duration - 1.5) < 0.01


async def test_tts_failure_is_a_provider_error(fake_openai: FakeOpenAI) -> None:
    from openai import AsyncOpenAI

    fake_openai.fail_models = {"broken-tts"}
    client = AsyncOpenAI(api_key=fake_openai.api_key, base_url=fake_openai.base_url, max_retries=0)
    tts = OpenAiTts(client, model="broken-tts", voice="alloy")
    with pytest.raises(ProviderError, match="broken-tts"):
        await tts.synthesize("hello")
    await tts.aclose()


def test_language_names_become_codes() -> None:
    assert language_code("english") == "en"
    assert language_code("Indonesian") == "id"
    assert language_code("id") == "id"
    assert language_code("klingon") is None
    assert language_code(None) is None
