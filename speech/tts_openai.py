"""Text-to-speech through the OpenAI (or a compatible) speech API, as raw 24 kHz PCM."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from speech.errors import ProviderError
from speech.openai_client import make_client
from speech.types import Pcm

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from bot.settings import Settings

logger = logging.getLogger(__name__)

OPENAI_PCM_RATE = 24_000  # response_format="pcm" is s16le mono at 24 kHz


class OpenAiTts:
    name = "openai"

    def __init__(self, client: AsyncOpenAI, *, model: str, voice: str) -> None:
        self.client = client
        self.model = model
        self.voice = voice

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAiTts:
        return cls(
            make_client(settings), model=settings.openai_tts_model, voice=settings.openai_tts_voice
        )

    async def synthesize(self, text: str, language: str | None = None) -> Pcm:
        if not text.strip():
            raise ProviderError("nothing to synthesize: empty text")
        try:
            response = await self.client.audio.speech.create(
                model=self.model, voice=self.voice, input=text, response_format="pcm"
            )
            data = response.content
        except Exception as exc:
            logger.warning("OpenAI speech (%s) failed: %s", self.model, exc)
            raise ProviderError(f"OpenAI speech with {self.model} failed: {exc}") from exc
        data = data[: len(data) - len(data) % 2]
        if not data:
            raise ProviderError(f"OpenAI speech with {self.model} returned no audio")
        return Pcm(data, OPENAI_PCM_RATE)

    async def aclose(self) -> None:
        await self.client.close()
