"""Turns a written (markdown) answer into text fit to be spoken, shortened to its gist."""

from __future__ import annotations

import re

_SOURCES = re.compile(
    r"^[ \t>*_#-]*(?:sources?|references?|citations?|sumber|referensi)\b[*_ \t]*:.*\Z",
    re.IGNORECASE | re.MULTILINE | re.DOTALL,
)
_FENCE = re.compile(r"^[ \t]*(```|~~~).*?(?:^[ \t]*\1[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\((?:[^()]|\([^)]*\))*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_LINK_DEF = re.compile(r"^[ \t]*\[[^\]]+\]:[ \t]*\S+.*$", re.MULTILINE)
_URL = re.compile(
    r"(?:\s+(?:or|and|at|atau|dan|di)\b|\s*:)?\s*<?(?:https?://|www\.)[^\s<>]*[^\s<>.,;:!?)\]'\"]>?",
    re.IGNORECASE,
)
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+(.*?)[ \t#]*$", re.MULTILINE)
_BULLET = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+(.*)$", re.MULTILINE)
_QUOTE = re.compile(r"^[ \t]*>[ \t]?", re.MULTILINE)
_RULE = re.compile(r"^[ \t]*(?:[-*_][ \t]*){3,}$|^[ \t]*\|?[ \t:|-]*-{3,}[ \t:|-]*$", re.MULTILINE)
_INLINE_CODE = re.compile(r"`+([^`]*)`+")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EMPHASIS = re.compile(r"(?<![\w*])([*_])(?=\S)(.+?)(?<=\S)\1(?![\w*])")
_STRIKE = re.compile(r"~~(.+?)~~")
_HTML = re.compile(r"</?[a-zA-Z][^>]*>")
_CITATION = re.compile(r"\[\^?\d+(?:[\s,;-]+\^?\d+)*\]|\[\^[\w-]+\]")
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff"
    "\U00002b00-\U00002bff\ufe0f\u200d\u20e3]"
)
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])")
_REPEATED_PUNCT = re.compile(r"([.!?])(?:\s*[.!?;:,])+")
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9À-Ý])")
_TERMINAL = ".!?:;"


def _as_sentence(match: re.Match[str]) -> str:
    line = match.group(1).strip()
    if line and line[-1] not in _TERMINAL:
        line += "."
    return line


def clean_markdown(text: str) -> str:
    """Markdown, URLs, citation marks, a trailing Sources block and emoji removed; one line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _FENCE.sub("", text)
    text = _SOURCES.sub("", text)
    text = _LINK_DEF.sub("", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    text = _RULE.sub("", text)
    text = _QUOTE.sub("", text)
    text = _HEADING.sub(_as_sentence, text)
    text = _BULLET.sub(_as_sentence, text)
    text = text.replace("|", " ")
    text = _INLINE_CODE.sub(r"\1", text)
    text = _STRONG.sub(r"\2", text)
    text = _EMPHASIS.sub(r"\2", text)
    text = _STRIKE.sub(r"\1", text)
    text = _HTML.sub("", text)
    text = _CITATION.sub("", text)
    text = _EMOJI.sub("", text)
    text = _EMPTY_BRACKETS.sub("", text)
    text = " ".join(text.split())
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    return text.strip(" ,;:-")


def gist(text: str, max_words: int) -> str:
    """The leading whole sentences that fit in `max_words` (at least the first, cut at a word)."""
    if len(text.split()) <= max_words:
        return text
    kept: list[str] = []
    count = 0
    for sentence in _SENTENCE_END.split(text):
        words = len(sentence.split())
        if count + words > max_words:
            break
        kept.append(sentence)
        count += words
    if not kept:  # the first sentence alone is too long: cut it between words
        kept = [" ".join(text.split()[:max_words]).rstrip(" ,;:-–—")]
    result = " ".join(kept).rstrip(" ,;:-–—")
    if not result.endswith("."):
        result = result.rstrip(".!?") + "."
    return result


def spoken_form(text: str, max_words: int) -> str:
    """Speech-friendly text: markdown and links reduced to words, at most `max_words` words."""
    return gist(clean_markdown(text), max_words)
