"""The bot's own phrases in each supported language, and a light guess of a text's language."""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W\d_]+")

# Frequent function words: enough to tell English from Indonesian in a question.
_MARKERS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "the is are was what how why when where who which do does did can could should "
        "would i you my your it this that to of and in on for with please".split()
    ),
    "id": frozenset(
        "yang dan di ke dari ini itu apa bagaimana mengapa kenapa kapan dimana siapa "
        "bisa dapat saya anda kamu untuk dengan tidak ada adalah cara tolong mohon".split()
    ),
}

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "from": "From",
        "also": "Also",
        "decline": (
            "I'm sorry, I couldn't find that in my documents, so I won't guess. "
            "Could you rephrase it, or ask about something they cover?"
        ),
        "empty": "Please send me a question as text or as a voice note.",
        "stt_failed": (
            "Sorry, I couldn't understand the voice note right now. Could you type your question?"
        ),
        "sad": "I'm sorry to hear that.",
        "angry": "I understand this is frustrating.",
        "fearful": "Don't worry, let's sort this out.",
        "happy": "Glad to help!",
        "surprised": "",
        "neutral": "",
    },
    "id": {
        "from": "Dari",
        "also": "Juga",
        "decline": (
            "Maaf, saya tidak menemukan hal itu di dokumen saya, jadi saya tidak akan menebak. "
            "Bisakah Anda menanyakannya dengan cara lain?"
        ),
        "empty": "Silakan kirim pertanyaan berupa teks atau pesan suara.",
        "stt_failed": (
            "Maaf, saya belum bisa memahami pesan suara itu. Bisakah Anda mengetik pertanyaannya?"
        ),
        "sad": "Saya turut prihatin.",
        "angry": "Saya mengerti ini membuat frustrasi.",
        "fearful": "Jangan khawatir, mari kita selesaikan.",
        "happy": "Senang bisa membantu!",
        "surprised": "",
        "neutral": "",
    },
}

LANGUAGE_NAMES = {"en": "English", "id": "Indonesian"}


def base_language(code: str | None) -> str | None:
    """`en-US`, `en_US` and `english` all become `en`; None stays None."""
    if not code:
        return None
    code = code.strip().lower().replace("_", "-")
    named = {name.lower(): short for short, name in LANGUAGE_NAMES.items()}
    return named.get(code, code.split("-")[0])


def detect_language(text: str) -> str | None:
    """Guess `en` or `id` from function words; None when there is too little evidence."""
    words = [w.lower() for w in _WORD.findall(text)]
    scores = {lang: sum(w in markers for w in words) for lang, markers in _MARKERS.items()}
    best = max(scores, key=lambda lang: scores[lang])
    others = [score for lang, score in scores.items() if lang != best]
    if scores[best] == 0 or scores[best] <= max(others, default=0):
        return None
    return best


def phrase(key: str, language: str | None) -> str:
    """One of the bot's phrases, in `language` when it is supported, else in English."""
    table = PHRASES.get(base_language(language) or "en", PHRASES["en"])
    return table[key]
