"""The OpenAI-compatible chat model (with its fallback) that rewrites queries and answers."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI

from bot.settings import Settings
from rag.errors import ModelError
from rag.language import LANGUAGE_NAMES
from rag.observe import NO_OBSERVER, RagObserver
from rag.types import Hit
from speech.language import language_code

log = logging.getLogger(__name__)

NOT_COVERED = "NOT_COVERED"
# [1] or [1, 3], not glued to what precedes it: `argv[1]` is code, not a citation.
CITATION = re.compile(r"(\s?)(?<![\w\])\[])\[(\d+(?:\s*,\s*\d+)*)\]")


def cited_numbers(text: str) -> list[int]:
    """Every passage number cited in `text`, in order of first mention."""
    numbers: dict[int, None] = {}
    for match in CITATION.finditer(text):
        for part in match.group(2).split(","):
            numbers.setdefault(int(part), None)
    return list(numbers)


ANSWER_SYSTEM = """You are a support assistant that answers ONLY from the numbered passages below.
Rules:
- Use only facts stated in the passages. Never add facts, numbers, names or steps they do not state.
- Cite every fact with the passage number in square brackets, like [1] or [2].
- If the passages do not answer the question, reply with exactly {not_covered} and nothing else.
- Answer in {language}. Be brief: at most five sentences, or a short list of steps.
- {tone}"""

REWRITE_SYSTEM = """Rewrite the user's last message as one standalone search query, using the
conversation only to resolve what it refers to. Reply with the query alone, no quotes."""

TONES = {
    "sad": "The user sounds sad: open with one short, kind sentence.",
    "angry": "The user sounds frustrated: acknowledge it in a few words, then be direct.",
    "fearful": "The user sounds worried: be calm and reassuring.",
    "happy": "The user sounds happy: be warm.",
    "surprised": "The user sounds surprised: be clear.",
    "neutral": "Use a friendly, neutral tone.",
}


@dataclass(frozen=True)
class LlmAnswer:
    text: str
    cited: list[int]
    declined: bool
    tokens: int


class UsageReporter(BaseCallbackHandler):
    """Reports one model's token usage, and its failures as a fall back to the next model."""

    run_inline = True  # a counter update: no worker thread needed

    def __init__(self, model: str, observer: RagObserver, next_model: str | None = None) -> None:
        self.model = model
        self.observer = observer
        self.next_model = next_model

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
                if usage:
                    self.observer.llm_tokens(
                        self.model, usage.get("input_tokens", 0), usage.get("output_tokens", 0)
                    )

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        if self.next_model is not None:
            log.warning("model %s failed, trying %s: %s", self.model, self.next_model, error)
            self.observer.fallback("llm", self.model, self.next_model)


def _model(
    settings: Settings, name: str, observer: RagObserver, next_model: str | None = None
) -> ChatOpenAI:
    key = settings.openai_api_key
    return ChatOpenAI(
        model=name,
        callbacks=[UsageReporter(name, observer, next_model)],
        base_url=settings.openai_base_url,
        api_key=key,
        timeout=settings.llm_timeout,
        max_retries=1,
        temperature=0,
        max_completion_tokens=settings.llm_max_answer_tokens,
    )


def build_chat_model(
    settings: Settings, observer: RagObserver = NO_OBSERVER
) -> Runnable[list[BaseMessage], BaseMessage] | None:
    """The configured model with its fallback, or None when no OPENAI_API_KEY is set; each
    reports its tokens and failures to `observer`."""
    if settings.openai_api_key is None:
        return None
    fallback = settings.llm_fallback_model
    primary: BaseChatModel = _model(settings, settings.llm_model, observer, fallback)
    if fallback:
        return primary.with_fallbacks([_model(settings, fallback, observer)])
    return primary


def _passages(hits: list[Hit]) -> str:
    blocks = []
    for number, hit in enumerate(hits, start=1):
        chunk = hit.chunk
        heading = f"{chunk.title} – {chunk.section}" if chunk.section else chunk.title
        blocks.append(f"[{number}] {heading} ({chunk.source})\n{chunk.text}")
    return "\n\n".join(blocks)


def _history(turns: list[dict[str, str]]) -> list[BaseMessage]:
    messages: list[BaseMessage] = []
    for turn in turns:
        cls = HumanMessage if turn["role"] == "user" else AIMessage
        messages.append(cls(content=turn["content"]))
    return messages


def _tokens(message: BaseMessage) -> int:
    usage = getattr(message, "usage_metadata", None) or {}
    return int(usage.get("total_tokens", 0))


async def rewrite_query(
    model: Runnable[list[BaseMessage], BaseMessage], history: list[dict[str, str]], question: str
) -> tuple[str, int]:
    """A standalone query for a follow-up question and the tokens it took; raises ModelError
    when every model fails."""
    messages = [SystemMessage(REWRITE_SYSTEM), *_history(history), HumanMessage(question)]
    try:
        reply = await model.ainvoke(messages)
    except Exception as exc:
        raise ModelError(f"query rewrite failed: {exc}") from exc
    text = str(reply.content).strip().strip('"')
    return text or question, _tokens(reply)


async def generate_answer(
    model: Runnable[list[BaseMessage], BaseMessage],
    question: str,
    hits: list[Hit],
    history: list[dict[str, str]],
    language: str | None,
    emotion: str | None,
) -> LlmAnswer:
    """A grounded, cited answer; raises ModelError when every configured model fails."""
    lang = LANGUAGE_NAMES.get(language_code(language) or "", "the language of the question")
    system = ANSWER_SYSTEM.format(
        not_covered=NOT_COVERED,
        language=lang,
        tone=TONES.get(emotion or "neutral", TONES["neutral"]),
    )
    messages = [
        SystemMessage(system + "\n\nPassages:\n" + _passages(hits)),
        *_history(history),
        HumanMessage(question),
    ]
    try:
        reply = await model.ainvoke(messages)
    except Exception as exc:
        raise ModelError(f"answer generation failed: {exc}") from exc
    text = str(reply.content).strip()
    tokens = _tokens(reply)
    if not text or NOT_COVERED in text:
        return LlmAnswer("", [], True, tokens)
    cited = sorted({n - 1 for n in cited_numbers(text) if 0 < n <= len(hits)})
    if not cited:
        log.warning("model answer cites no passage; treating it as not grounded")
        return LlmAnswer("", [], True, tokens)
    return LlmAnswer(text, cited, False, tokens)
