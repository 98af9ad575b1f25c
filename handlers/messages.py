"""The normalized message every channel produces and the reply the pipeline returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from rag.types import Hit
from speech.types import Emotion, VoiceNote


@dataclass(frozen=True)
class Media:
    """Audio attached to a message: bytes in hand, or a way to fetch them."""

    mime_type: str | None = None
    data: bytes | None = None
    fetch: Callable[[], Awaitable[bytes]] | None = None
    duration: float | None = None

    async def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.fetch is None:
            raise ValueError("media has neither data nor a fetch function")
        return await self.fetch()


@dataclass(frozen=True)
class IncomingMessage:
    channel: str
    chat_id: str
    message_id: str
    user_id: str = ""
    text: str | None = None
    media: Media | None = None
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    meta: dict[str, Any] = field(default_factory=dict)
    want_voice: bool = True
    language: str | None = None

    @property
    def thread_id(self) -> str:
        return f"{self.channel}:{self.chat_id}"


@dataclass(frozen=True)
class SourceRef:
    title: str
    source: str
    section: str
    score: float
    text: str

    @classmethod
    def of(cls, hit: Hit) -> SourceRef:
        chunk = hit.chunk
        return cls(chunk.title, chunk.source, chunk.section, round(hit.score, 4), chunk.text)


@dataclass
class Reply:
    text: str
    voice: VoiceNote | None = None
    sources: list[SourceRef] = field(default_factory=list)  # what the answer cites
    retrieved: list[SourceRef] = field(default_factory=list)  # every passage found, best first
    emotion: Emotion | None = None
    language: str | None = None
    transcript: str | None = None
    declined: bool = False
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_stored(self) -> dict[str, Any]:
        """What the inbox keeps so a retry sends this reply again (voice bytes kept apart)."""
        return {
            "text": self.text,
            "sources": [asdict(s) for s in self.sources],
            "language": self.language,
            "transcript": self.transcript,
            "declined": self.declined,
            "error": self.error,
            "voice": (
                {"duration": self.voice.duration, "mime_type": self.voice.mime_type}
                if self.voice
                else None
            ),
        }

    @classmethod
    def from_stored(cls, data: dict[str, Any], voice: bytes | None) -> Reply:
        meta = data.get("voice")
        return cls(
            text=data["text"],
            sources=[SourceRef(**s) for s in data.get("sources", [])],
            language=data.get("language"),
            transcript=data.get("transcript"),
            declined=bool(data.get("declined")),
            error=data.get("error"),
            voice=(
                VoiceNote(voice, meta["duration"], meta["mime_type"])
                if voice is not None and meta
                else None
            ),
        )

    def to_json(self) -> dict[str, Any]:
        """The `--json` shape of the CLI (and, later, of the HTTP API)."""
        return {
            "transcript": self.transcript,
            "language": self.language,
            "emotion": (
                {"label": self.emotion.label, "score": round(self.emotion.score, 3)}
                if self.emotion
                else None
            ),
            "answer": self.text,
            "declined": self.declined,
            "sources": [s.__dict__ for s in self.sources],
            "retrieved": [s.__dict__ for s in self.retrieved],
            "timings": {k: round(v, 1) for k, v in self.timings.items()},
            "error": self.error,
            "voice_bytes": len(self.voice.data) if self.voice else 0,
        }
