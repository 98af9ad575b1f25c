"""/metrics, /ready and /health of the served app after real messages: a text and a real voice
note through the fake Bot API, forced failures, and an LLM behind the fake OpenAI API."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.web import COMPONENTS, create_app
from tests.conftest import SettingsFactory
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.telegram_api import FakeTelegram, message_update, voice_update
from tests.scrape import scrape
from tests.test_telegram import Harness, serving, telegram_settings

METRICS_TOKEN = "metrics-token-0123456789"
Speak = Callable[[str], Awaitable[bytes]]
FAMILIES = {
    "suara_messages",
    "suara_stage_seconds",
    "suara_stage_errors",
    "suara_provider_fallbacks",
    "suara_llm_tokens",
    "suara_limited",
    "suara_inbox_messages",
    "suara_inbox_oldest_pending_age_seconds",
}


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram().start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def bot(
    fake: FakeTelegram, settings_factory: SettingsFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Harness]:
    harness = await serving(
        telegram_settings(settings_factory, tmp_path_factory.mktemp("metrics"), fake), fake
    )
    yield harness
    await harness.client.close()


async def test_a_text_and_a_voice_note_show_in_every_family(bot: Harness, speak: Speak) -> None:
    before = await scrape(bot.client)
    assert before.families >= FAMILIES
    audio = await speak("How many books can I borrow from the library at once?")
    await bot.post(message_update(5101, text="When is the library open?"))
    await bot.post(voice_update(5102, bot.fake.add_file(audio), size=len(audio), duration=4))
    await bot.answers(5101, 1)
    await bot.answers(5102, 1)
    await bot.idle()
    after = await scrape(bot.client)

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert grew("suara_messages_total", channel="telegram", kind="text") == 1
    assert grew("suara_messages_total", channel="telegram", kind="voice") == 1
    for stage, count in {"download": 1, "transcode": 1, "stt": 1, "tts": 1, "retrieve": 2}.items():
        assert grew("suara_stage_seconds_count", stage=stage) == count, stage
    assert grew("suara_stage_seconds_count", stage="total") == 2
    assert grew("suara_stage_seconds_count", stage="send") == 2
    # The voice note took longer than 10 ms to recognise: it is not in the first bucket.
    assert grew("suara_stage_seconds_bucket", stage="stt", le="0.01") == 0
    assert grew("suara_stage_seconds_bucket", stage="stt", le="+Inf") == 1
    assert grew("suara_stage_seconds_sum", stage="stt") > 0.01
    assert after.value("suara_inbox_messages", status="pending") == 0
    assert after.value("suara_inbox_messages", status="done") >= 2
    assert after.has("suara_inbox_oldest_pending_age_seconds")
    assert after.value("suara_stage_errors_total") == before.value("suara_stage_errors_total")


async def test_failed_downloads_and_sends_are_counted_and_retried(
    bot: Harness, speak: Speak
) -> None:
    before = await scrape(bot.client)
    audio = await speak("When is the library open?")
    bot.fake.fail("getFile", 502)
    await bot.post(voice_update(5103, bot.fake.add_file(audio), size=len(audio)))
    await bot.answers(5103, 1)
    bot.fake.fail("sendMessage", 502)
    await bot.post(message_update(5104, text="When is the library open?"))
    await bot.answers(5104, 1)
    await bot.idle()
    after = await scrape(bot.client)
    for stage in ("download", "send"):
        errors = "suara_stage_errors_total"
        assert after.value(errors, stage=stage) - before.value(errors, stage=stage) == 1, stage
    messages = "suara_messages_total"
    assert after.value(messages) - before.value(messages) == 2  # both answered in the end


async def test_ready_is_503_until_the_first_index_and_the_models_then_200(
    settings_factory: SettingsFactory, tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    settings = settings_factory(
        data_dir=tmp_path,
        knowledge_sources=[str(Path(__file__).parent / "fixtures" / "handbook")],
        reindex_on_start=False,
        openai_api_key=fake_openai.api_key,
        openai_base_url=fake_openai.base_url,
        stt_provider="openai",
        tts_provider="openai",
        metrics_token=METRICS_TOKEN,
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        # With METRICS_TOKEN, /metrics wants it as a Bearer token; /ready and /health stay open.
        for wrong in ({}, {"Authorization": "Bearer nope"}, {"Authorization": METRICS_TOKEN}):
            refused = await client.get("/metrics", headers=wrong)
            assert refused.status == 401 and refused.headers["WWW-Authenticate"].startswith(
                "Bearer"
            )
        scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert scraped.status == 200 and "suara_inbox_messages" in await scraped.text()
        response = await client.get("/ready")
        assert response.status == 503
        body = await response.json()
        assert body["ready"] is False
        assert "the first index is not built yet" in body["reasons"]

        await client.server.app[COMPONENTS].ensure_indexed()
        deadline = time.monotonic() + 30
        while (response := await client.get("/ready")).status != 200:
            assert time.monotonic() < deadline, await response.json()
            await asyncio.sleep(0.05)
        assert await response.json() == {"ready": True}
        health = await (await client.get("/health")).json()
        states = health["provider_states"]
        assert states["stt"] == {"name": "openai", "state": "ready", "last_failure": None}
        assert states["llm"]["name"] == "gpt-4o-mini" and states["llm"]["state"] == "ready"
        assert states["embeddings"]["state"] == states["vectors"]["state"] == "off"
        assert health["status"] == "ok" and health["store"]["status"] == "ok"

        # A store that breaks under the running app (its table gone): /health says so with a
        # 503, /ready takes the app out of rotation.
        index_path = client.server.app[COMPONENTS].index.path
        with sqlite3.connect(index_path) as broken:
            broken.execute("DROP TABLE documents")
        response = await client.get("/health")
        failing = await response.json()
        assert response.status == 503 and failing["status"] == "failing"
        assert "no such table: documents" in failing["store"]["error"]
        assert failing["index"]["status"] == "none" and failing["provider_states"]
        response = await client.get("/ready")
        assert response.status == 503
        assert any("cannot be read" in reason for reason in (await response.json())["reasons"])


def cited_answer(body: dict[str, Any]) -> str:
    return "The library opens at 9 a.m. on Saturdays [1]."


async def test_llm_tokens_fallbacks_and_a_failed_tts_are_counted(
    fake: FakeTelegram,
    fake_openai: FakeOpenAI,
    settings_factory: SettingsFactory,
    tmp_path: Path,
) -> None:
    fake_openai.chat_handler = cited_answer
    fake_openai.fail_models = {"primary-model", "gpt-4o-mini-tts"}
    settings = telegram_settings(
        settings_factory,
        tmp_path,
        fake,
        openai_api_key=fake_openai.api_key,
        openai_base_url=fake_openai.base_url,
        llm_model="primary-model",
        llm_fallback_model="fallback-model",
        stt_provider="openai",
        tts_provider="openai",
        voice_replies="always",
    )
    harness = await serving(settings, fake)
    try:
        await harness.post(message_update(5105, text="When is the library open on Saturday?"))
        [answer] = await harness.answers(5105, 1)
        assert "9 a.m." in answer.text
        await harness.idle()
        assert harness.fake.messages(5105, "sendVoice") == []  # TTS failed: text only
        metrics = await scrape(harness.client)
        health = await (await harness.client.get("/health")).json()
    finally:
        await harness.client.close()
    fallbacks = "suara_provider_fallbacks_total"
    llm = {"component": "llm", "from_": "primary-model", "to": "fallback-model"}
    assert metrics.value(fallbacks, **llm) == 1
    assert metrics.value(fallbacks, component="tts", from_="openai", to="text") == 1
    assert metrics.value("suara_stage_errors_total", stage="tts") == 1
    usage = fake_openai.calls("/chat/completions")[-1]
    assert usage.body["model"] == "fallback-model"
    prompt = metrics.value("suara_llm_tokens_total", model="fallback-model", type="prompt")
    completion = metrics.value("suara_llm_tokens_total", model="fallback-model", type="completion")
    assert prompt > 100  # the passages
    assert completion == len(cited_answer({}).split())
    assert metrics.value("suara_llm_tokens_total", model="primary-model") == 0
    states = health["provider_states"]
    assert states["llm"]["state"] == states["tts"]["state"] == "degraded"
    assert "primary-model fell back to fallback-model" in states["llm"]["last_failure"]["what"]
    assert states["stt"]["state"] == "ready"


async def test_every_model_failing_falls_back_to_the_extractive_answerer(
    fake: FakeTelegram,
    fake_openai: FakeOpenAI,
    settings_factory: SettingsFactory,
    tmp_path: Path,
) -> None:
    fake_openai.fail_models = {"primary-model"}
    settings = telegram_settings(
        settings_factory,
        tmp_path,
        fake,
        openai_api_key=fake_openai.api_key,
        openai_base_url=fake_openai.base_url,
        llm_model="primary-model",
        stt_provider="openai",
        tts_provider="none",
    )
    harness = await serving(settings, fake)
    try:
        await harness.post(message_update(5106, text="When is the library open on Saturday?"))
        [answer] = await harness.answers(5106, 1)
        await harness.idle()
        metrics = await scrape(harness.client)
    finally:
        await harness.client.close()
    assert "[1]" in answer.text  # quoted and cited by the extractive answerer
    fallback = {"component": "llm", "from_": "llm", "to": "extractive"}
    assert metrics.value("suara_provider_fallbacks_total", **fallback) == 1
    assert metrics.value("suara_stage_errors_total", stage="generate") == 1
