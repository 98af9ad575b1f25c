"""Value types and provider protocols shared by the speech package and its callers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

EmotionLabel = Literal["neutral", "happy", "sad", "angry", "fearful", "surprised"]
EMOTION_LABELS: tuple[EmotionLabel, ...] = (
    "neutral",
    "happy",
    "sad",
    "angry",
    "fearful",
    "surprised",
)


@dataclass(frozen=True)
class Pcm:
    """Mono signed 16-bit little-endian PCM."""

    data: bytes
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.data) / 2 / self.sample_rate

    def samples(self) -> np.ndarray:
        """Samples as float32 in [-1, 1]."""
        return np.frombuffer(self.data, dtype="<i2").astype(np.float32) / 32768.0


@dataclass(frozen=True)
class VoiceNote:
    """An encoded voice note ready to send (OGG/Opus by default)."""

    data: bytes
    duration: float
    mime_type: str = "audio/ogg"
    file_name: str = "reply.ogg"


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None


@dataclass(frozen=True)
class Emotion:
    label: EmotionLabel
    score: float


class SpeechToText(Protocol):
    name: str

    async def transcribe(self, pcm: Pcm, language: str | None = None) -> Transcript: ...


class TextToSpeech(Protocol):
    name: str

    async def synthesize(self, text: str, language: str | None = None) -> Pcm: ...


class EmotionDetector(Protocol):
    name: str

    async def detect(self, text: str, pcm: Pcm | None = None) -> Emotion: ...
