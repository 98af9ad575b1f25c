"""Decoding real speech from every common container, the audio guards, and voice-note encoding."""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

import numpy as np
import pytest

from speech.errors import (
    AudioTooLarge,
    AudioTooLong,
    CorruptAudio,
    EmptyAudio,
    SilentAudio,
)
from speech.factory import SpeechServices
from speech.ffmpeg import ffmpeg_binary
from speech.pcm import pcm_to_wav
from speech.transcode import to_pcm16k, to_voice_note
from speech.types import Pcm
from tests.conftest import Speak

SENTENCE = "The library opens at nine in the morning on Saturdays."
LIMITS: dict[str, Any] = {"max_bytes": 20_000_000, "max_seconds": 120.0, "silence_dbfs": -50.0}


async def ffmpeg(pcm: Pcm, *args: str) -> bytes:
    """Encode `pcm` with the ffmpeg binary; the output goes to stdout or a file."""
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-f", "s16le",
        "-ar", str(pcm.sample_rate), "-ac", "1", "-i", "pipe:0", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate(pcm.data)
    assert proc.returncode == 0, err.decode()
    return out


def envelope(pcm: Pcm) -> np.ndarray:
    """RMS per 20 ms, to compare two renderings of the same speech."""
    x = pcm.samples()
    hop = pcm.sample_rate // 50
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    rms: np.ndarray = np.sqrt((frames**2).mean(axis=1))
    return rms


def same_speech(decoded: Pcm, reference: Pcm) -> float:
    """Correlation of the loudness envelopes, at the best shift within ±100 ms (codec delay)."""
    a, b = envelope(decoded), envelope(reference)
    best = -1.0
    for lag in range(-5, 6):
        x, y = (a[lag:], b) if lag >= 0 else (a, b[-lag:])
        n = min(len(x), len(y))
        best = max(best, float(np.corrcoef(x[:n], y[:n])[0, 1]))
    return best


@pytest.fixture(scope="module")
async def speech_pcm(speech: SpeechServices) -> Pcm:
    assert speech.tts is not None
    return await speech.tts.synthesize(SENTENCE)


async def test_ogg_opus_voice_note_round_trip(speak: Speak, speech_pcm: Pcm) -> None:
    note = await speak(SENTENCE)
    pcm = await to_pcm16k(note, "audio/ogg", **LIMITS)
    assert pcm.sample_rate == 16_000
    assert len(pcm.data) % 2 == 0
    assert abs(pcm.duration - speech_pcm.duration) < 0.5
    assert np.abs(pcm.samples()).max() > 0.1


@pytest.mark.parametrize(
    ("mime", "args"),
    [
        ("audio/mpeg", ["-c:a", "libmp3lame", "-b:a", "48k", "-f", "mp3", "pipe:1"]),
        ("audio/wav", ["-ac", "2", "-ar", "44100", "-f", "wav", "pipe:1"]),
        ("audio/amr", ["-ar", "8000", "-c:a", "libopencore_amrnb", "-b:a", "12.2k",
                       "-f", "amr", "pipe:1"]),
        ("audio/aac", ["-c:a", "aac", "-b:a", "48k", "-f", "adts", "pipe:1"]),
        ("video/webm", ["-c:a", "libopus", "-b:a", "32k", "-f", "webm", "pipe:1"]),
    ],
)  # fmt: skip
async def test_common_formats_decode_to_the_same_speech(
    speech_pcm: Pcm, mime: str, args: list[str]
) -> None:
    encoded = await ffmpeg(speech_pcm, *args)
    pcm = await to_pcm16k(encoded, mime, **LIMITS)
    assert pcm.sample_rate == 16_000
    assert abs(pcm.duration - speech_pcm.duration) < 0.3
    assert same_speech(pcm, speech_pcm) > 0.85


@pytest.mark.parametrize("mime", ["audio/mp4", "audio/x-m4a", None])
async def test_m4a_with_moov_at_the_end_decodes(
    speech_pcm: Pcm, tmp_path: Any, mime: str | None
) -> None:
    path = tmp_path / "voice.m4a"
    await ffmpeg(speech_pcm, "-c:a", "aac", "-b:a", "48k", "-f", "mp4", str(path))
    data = path.read_bytes()
    assert data[4:8] == b"ftyp" and data.find(b"moov") > data.find(b"mdat")  # not faststart
    pcm = await to_pcm16k(data, mime, **LIMITS)
    assert abs(pcm.duration - speech_pcm.duration) < 0.3
    assert same_speech(pcm, speech_pcm) > 0.85


async def test_corrupt_bytes_raise_corrupt_audio_with_ffmpegs_reason() -> None:
    with pytest.raises(CorruptAudio) as caught:
        await to_pcm16k(b"OggS" + b"\x00not really an ogg stream" * 40, "audio/ogg", **LIMITS)
    assert "Invalid data" in str(caught.value)  # ffmpeg's stderr, for the logs
    assert caught.value.user_message == CorruptAudio.user_message


async def test_empty_input_and_empty_stream_raise_empty_audio() -> None:
    with pytest.raises(EmptyAudio):
        await to_pcm16k(b"", "audio/ogg", **LIMITS)
    no_samples = pcm_to_wav(Pcm(b"", 16_000))  # a valid WAV header, zero frames
    with pytest.raises(EmptyAudio, match="no samples"):
        await to_pcm16k(no_samples, "audio/wav", **LIMITS)


async def test_silence_and_faint_noise_raise_silent_audio() -> None:
    silence = await to_voice_note(Pcm(b"\x00\x00" * 32_000, 16_000))
    with pytest.raises(SilentAudio):
        await to_pcm16k(silence.data, "audio/ogg", **LIMITS)
    rng = np.random.default_rng(1)
    faint = (rng.standard_normal(32_000) * 10).astype("<i2").tobytes()  # about -70 dBFS
    with pytest.raises(SilentAudio, match="dBFS"):
        await to_pcm16k(pcm_to_wav(Pcm(faint, 16_000)), "audio/wav", **LIMITS)


async def test_an_hour_of_audio_is_refused_without_decoding_it_all() -> None:
    tone = Pcm((np.sin(np.arange(160_000) / 8) * 8000).astype("<i2").tobytes(), 16_000)
    ten_seconds = await ffmpeg(
        tone, "-c:a", "libmp3lame", "-b:a", "16k", "-write_xing", "0", "-id3v2_version", "0",
        "-f", "mp3", "pipe:1",
    )  # fmt: skip
    an_hour = ten_seconds * 360  # MP3 frames concatenate into one long stream
    started = time.perf_counter()
    with pytest.raises(AudioTooLong):
        await to_pcm16k(
            an_hour, "audio/mpeg", max_bytes=50_000_000, max_seconds=5, silence_dbfs=-50
        )
    assert time.perf_counter() - started < 1.0  # decoding all of it takes about 3 s here


async def test_too_large_is_refused_before_decoding() -> None:
    garbage = b"\x01" * 5_000  # would be CorruptAudio if it were decoded
    with pytest.raises(AudioTooLarge):
        await to_pcm16k(garbage, "audio/ogg", max_bytes=4_999, max_seconds=120, silence_dbfs=-50)


def opus_head(ogg: bytes) -> tuple[int, int, int]:
    """(channels, pre-skip, input sample rate) from the OpusHead packet."""
    at = ogg.index(b"OpusHead")
    _version, channels, pre_skip, rate = struct.unpack_from("<BBHI", ogg, at + 8)
    return channels, pre_skip, rate


def last_granule(ogg: bytes) -> int:
    at = ogg.rindex(b"OggS")
    return int(struct.unpack_from("<q", ogg, at + 6)[0])


async def test_voice_note_is_small_mono_48k_ogg_opus(speech_pcm: Pcm) -> None:
    note = await to_voice_note(speech_pcm)
    assert note.data.startswith(b"OggS") and b"OpusHead" in note.data[:100]
    assert (note.mime_type, note.file_name) == ("audio/ogg", "reply.ogg")
    channels, pre_skip, rate = opus_head(note.data)
    assert (channels, rate) == (1, 48_000)
    # The stream's own clock (48 kHz granules) agrees with the duration we report.
    assert abs((last_granule(note.data) - pre_skip) / 48_000 - note.duration) < 0.03
    assert abs(note.duration - speech_pcm.duration) < 0.01
    per_minute = len(note.data) / note.duration * 60
    assert per_minute < 512_000  # well under Telegram's 1 MB and WhatsApp's 512 KB bubbles
    back = await to_pcm16k(note.data, note.mime_type, **LIMITS)
    assert same_speech(back, speech_pcm) > 0.9
