"""Speech-to-text through the OpenAI (or a compatible) transcription API."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from speech.errors import NoSpeech, ProviderError
from speech.language import language_code
from speech.openai_client import make_client
from speech.pcm import pcm_to_wav
from speech.types import Pcm, Transcript

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from bot.settings import Settings

logger = logging.getLogger(__name__)


class OpenAiStt:
    """Sends the PCM as WAV; whisper-* models answer verbose_json, which names the language."""

    name = "openai"

    def __init__(self, client: AsyncOpenAI, *, model: str, language: str | None = None) -> None:
        self.client = client
        self.model = model
        self.language = language_code(language)

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAiStt:
        return cls(
            make_client(settings), model=settings.openai_stt_model, language=settings.stt_language
        )

    async def transcribe(self, pcm: Pcm, language: str | None = None) -> Transcript:
        chosen = self.language or language_code(language)
        verbose = self.model.startswith("whisper")
        extra: dict[str, Any] = {"language": chosen} if chosen else {}
        try:
            response = await self.client.audio.transcriptions.create(
                model=self.model,
                file=("voice.wav", pcm_to_wav(pcm), "audio/wav"),
                response_format="verbose_json" if verbose else "json",
                **extra,
            )
        except Exception as exc:
            logger.warning("OpenAI transcription (%s) failed: %s", self.model, exc)
            raise ProviderError(f"OpenAI transcription with {self.model} failed: {exc}") from exc
        text = str(getattr(response, "text", "") or "").strip()
        if not text:
            raise NoSpeech(f"OpenAI {self.model} heard no words in {pcm.duration:.1f} s")
        detected = language_code(getattr(response, "language", None))
        return Transcript(text=text, language=detected or chosen)

    async def aclose(self) -> None:
        await self.client.close()
