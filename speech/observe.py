"""What the speech package reports: fallbacks and failed stages. A protocol the app's metrics
implement, so speech never imports the web layer; `NO_OBSERVER` by default."""

from __future__ import annotations

from typing import Protocol


class SpeechObserver(Protocol):
    def fallback(self, component: str, source: str, target: str) -> None:
        """`component` fell back from `source` to `target` (e.g. emotion, http, neutral)."""

    def stage_error(self, stage: str) -> None:
        """A provider failed in a pipeline stage (stt, emotion, tts)."""


class NullObserver:
    """Reports nothing."""

    def fallback(self, component: str, source: str, target: str) -> None:
        pass

    def stage_error(self, stage: str) -> None:
        pass


NO_OBSERVER: SpeechObserver = NullObserver()
