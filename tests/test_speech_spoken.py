"""spoken_form: markdown answers become short, speakable text."""

from __future__ import annotations

import pytest

from speech.spoken import spoken_form

ANSWER = """## Opening hours 🕘

The library opens at **9 a.m.** on _Saturdays_ [1] and closes at `5 p.m.`[^2].
See [the handbook](https://example.org/handbook?page=2) or https://example.org/hours.

- Bring your card
- Returns go in the box outside.

```bash
curl https://example.org/api
```

Sources:
[1] library.md — Opening hours
[2] https://example.org/hours
"""


def test_markdown_links_citations_code_sources_and_emoji_are_removed() -> None:
    spoken = spoken_form(ANSWER, 100)
    assert spoken == (
        "Opening hours. The library opens at 9 a.m. on Saturdays and closes at 5 p.m. "
        "See the handbook. Bring your card. Returns go in the box outside."
    )


def test_long_answers_keep_their_leading_whole_sentences() -> None:
    text = (
        "You can borrow ten books at a time. Loans last three weeks. "
        "You can renew twice online, unless someone else has reserved the book."
    )
    assert spoken_form(text, 12) == "You can borrow ten books at a time. Loans last three weeks."
    assert spoken_form(text, 8) == "You can borrow ten books at a time."
    assert spoken_form(text, 100) == text


def test_a_first_sentence_longer_than_the_limit_is_cut_between_words() -> None:
    text = "Renewals, which you can do online, by phone, or at the desk, are free of charge"
    short = spoken_form(text, 6)
    assert short == "Renewals, which you can do online."
    assert all(word in text for word in short.rstrip(".").split())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Perpustakaan buka jam **9 pagi** [1].", "Perpustakaan buka jam 9 pagi."),
        ("Use `snake_case` names, e.g. my_var.", "Use snake_case names, e.g. my_var."),
        ("1. First\n2. Second", "First. Second."),
        ("> Quoted *text*", "Quoted text"),
        ("Done ✅🎉 thanks!", "Done thanks!"),
        ("![logo](x.png) Hello [^note].", "logo Hello."),
        ("Details: https://x.org/a.", "Details."),
        ("Lihat di https://x.id/b, lalu klik.", "Lihat, lalu klik."),
        ("", ""),
    ],
)
def test_small_cases(text: str, expected: str) -> None:
    assert spoken_form(text, 60) == expected
