"""Emotion from an HTTP service: POST {EMOTION_API_URL}/predict with the audio and the text."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import aiohttp

from speech.pcm import pcm_to_wav
from speech.types import EMOTION_LABELS, Emotion, EmotionLabel, Pcm

if TYPE_CHECKING:
    from bot.settings import Settings

logger = logging.getLogger(__name__)

_ALIASES: dict[str, EmotionLabel] = {
    "joy": "happy", "happiness": "happy", "hap": "happy", "sadness": "sad", "anger": "angry",
    "ang": "angry", "fear": "fearful", "afraid": "fearful", "surprise": "surprised",
    "neu": "neutral", "calm": "neutral",
}  # fmt: skip
NEUTRAL = Emotion("neutral", 0.0)


def parse_emotion(payload: Any) -> Emotion | None:
    """{"label"|"emotion": ..., "score"?: ...} -> Emotion; None when it names no known label."""
    if not isinstance(payload, dict):
        return None
    raw = payload.get("label", payload.get("emotion"))
    if not isinstance(raw, str):
        return None
    name = raw.strip().lower()
    label: EmotionLabel | None = next((known for known in EMOTION_LABELS if known == name), None)
    label = label or _ALIASES.get(name)
    if label is None:
        return None
    raw_score = payload.get("score", payload.get("confidence", 1.0))
    try:
        score = float(raw_score) if isinstance(raw_score, int | float | str) else 0.0
    except ValueError:
        score = 0.0
    if not math.isfinite(score):
        score = 0.0
    return Emotion(label, min(max(score, 0.0), 1.0))


class HttpEmotionDetector:
    """Multipart fields: `audio` (WAV, when there is audio) and `text`. Failures give neutral."""

    name = "http"

    def __init__(self, url: str, *, timeout: float = 3.0) -> None:
        self.url = url.rstrip("/") + "/predict"
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpEmotionDetector:
        if not settings.emotion_api_url:
            raise ValueError("EMOTION_API_URL is required for the HTTP emotion detector")
        return cls(settings.emotion_api_url, timeout=settings.emotion_timeout)

    async def detect(self, text: str, pcm: Pcm | None = None) -> Emotion:
        form = aiohttp.FormData()
        form.add_field("text", text)
        if pcm is not None and pcm.data:
            form.add_field("audio", pcm_to_wav(pcm), filename="audio.wav", content_type="audio/wav")
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(self.url, data=form) as response,
            ):
                if response.status != 200:
                    body = (await response.text())[:200]
                    logger.warning(
                        "emotion service %s answered %d: %s", self.url, response.status, body
                    )
                    return NEUTRAL
                payload = await response.json(content_type=None)
        except TimeoutError:
            logger.warning("emotion service %s timed out after %.1f s", self.url, self.timeout)
            return NEUTRAL
        except (aiohttp.ClientError, ValueError) as exc:
            logger.warning("emotion service %s failed: %r", self.url, exc)
            return NEUTRAL
        emotion = parse_emotion(payload)
        if emotion is None:
            logger.warning("emotion service %s gave no known label: %.200r", self.url, payload)
            return NEUTRAL
        return emotion
