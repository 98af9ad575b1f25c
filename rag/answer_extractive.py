"""The embedded answerer: quotes the best passages verbatim with citations, adding nothing."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rag.language import phrase
from rag.text import content_terms as terms_of
from rag.types import Hit

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")
MAX_QUOTE_CHARS = 420
EXTEND_TO_CHARS = 260


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def stemmed_terms(text: str) -> set[str]:
    """Lower-cased, crudely stemmed words that carry meaning."""
    return {_stem(term) for term in terms_of(text)}


def split_sentences(text: str) -> list[str]:
    """Sentences and stand-alone lines (list items, code) of a passage."""
    parts: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
        if not lines:
            continue
        listy = any(re.match(r"([-*+]|\d+[.)])\s", ln) for ln in lines) or block.startswith("```")
        units = lines if listy else [" ".join(lines)]
        for unit in units:
            parts.extend(s.strip() for s in _SENTENCE_END.split(unit) if s.strip())
    return parts


@dataclass(frozen=True)
class Quote:
    hit_index: int
    text: str
    score: float


def _best_window(sentences: list[str], weights: dict[str, float]) -> tuple[int, int, float]:
    """The [start, end) run of up to three sentences that matches the query best."""
    best = (0, 0, -1.0)
    for start in range(len(sentences)):
        length, seen = 0, set[str]()
        for end in range(start, min(start + 3, len(sentences))):
            length += len(sentences[end]) + 1
            if end > start and length > MAX_QUOTE_CHARS:
                break
            seen |= stemmed_terms(sentences[end])
            # At equal score prefer the earlier, then the shorter window: a section states its
            # point first, and the question's words may sit only in the heading.
            score = sum(w for t, w in weights.items() if t in seen)
            score -= 0.01 * start + 0.001 * length / 1000
            if score > best[2]:
                best = (start, end + 1, score)
    return best


def _quote(sentences: list[str], start: int, end: int) -> str:
    """The window, extended with the sentences that follow while it stays short: the answer
    often comes right after the sentence that names the topic."""
    while end < len(sentences) and len(" ".join(sentences[start : end + 1])) <= EXTEND_TO_CHARS:
        end += 1
    text = " ".join(sentences[start:end])
    if len(text) > MAX_QUOTE_CHARS:
        text = text[:MAX_QUOTE_CHARS].rsplit(" ", 1)[0] + " …"
    return text


def select_quotes(query: str, hits: list[Hit], max_quotes: int = 2) -> list[Quote]:
    """The best window of the top passage, plus another's when it covers more of the query."""
    terms = stemmed_terms(query)
    if not hits:
        return []
    per_hit = [stemmed_terms(h.chunk.text) for h in hits]
    weights = {
        t: 1.0 + math.log((1 + len(hits)) / (1 + sum(t in s for s in per_hit))) for t in terms
    }
    quotes: list[Quote] = []
    covered: set[str] = set()
    seen_sections: set[tuple[str, str]] = set()
    for index, hit in enumerate(hits[:3]):
        sentences = split_sentences(hit.chunk.text)
        start, end, score = _best_window(sentences, weights)
        text = _quote(sentences, start, end) if sentences else ""
        new_terms = (stemmed_terms(text) & terms) - covered
        key = (hit.chunk.doc_id, hit.chunk.section)
        if not text or key in seen_sections or (quotes and not new_terms):
            continue
        quotes.append(Quote(index, text, score))
        covered |= new_terms
        seen_sections.add(key)
        if len(quotes) >= max_quotes:
            break
    return quotes


def _label(hit: Hit) -> str:
    chunk = hit.chunk
    if chunk.section and chunk.section != chunk.title:
        return f"{chunk.title} – {chunk.section}"
    return chunk.title


@dataclass(frozen=True)
class ExtractiveAnswer:
    text: str  # quotes with their labels and [n] citations
    cited: list[int]  # indexes of the cited hits, in citation order ([n] cites cited[n - 1])
    spoken: str  # what a voice reply says: the tone and the first quote, without labels


def extractive_answer(
    query: str, hits: list[Hit], language: str | None, tone: str = ""
) -> ExtractiveAnswer:
    """Quote the best passages, each introduced by its title and section and cited."""
    quotes = select_quotes(query, hits)
    lines: list[str] = [tone] if tone else []
    for position, quote in enumerate(quotes):
        lead = phrase("from" if position == 0 else "also", language)
        hit = hits[quote.hit_index]
        lines.append(f"{lead} “{_label(hit)}” [{position + 1}]: {quote.text}")
    if not quotes:  # nothing to quote: the agent declines rather than send a bare tone
        return ExtractiveAnswer("", [], "")
    spoken = f"{tone} {quotes[0].text}".strip()
    return ExtractiveAnswer("\n\n".join(lines), [q.hit_index for q in quotes], spoken)
