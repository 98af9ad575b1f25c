"""The LangGraph agent: contextualize -> retrieve -> answer with citations | decline, per thread."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from rag.answer_extractive import extractive_answer, stemmed_terms
from rag.errors import ModelError
from rag.language import detect_language, phrase, small_talk
from rag.llm import CITATION, generate_answer, rewrite_query
from rag.observe import NO_OBSERVER, RagObserver
from rag.types import Chunk, Hit, RetrievalResult, Retriever
from speech.language import language_code
from storage.conversations import ConversationStore

log = logging.getLogger(__name__)

MAX_TURNS = 12  # messages kept in a thread's history
MAX_QUERY_WORDS = 40  # a chain of follow-ups never grows the query further
# "Can I renew them?": the previous topic is what the question is about.
_PRONOUN = re.compile(r"\b(it|its|them|they|those|these|itu|tersebut|nya)\b", re.IGNORECASE)
# "And what about the voice?": a follow-up that names its own new topic.
_CONTINUES = re.compile(
    r"^(and|also|but|what about|how about|then|dan|lalu|bagaimana dengan)\b", re.IGNORECASE
)


def _keep_recent(old: list[dict[str, str]], new: list[dict[str, str]]) -> list[dict[str, str]]:
    return (old + new)[-MAX_TURNS:]


def _stage_times(old: dict[str, float], new: dict[str, float]) -> dict[str, float]:
    if new.get("_reset"):
        return {k: v for k, v in new.items() if k != "_reset"}
    return {**old, **new}


class AgentState(TypedDict, total=False):
    history: Annotated[list[dict[str, str]], _keep_recent]
    question: str
    language: str | None
    emotion: str | None
    emotion_score: float
    queries: list[str]
    small_talk: str | None
    query: str
    last_query: str
    hits: list[dict[str, Any]]
    covered: bool
    coverage: float
    answer: str
    spoken: str
    cited: list[int]
    declined: bool
    tokens: int
    timings: Annotated[dict[str, float], _stage_times]


@dataclass(frozen=True)
class AgentAnswer:
    text: str
    hits: list[Hit]  # the cited passages, in citation order
    declined: bool
    query: str
    spoken: str
    language: str | None
    timings: dict[str, float] = field(default_factory=dict)
    tokens: int = 0
    retrieved: list[Hit] = field(default_factory=list)  # every passage retrieval returned


def _hit_to_state(hit: Hit) -> dict[str, Any]:
    return {**hit.chunk.__dict__, "score": hit.score}


def _hit_from_state(data: dict[str, Any]) -> Hit:
    fields = {k: v for k, v in data.items() if k != "score"}
    return Hit(Chunk(**fields), float(data["score"]))


def candidate_queries(question: str, last_query: str | None) -> list[str]:
    """Queries to try in order; without a model, a follow-up borrows the previous query's terms.

    A pronoun ("can I renew them?") points at the previous topic, so the combined query comes
    first. A continuation ("and what about the voice?") or a short question ("for how long?")
    is searched alone first and borrows only when it is not covered on its own.
    """
    if not last_query:
        return [question]
    combined = f"{question} {last_query}"
    if _PRONOUN.search(question):
        return [combined, question]
    if _CONTINUES.search(question) or len(stemmed_terms(question)) <= 2:
        return [question, combined]
    return [question]


def build_graph(
    retriever: Retriever,
    checkpointer: BaseCheckpointSaver[Any],
    model: Runnable[list[BaseMessage], BaseMessage] | None = None,
    top_k: int = 4,
    observer: RagObserver = NO_OBSERVER,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the agent with its checkpointer; `model` None means the extractive answerer.

    A turn invoked with `configurable.use_model=False` (a spent token budget) answers without
    the model. Fallbacks and failures are reported to `observer`."""

    def use_model(config: RunnableConfig) -> bool:
        return model is not None and bool(config.get("configurable", {}).get("use_model", True))

    async def contextualize(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        started = time.perf_counter()
        question = state["question"]
        kind = small_talk(question)
        timings = {"contextualize": 0.0}
        if kind is not None:
            timings["contextualize"] = _ms(started)
            return {"queries": [], "small_talk": kind, "tokens": 0, "timings": timings}
        queries = candidate_queries(question, state.get("last_query"))
        tokens = 0
        if model is not None and use_model(config) and state.get("history"):
            try:
                query, tokens = await rewrite_query(model, state["history"], question)
                queries = [query]
            except ModelError as exc:
                log.warning("falling back to heuristic query rewrite: %s", exc)
                observer.stage_error("retrieve")
                observer.fallback("query_rewrite", "llm", "heuristic")
        timings["contextualize"] = _ms(started)
        return {"queries": queries, "small_talk": None, "tokens": tokens, "timings": timings}

    async def retrieve(state: AgentState) -> dict[str, Any]:
        started = time.perf_counter()
        chosen: RetrievalResult | None = None
        for query in state["queries"]:
            result = await retriever.search(query, top_k)
            chosen = chosen or result
            if result.covered:
                chosen = result
                break
        assert chosen is not None
        log.debug(
            "retrieved %d passages for %r (coverage %.2f, covered=%s)",
            len(chosen.hits),
            chosen.query[:80],
            chosen.coverage,
            chosen.covered,
        )
        return {
            "query": chosen.query,
            "hits": [_hit_to_state(h) for h in chosen.hits],
            "covered": chosen.covered,
            "coverage": chosen.coverage,
            "timings": {"retrieve": _ms(started)},
        }

    def route(state: AgentState) -> str:
        return "answer" if state["covered"] and state["hits"] else "decline"

    async def answer(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        started = time.perf_counter()
        hits = [_hit_from_state(h) for h in state["hits"]]
        language = state.get("language")
        # A weak emotion reading shapes neither answerer's tone.
        emotion = state.get("emotion") if state.get("emotion_score", 0.0) >= 0.5 else None
        tone = phrase(emotion, language) if emotion else ""
        text, cited, declined, tokens, spoken = "", [], False, state.get("tokens", 0), ""
        if model is not None and not use_model(config):
            log.info("the LLM token budget is spent; answering extractively")
            observer.fallback("llm_budget", "llm", "extractive")
        elif model is not None:
            try:
                reply = await generate_answer(
                    model, state["question"], hits, state.get("history", []), language, emotion
                )
                # The model cites passage numbers; renumber them to the cited sources now,
                # so the text in state and history is the text the user sees.
                text, cited, declined, tokens = (
                    renumber_citations(reply.text, reply.cited),
                    reply.cited,
                    reply.declined,
                    tokens + reply.tokens,
                )
            except ModelError as exc:
                log.error("every language model failed, answering extractively: %s", exc)
                observer.stage_error("generate")
                observer.fallback("llm", "llm", "extractive")
        if not text and not declined:
            extract = extractive_answer(state["query"], hits, language, tone)
            text, cited, spoken = extract.text, extract.cited, extract.spoken
        if declined or not text:
            return {**_declined(state), "tokens": tokens, "timings": {"generate": _ms(started)}}
        return {
            "answer": text,
            "spoken": spoken or text,
            "cited": cited,
            "declined": False,
            "tokens": tokens,
            "last_query": " ".join(state["query"].split()[:MAX_QUERY_WORDS]),
            "history": _turn(state["question"], text),
            "timings": {"generate": _ms(started)},
        }

    async def chat(state: AgentState) -> dict[str, Any]:
        """Greetings, thanks and goodbyes get a friendly word, and the last topic stays."""
        text = phrase(state.get("small_talk") or "greeting", state.get("language"))
        return {
            "query": "",
            "hits": [],
            "covered": False,
            "coverage": 0.0,
            "answer": text,
            "spoken": text,
            "cited": [],
            "declined": False,
            "tokens": state.get("tokens", 0),
            "history": _turn(state["question"], text),
            "timings": {"retrieve": 0.0, "generate": 0.0},
        }

    def after_contextualize(state: AgentState) -> str:
        return "chat" if state.get("small_talk") else "retrieve"

    async def decline(state: AgentState) -> dict[str, Any]:
        return {**_declined(state), "tokens": state.get("tokens", 0), "timings": {"generate": 0.0}}

    graph = StateGraph(AgentState)
    graph.add_node("contextualize", contextualize)
    graph.add_node("retrieve", retrieve)
    graph.add_node("answer", answer)
    graph.add_node("decline", decline)
    graph.add_node("chat", chat)
    graph.add_edge(START, "contextualize")
    graph.add_conditional_edges(
        "contextualize", after_contextualize, {"chat": "chat", "retrieve": "retrieve"}
    )
    graph.add_edge("chat", END)
    graph.add_conditional_edges("retrieve", route, {"answer": "answer", "decline": "decline"})
    graph.add_edge("answer", END)
    graph.add_edge("decline", END)
    return graph.compile(checkpointer=checkpointer)


def renumber_citations(text: str, cited: list[int]) -> str:
    """Make [n] markers point at the n-th cited source (cited holds 0-based hit indexes);
    markers that point at no cited source are dropped."""
    position = {index + 1: new for new, index in enumerate(cited, start=1)}

    def renumber(match: re.Match[str]) -> str:
        numbers = [position.get(int(part)) for part in match.group(2).split(",")]
        kept = sorted({n for n in numbers if n is not None})
        return f"{match.group(1)}[{', '.join(map(str, kept))}]" if kept else ""

    return CITATION.sub(renumber, text)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _turn(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def _declined(state: AgentState) -> dict[str, Any]:
    text = phrase("decline", state.get("language"))
    # A declined turn keeps the question in history but not as context for follow-ups.
    return {
        "answer": text,
        "spoken": text,
        "cited": [],
        "declined": True,
        "last_query": "",  # a follow-up to a declined question has nothing to lean on
        "history": _turn(state["question"], text),
    }


class Agent:
    """Answers one question in a thread; the graph's checkpointer remembers the thread."""

    def __init__(
        self, graph: CompiledStateGraph[Any, Any, Any, Any], conversations: ConversationStore
    ) -> None:
        self.graph = graph
        self.conversations = conversations
        # One turn per conversation at a time: a turn reads and then writes the thread's state.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def reset(self, thread_id: str) -> None:
        """Forget a conversation (the /reset command)."""
        await self.conversations.reset(thread_id)

    async def answer(
        self,
        thread_id: str,
        question: str,
        language: str | None = None,
        emotion: str | None = None,
        emotion_score: float = 0.0,
        *,
        use_model: bool = True,
    ) -> AgentAnswer:
        """Answer `question` in `thread_id`; `use_model=False` keeps the LLM out of this turn
        (the extractive answerer answers, grounded and cited)."""
        language = language_code(language) or detect_language(question)
        lock = self._locks.setdefault(thread_id, asyncio.Lock())
        async with lock:
            await self.conversations.touch(thread_id)
            state = await self.graph.ainvoke(
                {
                    "question": question,
                    "language": language,
                    "emotion": emotion,
                    "emotion_score": emotion_score,
                    "timings": {"_reset": 1.0},
                },
                config={"configurable": {"thread_id": thread_id, "use_model": use_model}},
            )
            await self.conversations.compact(thread_id)
        hits = [_hit_from_state(h) for h in state.get("hits", [])]
        cited = [i for i in state.get("cited", []) if i < len(hits)]
        return AgentAnswer(
            text=state["answer"],
            hits=[hits[i] for i in cited],
            retrieved=hits,
            declined=state["declined"],
            query=state["query"],
            spoken=state.get("spoken") or state["answer"],
            language=language,
            timings=dict(state.get("timings", {})),
            tokens=state.get("tokens", 0),
        )
