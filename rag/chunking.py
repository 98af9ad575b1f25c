"""Section-aware chunking: passages never cross a heading and stay under a size limit."""

from __future__ import annotations

import re

from rag.loaders import Document, Section
from rag.types import Chunk

_FENCED_BLOCK = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?(?:^ {0,3}\1[ \t]*$|\Z)", re.DOTALL | re.M)
_SENTENCE_END = re.compile(r"(?<=[.!?;:])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9`*_-])|\n")
_PLACEHOLDER = "\ue000"


def chunk_document(
    doc: Document,
    *,
    doc_id: str,
    source: str,
    content_hash: str,
    max_chars: int = 1200,
    overlap: int | None = None,
) -> list[Chunk]:
    """Cut `doc` into chunks of at most `max_chars`, one section at a time.

    A long section is split on paragraph, then sentence, then word boundaries, and each new
    piece of it repeats up to `overlap` characters (default: a sixth of `max_chars`, at most
    200) of the previous one. A tiny section followed by one of its subsections is carried
    into that subsection, so an introduction stays with the text it introduces.
    """
    if max_chars < 50:
        raise ValueError("max_chars must be at least 50")
    overlap = min(200, max_chars // 6) if overlap is None else max(0, overlap)
    chunks: list[Chunk] = []
    for section in merge_tiny_sections(doc.sections, min_chars=max(80, max_chars // 8)):
        for text in split_text(section.text, max_chars, overlap):
            chunks.append(
                Chunk(
                    id=f"{doc_id}:{len(chunks)}",
                    doc_id=doc_id,
                    title=doc.title,
                    section=section.label,
                    source=source,
                    text=text,
                    content_hash=content_hash,
                )
            )
    return chunks


def merge_tiny_sections(sections: list[Section], *, min_chars: int) -> list[Section]:
    """Drop empty sections; prepend a tiny one to the subsection that follows it."""
    out: list[Section] = []
    carry: Section | None = None
    for section in sections:
        if carry is not None:
            if _is_within(section.path, carry.path):
                section = Section(section.path, f"{carry.text}\n\n{section.text}".strip())
            else:
                out.append(carry)
            carry = None
        if not section.text.strip():
            continue
        if len(section.text) < min_chars:
            carry = section
        else:
            out.append(section)
    if carry is not None:
        out.append(carry)
    return out


def _is_within(path: tuple[str, ...], parent: tuple[str, ...]) -> bool:
    return len(path) > len(parent) and path[: len(parent)] == parent


def split_text(text: str, max_chars: int, overlap: int = 0) -> list[str]:
    """Pack paragraphs (then sentences, then words) into pieces of at most `max_chars`."""
    text = text.strip()
    if not text:
        return []
    if len(text) <= max_chars:
        return [text]
    pieces = [
        (part, sep) for unit, sep0 in _units(text) for part, sep in _fit(unit, sep0, max_chars)
    ]
    chunks: list[str] = []
    current = ""
    for piece, sep in pieces:
        if not current:
            current = piece
        elif len(current) + len(sep) + len(piece) <= max_chars:
            current += sep + piece
        else:
            chunks.append(current)
            tail = _tail(current, overlap)
            current = (
                f"{tail}{sep}{piece}" if tail and len(tail) + 2 + len(piece) <= max_chars else piece
            )
    if current:
        chunks.append(current)
    return chunks


def _units(text: str) -> list[tuple[str, str]]:
    """Paragraphs of `text`, with fenced code blocks kept whole."""
    blocks: list[str] = []

    def stash(match: re.Match[str]) -> str:
        blocks.append(match.group(0).strip("\n"))
        return f"\n\n{_PLACEHOLDER}{len(blocks) - 1}{_PLACEHOLDER}\n\n"

    units: list[tuple[str, str]] = []
    for para in re.split(r"\n[ \t]*\n", _FENCED_BLOCK.sub(stash, text)):
        para = para.strip("\n")
        if not para.strip():
            continue
        found = re.fullmatch(f"{_PLACEHOLDER}(\\d+){_PLACEHOLDER}", para.strip())
        units.append((blocks[int(found.group(1))] if found else para, "\n\n"))
    return units


def _fit(unit: str, sep: str, max_chars: int) -> list[tuple[str, str]]:
    """Split one paragraph into sentences (code: lines) and over-long sentences into words."""
    if len(unit) <= max_chars:
        return [(unit, sep)]
    is_code = bool(_FENCED_BLOCK.match(unit))
    parts = unit.split("\n") if is_code else [p for p in _SENTENCE_END.split(unit) if p.strip()]
    inner = "\n" if is_code else " "
    out: list[tuple[str, str]] = []
    for index, part in enumerate(parts):
        part_sep = sep if index == 0 else inner
        if len(part) <= max_chars:
            out.append((part if is_code else part.strip(), part_sep))
            continue
        for word_index, words in enumerate(_hard_split(part, max_chars)):
            out.append((words, part_sep if word_index == 0 else " "))
    return out


def _hard_split(text: str, max_chars: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > max_chars:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:max_chars])
            word = word[max_chars:]
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= max_chars:
            current += " " + word
        else:
            pieces.append(current)
            current = word
    if current:
        pieces.append(current)
    return pieces


def _tail(text: str, overlap: int) -> str:
    """The last sentence(s) of `text` within `overlap` characters, else its last words.

    Nothing when `text` ends with a code block, whose tail would be a broken fragment.
    """
    if overlap <= 0 or text.rstrip().endswith(("```", "~~~")):
        return ""
    fences = list(re.finditer(r"^ {0,3}(?:`{3,}|~{3,})[ \t]*$", text, re.M))
    after = fences[-1].end() if fences else 0
    starts = [match.end() for match in _SENTENCE_END.finditer(text) if match.end() > after]
    for start in starts:
        if len(text) - start <= overlap:
            return text[start:].strip()
    words = text[-overlap:].split()
    return " ".join(words[1:]) if len(words) > 1 else ""
