"""Emotion from an HTTP service: POST {EMOTION_API_URL}/predict with the audio and the text."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import aiohttp

from speech.observe import NO_OBSERVER, SpeechObserver
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

    def __init__(
        self, url: str, *, timeout: float = 3.0, observer: SpeechObserver = NO_OBSERVER
    ) -> None:
        self.url = url.rstrip("/") + "/predict"
        self.timeout = timeout
        self.observer = observer

    @classmethod
    def from_settings(
        cls, settings: Settings, observer: SpeechObserver = NO_OBSERVER
    ) -> HttpEmotionDetector:
        if not settings.emotion_api_url:
            raise ValueError("EMOTION_API_URL is required for the HTTP emotion detector")
        return cls(settings.emotion_api_url, timeout=settings.emotion_timeout, observer=observer)

    def _neutral(self, reason: str, *args: Any) -> Emotion:
        """Log why the service gave no emotion, report the fallback, and assume neutral."""
        logger.warning("emotion service %s " + reason, self.url, *args)
        self.observer.stage_error("emotion")
        self.observer.fallback("emotion", self.name, "neutral")
        return NEUTRAL

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
                    return self._neutral("answered %d: %s", response.status, body)
                payload = await response.json(content_type=None)
        except TimeoutError:
            return self._neutral("timed out after %.1f s", self.timeout)
        except (aiohttp.ClientError, ValueError) as exc:
            return self._neutral("failed: %r", exc)
        emotion = parse_emotion(payload)
        if emotion is None:
            return self._neutral("gave no known label: %.200r", payload)
        return emotion
