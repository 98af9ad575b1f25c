"""Scheduled re-indexing inside `serve`: edits and deletions reach the answers, a run that
fails part-way keeps the old index answering, runs are recorded, crontab lines are checked."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.components import Components, open_components
from bot.errors import SettingsError
from bot.scheduler import cron_trigger, crontab_weekdays
from bot.settings import Settings, load_settings
from bot.web import COMPONENTS, create_app
from rag.errors import IndexingError
from tests.fakes.server import start_app, stop_app


def write_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hours.md").write_text("# Office hours\n\nThe office opens at 9 a.m. on weekdays.\n")
    (folder / "parking.md").write_text(
        "# Parking\n\nVisitors park in the north garage on level two.\n"
    )
    (folder / "wifi.md").write_text("# Wifi\n\nThe guest wifi password is printed at reception.\n")
    return folder


def settings_for(tmp_path: Path, docs: Path, **overrides: Any) -> Settings:
    return load_settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        knowledge_sources=[str(docs)],
        tts_provider="none",
        **overrides,
    )


_threads = itertools.count()


async def ask(components: Components, question: str) -> tuple[str, bool]:
    """The agent's answer and whether it declined, in a fresh conversation."""
    answer = await components.agent.answer(f"test:{next(_threads)}", question)
    return answer.text, answer.declined


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[Components, str]]:
    """The real `serve` app on a free port: its components and its base URL."""
    app = create_app(settings)
    runner, port = await start_app(app)
    try:
        yield app[COMPONENTS], f"http://127.0.0.1:{port}"
    finally:
        await stop_app(runner)


async def wait_for_run(components: Components, after: int, timeout: float = 20.0) -> Any:
    """The first finished run with an id above `after` (polling the run records)."""
    return (await runs_until(components, after, 0.0, timeout))[0]


async def runs_until(
    components: Components, after: int, since: float, timeout: float = 20.0
) -> list[Any]:
    """The finished runs after run `after`, oldest first, up to the first one that started at
    or after `since` (a run that was under way at `since` may have seen part of a change)."""
    async with asyncio.timeout(timeout):
        while True:
            runs = await asyncio.to_thread(components.runs.last, 20)
            done = sorted((r for r in runs if r.id > after and r.finished_at), key=lambda r: r.id)
            for index, run in enumerate(done):
                if run.started_at >= since:
                    return done[: index + 1]
            await asyncio.sleep(0.05)


async def test_scheduled_runs_pick_up_an_edited_and_a_deleted_file(tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs")
    settings = settings_for(tmp_path, docs, reindex_interval=1)
    async with serving(settings) as (components, base_url):
        start = await wait_for_run(components, 0)
        assert (start.trigger, start.status, start.added) == ("start", "ok", 3)
        text, declined = await ask(components, "When does the office open?")
        assert "9 a.m." in text and not declined
        text, declined = await ask(components, "Where do visitors park?")
        assert "north garage" in text and not declined

        (docs / "hours.md").write_text("# Office hours\n\nThe office opens at 10 a.m. now.\n")
        (docs / "parking.md").unlink()
        edited = time.time()
        runs = await runs_until(components, start.id, edited)
        run = runs[-1]
        assert {(r.trigger, r.status) for r in runs} == {("schedule", "ok")}
        assert sum(r.added for r in runs) == 0 and run.unchanged >= 1
        assert (sum(r.changed for r in runs), sum(r.removed for r in runs)) == (1, 1)

        text, declined = await ask(components, "When does the office open?")
        assert "10 a.m." in text and "9 a.m." not in text
        text, declined = await ask(components, "Where do visitors park?")
        assert declined and "north garage" not in text

        quiet = await wait_for_run(components, run.id)  # nothing changed since
        assert (quiet.changed, quiet.removed, quiet.unchanged) == (0, 0, 2)
        async with aiohttp.ClientSession() as session, session.get(f"{base_url}/health") as r:
            health = await r.json()
        assert health["index"]["schedule"] == "every 1 s"
        assert health["index"]["status"] in {"ok", "running"}
        assert health["index"]["documents"] == 2
        assert health["index"]["last_run"]["id"] >= quiet.id
        assert health["index"]["last_run"]["trigger"] == "schedule"


async def test_the_start_run_and_scheduled_runs_never_overlap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.scheduler")
    docs = write_docs(tmp_path / "docs")
    for number in range(300):  # a start run long enough for scheduled runs to fall due
        (docs / f"page-{number}.md").write_text(f"# Page {number}\n\nFiller text {number}.\n")
    settings = settings_for(tmp_path, docs, reindex_interval=0.1)
    async with serving(settings) as (components, _):
        start = await wait_for_run(components, 0)
        later = await wait_for_run(components, start.id)
        runs = sorted(await asyncio.to_thread(components.runs.last, 10), key=lambda r: r.id)
    finished = [r for r in runs if r.finished_at is not None]
    assert start.added == 303 and later.unchanged == 303
    assert "a re-index is in progress; skipping the scheduled one" in caplog.messages
    for earlier, after in itertools.pairwise(finished):
        assert after.started_at >= earlier.finished_at  # one run at a time


async def test_a_run_failing_part_way_keeps_the_old_index_answering(tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs")
    settings = settings_for(tmp_path, docs)
    index_path = settings.path("index.sqlite3")
    async with open_components(settings) as components:
        await components.reindex()
    (docs / "hours.md").write_text("# Office hours\n\nThe office opens at 10 a.m. now.\n")
    (docs / "parking.md").write_text("# Parking\n\nVisitors park on the south lot.\n")
    (docs / "wifi.md").write_text("# Wifi\n\nThe guest wifi needs no password.\n")
    # The store fails on the second document of the run, as a full disk would.
    with closing(sqlite3.connect(index_path)) as db, db:
        db.execute(
            "CREATE TRIGGER full_disk BEFORE INSERT ON chunks WHEN NEW.source LIKE"
            " '%parking.md' BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    async with open_components(settings) as components:
        with pytest.raises(IndexingError, match=r"failed part-way.*disk is full"):
            await components.reindex()
        failed = components.runs.last(1)[0]
        assert failed.status == "failed" and "disk is full" in (failed.failure or "")
        assert (failed.changed, failed.finished_at is not None) == (1, True)

        text, declined = await ask(components, "Where do visitors park?")
        assert "north garage" in text and not declined  # the old version still answers
        text, _ = await ask(components, "What is the guest wifi password?")
        assert "printed at reception" in text  # not reached: old version
        text, _ = await ask(components, "When does the office open?")
        assert "10 a.m." in text  # done before the failure: each document is whole

    with closing(sqlite3.connect(index_path)) as db, db:
        db.execute("DROP TRIGGER full_disk")
    async with open_components(settings) as components:
        report = await components.reindex()
        assert (report.changed, report.unchanged, report.errors) == (2, 1, [])
        text, _ = await ask(components, "Where do visitors park?")
        assert "south lot" in text
        assert components.runs.last(1)[0].status == "ok"


async def test_errors_of_a_run_are_recorded_with_their_source(tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    missing = tmp_path / "gone"
    settings = settings_for(tmp_path, docs)
    async with open_components(settings) as components:
        report = await components.reindex([str(docs), str(missing)], trigger="cli")
        assert report.added == 3
        run = components.runs.last(1)[0]
    assert (run.status, run.trigger, run.added) == ("ok", "cli", 3)
    assert [source for source, _ in run.errors] == [str(missing), str(docs / "broken.pdf")]
    assert run.to_json()["errors"][0] == {"source": str(missing), "message": "not found"}


def test_crontab_lines_are_checked_at_start_up_and_weekdays_count_from_sunday() -> None:
    with pytest.raises(SettingsError, match="REINDEX_CRON"):
        load_settings(_env_file=None, reindex_cron="61 * * * *")
    with pytest.raises(SettingsError, match=r"REINDEX_CRON.*5 fields"):
        load_settings(_env_file=None, reindex_cron="every hour")
    with pytest.raises(SettingsError, match="REINDEX_CRON and REINDEX_INTERVAL"):
        load_settings(_env_file=None, reindex_cron="0 * * * *", reindex_interval=60)
    with pytest.raises(SettingsError, match="REINDEX_INTERVAL"):
        load_settings(_env_file=None, reindex_interval=0)
    assert load_settings(_env_file=None, reindex_cron="").reindex_cron is None

    assert crontab_weekdays("0") == crontab_weekdays("7") == "sun"
    assert crontab_weekdays("1-5") == "mon,tue,wed,thu,fri"
    assert crontab_weekdays("*/3") == "sun,wed,sat"
    assert crontab_weekdays("sat,sun") == "sat,sun"
    trigger = cron_trigger("30 4 * * 0")  # Sundays at 04:30
    first = trigger.get_next_fire_time(None, datetime(2025, 1, 1, tzinfo=trigger.timezone))
    assert first is not None and (first.weekday(), first.hour, first.minute) == (6, 4, 30)
