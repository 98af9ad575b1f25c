"""Builds the running parts from settings once (stores, speech, retriever, agent, pipeline)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from bot.limits import Limits
from bot.metrics import Metrics
from bot.settings import Settings
from handlers.pipeline import Pipeline
from rag.agent import Agent, build_graph
from rag.embeddings import build_embedder
from rag.errors import IndexingError
from rag.index_runs import RunLog
from rag.index_store import IndexStore
from rag.indexer import SourceFilter, index_sources
from rag.llm import build_chat_model
from rag.retrieval import build_retriever
from rag.types import Embedder, IndexReport
from rag.vector_store import VectorStore, build_vector_store
from rag.web_sources import WebOptions
from speech.factory import SpeechServices, build_speech
from storage.conversations import ConversationStore

log = logging.getLogger(__name__)


@dataclass
class Components:
    settings: Settings
    index: IndexStore
    embedder: Embedder | None
    conversations: ConversationStore
    speech: SpeechServices
    agent: Agent
    pipeline: Pipeline
    vectors: VectorStore | None = None  # None: the vectors stay in the SQLite index
    metrics: Metrics = field(default_factory=Metrics)
    limits: Limits | None = None  # per-user rate limits and token budgets (bot.limits)

    runs: RunLog = field(init=False)
    _reindex_lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.runs = RunLog(self.index.path)

    @property
    def reindex_running(self) -> bool:
        """Whether a re-index (on start, scheduled or by hand) is in progress here."""
        return self._reindex_lock.locked()

    async def reindex(
        self, sources: list[str] | None = None, *, trigger: str = "manual"
    ) -> IndexReport:
        """Incrementally index `sources` (default: the configured knowledge sources), one run
        at a time, and record the run. A run that fails part-way is recorded as failed and
        raises IndexingError; each document keeps its old or its new version."""
        settings = self.settings
        async with self._reindex_lock:
            started = time.perf_counter()
            run_id = await asyncio.to_thread(self.runs.start, trigger)
            report = IndexReport()
            try:
                await index_sources(
                    sources or settings.sources,
                    self.index,
                    self.embedder,
                    chunk_max_chars=settings.chunk_max_chars,
                    filters=SourceFilter(
                        tuple(settings.knowledge_include), tuple(settings.knowledge_exclude)
                    ),
                    web=WebOptions(
                        timeout=settings.web_timeout,
                        max_bytes=settings.web_max_bytes,
                        user_agent=settings.web_user_agent,
                        concurrency=settings.web_concurrency,
                    ),
                    report=report,
                    vectors=self.vectors,
                )
            except asyncio.CancelledError:
                self.runs.finish(run_id, report, failure="cancelled")  # a quick local write
                raise
            except Exception as exc:
                failure = f"{type(exc).__name__}: {exc}"
                log.exception(
                    "index run %d (%s) failed part-way after %d added, %d changed; documents not"
                    " reached keep their previous version",
                    run_id,
                    trigger,
                    report.added,
                    report.changed,
                )
                await asyncio.to_thread(self.runs.finish, run_id, report, failure)
                raise IndexingError(f"the index run failed part-way: {failure}") from exc
            await asyncio.to_thread(self.runs.finish, run_id, report)
        log.info(
            "index run %d (%s) in %.1f s: %d added, %d changed, %d removed, %d unchanged,"
            " %d errors",
            run_id,
            trigger,
            time.perf_counter() - started,
            report.added,
            report.changed,
            report.removed,
            report.unchanged,
            len(report.errors),
        )
        for source, error in report.errors:
            log.error("could not index %s: %s", source, error)
        return report

    async def ensure_indexed(self) -> None:
        """Index the configured sources when the index holds nothing yet."""
        if self.index.chunk_count() == 0:
            await self.reindex(trigger="first use")

    @property
    def providers(self) -> dict[str, str]:
        """Which provider serves each part, for /health and logs."""
        return {
            "stt": self.speech.stt.name,
            "tts": self.speech.tts.name if self.speech.tts else "none",
            "emotion": self.speech.emotion.name,
            "llm": self.settings.llm_model if self.settings.openai_api_key else "extractive",
            "embeddings": self.embedder.name if self.embedder else "none",
            "vectors": self.vectors.name if self.vectors else "sqlite" if self.embedder else "none",
        }


@asynccontextmanager
async def open_components(
    settings: Settings, metrics: Metrics | None = None
) -> AsyncIterator[Components]:
    """Open every store and provider; close all that were opened on exit, or on a failure.

    `metrics` (the web app's) hear of fallbacks, failures, tokens and timings."""
    metrics = metrics or Metrics()
    async with AsyncExitStack() as stack:
        index = IndexStore(settings.path("index.sqlite3"))
        stack.callback(index.close)
        conversations = await stack.enter_async_context(
            ConversationStore(settings.path("conversations.sqlite3"))
        )
        limits = Limits.from_settings(settings)
        stack.push_async_callback(limits.close)
        speech = build_speech(settings, metrics)
        stack.push_async_callback(speech.aclose)
        embedder = build_embedder(settings)
        vectors = build_vector_store(settings)
        if vectors is not None:
            stack.push_async_callback(vectors.aclose)
        graph = build_graph(
            build_retriever(settings, index, embedder, vectors, metrics),
            conversations.checkpointer,
            build_chat_model(settings, metrics),
            top_k=settings.retrieval_top_k,
            observer=metrics,
        )
        agent = Agent(graph, conversations)
        pipeline = Pipeline(settings, speech, agent, metrics=metrics, limits=limits)
        await conversations.expire(settings.thread_ttl_days * 86400)
        yield Components(
            settings,
            index,
            embedder,
            conversations,
            speech,
            agent,
            pipeline,
            vectors,
            metrics=metrics,
            limits=limits,
        )
