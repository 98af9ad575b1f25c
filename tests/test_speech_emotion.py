"""Emotion: the local lexicon/prosody heuristic, and the HTTP service client with its fallbacks."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from speech.emotion_http import HttpEmotionDetector, parse_emotion
from speech.emotion_local import LocalEmotionDetector, combine
from speech.factory import SpeechServices, build_speech
from speech.prosody import Prosody, prosody
from speech.transcode import to_pcm16k
from speech.types import EMOTION_LABELS, Emotion, EmotionLabel, Pcm
from tests.conftest import SettingsFactory, Speak
from tests.fakes.emotion_api import FakeEmotionApi

local = LocalEmotionDetector()


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("How do I configure the webhook secret?", "neutral"),
        ("Bagaimana cara mengatur webhook?", "neutral"),
        ("Thank you so much, this is great!", "happy"),
        ("Terima kasih banyak, mantap sekali!", "happy"),
        ("I am not happy with this at all.", "sad"),
        ("Saya tidak senang.", "sad"),
        ("Saya sangat kecewa dan sedih.", "sad"),
        ("This is useless, I HATE it!!", "angry"),
        ("Saya kesal banget, botnya payah!", "angry"),
        ("I'm really worried the bot will lose my data.", "fearful"),
        ("Saya takut datanya hilang.", "fearful"),
        ("Wow, I didn't expect that?!", "surprised"),
        ("Wah, ternyata bisa ya?!", "surprised"),
        ("I'm not worried about it.", "neutral"),
        ("Saya tidak marah.", "neutral"),
    ],
)
async def test_lexicon_labels_in_english_and_indonesian(text: str, label: str) -> None:
    emotion = await local.detect(text)
    assert emotion.label == label
    assert 0.0 <= emotion.score <= 1.0
    if label != "neutral":
        assert emotion.score >= 0.3


async def test_stronger_wording_gives_a_higher_score() -> None:
    plain = await local.detect("I am annoyed.")
    strong = await local.detect("I am really annoyed, this is ridiculous!!")
    assert plain.label == strong.label == "angry"
    assert strong.score > plain.score


@pytest.fixture(scope="module")
async def spoken(speak: Speak) -> Pcm:
    note = await speak("Thank you, that is really helpful. The library opens at nine.")
    return await to_pcm16k(note, "audio/ogg", max_bytes=10**7, max_seconds=60, silence_dbfs=-50)


def test_prosody_of_real_speech_is_plausible(spoken: Pcm) -> None:
    features = prosody(spoken)
    assert features is not None
    assert features.pitch_hz is not None and 70 < features.pitch_hz < 250  # an adult voice
    assert 0.5 < features.pitch_spread_semitones < 12  # speech moves in pitch (Piper: 6-8)
    assert 2.0 < features.syllables_per_second < 8.0
    assert 0.5 * spoken.duration < features.active_seconds <= spoken.duration
    assert -40 < features.loudness_dbfs < 0
    assert -1.0 <= features.arousal <= 1.0


def test_prosody_measures_a_tone_pitch_and_rejects_silence() -> None:
    t = np.arange(16_000) / 16_000
    tone = Pcm((np.sin(2 * np.pi * 180 * t) * 10_000).astype("<i2").tobytes(), 16_000)
    features = prosody(tone)
    assert features is not None and features.pitch_hz is not None
    assert abs(features.pitch_hz - 180) < 5
    assert features.pitch_spread_semitones < 0.3  # a flat tone
    assert prosody(Pcm(b"\x00\x00" * 16_000, 16_000)) is None


async def test_detect_with_audio_runs_the_prosody_path(spoken: Pcm) -> None:
    with_audio = await local.detect("Thank you, that is really helpful.", spoken)
    assert with_audio.label == "happy"
    assert (await local.detect("The library opens at nine.", spoken)).label == "neutral"


def test_prosody_scales_evidence_but_does_not_invent_it() -> None:
    lively = Prosody(3.0, -14.0, 12.0, 220.0, 5.0, 6.5)
    flat = Prosody(3.0, -34.0, 3.0, 110.0, 0.5, 2.0)
    assert lively.arousal > 0.5 and flat.arousal < -0.5
    angry: dict[EmotionLabel, float] = {"angry": 1.0}
    assert combine(angry, lively).score > combine(angry, None).score > combine(angry, flat).score
    assert combine({}, lively).label == "neutral"
    sad: dict[EmotionLabel, float] = {"sad": 1.0}
    assert combine(sad, flat).score > combine(sad, lively).score


# --- HTTP service ------------------------------------------------------------------------------
@pytest.fixture
async def emotion_api() -> AsyncIterator[FakeEmotionApi]:
    fake = await FakeEmotionApi().start()
    yield fake
    await fake.stop()


async def test_http_sends_wav_and_text_and_reads_the_label(
    emotion_api: FakeEmotionApi, settings_factory: SettingsFactory
) -> None:
    services: SpeechServices = build_speech(
        settings_factory(emotion_api_url=emotion_api.url + "/", tts_provider="none")
    )
    assert isinstance(services.emotion, HttpEmotionDetector)
    pcm = Pcm(b"\x01\x00" * 8_000, 16_000)
    assert await services.emotion.detect("great, thanks", pcm) == Emotion("happy", 0.87)
    (request,) = emotion_api.requests
    assert request.text == "great, thanks"
    assert request.audio_filename == "audio.wav" and request.audio_content_type == "audio/wav"
    assert request.audio is not None and request.audio[:4] == b"RIFF"
    assert request.audio.endswith(pcm.data)

    emotion_api.response = {"emotion": "Anger", "confidence": 0.6}
    assert await services.emotion.detect("grr") == Emotion("angry", 0.6)
    assert emotion_api.requests[-1].audio is None  # no audio, text only


async def test_http_failures_fall_back_to_neutral_with_a_warning(
    emotion_api: FakeEmotionApi, caplog: pytest.LogCaptureFixture
) -> None:
    heard = Recorder()
    detector = HttpEmotionDetector(emotion_api.url, timeout=0.3, observer=heard)
    caplog.set_level(logging.WARNING, logger="speech.emotion_http")

    emotion_api.status = 500
    assert await detector.detect("hello") == Emotion("neutral", 0.0)
    assert "500" in caplog.text

    emotion_api.status, emotion_api.response = 200, {"label": "bored", "score": 0.9}
    assert await detector.detect("hello") == Emotion("neutral", 0.0)
    assert "bored" in caplog.text

    emotion_api.delay = 2.0
    started = time.perf_counter()
    assert await detector.detect("hello") == Emotion("neutral", 0.0)
    assert time.perf_counter() - started < 1.5
    assert "timed out" in caplog.text
    assert heard.fallbacks == [("emotion", "http", "neutral")] * 3
    assert heard.errors == ["emotion"] * 3


class Recorder:
    """A SpeechObserver that keeps what it hears."""

    def __init__(self) -> None:
        self.fallbacks: list[tuple[str, str, str]] = []
        self.errors: list[str] = []

    def fallback(self, component: str, source: str, target: str) -> None:
        self.fallbacks.append((component, source, target))

    def stage_error(self, stage: str) -> None:
        self.errors.append(stage)


def test_parse_emotion_accepts_label_or_emotion_and_clamps() -> None:
    assert parse_emotion({"label": "SAD", "score": 1.7}) == Emotion("sad", 1.0)
    assert parse_emotion({"emotion": "surprise"}) == Emotion("surprised", 1.0)
    assert parse_emotion({"label": "fearful", "score": "x"}) == Emotion("fearful", 0.0)
    assert parse_emotion({"label": 3}) is None
    assert parse_emotion(["happy"]) is None
    assert {parse_emotion({"label": name}) is not None for name in EMOTION_LABELS} == {True}
