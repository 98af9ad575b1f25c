"""Helpers on `Pcm` values: WAV wrapping and resampling."""

from __future__ import annotations

import io
import wave

import numpy as np

from speech.types import Pcm


def pcm_to_wav(pcm: Pcm) -> bytes:
    """A mono 16-bit WAV file holding `pcm`."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(pcm.sample_rate)
        wav.writeframes(pcm.data)
    return buffer.getvalue()


def resample(pcm: Pcm, sample_rate: int) -> Pcm:
    """`pcm` at another rate, by linear interpolation (good enough for speech analysis and ASR)."""
    if pcm.sample_rate == sample_rate or not pcm.data:
        return Pcm(pcm.data, sample_rate) if not pcm.data else pcm
    samples = np.frombuffer(pcm.data, dtype="<i2").astype(np.float64)
    count = max(1, round(len(samples) * sample_rate / pcm.sample_rate))
    positions = np.arange(count) * (pcm.sample_rate / sample_rate)
    out = np.interp(positions, np.arange(len(samples)), samples)
    return Pcm(np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes(), sample_rate)
