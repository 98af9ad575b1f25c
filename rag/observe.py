"""What the rag package reports while it answers: fallbacks, failed stages and LLM tokens.

A protocol the app's metrics implement, so rag never imports the web layer; `NO_OBSERVER` by
default (the CLI, tests, benchmarks)."""

from __future__ import annotations

from typing import Protocol


class RagObserver(Protocol):
    def fallback(self, component: str, source: str, target: str) -> None:
        """`component` fell back from `source` to `target` (e.g. embeddings, openai, bm25)."""

    def stage_error(self, stage: str) -> None:
        """A provider failed in a pipeline stage (retrieve, generate)."""

    def llm_tokens(self, model: str, prompt: int, completion: int) -> None:
        """A language-model call used these tokens."""


class NullObserver:
    """Reports nothing."""

    def fallback(self, component: str, source: str, target: str) -> None:
        pass

    def stage_error(self, stage: str) -> None:
        pass

    def llm_tokens(self, model: str, prompt: int, completion: int) -> None:
        pass


NO_OBSERVER: RagObserver = NullObserver()
