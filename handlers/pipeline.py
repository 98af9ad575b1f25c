"""The one conversation pipeline: audio -> transcript -> emotion -> answer -> voice reply."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bot.settings import Settings
from handlers.messages import IncomingMessage, Reply, SourceRef
from rag.agent import Agent
from rag.language import detect_language, phrase
from speech.errors import AudioError, SpeechError
from speech.factory import SpeechServices
from speech.language import language_code
from speech.types import Emotion, Pcm, VoiceNote

log = logging.getLogger(__name__)


class Timings(dict[str, float]):
    """Milliseconds per pipeline stage."""

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + (time.perf_counter() - started) * 1000


class Pipeline:
    """Turns one IncomingMessage into one Reply; channels only parse and send."""

    def __init__(self, settings: Settings, speech: SpeechServices, agent: Agent) -> None:
        self.settings = settings
        self.speech = speech
        self.agent = agent

    async def handle(self, msg: IncomingMessage) -> Reply:
        timings = Timings()
        started = time.perf_counter()
        reply = await self._handle(msg, timings)
        timings["total"] = (time.perf_counter() - started) * 1000
        reply.timings = dict(timings)
        log.info(
            "answered %s message %s (declined=%s, voice=%s) in %.0f ms",
            msg.thread_id,
            msg.message_id,
            reply.declined,
            reply.voice is not None,
            timings["total"],
            extra={"thread_id": msg.thread_id, "message_id": msg.message_id},
        )
        return reply

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
        if not text:
            return Reply(text=phrase("empty", language), error="EmptyMessage", language=language)
        language = language or detect_language(text)

        with timings.stage("emotion"):
            emotion = await self._emotion(text, pcm)
        answer = await self.agent.answer(
            msg.thread_id, text, language, emotion.label, emotion.score
        )
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

    async def _transcribe(
        self, msg: IncomingMessage, timings: Timings, language: str | None
    ) -> tuple[Pcm, str, str | None]:
        assert msg.media is not None
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
            return None
        return voice
