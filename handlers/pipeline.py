"""The one conversation pipeline: audio -> transcript -> emotion -> answer -> voice reply."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bot.limits import Limits, user_key
from bot.metrics import Metrics
from bot.settings import Settings
from handlers.messages import IncomingMessage, Reply, SourceRef
from rag.agent import Agent
from rag.language import detect_language, phrase
from speech.errors import AudioError, AudioTooLong, SpeechError
from speech.factory import SpeechServices
from speech.language import language_code
from speech.types import Emotion, Pcm, VoiceNote

log = logging.getLogger(__name__)

# The limit named in metrics when audio is refused for its length or its size.
AUDIO_LIMITS = {"AudioTooLong": "audio_seconds", "AudioTooLarge": "audio_bytes"}


class Timings(dict[str, float]):
    """Milliseconds per pipeline stage; `on_error(stage, error)` hears of a stage that raised."""

    def __init__(self, on_error: Callable[[str, Exception], None] | None = None) -> None:
        super().__init__()
        self.on_error = on_error

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:
            if self.on_error is not None:
                self.on_error(name, exc)
            raise
        finally:
            self[name] = self.get(name, 0.0) + (time.perf_counter() - started) * 1000


class Pipeline:
    """Turns one IncomingMessage into one Reply; channels only parse and send."""

    def __init__(
        self,
        settings: Settings,
        speech: SpeechServices,
        agent: Agent,
        *,
        metrics: Metrics | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.settings = settings
        self.speech = speech
        self.agent = agent
        self.metrics = metrics or Metrics()
        self.limits = limits  # the LLM token budgets; None: unlimited

    async def handle(self, msg: IncomingMessage) -> Reply:
        timings = Timings(self._stage_failed)
        started = time.perf_counter()
        reply = await self._handle(msg, timings)
        timings["total"] = (time.perf_counter() - started) * 1000
        reply.timings = dict(timings)
        self.metrics.observe_stages(reply.timings)
        log.info(
            "answered %s message %s (declined=%s, voice=%s) in %.0f ms",
            msg.thread_id,
            msg.message_id,
            reply.declined,
            reply.voice is not None,
            timings["total"],
            extra={"thread_id": msg.thread_id},  # message_id: bot.log_context's, on every line
        )
        return reply

    def _stage_failed(self, stage: str, error: Exception) -> None:
        if not isinstance(error, AudioError):  # unusable audio is the user's, not a failure
            self.metrics.stage_error(stage)

    async def _handle(self, msg: IncomingMessage, timings: Timings) -> Reply:
        pcm: Pcm | None = None
        language = language_code(msg.language)
        transcript: str | None = None
        if msg.media is not None:
            try:
                pcm, transcript, language = await self._transcribe(msg, timings, language)
            except AudioError as exc:
                log.info("unusable audio in %s/%s: %s", msg.thread_id, msg.message_id, exc)
                kind = type(exc).__name__
                if kind in AUDIO_LIMITS:
                    self.metrics.limited(msg.channel, AUDIO_LIMITS[kind])
                text = phrase(kind, language, default=exc.user_message)
                return Reply(text=text, error=kind, language=language)
            except SpeechError as exc:
                log.error("speech-to-text failed for %s/%s: %s", msg.thread_id, msg.message_id, exc)
                return Reply(
                    text=phrase("stt_failed", language), error=type(exc).__name__, language=language
                )
            text = transcript
        else:
            text = (msg.text or "").strip()
            if len(text) > self.settings.max_text_chars:
                return self._too_long(msg, text, language)
        if not text:
            return Reply(text=phrase("empty", language), error="EmptyMessage", language=language)
        language = language or detect_language(text)

        with timings.stage("emotion"):
            emotion = await self._emotion(text, pcm)
        user = user_key(msg.channel, msg.user_id or msg.chat_id)
        answer = await self.agent.answer(
            msg.thread_id,
            text,
            language,
            emotion.label,
            emotion.score,
            use_model=await self._llm_allowed(user),
        )
        if self.limits is not None and answer.tokens:
            await self.limits.spend_tokens(user, answer.tokens)
        # Rewriting a follow-up into a query counts as part of retrieval.
        stages = answer.timings
        timings["retrieve"] = stages.get("contextualize", 0.0) + stages.get("retrieve", 0.0)
        timings["generate"] = stages.get("generate", 0.0)
        reply = Reply(
            text=answer.text,
            sources=[SourceRef.of(h) for h in answer.hits],
            retrieved=[SourceRef.of(h) for h in answer.retrieved],
            emotion=emotion,
            language=answer.language,
            transcript=transcript,
            declined=answer.declined,
        )
        if msg.want_voice:
            reply.voice = await self._voice(answer.spoken, answer.language, timings, msg)
        return reply

    def _too_long(self, msg: IncomingMessage, text: str, language: str | None) -> Reply:
        """MAX_TEXT_CHARS: a polite note instead of an answer."""
        log.info(
            "%s message %s has %d characters; refused", msg.thread_id, msg.message_id, len(text)
        )
        self.metrics.limited(msg.channel, "text")
        language = language or detect_language(text)
        limit = self.settings.max_text_chars
        return Reply(
            text=phrase("text_too_long", language).format(limit=limit),
            error="TextTooLong",
            language=language,
        )

    async def _llm_allowed(self, user: str) -> bool:
        """Whether this answer may use the LLM: the user's and everyone's daily token budgets."""
        if self.limits is None or self.settings.openai_api_key is None:
            return True
        verdict = await self.limits.llm_budget(user)
        if not verdict.allowed:
            log.info(
                "LLM token budget spent (%s) for %s; answering extractively", verdict.window, user
            )
        return verdict.allowed

    async def _transcribe(
        self, msg: IncomingMessage, timings: Timings, language: str | None
    ) -> tuple[Pcm, str, str | None]:
        assert msg.media is not None
        limit = self.settings.max_audio_seconds
        if msg.media.duration is not None and msg.media.duration > limit:  # before downloading
            raise AudioTooLong(f"the channel says {msg.media.duration:g} s, over {limit:g} s")
        with timings.stage("download"):
            data = await msg.media.read()
        with timings.stage("transcode"):
            pcm = await self.speech.decode(data, msg.media.mime_type)
        with timings.stage("stt"):
            result = await self.speech.stt.transcribe(pcm, language or self.settings.stt_language)
        return pcm, result.text.strip(), language_code(result.language) or language

    async def _emotion(self, text: str, pcm: Pcm | None) -> Emotion:
        try:
            return await self.speech.emotion.detect(text, pcm)
        except SpeechError as exc:
            log.warning("emotion detection failed, assuming neutral: %s", exc)
            self.metrics.stage_error("emotion")
            self.metrics.fallback("emotion", self.speech.emotion.name, "neutral")
            return Emotion("neutral", 0.0)

    async def _voice(
        self, text: str, language: str | None, timings: Timings, msg: IncomingMessage
    ) -> VoiceNote | None:
        """The spoken reply, or None (text only) when there is no TTS or it fails."""
        try:
            with timings.stage("tts"):
                voice = await self.speech.voice_reply(text, language)
        except SpeechError as exc:
            log.error(
                "text-to-speech failed for %s/%s, replying with text only: %s",
                msg.thread_id,
                msg.message_id,
                exc,
            )
            self.metrics.fallback(
                "tts", self.speech.tts.name if self.speech.tts else "none", "text"
            )
            return None
        return voice
