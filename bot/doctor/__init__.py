"""`python -m bot doctor`: checks the settings, DATA_DIR, ffmpeg, the local models, the
knowledge sources and every configured service, and says how to fix what fails."""

from __future__ import annotations

import asyncio
import sys

from bot.doctor.checks import CHECKS, check_settings
from bot.doctor.core import Result, exit_code, render_json, render_text, run_checks
from bot.logs import setup_logging


async def diagnose(seconds: float) -> list[Result]:
    """Every check's result: settings first; the others concurrently once settings are valid."""
    settings, first = check_settings()
    if settings is None:
        blocked = "not run: the settings are invalid"
        return [first, *(Result(check.name, "skip", blocked) for check in CHECKS)]
    return [first, *await run_checks(CHECKS, settings, seconds)]


def run_doctor(*, as_json: bool = False, timeout: float = 5.0) -> int:
    """Print the report; 0 when every configured check passes, else 1."""
    setup_logging("ERROR")  # the report says what matters; libraries' warnings would drown it
    results = asyncio.run(diagnose(timeout))
    if as_json:
        print(render_json(results))
    else:
        print(render_text(results, sys.stdout.encoding))
    return exit_code(results)
