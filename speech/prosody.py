"""Prosodic features of speech (loudness, pitch, speaking rate) computed with numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from speech.pcm import resample
from speech.types import Pcm

RATE = 16_000
_FRAME = 400  # 25 ms
_HOP = 160  # 10 ms
_PITCH_WINDOW = 640  # 40 ms: two periods of a 50 Hz voice
_F0_MIN, _F0_MAX = 70.0, 400.0
_VOICING = 0.45  # normalised autocorrelation peak that counts as voiced


@dataclass(frozen=True)
class Prosody:
    """Features of the active (non-silent) part of an utterance."""

    active_seconds: float
    loudness_dbfs: float  # mean frame RMS
    loudness_spread_db: float  # standard deviation of frame RMS
    pitch_hz: float | None  # median fundamental frequency of voiced frames
    pitch_spread_semitones: float  # standard deviation of f0 around the median
    syllables_per_second: float  # energy peaks per active second: a speaking-rate proxy

    @property
    def arousal(self) -> float:
        """-1 (calm, flat, slow, quiet) .. 1 (agitated, lively, fast, loud).

        Absolute levels depend on the speaker and the microphone, not only on the mood, so
        this is weak evidence; pitch movement and rate weigh more than loudness.
        """
        parts = [
            (0.15, np.clip((self.loudness_dbfs + 24.0) / 8.0, -1, 1)),
            (0.2, np.clip((self.loudness_spread_db - 7.0) / 4.0, -1, 1)),
            (0.35, np.clip((self.pitch_spread_semitones - 2.5) / 2.0, -1, 1)),
            (0.3, np.clip((self.syllables_per_second - 4.0) / 2.0, -1, 1)),
        ]
        return float(sum(weight * value for weight, value in parts))


def _frames(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    count = 1 + (len(x) - size) // hop
    return np.lib.stride_tricks.sliding_window_view(x, size)[::hop][:count]


def _pitch(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """f0 in Hz of the windows starting at `starts` (autocorrelation); NaN where unvoiced."""
    starts = starts[starts + _PITCH_WINDOW <= len(x)]
    if len(starts) == 0:
        return np.empty(0)
    windows = x[starts[:, None] + np.arange(_PITCH_WINDOW)]
    windows = (windows - windows.mean(axis=1, keepdims=True)) * np.hanning(_PITCH_WINDOW)
    spectrum = np.fft.rfft(windows, n=2 * _PITCH_WINDOW)
    ac = np.fft.irfft(np.abs(spectrum) ** 2)[:, :_PITCH_WINDOW]
    energy = ac[:, :1] + 1e-12
    lo, hi = int(RATE / _F0_MAX), int(RATE / _F0_MIN)
    lags = np.argmax(ac[:, lo:hi], axis=1) + lo
    strength = ac[np.arange(len(lags)), lags] / energy[:, 0]
    f0 = RATE / lags.astype(np.float64)
    return np.where(strength >= _VOICING, f0, np.nan)


def prosody(pcm: Pcm) -> Prosody | None:
    """Features of `pcm`, or None when it holds less than a quarter second of sound."""
    x = resample(pcm, RATE).samples().astype(np.float64)
    if len(x) < _PITCH_WINDOW:
        return None
    frames = _frames(x, _FRAME, _HOP)
    db = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-10)
    active = db > max(float(db.max()) - 30.0, -55.0)
    if active.sum() < 25:
        return None
    f0 = _pitch(x, np.flatnonzero(active) * _HOP)
    voiced = f0[~np.isnan(f0)]
    pitch = float(np.median(voiced)) if len(voiced) >= 5 else None
    spread = float(np.std(12 * np.log2(voiced / pitch))) if pitch else 0.0
    envelope = np.convolve(db, np.ones(5) / 5, mode="same")
    floor = float(np.mean(db[active])) - 6.0
    peaks = 0
    last = -100
    for i in range(1, len(envelope) - 1):
        is_peak = envelope[i] > envelope[i - 1] and envelope[i] >= envelope[i + 1]
        if is_peak and envelope[i] > floor and i - last >= 10:  # at most one per 100 ms
            peaks += 1
            last = i
    active_seconds = float(active.sum()) * _HOP / RATE
    return Prosody(
        active_seconds=active_seconds,
        loudness_dbfs=float(np.mean(db[active])),
        loudness_spread_db=float(np.std(db[active])),
        pitch_hz=pitch,
        pitch_spread_semitones=spread,
        syllables_per_second=peaks / active_seconds,
    )
