"""build_speech picks providers from settings; SpeechServices decodes and speaks with them."""

from __future__ import annotations

import pytest

from speech.emotion_local import LocalEmotionDetector
from speech.errors import AudioTooLong
from speech.factory import SpeechServices, build_speech
from speech.stt_prosa import ProsaStt
from speech.stt_whisper import WhisperStt
from speech.tts_piper import PiperTts
from tests.conftest import SettingsFactory, Speak


def test_defaults_are_the_offline_providers(settings_factory: SettingsFactory) -> None:
    services = build_speech(settings_factory())
    assert isinstance(services.stt, WhisperStt)
    assert isinstance(services.tts, PiperTts)
    assert isinstance(services.emotion, LocalEmotionDetector)
    assert (services.stt.name, services.tts.name, services.emotion.name) == (
        "whisper", "piper", "local"
    )  # fmt: skip


def test_prosa_and_no_tts(settings_factory: SettingsFactory) -> None:
    services = build_speech(
        settings_factory(
            stt_provider="prosa",
            prosa_api_key="k",
            prosa_url="wss://prosa.example/v2/speech/stt",
            tts_provider="none",
        )
    )
    assert isinstance(services.stt, ProsaStt) and services.stt.api_key == "k"
    assert services.stt.url == "wss://prosa.example/v2/speech/stt"
    assert services.tts is None


async def test_voice_reply_speaks_the_gist_as_a_voice_note(speech: SpeechServices) -> None:
    note = await speech.voice_reply("**Yes.** You can renew [1] online.\n\nSources:\n[1] a.md")
    assert note is not None and note.data.startswith(b"OggS")
    assert 1.0 < note.duration < 5.0
    assert await speech.voice_reply("[1]") is None  # nothing speakable


async def test_decode_applies_the_configured_limits(
    speech: SpeechServices, settings_factory: SettingsFactory, speak: Speak
) -> None:
    note = await speak("One, two, three, four, five, six.")
    pcm = await speech.decode(note, "audio/ogg")
    assert pcm.sample_rate == 16_000 and pcm.duration > 1.5
    strict = SpeechServices(
        speech.stt, speech.tts, speech.emotion, settings_factory(max_audio_seconds=1.0)
    )
    with pytest.raises(AudioTooLong):
        await strict.decode(note, "audio/ogg")
