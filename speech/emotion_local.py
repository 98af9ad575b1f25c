"""A local emotion heuristic: an en/id lexicon with negation, punctuation cues and prosody.

It is a heuristic, not a trained classifier. Words carry most of the evidence; prosody only
scales it (lively, fast, varied speech strengthens angry/happy/surprised/fearful, flat slow
speech strengthens sad), because loudness and pitch alone say little about which emotion.
When the evidence is weak the answer is "neutral".
"""

from __future__ import annotations

import asyncio
import logging
import math
import re

from speech.emotion_lexicon import INTENSIFIERS, LEXICON, NEGATED_TO, NEGATIONS, SUFFIXES
from speech.prosody import Prosody, prosody
from speech.types import Emotion, EmotionLabel, Pcm

logger = logging.getLogger(__name__)

_TOKEN = re.compile(r"[a-zA-Z\u00c0-\u024f]+(?:[-'][a-zA-Z\u00c0-\u024f]+)*")
_NEGATION_SCOPE = 3  # words after a negation that it reaches
_MIN_EVIDENCE = 0.6  # total weight below which the answer is neutral
_MIN_CONFIDENCE = 0.3
_HIGH_AROUSAL: frozenset[EmotionLabel] = frozenset({"angry", "happy", "surprised", "fearful"})


def _lookup(token: str) -> EmotionLabel | None:
    candidates = [token] + [token[: -len(s)] for s in SUFFIXES if token.endswith(s)]
    for candidate in candidates:
        for label, words in LEXICON.items():
            if candidate in words:
                return label
    return None


def text_evidence(text: str) -> dict[EmotionLabel, float]:
    """Weight per emotion from words (negation, intensifiers), '!' and '?!' cues."""
    tokens = [t.lower() for t in _TOKEN.findall(text)]
    scores: dict[EmotionLabel, float] = {}
    negated_until = -1
    boost = 1.0
    i = 0
    while i < len(tokens):
        token = tokens[i]
        pair = f"{token} {tokens[i + 1]}" if i + 1 < len(tokens) else ""
        label = _lookup(pair) if pair else None
        step = 2 if label else 1
        label = label or _lookup(token)
        if label is None:
            if token in NEGATIONS:
                negated_until = i + _NEGATION_SCOPE
            boost = 1.5 if token in INTENSIFIERS else boost if token in NEGATIONS else 1.0
            i += 1
            continue
        weight = boost
        if i <= negated_until:
            flipped = NEGATED_TO[label]
            if flipped is None:
                label, weight = None, 0.0
            else:
                label, weight = flipped, weight * 0.6
        if label is not None:
            scores[label] = scores.get(label, 0.0) + weight
        boost = 1.0
        i += step
    exclamations = min(text.count("!"), 3)
    if "?!" in text or "!?" in text:
        scores["surprised"] = scores.get("surprised", 0.0) + 0.8
    if exclamations:
        for label in list(scores):
            if label in _HIGH_AROUSAL:
                scores[label] *= 1.0 + 0.2 * exclamations
    shouted = [w for w in _TOKEN.findall(text) if len(w) > 2 and w.isupper()]
    if shouted and "angry" in scores:
        scores["angry"] *= 1.3
    return scores


def combine(scores: dict[EmotionLabel, float], features: Prosody | None) -> Emotion:
    """The winning label and a confidence in [0, 1]; neutral when the evidence is weak."""
    if features is not None:
        arousal = features.arousal
        scores = {
            label: weight * (1.0 + 0.4 * (arousal if label in _HIGH_AROUSAL else -arousal))
            for label, weight in scores.items()
        }
    if not scores:
        return Emotion("neutral", 0.6)
    label, best = max(scores.items(), key=lambda item: item[1])
    total = sum(scores.values())
    confidence = (best / total) * (1.0 - math.exp(-best))
    if best < _MIN_EVIDENCE or confidence < _MIN_CONFIDENCE:
        return Emotion("neutral", round(1.0 - confidence, 3))
    return Emotion(label, round(min(confidence, 1.0), 3))


class LocalEmotionDetector:
    name = "local"

    async def detect(self, text: str, pcm: Pcm | None = None) -> Emotion:
        features = await asyncio.to_thread(prosody, pcm) if pcm is not None else None
        emotion = combine(text_evidence(text), features)
        logger.debug("emotion %s for %r (prosody %s)", emotion, text[:60], features)
        return emotion
