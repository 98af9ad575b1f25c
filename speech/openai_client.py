"""Builds the AsyncOpenAI client used by the OpenAI speech-to-text and text-to-speech providers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from bot.settings import Settings


# Whisper's verbose_json names the language ("english"); callers want ISO 639-1 codes.
def make_client(settings: Settings, *, timeout: float = 60.0) -> AsyncOpenAI:
    """An AsyncOpenAI client for OPENAI_API_KEY and OPENAI_BASE_URL, one retry."""
    from openai import AsyncOpenAI

    if settings.openai_api_key is None:
        raise ValueError("OPENAI_API_KEY is required for OpenAI speech")
    return AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        timeout=timeout,
        max_retries=1,
    )
