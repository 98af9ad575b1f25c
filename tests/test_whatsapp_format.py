"""WhatsApp replies as messages of at most 1600 characters, and commands written as words."""

from __future__ import annotations

import pytest

from handlers.messages import Reply, SourceRef
from handlers.whatsapp import parse_command
from handlers.whatsapp_format import MESSAGE_LIMIT, whatsapp_messages


def source(title: str, where: str, section: str = "") -> SourceRef:
    return SourceRef(title=title, source=where, section=section, score=1.0, text="")


def test_a_short_reply_is_one_message_with_a_bold_heading_and_numbered_sources() -> None:
    reply = Reply(
        text="You can borrow 10 books [1]. Renew them online [2].",
        sources=[
            source("Library", "/docs/library.md", "Borrowing"),
            source("Renewals", "https://example.org/renew", "Renewals"),
        ],
        language="en",
    )
    [message] = whatsapp_messages(reply)
    assert message == (
        "You can borrow 10 books [1]. Renew them online [2].\n\n"
        "*Sources*\n[1] Library – Borrowing\n[2] Renewals\nhttps://example.org/renew"
    )


def test_the_heading_follows_the_reply_language() -> None:
    reply = Reply(text="Bisa [1].", sources=[source("Perpustakaan", "/p.md")], language="id")
    assert "*Sumber*" in whatsapp_messages(reply)[0]


def test_a_long_reply_is_cut_between_sentences_in_order() -> None:
    sentences = [f"Sentence {n} is about borrowing books from the library." for n in range(80)]
    parts = whatsapp_messages(Reply(text=" ".join(sentences)))
    assert len(parts) >= 3
    assert all(len(part) <= MESSAGE_LIMIT for part in parts)
    assert all(part.endswith("library.") for part in parts)
    assert " ".join(parts) == " ".join(sentences)


def test_emoji_count_double_so_no_part_can_exceed_twilios_limit() -> None:
    parts = whatsapp_messages(Reply(text=("📚 " * 1000).strip()))
    assert all(len(part.encode("utf-16-le")) // 2 <= MESSAGE_LIMIT for part in parts)
    assert "".join(parts).count("📚") == 1000


@pytest.mark.parametrize(
    ("body", "command"),
    [
        ("reset", ("reset", [])),
        ("Reset.", ("reset", [])),
        ("help", ("help", [])),
        ("HELP?", ("help", [])),
        ("/help", ("help", [])),
        ("voice on", ("voice", ["on"])),
        ("Voice OFF", ("voice", ["OFF"])),
        ("voice", ("voice", [])),
        ("lang id", ("lang", ["id"])),
        ("lang xx", ("lang", ["xx"])),
        ("start", ("start", [])),
    ],
)
def test_commands_are_whole_messages_of_words(body: str, command: tuple[str, list[str]]) -> None:
    assert parse_command(body) == command


@pytest.mark.parametrize(
    "body",
    [
        "reset my password?",
        "voice notes?",
        "help me find a book",
        "language?",
        "When is the library open?",
        "",
    ],
)
def test_questions_that_start_like_a_command_stay_questions(body: str) -> None:
    assert parse_command(body) is None
