"""The CLI keeps answering when one turn fails unexpectedly, and logs the failure with context."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from bot.cli import _ask_stdin
from bot.components import open_components
from bot.settings import PROJECT_DIR, load_settings

HANDBOOK = str(PROJECT_DIR / "tests" / "fixtures" / "handbook")


class BreakingLines:
    """Standard input whose first question meets a broken conversation store (a real SQLite
    failure: a table dropped under the running process), repaired before the second."""

    def __init__(self, database: Path, lines: list[str]) -> None:
        self.database = database
        self.lines = lines
        self.read = 0

    def _sql(self, statement: str) -> None:
        db = sqlite3.connect(self.database)
        db.execute(statement)
        db.commit()
        db.close()

    def readline(self) -> str:
        if self.read == 0:
            self._sql("DROP TABLE threads")
        elif self.read == 1:
            self._sql("CREATE TABLE threads (thread_id TEXT PRIMARY KEY, updated_at REAL NOT NULL)")
        self.read += 1
        return self.lines[self.read - 1] if self.read <= len(self.lines) else ""


async def test_a_failing_line_gets_an_apology_and_the_rest_go_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(_env_file=None, data_dir=tmp_path, knowledge_sources=[HANDBOOK])
    stdin = BreakingLines(
        tmp_path / "conversations.sqlite3",
        ["How many books can I borrow?\n", "How much does a replacement student card cost?\n"],
    )
    async with open_components(settings) as parts:
        await parts.ensure_indexed()
        with caplog.at_level(logging.ERROR):
            code = await _ask_stdin(parts, "resilience", True, stdin)  # type: ignore[arg-type]

    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert code == 1
    assert first["error"] == "InternalError"
    assert first["answer"].startswith("Sorry, something went wrong")
    assert second["error"] is None
    assert "15 dollars" in second["answer"]
    assert "could not answer cli:resilience message" in caplog.text
    assert "no such table: threads" in caplog.text
