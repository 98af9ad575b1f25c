"""The bot's own phrases in each supported language, and a light guess of a text's language."""

from __future__ import annotations

import re

from speech.language import language_code

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
        "internal_error": "Sorry, something went wrong on my side. Please try again in a moment.",
        "greeting": "Hello! Ask me anything my documents cover, by text or by voice note.",
        "thanks": "You're welcome! Is there anything else I can help with?",
        "bye": "Goodbye, and thanks for asking!",
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
        "EmptyAudio": "Pesan suara itu kosong. Bisakah Anda merekamnya lagi?",
        "CorruptAudio": "Maaf, saya tidak bisa membuka audio itu. Mohon kirim ulang.",
        "SilentAudio": "Saya tidak mendengar apa pun di pesan suara itu. Mohon rekam ulang.",
        "AudioTooLong": "Pesan suara itu terlalu panjang. Mohon persingkat, atau ketik saja.",
        "AudioTooLarge": "Berkas audio itu terlalu besar. Mohon kirim yang lebih pendek.",
        "NoSpeech": "Saya tidak menangkap kata apa pun. Mohon ulangi, atau ketik saja.",
        "internal_error": "Maaf, ada masalah di sisi saya. Silakan coba lagi sebentar lagi.",
        "greeting": "Halo! Tanyakan apa saja dari dokumen saya, lewat teks atau pesan suara.",
        "thanks": "Sama-sama! Ada lagi yang bisa saya bantu?",
        "bye": "Sampai jumpa, terima kasih sudah bertanya!",
    },
}

# Whole messages that are small talk, not questions: {kind: words that may make them up}.
_SMALL_TALK: dict[str, frozenset[str]] = {
    "greeting": frozenset(
        "hi hello hey hiya yo good morning afternoon evening there halo hai pagi siang sore "
        "malam selamat assalamualaikum".split()
    ),
    "thanks": frozenset(
        "thanks thank you thx ty so much very much a lot great cool nice ok okay got it "
        "perfect terima kasih makasih banyak oke sip mantap".split()
    ),
    "bye": frozenset("bye goodbye good see you later cya ok okay dadah sampai jumpa".split()),
}

LANGUAGE_NAMES = {"en": "English", "id": "Indonesian"}


def detect_language(text: str) -> str | None:
    """Guess `en` or `id` from function words; None when there is too little evidence."""
    words = [w.lower() for w in _WORD.findall(text)]
    scores = {lang: sum(w in markers for w in words) for lang, markers in _MARKERS.items()}
    best = max(scores, key=lambda lang: scores[lang])
    others = [score for lang, score in scores.items() if lang != best]
    if scores[best] == 0 or scores[best] <= max(others, default=0):
        return None
    return best


def phrase(key: str, language: str | None, default: str | None = None) -> str:
    """One of the bot's phrases, in `language` when it has it, else `default`, else English."""
    table = PHRASES.get(language_code(language) or "en", PHRASES["en"])
    if key in table:
        return table[key]
    return default if default is not None else PHRASES["en"][key]


def small_talk(text: str) -> str | None:
    """`greeting`, `thanks` or `bye` when the whole message is just that, else None."""
    words = [w.lower() for w in _WORD.findall(text)]
    if not words or len(words) > 6:
        return None
    for kind in ("bye", "thanks", "greeting"):
        if all(w in _SMALL_TALK[kind] for w in words) and not all(
            w in {"ok", "okay", "good", "you", "much", "a", "lot"} for w in words
        ):
            return kind
    return None
