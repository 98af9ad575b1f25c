"""The bot's own phrases in each supported language, and a light guess of a text's language."""

from __future__ import annotations

import math
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
        "sources": "Sources",
        "help": (
            "Ask me a question by text or by voice note: I answer from my documents, cite them, "
            "and say so when they don't cover it.\n\n"
            "{p}reset – forget our conversation\n"
            "{p}voice on | off – voice replies to every message, or none\n"
            "{p}lang en | id | auto – the language I answer in\n"
            "{p}help – this message"
        ),
        "reset_done": "Done: I've forgotten our conversation. What would you like to ask?",
        "voice_on": "Voice replies are on: I'll add a voice note to every answer.",
        "voice_off": "Voice replies are off: I'll answer with text only.",
        "voice_usage": "Use {p}voice on or {p}voice off.",
        "lang_set": "I'll answer in {name}.",
        "name_en": "English",
        "name_id": "Indonesian",
        "lang_auto": "I'll answer in the language you write or speak.",
        "lang_usage": "Use {p}lang en, {p}lang id or {p}lang auto.",
        "unknown_command": "I don't know that command. Send {p}help to see what I can do.",
        "unsupported": (
            "I can read text and listen to voice notes and audio files, but not this kind of "
            "message. Please type your question or send a voice note."
        ),
        "refused": "Sorry, this assistant isn't available in this chat.",
        "text_too_long": (
            "That message is too long for me. Please keep it under {limit} characters, "
            "or ask one question at a time."
        ),
        "rate_limited": (
            "You've sent me a lot of questions in a short time. Please try again in {wait}."
        ),
        "wait_second": "a second",
        "wait_seconds": "{n} seconds",
        "wait_minute": "a minute",
        "wait_minutes": "{n} minutes",
        "wait_hour": "an hour",
        "wait_hours": "{n} hours",
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
        "sources": "Sumber",
        "help": (
            "Tanyakan lewat teks atau pesan suara: saya menjawab dari dokumen saya, menyebut "
            "sumbernya, dan berterus terang bila dokumen tidak membahasnya.\n\n"
            "{p}reset – lupakan percakapan kita\n"
            "{p}voice on | off – balasan suara untuk setiap pesan, atau tidak sama sekali\n"
            "{p}lang en | id | auto – bahasa jawaban saya\n"
            "{p}help – pesan ini"
        ),
        "reset_done": "Selesai: percakapan kita sudah saya lupakan. Apa yang ingin Anda tanyakan?",
        "voice_on": "Balasan suara aktif: setiap jawaban disertai pesan suara.",
        "voice_off": "Balasan suara nonaktif: saya menjawab dengan teks saja.",
        "voice_usage": "Gunakan {p}voice on atau {p}voice off.",
        "lang_set": "Saya akan menjawab dalam bahasa {name}.",
        "name_en": "Inggris",
        "name_id": "Indonesia",
        "lang_auto": "Saya akan menjawab dalam bahasa yang Anda gunakan.",
        "lang_usage": "Gunakan {p}lang en, {p}lang id atau {p}lang auto.",
        "unknown_command": "Saya tidak mengenal perintah itu. Kirim {p}help untuk melihat panduan.",
        "unsupported": (
            "Saya bisa membaca teks dan mendengarkan pesan suara atau berkas audio, tetapi belum "
            "bisa memahami jenis pesan ini. Silakan ketik pertanyaan Anda atau kirim pesan suara."
        ),
        "refused": "Maaf, asisten ini tidak tersedia di obrolan ini.",
        "text_too_long": (
            "Pesan itu terlalu panjang untuk saya. Mohon persingkat menjadi kurang dari {limit} "
            "karakter, atau tanyakan satu per satu."
        ),
        "rate_limited": (
            "Anda mengirim banyak pertanyaan dalam waktu singkat. Silakan coba lagi dalam {wait}."
        ),
        "wait_second": "1 detik",
        "wait_seconds": "{n} detik",
        "wait_minute": "1 menit",
        "wait_minutes": "{n} menit",
        "wait_hour": "1 jam",
        "wait_hours": "{n} jam",
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


def wait_phrase(seconds: float, language: str | None) -> str:
    """A wait in words, rounded up to whole seconds, minutes or hours: "3 minutes", "1 jam"."""
    whole = max(1, math.ceil(seconds))
    minutes = math.ceil(whole / 60)
    if whole < 60:
        unit, count = "second", whole
    elif minutes < 60:
        unit, count = "minute", minutes
    else:
        unit, count = "hour", math.ceil(whole / 3600)
    if count == 1:
        return phrase(f"wait_{unit}", language)
    return phrase(f"wait_{unit}s", language).format(n=count)


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
