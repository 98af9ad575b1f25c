"""A reply as Telegram HTML messages: escaped text, sources as links, at most 4096 each."""

from __future__ import annotations

import html
from urllib.parse import urlsplit

from handlers.messages import Reply, SourceRef
from handlers.text_split import pack, split_text, utf16_length
from rag.language import phrase

MESSAGE_LIMIT = 4096


def _escaped_length(text: str) -> int:
    return utf16_length(html.escape(text, quote=False))


def source_line(number: int, source: SourceRef) -> str:
    """`[n] Title – Section`, linked when the source is a web page."""
    label = source.title or source.source
    if source.section and source.section != source.title:
        label = f"{label} – {source.section}"
    label = html.escape(label, quote=False)
    if urlsplit(source.source).scheme in ("http", "https"):
        label = f'<a href="{html.escape(source.source, quote=True)}">{label}</a>'
    return f"[{number}] {label}"


def html_messages(reply: Reply, limit: int = MESSAGE_LIMIT) -> list[str]:
    """The reply's text and sources, split on paragraph or sentence boundaries."""
    blocks = [
        html.escape(piece, quote=False)
        for piece in split_text(reply.text, limit, measure=_escaped_length)
    ]
    if reply.sources:
        heading = f"<b>{html.escape(phrase('sources', reply.language), quote=False)}</b>"
        lines = [source_line(n, s) for n, s in enumerate(reply.sources, start=1)]
        blocks.extend(pack([heading, *lines], limit, measure=utf16_length, joiner="\n"))
    return pack(blocks, limit, measure=utf16_length)
