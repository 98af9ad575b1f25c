"""Splitting a reply into messages under a channel's length limit, at the gentlest boundary.

Paragraphs first, then lines, sentences, words, and characters only as a last resort. Hand-written
because the text splitters in reach either pull in a framework or add overlap we must not send.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Measure = Callable[[str], int]

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def utf16_length(text: str) -> int:
    """Telegram counts message length in UTF-16 code units (an emoji is two)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int, measure: Measure = len) -> list[str]:
    """Pieces of `text`, each with `measure(piece) <= limit`, in order, none empty."""
    if limit < 1:
        raise ValueError("limit must be positive")
    text = text.strip()
    if not text:
        return []
    return _split(text, limit, measure, level=0)


_LEVELS: list[Callable[[str], list[str]]] = [
    lambda text: text.split("\n\n"),
    lambda text: text.split("\n"),
    _SENTENCE_END.split,
    lambda text: text.split(" "),
]
_JOINERS = ["\n\n", "\n", " ", " "]


def _split(text: str, limit: int, measure: Measure, level: int) -> list[str]:
    if measure(text) <= limit:
        return [text]
    if level == len(_LEVELS):
        return _hard_cut(text, limit, measure)
    joiner = _JOINERS[level]
    pieces: list[str] = []
    current = ""
    for raw in _LEVELS[level](text):
        part = raw.strip()
        if not part:
            continue
        candidate = f"{current}{joiner}{part}" if current else part
        if measure(candidate) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        if measure(part) <= limit:
            current = part
        else:
            *whole, current = _split(part, limit, measure, level + 1)
            pieces.extend(whole)
    if current:
        pieces.append(current)
    return pieces


def _hard_cut(text: str, limit: int, measure: Measure) -> list[str]:
    pieces = []
    while text:
        cut = min(len(text), limit)
        while cut > 1 and measure(text[:cut]) > limit:
            cut -= 1
        pieces.append(text[:cut])
        text = text[cut:]
    return pieces


def pack(blocks: list[str], limit: int, measure: Measure = len, joiner: str = "\n\n") -> list[str]:
    """Join consecutive blocks (each already within `limit`) into as few messages as fit."""
    messages: list[str] = []
    for block in blocks:
        if messages and measure(messages[-1] + joiner + block) <= limit:
            messages[-1] += joiner + block
        else:
            messages.append(block)
    return messages
