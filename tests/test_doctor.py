"""`python -m bot doctor` against the local fakes: passing, wrong keys, unreachable and hanging
services, bad settings, and what is not configured."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.settings import PROJECT_DIR
from rag.index_runs import RunLog
from rag.index_store import IndexStore
from rag.types import IndexReport
from tests.fakes.emotion_api import FakeEmotionApi
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.pinecone_api import FakePinecone
from tests.fakes.prosa_ws import FakeProsa
from tests.fakes.telegram_api import BOT_USERNAME, TOKEN, FakeTelegram
from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, WHATSAPP_NUMBER, FakeTwilio
from tests.serve_process import HANDBOOK, cli_env

PUBLIC = "https://bot.example.org"
LOCAL_CHECKS = {"settings", "data-dir", "ffmpeg", "knowledge", "index"}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The doctor configures logging for its process; give the next tests theirs back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    fake = await FakeTelegram().start()
    fake.webhook = {"url": f"{PUBLIC}/telegram/webhook"}
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    fake = await FakeTwilio().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_prosa() -> AsyncIterator[FakeProsa]:
    fake = await FakeProsa().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_emotion() -> AsyncIterator[FakeEmotionApi]:
    fake = await FakeEmotionApi().start()
    yield fake
    await fake.stop()


@pytest.fixture
def services(
    fake_openai: FakeOpenAI,
    fake_pinecone: FakePinecone,
    fake_telegram: FakeTelegram,
    fake_prosa: FakeProsa,
    fake_emotion: FakeEmotionApi,
    fake_twilio: FakeTwilio,
) -> dict[str, str]:
    """Settings that configure every service the doctor knows, each at its fake."""
    fake_pinecone.dimension = 256  # an index made for the fake embeddings
    return {
        "OPENAI_API_KEY": fake_openai.api_key,
        "OPENAI_BASE_URL": fake_openai.base_url,
        "EMBEDDINGS_MODEL": "text-embedding-3-small",
        "STT_PROVIDER": "prosa",
        "PROSA_URL": fake_prosa.url,
        "PROSA_API_KEY": fake_prosa.api_key,
        "TTS_PROVIDER": "openai",
        "EMOTION_API_URL": fake_emotion.url,
        "PINECONE_API_KEY": fake_pinecone.api_key,
        "PINECONE_INDEX": fake_pinecone.index_name,
        "PINECONE_API_URL": fake_pinecone.url,
        **fake_telegram.serve_env("doctor-test-secret"),
        "PUBLIC_BASE_URL": PUBLIC,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_WHATSAPP_NUMBER": WHATSAPP_NUMBER,
        "TWILIO_API_BASE_URL": fake_twilio.origin,
    }


async def doctor(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    env: dict[str, str],
    *args: str,
) -> tuple[int, str]:
    """`bot.cli.main(["doctor", ...])` with `env` as the environment, in a worker thread (the
    fakes answer on this test's loop); its exit code and standard output."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KNOWLEDGE_SOURCES", str(HANDBOOK))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["doctor", *args])
    return code, capsys.readouterr().out


def by_name(output: str) -> dict[str, dict[str, Any]]:
    report = json.loads(output)
    assert report["passed"] + report["failed"] + report["skipped"] == len(report["checks"])
    return {check["name"]: check for check in report["checks"]}


async def test_every_configured_service_passes(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    services: dict[str, str],
    fake_openai: FakeOpenAI,
    fake_pinecone: FakePinecone,
    fake_prosa: FakeProsa,
    fake_emotion: FakeEmotionApi,
) -> None:
    code, out = await doctor(monkeypatch, capsys, tmp_path, services, "--json")

    checks = by_name(out)
    assert code == 0, out
    assert json.loads(out)["ok"] is True
    skipped = {name for name, check in checks.items() if check["status"] == "skip"}
    assert skipped == {"whisper", "piper", "local-embeddings"}
    assert all(check["status"] == "ok" for name, check in checks.items() if name not in skipped)
    assert "gpt-4o-mini" in checks["llm"]["detail"]
    assert "256 dimensions" in checks["embeddings"]["detail"]
    assert "gpt-4o-mini-tts" in checks["openai-speech"]["detail"]
    assert "key accepted" in checks["prosa"]["detail"]
    assert "happy" in checks["emotion-service"]["detail"]
    assert "0 vectors" in checks["pinecone"]["detail"]
    assert f"@{BOT_USERNAME}" in checks["telegram"]["detail"]
    assert f"{PUBLIC}/telegram/webhook" in checks["telegram"]["detail"]
    assert "Suara tests (active)" in checks["twilio"]["detail"]
    assert f"{PUBLIC}/whatsapp/webhook" in checks["twilio"]["detail"]
    assert "4 document(s)" in checks["knowledge"]["detail"]
    # Each service was really asked, with the configured credentials.
    assert len(fake_openai.calls("/v1/models")) == 2
    assert fake_openai.calls("/v1/embeddings")[0].body["model"] == "text-embedding-3-small"
    assert [s.api_key for s in fake_prosa.sessions] == [fake_prosa.api_key]
    assert fake_pinecone.requests("/describe_index_stats")
    assert fake_emotion.requests[0].text


async def test_offline_defaults_pass_and_services_show_as_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out = await doctor(monkeypatch, capsys, tmp_path, {})

    lines = {line.split()[1]: line for line in out.splitlines() if line[:1] and line[0] in "✓✗–"}
    assert code == 0, out
    for name in (*LOCAL_CHECKS, "whisper", "piper"):
        assert lines[name].startswith("✓"), lines[name]
    names = ("llm", "embeddings", "prosa", "pinecone", "telegram", "twilio", "emotion-service")
    for name in names:
        assert lines[name].startswith("–") and "not configured" in lines[name], lines[name]
    assert "packaged Whisper base weights" in lines["whisper"]
    assert "no index yet" in lines["index"]
    assert "0 failed" in out and "fix:" not in out


async def test_wrong_keys_fail_and_say_which_key_to_fix(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    services: dict[str, str],
) -> None:
    wrong = {
        **services,
        "OPENAI_API_KEY": "sk-wrong",
        "EMBEDDINGS_API_KEY": "sk-also-wrong",
        "PROSA_API_KEY": "wrong",
        "PINECONE_API_KEY": "wrong",
        "TELEGRAM_BOT_TOKEN": "123456:wrong",
        "TWILIO_AUTH_TOKEN": "0" * 32,
    }
    code, out = await doctor(monkeypatch, capsys, tmp_path, wrong, "--json")

    checks = by_name(out)
    assert code == 1
    for name, key in (
        ("llm", "OPENAI_API_KEY"),
        ("openai-speech", "OPENAI_API_KEY"),
        ("embeddings", "EMBEDDINGS_API_KEY"),
        ("prosa", "PROSA_API_KEY"),
        ("pinecone", "PINECONE_API_KEY"),
        ("telegram", "TELEGRAM_BOT_TOKEN"),
        ("twilio", "TWILIO_AUTH_TOKEN"),
    ):
        assert checks[name]["status"] == "fail", checks[name]
        assert "is wrong" in checks[name]["detail"], checks[name]
        assert key in checks[name]["fix"], checks[name]
    assert "123456:wrong" not in out and "0" * 32 not in out
    assert all(checks[name]["status"] == "ok" for name in LOCAL_CHECKS)


async def test_unreachable_and_hanging_services_fail_quickly(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    unused_tcp_port: int,
) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # holds the connection until the client gives up
        writer.close()

    hanging = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    hanging_port = hanging.sockets[0].getsockname()[1]
    closed = f"127.0.0.1:{unused_tcp_port}"
    env = {
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{hanging_port}/v1",
        "EMBEDDINGS_MODEL": "text-embedding-3-small",
        "EMBEDDINGS_BASE_URL": f"http://{closed}/v1",
        "STT_PROVIDER": "prosa",
        "PROSA_URL": f"ws://{closed}/v2/speech/stt",
        "PROSA_API_KEY": "key",
        "EMOTION_API_URL": f"http://{closed}",
        "PINECONE_API_KEY": "key",
        "PINECONE_INDEX": "suara",
        "PINECONE_API_URL": f"http://{closed}",
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": f"http://{closed}/bot",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_WHATSAPP_NUMBER": WHATSAPP_NUMBER,
        "TWILIO_API_BASE_URL": f"http://127.0.0.1:{hanging_port}",
        "PUBLIC_BASE_URL": PUBLIC,
    }
    started = time.monotonic()
    try:
        code, out = await doctor(monkeypatch, capsys, tmp_path, env, "--json", "--timeout", "1")
    finally:
        hanging.close()
    elapsed = time.monotonic() - started

    checks = by_name(out)
    assert code == 1
    for name in ("embeddings", "prosa", "emotion-service", "pinecone", "telegram", "twilio"):
        assert checks[name]["status"] == "fail", checks[name]
        assert "reach" in checks[name]["detail"] or "cannot use" in checks[name]["detail"]
        assert "this machine can reach it" in checks[name]["fix"]
    assert checks["llm"]["status"] == "fail"
    assert "did not answer in time" in checks["llm"]["detail"], checks["llm"]
    assert "OPENAI_BASE_URL" in checks["llm"]["fix"]
    assert elapsed < 8, f"the checks took {elapsed:.1f} s; they run at once with short timeouts"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PORT": "70000"}, ["PORT"]),
        ({"STT_PROVIDER": "prosa"}, ["PROSA_API_KEY", "PROSA_URL"]),
    ],
)
async def test_a_bad_setting_is_a_failed_check_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    env: dict[str, str],
    named: list[str],
) -> None:
    code, out = await doctor(monkeypatch, capsys, tmp_path, env, "--json")

    checks = by_name(out)
    assert code == 1
    assert checks["settings"]["status"] == "fail"
    for name in named:
        assert name in checks["settings"]["detail"]
        assert name in checks["settings"]["fix"]
    others = [check for name, check in checks.items() if name != "settings"]
    assert others and all(check["status"] == "skip" for check in others)
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("registered", "status", "expected"),
    [
        ("", {}, "no webhook registered"),
        ("https://old.example.org/telegram/webhook", {}, "not https://bot.example.org"),
        (
            f"{PUBLIC}/telegram/webhook",
            {"last_error_message": "Wrong response from the webhook: 403 Forbidden"},
            "403 Forbidden",
        ),
    ],
)
async def test_telegram_webhook_problems_are_reported(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    fake_telegram: FakeTelegram,
    registered: str,
    status: dict[str, Any],
    expected: str,
) -> None:
    fake_telegram.webhook = {"url": registered} if registered else {}
    if status:
        status["last_error_date"] = int(datetime.now(UTC).timestamp()) - 120
    fake_telegram.webhook_status = status
    env = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": fake_telegram.base_url,
        "TELEGRAM_WEBHOOK_SECRET": "doctor-test-secret",
        "PUBLIC_BASE_URL": PUBLIC,
    }
    code, out = await doctor(monkeypatch, capsys, tmp_path, env, "--json")

    telegram = by_name(out)["telegram"]
    assert code == 1
    assert telegram["status"] == "fail"
    assert expected in telegram["detail"], telegram
    assert "set-webhook" in telegram["fix"]
    assert fake_telegram.calls == ["getMe", "getWebhookInfo"]


async def test_missing_sources_unwritable_data_dir_and_failed_index_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    index = data / "index.sqlite3"
    IndexStore(index).close()
    runs = RunLog(index)
    runs.finish(runs.start("cli"), IndexReport(), failure="OSError: disk full")
    code, out = await doctor(
        monkeypatch,
        capsys,
        tmp_path,
        {"KNOWLEDGE_SOURCES": f"{HANDBOOK},{tmp_path / 'no-such-folder'}"},
        "--json",
    )
    checks = by_name(out)
    assert code == 1
    assert checks["knowledge"]["status"] == "fail"
    assert "no-such-folder" in checks["knowledge"]["detail"]
    assert "KNOWLEDGE_SOURCES" in checks["knowledge"]["fix"]
    assert checks["index"]["status"] == "fail"
    assert "failed: OSError: disk full" in checks["index"]["detail"]
    assert "index --status" in checks["index"]["fix"]

    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    code, out = await doctor(
        monkeypatch, capsys, tmp_path, {"DATA_DIR": str(not_a_folder)}, "--json"
    )
    data_dir = by_name(out)["data-dir"]
    assert code == 1
    assert data_dir["status"] == "fail" and "not writable" in data_dir["detail"]
    assert "write access" in data_dir["fix"]


def test_doctor_as_a_command_prints_json(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "doctor", "--json"],
        cwd=PROJECT_DIR,
        env=cli_env(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["ok"] is True and report["failed"] == 0
    assert {check["name"] for check in report["checks"]} >= LOCAL_CHECKS | {"telegram", "llm"}
    assert all(
        set(check) == {"name", "status", "detail", "fix", "seconds"} for check in report["checks"]
    )
