"""A reply as WhatsApp messages: plain text, a *bold* sources heading and a numbered list of
sources with their web addresses, at most 1600 characters each (Twilio's limit)."""

from __future__ import annotations

from urllib.parse import urlsplit

from handlers.messages import Reply, SourceRef
from handlers.text_split import pack, split_text, utf16_length
from rag.language import phrase

MESSAGE_LIMIT = 1600


def source_line(number: int, source: SourceRef) -> str:
    """`[n] Title – Section`, then the address on its own line for a web page (WhatsApp links
    a bare URL; it has no link markup)."""
    label = source.title or source.source
    if source.section and source.section != source.title:
        label = f"{label} – {source.section}"
    if urlsplit(source.source).scheme in ("http", "https"):
        return f"[{number}] {label}\n{source.source}"
    return f"[{number}] {label}"


def whatsapp_messages(reply: Reply, limit: int = MESSAGE_LIMIT) -> list[str]:
    """The reply's text and sources, split on paragraph or sentence boundaries, in order.

    Lengths are counted in UTF-16 code units, never fewer than Twilio's characters."""
    blocks = split_text(reply.text, limit, measure=utf16_length)
    if reply.sources:
        heading = f"*{phrase('sources', reply.language)}*"
        lines = [
            piece
            for n, s in enumerate(reply.sources, start=1)
            for piece in split_text(source_line(n, s), limit, measure=utf16_length)
        ]
        blocks.extend(pack([heading, *lines], limit, measure=utf16_length, joiner="\n"))
    return pack(blocks, limit, measure=utf16_length)
