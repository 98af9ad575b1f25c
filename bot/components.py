"""Builds the running parts from settings once (stores, speech, retriever, agent, pipeline)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from bot.settings import Settings
from handlers.pipeline import Pipeline
from rag.agent import Agent, build_graph
from rag.embeddings import build_embedder
from rag.index_store import IndexStore
from rag.indexer import index_sources
from rag.llm import build_chat_model
from rag.retrieval import build_retriever
from rag.types import Embedder, IndexReport
from rag.vector_store import VectorStore, build_vector_store
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

    async def reindex(self, sources: list[str] | None = None) -> IndexReport:
        """Incrementally index `sources` (default: the configured knowledge sources)."""
        started = time.perf_counter()
        report = await index_sources(
            sources or self.settings.sources,
            self.index,
            self.embedder,
            chunk_max_chars=self.settings.chunk_max_chars,
            vectors=self.vectors,
        )
        log.info(
            "indexed in %.1f s: %d added, %d changed, %d removed, %d unchanged, %d errors",
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
            await self.reindex()

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
async def open_components(settings: Settings) -> AsyncIterator[Components]:
    """Open every store and provider; close all that were opened on exit, or on a failure."""
    async with AsyncExitStack() as stack:
        index = IndexStore(settings.path("index.sqlite3"))
        stack.callback(index.close)
        conversations = await stack.enter_async_context(
            ConversationStore(settings.path("conversations.sqlite3"))
        )
        speech = build_speech(settings)
        stack.push_async_callback(speech.aclose)
        embedder = build_embedder(settings)
        vectors = build_vector_store(settings)
        if vectors is not None:
            stack.push_async_callback(vectors.aclose)
        graph = build_graph(
            build_retriever(settings, index, embedder, vectors),
            conversations.checkpointer,
            build_chat_model(settings),
            top_k=settings.retrieval_top_k,
        )
        agent = Agent(graph, conversations)
        pipeline = Pipeline(settings, speech, agent)
        await conversations.expire(settings.thread_ttl_days * 86400)
        yield Components(settings, index, embedder, conversations, speech, agent, pipeline, vectors)
