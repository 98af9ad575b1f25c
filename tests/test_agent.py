"""The LangGraph agent: grounded answers, declines, per-chat memory, the LLM and its fallback."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.settings import PROJECT_DIR, Settings, load_settings
from rag.agent import Agent, AgentAnswer, build_graph
from rag.index_store import IndexStore
from rag.indexer import index_sources
from rag.llm import NOT_COVERED, build_chat_model
from rag.retrieval import build_retriever
from storage.conversations import ConversationStore
from tests.fakes.openai_api import FakeOpenAI

HANDBOOK = PROJECT_DIR / "tests" / "fixtures" / "handbook"


@pytest.fixture(scope="module")
async def index(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[IndexStore]:
    store = IndexStore(tmp_path_factory.mktemp("index") / "index.sqlite3")
    report = await index_sources([str(HANDBOOK)], store, None, chunk_max_chars=1200)
    assert report.added == 4
    yield store
    store.close()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(_env_file=None, data_dir=tmp_path, **overrides)


@pytest.fixture
async def conversations(tmp_path: Path) -> AsyncIterator[ConversationStore]:
    async with ConversationStore(tmp_path / "conversations.sqlite3") as store:
        yield store


def make_agent(settings: Settings, index: IndexStore, conversations: ConversationStore) -> Agent:
    retriever = build_retriever(settings, index, None)
    graph = build_graph(retriever, conversations.checkpointer, build_chat_model(settings))
    return Agent(graph, conversations)


async def test_extractive_answer_quotes_and_cites(
    tmp_path: Path, index: IndexStore, conversations: ConversationStore
) -> None:
    agent = make_agent(make_settings(tmp_path), index, conversations)
    answer = await agent.answer("cli:1", "How do I get on the wifi on campus?")
    assert not answer.declined
    assert "CampusNet" in answer.text
    assert "[1]" in answer.text
    assert answer.hits[0].chunk.source.endswith("it-services.md")
    assert answer.hits[0].chunk.section == "Connecting to the campus Wi-Fi"
    assert_quotes_come_from_their_sources(answer)


def assert_quotes_come_from_their_sources(answer: AgentAnswer) -> None:
    """Every quote of an extractive answer stands verbatim in the passage its [n] cites."""
    quotes = re.findall(r"” \[(\d+)\]: (.+)", answer.text)
    assert quotes, answer.text
    for number, quote in quotes:
        passage = " ".join(answer.hits[int(number) - 1].chunk.text.split())
        assert quote.removesuffix(" …") in passage


async def test_uncovered_question_is_declined(
    tmp_path: Path, index: IndexStore, conversations: ConversationStore
) -> None:
    agent = make_agent(make_settings(tmp_path), index, conversations)
    answer = await agent.answer("cli:1", "What is the boiling point of mercury?")
    assert answer.declined
    assert answer.hits == []
    assert "couldn't find" in answer.text


async def test_follow_up_uses_this_chats_memory_only(
    tmp_path: Path, index: IndexStore, conversations: ConversationStore
) -> None:
    agent = make_agent(make_settings(tmp_path), index, conversations)
    first = await agent.answer("telegram:alice", "How many books can I borrow?")
    assert "ten books" in first.text
    follow_up = await agent.answer("telegram:alice", "And can I renew them?")
    assert not follow_up.declined
    assert "renewed twice" in follow_up.text

    # Another chat has no such history: its state holds only its own turns.
    await agent.answer("telegram:bob", "When does course registration close?")
    bob = await agent.graph.aget_state({"configurable": {"thread_id": "telegram:bob"}})
    alice = await agent.graph.aget_state({"configurable": {"thread_id": "telegram:alice"}})
    assert len(bob.values["history"]) == 2
    assert len(alice.values["history"]) == 4


async def test_small_talk_gets_a_friendly_word_and_keeps_the_topic(
    tmp_path: Path, index: IndexStore, conversations: ConversationStore
) -> None:
    agent = make_agent(make_settings(tmp_path), index, conversations)
    await agent.answer("cli:talk", "How many books can I borrow?")
    thanks = await agent.answer("cli:talk", "thanks!")
    assert thanks.text == "You're welcome! Is there anything else I can help with?"
    assert not thanks.declined and thanks.hits == []
    follow_up = await agent.answer("cli:talk", "And can I renew them?")
    assert "renewed twice" in follow_up.text
    hello = await agent.answer("cli:hai", "halo", language="id")
    assert hello.text.startswith("Halo!")


async def test_a_follow_up_never_leans_on_a_declined_question(
    tmp_path: Path, index: IndexStore, conversations: ConversationStore
) -> None:
    agent = make_agent(make_settings(tmp_path), index, conversations)
    await agent.answer("cli:gold", "How many books can I borrow?")
    assert (await agent.answer("cli:gold", "What is the price of gold today?")).declined
    vague = await agent.answer("cli:gold", "how much?")
    assert vague.declined
    assert "books" not in vague.text


async def test_each_thread_keeps_only_its_latest_checkpoint(
    tmp_path: Path, index: IndexStore
) -> None:
    path = tmp_path / "conversations.sqlite3"
    async with ConversationStore(path) as store:
        agent = make_agent(make_settings(tmp_path), index, store)
        for question in ("How many books can I borrow?", "And can I renew them?", "thanks"):
            await agent.answer("cli:compact", question)
        state = await agent.graph.aget_state({"configurable": {"thread_id": "cli:compact"}})
        assert len(state.values["history"]) == 6
    db = sqlite3.connect(path)
    rows = db.execute("SELECT COUNT(*) FROM checkpoints WHERE thread_id = 'cli:compact'")
    assert rows.fetchone()[0] == 1
    db.close()


async def test_short_follow_up_borrows_the_previous_question(
    tmp_path: Path, index: IndexStore, conversations: ConversationStore
) -> None:
    agent = make_agent(make_settings(tmp_path), index, conversations)
    await agent.answer("cli:short", "How many books can I borrow?")
    follow_up = await agent.answer("cli:short", "For how long?")
    assert not follow_up.declined
    assert "three weeks" in follow_up.text


async def test_a_follow_up_naming_a_new_topic_searches_it_first(
    tmp_path: Path, index: IndexStore, conversations: ConversationStore
) -> None:
    agent = make_agent(make_settings(tmp_path), index, conversations)
    await agent.answer("cli:topic", "How many books can I borrow?")
    printing = await agent.answer("cli:topic", "And what about printing?")
    assert printing.hits[0].chunk.section == "Printing"
    weekend = await agent.answer("cli:topic", "When does the library open on weekdays?")
    assert "8 a.m." in weekend.text
    saturday = await agent.answer("cli:topic", "What about Saturdays?")
    assert "9 a.m." in saturday.text


async def test_numbers_alone_ask_nothing(
    tmp_path: Path, index: IndexStore, conversations: ConversationStore
) -> None:
    agent = make_agent(make_settings(tmp_path), index, conversations)
    for question in ("20", "1", "15 40"):
        assert (await agent.answer("cli:digits", question)).declined, question


async def test_brackets_in_a_document_are_quoted_verbatim_not_taken_for_citations(
    tmp_path: Path, conversations: ConversationStore
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "scripts.md").write_text(
        "# Scripts\n\n## Reading arguments\n\n"
        "The backup script reads the target folder from sys.argv[1] and the retention "
        "from sys.argv[2]. On failure it retries three times [3].\n"
    )
    (docs / "other.md").write_text("# Other\n\n## Parking\n\nPermits cost 90 dollars.\n")
    store = IndexStore(tmp_path / "index.sqlite3")
    try:
        await index_sources([str(docs)], store, None, chunk_max_chars=1200)
        agent = make_agent(make_settings(tmp_path), store, conversations)
        question = "Which argument gives the backup script its folder?"
        answer = await agent.answer("cli:argv", question)
    finally:
        store.close()
    assert "sys.argv[1] and the retention from sys.argv[2]" in answer.text
    assert "three times [3]" in answer.text
    assert "” [1]: " in answer.text and len(answer.hits) == 1
    assert answer.hits[0].chunk.source.endswith("scripts.md")
    assert_quotes_come_from_their_sources(answer)


async def test_memory_survives_a_restart_and_reset_forgets(
    tmp_path: Path, index: IndexStore
) -> None:
    settings = make_settings(tmp_path)
    path = tmp_path / "conversations.sqlite3"
    async with ConversationStore(path) as store:
        await make_agent(settings, index, store).answer("cli:7", "How many books can I borrow?")
    async with ConversationStore(path) as store:
        agent = make_agent(settings, index, store)
        follow_up = await agent.answer("cli:7", "And can I renew them?")
        assert "renewed twice" in follow_up.text
        await agent.reset("cli:7")
        state = await agent.graph.aget_state({"configurable": {"thread_id": "cli:7"}})
        assert state.values == {}


async def test_idle_conversations_expire(tmp_path: Path, index: IndexStore) -> None:
    async with ConversationStore(tmp_path / "c.sqlite3") as store:
        agent = make_agent(make_settings(tmp_path), index, store)
        await agent.answer("cli:old", "How many books can I borrow?")
        assert await store.expire(max_age_seconds=3600) == 0
        assert await store.expire(max_age_seconds=0) == 1
        state = await agent.graph.aget_state({"configurable": {"thread_id": "cli:old"}})
        assert state.values == {}


async def test_tone_and_language_shape_the_reply(
    tmp_path: Path, index: IndexStore, conversations: ConversationStore
) -> None:
    agent = make_agent(make_settings(tmp_path), index, conversations)
    sad = await agent.answer("cli:2", "I lost my student card, what do I do?", "en", "sad", 0.8)
    assert sad.text.startswith("I'm sorry to hear that.")
    assert "15 dollars" in sad.text
    declined = await agent.answer("cli:3", "Siapa presiden pertama Amerika Serikat?")
    assert declined.declined
    assert declined.language == "id"
    assert declined.text.startswith("Maaf")


def llm_settings(tmp_path: Path, fake: FakeOpenAI, **extra: Any) -> Settings:
    return make_settings(
        tmp_path,
        openai_api_key=fake.api_key,
        openai_base_url=fake.base_url,
        llm_model="primary-model",
        llm_fallback_model="fallback-model",
        **extra,
    )


async def test_model_code_brackets_survive_and_stray_citations_go(
    tmp_path: Path, index: IndexStore, conversations: ConversationStore, fake_openai: FakeOpenAI
) -> None:
    fake_openai.chat_handler = lambda body: "Use args[0] for it [2]. Unrelated claim [9]."
    agent = make_agent(llm_settings(tmp_path, fake_openai), index, conversations)
    answer = await agent.answer("cli:code", "When is the library open on Saturday?")
    assert answer.text == "Use args[0] for it [1]. Unrelated claim."
    assert len(answer.hits) == 1


def grounded_reply(body: dict[str, Any]) -> str:
    system = body["messages"][0]["content"]
    if "Saturdays it opens at 9 a.m." in system:
        return "On Saturdays the library opens at 9 a.m. and closes at 5 p.m. [1]"
    return NOT_COVERED


async def test_llm_answers_from_passages_with_citations(
    tmp_path: Path, index: IndexStore, conversations: ConversationStore, fake_openai: FakeOpenAI
) -> None:
    fake_openai.chat_handler = grounded_reply
    agent = make_agent(llm_settings(tmp_path, fake_openai), index, conversations)
    answer = await agent.answer("cli:1", "When is the library open on Saturday?")
    assert answer.text == "On Saturdays the library opens at 9 a.m. and closes at 5 p.m. [1]"
    assert answer.hits[0].chunk.section == "Opening hours"
    assert answer.tokens > 0
    request = fake_openai.calls("/chat/completions")[-1].body
    assert request["model"] == "primary-model"
    assert "ONLY from the numbered passages" in request["messages"][0]["content"]


async def test_llm_falls_back_to_the_second_model(
    tmp_path: Path, index: IndexStore, conversations: ConversationStore, fake_openai: FakeOpenAI
) -> None:
    fake_openai.chat_handler = grounded_reply
    fake_openai.fail_models = {"primary-model"}
    agent = make_agent(llm_settings(tmp_path, fake_openai), index, conversations)
    answer = await agent.answer("cli:1", "When is the library open on Saturday?")
    assert "9 a.m." in answer.text
    models = [r.body["model"] for r in fake_openai.calls("/chat/completions")]
    assert models[-2:] == ["primary-model", "fallback-model"]


async def test_llm_saying_not_covered_is_a_decline(
    tmp_path: Path, index: IndexStore, conversations: ConversationStore, fake_openai: FakeOpenAI
) -> None:
    fake_openai.chat_handler = lambda body: NOT_COVERED
    agent = make_agent(llm_settings(tmp_path, fake_openai), index, conversations)
    answer = await agent.answer("cli:1", "How much does it cost to borrow a book late?")
    assert answer.declined
    assert answer.hits == []


async def test_uncited_llm_answer_is_not_trusted(
    tmp_path: Path, index: IndexStore, conversations: ConversationStore, fake_openai: FakeOpenAI
) -> None:
    fake_openai.chat_handler = lambda body: "The library is open all night on Saturdays."
    agent = make_agent(llm_settings(tmp_path, fake_openai), index, conversations)
    answer = await agent.answer("cli:1", "When is the library open on Saturday?")
    assert answer.declined
    assert "all night" not in answer.text


async def test_every_model_failing_degrades_to_the_extractive_answer(
    tmp_path: Path, index: IndexStore, conversations: ConversationStore, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_models = {"primary-model", "fallback-model"}
    agent = make_agent(llm_settings(tmp_path, fake_openai), index, conversations)
    answer = await agent.answer("cli:1", "When is the library open on Saturday?")
    assert not answer.declined
    assert "9 a.m." in answer.text
    assert answer.hits[0].chunk.source.endswith("library.md")


async def test_llm_rewrites_follow_ups_with_history(
    tmp_path: Path, index: IndexStore, conversations: ConversationStore, fake_openai: FakeOpenAI
) -> None:
    def handler(body: dict[str, Any]) -> str:
        system = body["messages"][0]["content"]
        if system.startswith("Rewrite"):
            return "How long can I keep borrowed library books?"
        if "three weeks" in system:
            return "You can keep them for three weeks [1]."
        return NOT_COVERED

    fake_openai.chat_handler = handler
    agent = make_agent(llm_settings(tmp_path, fake_openai), index, conversations)
    await agent.answer("cli:9", "How many books can I borrow?")
    follow_up = await agent.answer("cli:9", "For how long?")
    assert follow_up.query == "How long can I keep borrowed library books?"
    assert follow_up.text == "You can keep them for three weeks [1]."
    rewrite = [r for r in fake_openai.calls("/chat/completions") if "Rewrite" in str(r.body)][-1]
    assert any("How many books" in str(m["content"]) for m in rewrite.body["messages"])
