"""Language codes: every provider's way of naming a language, mapped to one ISO 639-1 code."""

from __future__ import annotations

LANGUAGE_CODES = {
    "english": "en", "indonesian": "id", "malay": "ms", "javanese": "jw", "sundanese": "su",
    "chinese": "zh", "japanese": "ja", "korean": "ko", "thai": "th", "vietnamese": "vi",
    "tagalog": "tl", "hindi": "hi", "arabic": "ar", "spanish": "es", "portuguese": "pt",
    "french": "fr", "german": "de", "dutch": "nl", "italian": "it", "russian": "ru",
}  # fmt: skip


def language_code(value: str | None) -> str | None:
    """`en`, `en-US`, `en_US` and `english` all become `en`; empty or unknown -> None."""
    if not value or not value.strip():
        return None
    lowered = value.strip().lower().replace("_", "-")
    if lowered in LANGUAGE_CODES:
        return LANGUAGE_CODES[lowered]
    base = lowered.split("-")[0]
    return base if len(base) in (2, 3) and base.isalpha() else None
