"""Builds the speech providers chosen in the settings (SpeechServices) and warms them up."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from speech.emotion_http import HttpEmotionDetector
from speech.emotion_local import LocalEmotionDetector
from speech.ffmpeg import ffmpeg_binary, set_ffmpeg_binary
from speech.observe import NO_OBSERVER, SpeechObserver
from speech.spoken import spoken_form
from speech.transcode import to_pcm16k, to_voice_note
from speech.types import EmotionDetector, Pcm, SpeechToText, TextToSpeech, VoiceNote

if TYPE_CHECKING:
    from bot.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class SpeechServices:
    """The configured providers, plus the audio limits that go with them."""

    stt: SpeechToText
    tts: TextToSpeech | None
    emotion: EmotionDetector
    settings: Settings

    async def decode(self, data: bytes, mime_type: str | None) -> Pcm:
        """Incoming audio -> 16 kHz PCM, with MAX_AUDIO_BYTES/SECONDS and SILENCE_DBFS applied."""
        return await to_pcm16k(
            data,
            mime_type,
            max_bytes=self.settings.max_audio_bytes,
            max_seconds=self.settings.max_audio_seconds,
            silence_dbfs=self.settings.silence_dbfs,
        )

    async def voice_reply(self, text: str, language: str | None = None) -> VoiceNote | None:
        """`text` spoken (its spoken form, at most SPOKEN_MAX_WORDS) as a voice note.

        None when TTS_PROVIDER=none or nothing speakable is left.
        """
        if self.tts is None:
            return None
        spoken = spoken_form(text, self.settings.spoken_max_words)
        if not spoken:
            return None
        pcm = await self.tts.synthesize(spoken, language)
        return await to_voice_note(pcm)

    async def warm_up(self) -> None:
        """Load local models now (else they load lazily); `serve` and the benchmark call this."""
        ffmpeg_binary()
        loaders = [
            getattr(provider, "warm_up", None) for provider in (self.stt, self.tts, self.emotion)
        ]
        await asyncio.gather(*(loader() for loader in loaders if loader is not None))

    async def aclose(self) -> None:
        """Close network clients held by the providers."""
        for provider in (self.stt, self.tts, self.emotion):
            closer = getattr(provider, "aclose", None)
            if closer is not None:
                await closer()


def _build_stt(settings: Settings) -> SpeechToText:
    if settings.stt_provider == "openai":
        from speech.stt_openai import OpenAiStt

        return OpenAiStt.from_settings(settings)
    if settings.stt_provider == "prosa":
        from speech.stt_prosa import ProsaStt

        return ProsaStt.from_settings(settings)
    from speech.stt_whisper import WhisperStt

    return WhisperStt.from_settings(settings)


def _build_tts(settings: Settings) -> TextToSpeech | None:
    if settings.tts_provider == "none":
        return None
    if settings.tts_provider == "openai":
        from speech.tts_openai import OpenAiTts

        return OpenAiTts.from_settings(settings)
    from speech.tts_piper import PiperTts

    return PiperTts.from_settings(settings)


def build_speech(settings: Settings, observer: SpeechObserver = NO_OBSERVER) -> SpeechServices:
    """Providers per STT_PROVIDER, TTS_PROVIDER and EMOTION_API_URL; nothing is loaded yet.
    `observer` hears of the emotion service's fallbacks to neutral."""
    set_ffmpeg_binary(settings.ffmpeg_binary)
    emotion: EmotionDetector = (
        HttpEmotionDetector.from_settings(settings, observer)
        if settings.emotion_api_url
        else LocalEmotionDetector()
    )
    services = SpeechServices(
        stt=_build_stt(settings), tts=_build_tts(settings), emotion=emotion, settings=settings
    )
    logger.info(
        "speech: stt=%s tts=%s emotion=%s",
        services.stt.name,
        services.tts.name if services.tts else "none",
        services.emotion.name,
    )
    return services
