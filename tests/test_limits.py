"""Limits: per-user questions per minute, hour and day (durable across restarts), daily LLM
token budgets (degrading to the extractive answerer), text length and audio length and size;
each refused politely through the normal delivery path, in the user's language."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.components import Components, open_components
from bot.limits import DAY, LimitPolicy, Limits, Verdict, user_key
from bot.settings import PROJECT_DIR
from bot.web import COMPONENTS
from handlers.messages import IncomingMessage, Media
from rag.language import phrase
from speech.errors import AudioTooLarge
from tests.conftest import SettingsFactory
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.telegram_api import FakeTelegram, message_update, user, voice_update
from tests.scrape import parse, scrape
from tests.test_telegram import Harness, serving, telegram_settings

HANDBOOK = str(PROJECT_DIR / "tests" / "fixtures" / "handbook")
Speak = Callable[[str], Awaitable[bytes]]
T0 = 1_700_000_000.0


# --- the limiter itself ---------------------------------------------------------------------
async def test_minute_and_hour_windows_refuse_and_say_how_long_to_wait(tmp_path: Path) -> None:
    limits = Limits(tmp_path / "limits.sqlite3", LimitPolicy(per_minute=3, per_hour=5))
    try:
        for second in (0, 10, 20):
            assert (await limits.admit("telegram:1", now=T0 + second)).allowed
        assert await limits.admit("telegram:1", now=T0 + 30) == Verdict(False, 30.0, "minute")
        assert (await limits.admit("telegram:2", now=T0 + 30)).allowed  # another user
        assert (await limits.admit("telegram:1", now=T0 + 61)).allowed  # the first one left
        assert (await limits.admit("telegram:1", now=T0 + 130)).allowed  # five this hour
        refused = await limits.admit("telegram:1", now=T0 + 200)
        assert refused == Verdict(False, 3600.0 - 200, "hour")
    finally:
        await limits.close()


async def test_a_retried_message_is_counted_once(tmp_path: Path) -> None:
    limits = Limits(tmp_path / "limits.sqlite3", LimitPolicy(per_minute=2))
    try:
        for _ in range(3):
            assert (await limits.admit("telegram:1", key="update-7", now=T0)).allowed
        assert (await limits.admit("telegram:1", key="update-8", now=T0 + 1)).allowed
        assert not (await limits.admit("telegram:1", key="update-9", now=T0 + 2)).allowed
    finally:
        await limits.close()


async def test_the_day_window_survives_a_restart(tmp_path: Path) -> None:
    path, policy = tmp_path / "limits.sqlite3", LimitPolicy(per_day=2)
    first = Limits(path, policy)
    assert (await first.admit("api:203.0.113.9", now=T0)).allowed
    assert (await first.admit("api:203.0.113.9", now=T0 + 3600)).allowed
    await first.close()
    restarted = Limits(path, policy)
    try:
        verdict = await restarted.admit("api:203.0.113.9", now=T0 + 7200)
        assert verdict == Verdict(False, DAY - 7200, "day")
        assert (await restarted.admit("api:203.0.113.9", now=T0 + DAY + 1)).allowed
    finally:
        await restarted.close()


async def test_token_budgets_per_user_and_in_total(tmp_path: Path) -> None:
    policy = LimitPolicy(tokens_per_user=100, tokens_total=150)
    limits = Limits(tmp_path / "limits.sqlite3", policy)
    try:
        await limits.spend_tokens("telegram:1", 120, now=T0)
        assert await limits.llm_budget("telegram:1", now=T0 + 10) == Verdict(
            False, DAY - 10, "tokens_user"
        )
        assert (await limits.llm_budget("telegram:2", now=T0 + 10)).allowed
        await limits.spend_tokens("telegram:2", 40, now=T0 + 20)
        refused = await limits.llm_budget("telegram:2", now=T0 + 30)
        assert (refused.allowed, refused.window) == (False, "tokens_total")
        assert (await limits.llm_budget("telegram:1", now=T0 + DAY + 1)).allowed
    finally:
        await limits.close()


async def test_limits_that_are_off_touch_no_file(tmp_path: Path) -> None:
    limits = Limits(tmp_path / "limits.sqlite3", LimitPolicy())
    assert (await limits.admit("telegram:1")).allowed
    assert (await limits.llm_budget("telegram:1")).allowed
    await limits.spend_tokens("telegram:1", 500)
    await limits.close()
    assert not (tmp_path / "limits.sqlite3").exists()


async def test_a_broken_limits_file_allows_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    limits = Limits(tmp_path, LimitPolicy(per_minute=1))  # a folder: SQLite cannot open it
    try:
        assert (await limits.admit("telegram:1")).allowed
        assert (await limits.admit("telegram:1")).allowed
    finally:
        await limits.close()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "admitting telegram:1" in errors[0].getMessage()


# --- rate limits through the Telegram channel ---------------------------------------------------
@pytest.fixture(scope="module")
async def bot(
    settings_factory: SettingsFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Harness]:
    fake = await FakeTelegram().start()
    settings = telegram_settings(
        settings_factory, tmp_path_factory.mktemp("limits"), fake, rate_limit_per_minute=2
    )
    harness = await serving(settings, fake)
    yield harness
    await harness.client.close()
    await fake.stop()


async def history(harness: Harness, thread: str) -> list[dict[str, str]]:
    saver = harness.app[COMPONENTS].conversations.checkpointer
    saved = await saver.aget_tuple({"configurable": {"thread_id": thread}})
    assert saved is not None
    turns: list[dict[str, str]] = saved.checkpoint["channel_values"]["history"]
    return turns


async def test_over_the_minute_limit_the_user_is_told_when_to_try_again(bot: Harness) -> None:
    chat = 5301
    for question in (
        "When is the library open?",
        "How many books can I borrow at once?",
        "How do I reset my password?",
        "Where can I print?",  # a flood gets one notice, not one send each
        "And on Sunday?",
    ):
        await bot.post(message_update(chat, text=question))
    await bot.post(message_update(chat, text="/help"))  # commands are not limited
    answers = await bot.answers(chat, 4)
    await bot.idle()
    assert len(bot.fake.messages(chat)) == 4
    assert "Library" in answers[0].text and "Library" in answers[1].text
    assert answers[2].text.startswith("You've sent me a lot of questions")
    assert re.search(r"try again in (a minute|\d+ seconds)\.$", answers[2].text)
    assert "/reset" in answers[3].text
    questions = [
        t["content"] for t in await history(bot, f"telegram:{chat}") if t["role"] == "user"
    ]
    assert questions == ["When is the library open?", "How many books can I borrow at once?"]
    metrics = await scrape(bot.client)
    assert metrics.value("suara_limited_total", channel="telegram", limit="minute") == 3
    assert metrics.value("suara_messages_total", channel="telegram", kind="text") == 3
    assert metrics.value("suara_messages_total", channel="telegram", kind="command") == 1


async def test_the_limit_is_per_user_and_polite_in_indonesian(bot: Harness) -> None:
    person = user(5302, language="id")
    for question in ("Kapan perpustakaan buka?", "Berapa buku yang bisa saya pinjam?", "Halo?"):
        await bot.post(message_update(5302, text=question, from_user=person))
    await bot.post(message_update(5303, text="When is the library open?"))  # someone else
    answers = await bot.answers(5302, 3)
    assert answers[2].text.startswith("Anda mengirim banyak pertanyaan")
    assert re.search(r"coba lagi dalam (1 menit|\d+ detik)\.$", answers[2].text)
    assert "Library" in (await bot.answers(5303, 1))[0].text


async def test_a_voice_note_longer_than_allowed_is_refused_before_downloading(
    bot: Harness,
) -> None:
    chat, calls = 5304, bot.fake.calls.count("getFile")
    file_id = bot.fake.add_file(b"OggS" + b"\0" * 100)
    await bot.post(voice_update(chat, file_id, size=104, duration=600))  # MAX_AUDIO_SECONDS 120
    [answer] = await bot.answers(chat, 1)
    assert "too long" in answer.text
    assert bot.fake.calls.count("getFile") == calls
    await bot.idle()
    metrics = await scrape(bot.client)
    assert metrics.value("suara_limited_total", limit="audio_seconds") == 1


# --- the pipeline: budgets, text and audio -----------------------------------------------------
def components_for(tmp_path: Path, **overrides: Any) -> Any:
    from bot.settings import load_settings

    settings = load_settings(
        _env_file=None, data_dir=tmp_path, knowledge_sources=[HANDBOOK], **overrides
    )
    return open_components(settings)


def question(text: str | None, user_id: str, audio: bytes | None = None) -> IncomingMessage:
    media = Media(mime_type="audio/ogg", data=audio) if audio is not None else None
    return IncomingMessage(
        channel="api", chat_id=user_id, message_id=f"m-{user_id}", user_id=user_id, text=text,
        media=media, want_voice=False,
    )  # fmt: skip


def metric(components: Components, name: str, **labels: str) -> float:
    return parse(components.metrics.render().decode()).value(name, **labels)


async def test_a_spent_token_budget_degrades_to_the_cited_extractive_answer(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.chat_handler = lambda body: "Up to ten books at a time [1]."
    async with components_for(
        tmp_path,
        openai_api_key=fake_openai.api_key,
        openai_base_url=fake_openai.base_url,
        llm_daily_tokens_per_user=50,
        tts_provider="none",
    ) as parts:
        await parts.ensure_indexed()
        ask = "How many books can I borrow?"
        first = await parts.pipeline.handle(question(ask, "u1"))
        assert first.text == "Up to ten books at a time [1]."
        calls = len(fake_openai.calls("/chat/completions"))
        degraded = await parts.pipeline.handle(question(ask, "u1"))
        assert len(fake_openai.calls("/chat/completions")) == calls  # no LLM this time
        assert "ten books" in degraded.text and "[1]" in degraded.text  # quoted and cited
        assert degraded.sources and degraded.sources[0].source.endswith("library.md")
        other = await parts.pipeline.handle(question(ask, "u2"))
        assert other.text == "Up to ten books at a time [1]."  # a budget of one's own
        limits = parts.limits
        assert limits is not None
        verdict = await limits.llm_budget(user_key("api", "u1"))
        assert (verdict.allowed, verdict.window) == (False, "tokens_user")
        fallback = {"component": "llm_budget", "from_": "llm", "to": "extractive"}
        assert metric(parts, "suara_provider_fallbacks_total", **fallback) == 1


async def test_too_long_a_text_gets_a_polite_note_not_an_answer(tmp_path: Path) -> None:
    async with components_for(tmp_path, max_text_chars=40) as parts:
        await parts.ensure_indexed()
        english = await parts.pipeline.handle(
            question("How many books can I borrow at once from the library?", "u1")
        )
        indonesian = await parts.pipeline.handle(
            question("Berapa banyak buku yang dapat saya pinjam dari perpustakaan?", "u2")
        )
        fits = await parts.pipeline.handle(question("How many books can I borrow?", "u3"))
        assert metric(parts, "suara_limited_total", channel="api", limit="text") == 2
    assert english.error == indonesian.error == "TextTooLong"
    assert english.text == phrase("text_too_long", "en").format(limit=40)
    assert indonesian.text.startswith("Pesan itu terlalu panjang") and "40" in indonesian.text
    assert english.sources == [] and "ten books" in fits.text


async def test_audio_larger_than_allowed_is_refused_politely(tmp_path: Path, speak: Speak) -> None:
    audio = await speak("How many books can I borrow from the library at once?")
    async with components_for(tmp_path, max_audio_bytes=len(audio) - 1) as parts:
        reply = await parts.pipeline.handle(question(None, "u1", audio=audio))
        message = question(None, "u2", audio=audio)
        indonesian = await parts.pipeline.handle(
            IncomingMessage(**{**message.__dict__, "language": "id"})
        )
        assert metric(parts, "suara_limited_total", limit="audio_bytes") == 2
    assert reply.error == "AudioTooLarge" and reply.text == AudioTooLarge.user_message
    assert indonesian.text == phrase("AudioTooLarge", "id")
    assert reply.transcript is None and reply.sources == []
