"""Log lines carry the id of the message they are about, through every stage, in text or JSON
(LOG_FORMAT), including lines written from worker threads."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.log_context import bind_message, current_message
from bot.logs import log_handler
from bot.settings import PROJECT_DIR
from tests.conftest import SettingsFactory
from tests.fakes.telegram_api import FakeTelegram, message_update, voice_update
from tests.serve_process import cli_env
from tests.test_telegram import Harness, serving, telegram_settings

Speak = Callable[[str], Awaitable[bytes]]


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Everything logged during the test, as LOG_FORMAT=json writes it, from DEBUG up."""
    buffer = io.StringIO()
    handler = log_handler("json", buffer)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture(scope="module")
async def bot(
    settings_factory: SettingsFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Harness]:
    fake = await FakeTelegram().start()
    settings = telegram_settings(settings_factory, tmp_path_factory.mktemp("logs"), fake)
    harness = await serving(settings, fake)
    yield harness
    await harness.client.close()
    await fake.stop()


def parse(buffer: io.StringIO) -> list[dict[str, Any]]:
    lines = buffer.getvalue().splitlines()
    assert lines
    return [json.loads(line) for line in lines]  # every line is one JSON object


async def test_a_voice_note_logs_the_same_message_id_through_every_stage(
    bot: Harness, speak: Speak, json_lines: io.StringIO
) -> None:
    audio = await speak("How many books can I borrow from the library at once?")
    voice = voice_update(5201, bot.fake.add_file(audio), size=len(audio), duration=4)
    text = message_update(5202, text="When is the library open?")
    await asyncio.gather(bot.post(voice), bot.post(text))
    await bot.answers(5201, 1)
    await bot.answers(5202, 1)
    await bot.idle()
    records = parse(json_lines)
    voice_id, text_id = f"telegram:{voice['update_id']}", f"telegram:{text['update_id']}"

    def loggers(message_id: str) -> set[str]:
        return {r["logger"] for r in records if r["message_id"] == message_id}

    # dispatcher -> pipeline -> speech (in worker threads) -> rag -> delivery, one id throughout.
    stages = {"bot.dispatcher", "handlers.pipeline", "rag.agent", "bot.responder"}
    assert loggers(voice_id) >= stages | {"speech.stt_whisper", "speech.tts_piper"}
    assert loggers(text_id) >= stages
    assert "speech.stt_whisper" not in loggers(text_id)  # each message keeps its own id
    answered = [r for r in records if r["message"].startswith("answered telegram:5201")]
    assert [r["message_id"] for r in answered] == [voice_id]
    assert answered[0]["level"] == "INFO" and answered[0]["thread_id"] == "telegram:5201"
    assert all("timestamp" in r for r in records)


async def test_the_id_reaches_worker_threads_and_nested_binds_keep_the_outer_one(
    json_lines: io.StringIO,
) -> None:
    log = logging.getLogger("tests.worker")
    with bind_message("api:req-1"):
        await asyncio.to_thread(log.info, "in a worker thread")
        with bind_message("api:inner", override=False) as kept:
            assert kept == current_message() == "api:req-1"
    log.info("outside any message")
    assert current_message() is None
    records = [r for r in parse(json_lines) if r["logger"] == "tests.worker"]
    assert [(r["message"], r["message_id"]) for r in records] == [
        ("in a worker thread", "api:req-1"),
        ("outside any message", None),
    ]


def test_text_lines_show_the_id_in_brackets_only_inside_a_message() -> None:
    buffer = io.StringIO()
    log = logging.getLogger("tests.text")
    handler = log_handler("text", buffer)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with bind_message("telegram:42"):
            log.info("inside")
        log.info("outside")
    finally:
        log.removeHandler(handler)
    inside, outside = buffer.getvalue().splitlines()
    assert inside.endswith(" INFO tests.text [telegram:42]: inside")
    assert outside.endswith(" INFO tests.text: outside")


def test_log_format_json_makes_the_cli_log_json_lines(tmp_path: Path) -> None:
    env = cli_env(tmp_path, LOG_FORMAT="json", LOG_LEVEL="INFO")
    done = subprocess.run(
        [sys.executable, "-m", "bot", "ask", "--json", "When is the library open?"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Library" in json.loads(done.stdout)["answer"]
    records = [json.loads(line) for line in done.stderr.splitlines()]
    [answered] = [r for r in records if r["message"].startswith("answered cli:local")]
    assert answered["message_id"].startswith("cli:") and answered["logger"] == "handlers.pipeline"
