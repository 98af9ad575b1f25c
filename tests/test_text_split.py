"""Splitting replies under a length limit, and a reply as Telegram HTML messages."""

from __future__ import annotations

import html
import random
import re
from html.parser import HTMLParser

import pytest

from handlers.messages import Reply, SourceRef
from handlers.telegram_format import MESSAGE_LIMIT, html_messages, source_line
from handlers.text_split import pack, split_text, utf16_length
from tests.fakes.telegram_api import check_html


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


# --- utf16_length ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "units"),
    [("", 0), ("abc", 3), ("é", 1), ("😀", 2), ("a😀b", 4), ("👍🏽", 4), ("…", 1), ("中文", 2)],
)
def test_utf16_length_counts_code_units(text: str, units: int) -> None:
    assert utf16_length(text) == units


# --- split_text ------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "   ", "\n\n \t\n"])
def test_empty_text_gives_no_pieces(text: str) -> None:
    assert split_text(text, 10) == []


def test_text_within_the_limit_is_one_stripped_piece() -> None:
    assert split_text("  Hello there.\n", 20) == ["Hello there."]
    assert split_text("exactly10!", 10) == ["exactly10!"]


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        split_text("text", 0)


def test_paragraph_boundaries_come_first() -> None:
    # Packing sentences greedily would give "Aa. Bb. Cc." (11); paragraphs are kept whole.
    assert split_text("Aa. Bb.\n\nCc. Dd.", 11) == ["Aa. Bb.", "Cc. Dd."]


def test_small_paragraphs_are_packed_together() -> None:
    text = "One.\n\nTwo.\n\nThree.\n\nFour."
    assert split_text(text, 12) == ["One.\n\nTwo.", "Three.", "Four."]
    assert split_text(text, 14) == ["One.\n\nTwo.", "Three.\n\nFour."]


def test_line_boundaries_come_before_sentences() -> None:
    assert split_text("Line one\nline two\nline three", 18) == [
        "Line one\nline two",
        "line three",
    ]


def test_a_long_paragraph_is_split_at_sentence_ends() -> None:
    assert split_text("First sentence here. Second one! Third?", 25) == [
        "First sentence here.",
        "Second one! Third?",
    ]
    assert split_text("Apa? Ya… Tidak! Oke.", 10) == ["Apa? Ya…", "Tidak!", "Oke."]


def test_a_long_paragraph_keeps_its_neighbours_whole() -> None:
    text = "Short intro.\n\nOne long sentence. Another long one.\n\nOutro."
    assert split_text(text, 20) == [
        "Short intro.",
        "One long sentence.",
        "Another long one.",
        "Outro.",
    ]


def test_a_long_sentence_is_split_between_words() -> None:
    assert split_text("one two three four five six", 10) == ["one two", "three four", "five six"]


def test_an_unbroken_word_is_cut_hard() -> None:
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    pieces = split_text("ab " + "y" * 25 + " cd", 10)
    assert pieces[0] == "ab"
    assert all(len(p) <= 10 for p in pieces)
    assert "".join(pieces).replace(" ", "") == "ab" + "y" * 25 + "cd"


def test_the_measure_decides_the_length() -> None:
    assert split_text("😀" * 5, 4, measure=utf16_length) == ["😀😀", "😀😀", "😀"]
    assert split_text("😀 😀 😀", 4, measure=utf16_length) == ["😀", "😀", "😀"]
    assert split_text("😀 😀 😀", 4) == ["😀 😀", "😀"]  # len: an emoji is one character


def random_text(rng: random.Random) -> str:
    words = ["a", "kata", "panjang", "😀", "<b>", "&amp;", "x" * 37, "é", "Ω", "中文"]
    paragraphs = []
    for _ in range(rng.randint(1, 6)):
        lines = []
        for _ in range(rng.randint(1, 3)):
            sentences = []
            for _ in range(rng.randint(1, 5)):
                sentence = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
                sentences.append(sentence + rng.choice([".", "!", "?", "…", ""]))
            lines.append(rng.choice([" ", "  ", " \t"]).join(sentences))
        paragraphs.append("\n".join(lines))
    return rng.choice(["", " ", "\n"]) + rng.choice(["\n\n", "\n\n\n"]).join(paragraphs)


@pytest.mark.parametrize("seed", range(40))
def test_pieces_never_exceed_the_limit_and_lose_only_whitespace(seed: int) -> None:
    rng = random.Random(seed)
    text = random_text(rng)
    limit = rng.choice([8, 15, 40, 100, 400])
    measure = rng.choice([len, utf16_length])

    pieces = split_text(text, limit, measure=measure)

    assert pieces, text
    for piece in pieces:
        assert piece == piece.strip()
        assert piece
        assert measure(piece) <= limit, (piece, limit)
    assert squeeze("".join(pieces)) == squeeze(text)


@pytest.mark.parametrize("seed", range(20))
def test_without_hard_cuts_the_words_are_kept_whole(seed: int) -> None:
    rng = random.Random(1000 + seed)
    text = random_text(rng)
    limit = max(40, max(len(word) for word in text.split()))

    pieces = split_text(text, limit)

    assert " ".join(pieces).split() == text.split()


# --- pack ------------------------------------------------------------------------------------
def test_pack_joins_blocks_while_they_fit() -> None:
    assert pack(["aa", "bb", "cc", "dd"], 6, joiner="\n") == ["aa\nbb", "cc\ndd"]
    assert pack(["aa", "bb", "cc"], 10) == ["aa\n\nbb\n\ncc"]
    assert pack(["aaaa", "b", "cccc"], 6, joiner=" ") == ["aaaa b", "cccc"]
    assert pack(["😀", "😀"], 4, measure=utf16_length, joiner="") == ["😀😀"]
    assert pack(["😀", "😀"], 3, measure=utf16_length, joiner="") == ["😀", "😀"]
    assert pack([], 10) == []


def test_pack_keeps_order_and_blocks() -> None:
    blocks = [f"block {n}" for n in range(10)]
    packed = pack(blocks, 20)
    assert "\n\n".join(packed).split("\n\n") == blocks
    assert all(len(message) <= 20 for message in packed)


# --- Telegram HTML ---------------------------------------------------------------------------
class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value or "" for name, value in attrs if name == "href")


def hrefs(text: str) -> list[str]:
    parser = _Links()
    parser.feed(text)
    parser.close()
    return parser.hrefs


WEB_URL = 'https://example.com/search?q=cuti&lang=id&x="quoted"'
SOURCES = [
    SourceRef("Employee Handbook", "handbook.md", "Leave <policy>", 0.9, "passage"),
    SourceRef("Benefits & Pay", WEB_URL, "Overtime", 0.8, "passage"),
    SourceRef("FAQ", "faq.md", "FAQ", 0.7, "passage"),  # section same as title: not repeated
    SourceRef("", "notes/untitled.txt", "", 0.6, "passage"),  # no title: the source names it
]


def long_answer() -> str:
    rng = random.Random(7)
    phrases = [
        "Cuti tahunan adalah 12 hari",
        "jika 2 < 3 & 4 > 1 maka aturan berlaku",
        "gunakan <b>formulir</b> & tanda tangan",
        "terima kasih 😀",
        "AT&T bukan <script>",
        "lembur dibayar 1,5×",
    ]
    paragraphs: list[str] = []
    while sum(len(p) for p in paragraphs) < 10_000:
        sentences = [rng.choice(phrases) + rng.choice([".", "!", "?"]) for _ in range(8)]
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def test_a_long_reply_becomes_valid_telegram_messages_within_the_limit() -> None:
    answer = long_answer()
    assert len(answer) >= 10_000

    messages = html_messages(Reply(text=answer, sources=SOURCES))

    assert len(messages) >= 3
    visible_all = []
    for message in messages:
        errors, visible = check_html(message)
        assert errors == [], (errors, message[:200])
        assert utf16_length(visible) <= MESSAGE_LIMIT
        visible_all.append(visible)
    joined = "\n".join(visible_all)
    assert " ".join(answer.split()) in " ".join(joined.split())
    assert joined.index("Cuti") < joined.index("Sources")


def test_sources_are_listed_and_web_sources_linked() -> None:
    messages = html_messages(Reply(text="Short answer.", sources=SOURCES))

    assert len(messages) == 1
    [message] = messages
    errors, visible = check_html(message)
    assert errors == []
    assert visible.splitlines() == [
        "Short answer.",
        "",
        "Sources",
        "[1] Employee Handbook – Leave <policy>",
        "[2] Benefits & Pay – Overtime",
        "[3] FAQ",
        "[4] notes/untitled.txt",
    ]
    assert "<b>Sources</b>" in message
    assert hrefs(message) == [WEB_URL]
    escaped = "https://example.com/search?q=cuti&amp;lang=id&amp;x=&quot;quoted&quot;"
    assert f'<a href="{escaped}">Benefits &amp; Pay – Overtime</a>' in message
    assert "[1] Employee Handbook – Leave &lt;policy&gt;" in message


def test_source_line_links_only_web_pages() -> None:
    local = SourceRef("Doc", "file:///srv/doc.md", "Part", 0.5, "")
    assert source_line(3, local) == "[3] Doc – Part"
    web = SourceRef("Doc", "http://example.org/a?b=1&c=2", "", 0.5, "")
    assert source_line(1, web) == '[1] <a href="http://example.org/a?b=1&amp;c=2">Doc</a>'


def test_sources_heading_follows_the_language() -> None:
    [message] = html_messages(Reply(text="Jawaban.", sources=SOURCES[:1], language="id"))
    assert "<b>Sumber</b>" in message


def test_a_reply_without_sources_has_no_heading() -> None:
    assert html_messages(Reply(text="a < b & c")) == ["a &lt; b &amp; c"]
    assert html_messages(Reply(text="   ")) == []


def test_many_sources_spill_into_their_own_messages() -> None:
    sources = [
        SourceRef(f"Title {n} " + "x" * 80, f"https://example.com/{n}?a=1&b=2", "S", 0.5, "")
        for n in range(100)
    ]
    messages = html_messages(Reply(text="Answer.", sources=sources), limit=1000)

    assert len(messages) > 2
    numbers = []
    for message in messages:
        errors, visible = check_html(message)
        assert errors == []
        assert utf16_length(message) <= 1000
        numbers += [int(n) for n in re.findall(r"^\[(\d+)\]", visible, flags=re.MULTILINE)]
    assert numbers == list(range(1, 101))
    assert len([h for m in messages for h in hrefs(m)]) == 100


def test_escaping_is_counted_against_the_limit() -> None:
    # 30 '&' are 30 visible characters but 150 characters of HTML.
    text = " ".join(["&" * 10] * 3)
    messages = html_messages(Reply(text=text), limit=60)
    assert all(utf16_length(m) <= 60 for m in messages)
    assert html.unescape("".join(messages)).replace(" ", "") == "&" * 30
