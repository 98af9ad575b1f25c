"""The doctor's machinery: a check, its result, running checks concurrently with a time limit,
and printing the results for people (✓ ✗ –) or as JSON."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from bot.errors import BotError
from handlers.errors import ProbeError as ChannelProbeError
from rag.errors import ProbeError as RagProbeError
from speech.errors import ProbeError as SpeechProbeError

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

Status = Literal["ok", "fail", "skip"]


class CheckFailed(BotError):
    """A check of the doctor's own failed; `fix` says what to do about it."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


PROBE_ERRORS = (CheckFailed, RagProbeError, SpeechProbeError, ChannelProbeError)
GRACE_S = 1.0  # beyond the clients' own time limit, before a check counts as hanging
MARKS = {"ok": "✓", "fail": "✗", "skip": "–"}
ASCII_MARKS = {"ok": "+", "fail": "x", "skip": "-"}


@dataclass(frozen=True)
class Result:
    """One check's outcome: `detail` is one line; `fix` says what to do when it failed."""

    name: str
    status: Status
    detail: str
    fix: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class Check:
    """`skip(settings)` gives a reason not to run (not configured) or None; `run` returns the
    detail line or raises a ProbeError."""

    name: str
    run: Callable[[Settings, float], Awaitable[str]]
    skip: Callable[[Settings], str | None] = lambda settings: None


def blocking(probe: Callable[[Settings], str]) -> Callable[[Settings, float], Awaitable[str]]:
    """A check body for a probe that reads files: run in a worker thread."""

    async def run(settings: Settings, seconds: float) -> str:
        return await asyncio.to_thread(probe, settings)

    return run


async def run_check(check: Check, settings: Settings, seconds: float) -> Result:
    """One check, turned into a Result whatever happens (a crash is logged and reported)."""
    reason = check.skip(settings)
    if reason is not None:
        return Result(check.name, "skip", reason)
    started = time.perf_counter()

    def done(status: Status, detail: str, fix: str | None = None) -> Result:
        return Result(check.name, status, detail, fix, round(time.perf_counter() - started, 3))

    try:
        async with asyncio.timeout(seconds + GRACE_S):
            detail = await check.run(settings, seconds)
    except PROBE_ERRORS as exc:
        return done("fail", str(exc), exc.fix)
    except TimeoutError:
        return done(
            "fail",
            f"no answer within {seconds:g} s",
            "check the service's URL setting and that this machine can reach it",
        )
    except Exception as exc:
        log.error("doctor: the %s check failed unexpectedly", check.name, exc_info=True)
        return done("fail", f"{type(exc).__name__}: {exc}", "see the error logged above")
    return done("ok", detail)


async def run_checks(checks: Sequence[Check], settings: Settings, seconds: float) -> list[Result]:
    """Every check at once; results in the order of `checks`."""
    return list(await asyncio.gather(*(run_check(c, settings, seconds) for c in checks)))


def exit_code(results: Sequence[Result]) -> int:
    """0 when no check failed (skipped ones do not count), else 1."""
    return 1 if any(result.status == "fail" for result in results) else 0


def _counts(results: Sequence[Result]) -> dict[str, int]:
    return {
        name: sum(r.status == status for r in results)
        for name, status in (("passed", "ok"), ("failed", "fail"), ("skipped", "skip"))
    }


def render_json(results: Sequence[Result]) -> str:
    """One JSON object: ok, the counts, and every check."""
    body = {
        "ok": exit_code(results) == 0,
        **_counts(results),
        "checks": [asdict(r) for r in results],
    }
    return json.dumps(body, ensure_ascii=False)


def render_text(results: Sequence[Result], encoding: str | None = None) -> str:
    """A line per check (mark, name, detail), a `fix:` line under each failure, and a total."""
    marks = MARKS
    try:
        "".join(MARKS.values()).encode(encoding or sys.getdefaultencoding())
    except (UnicodeEncodeError, LookupError):
        marks = ASCII_MARKS
    width = max(len(r.name) for r in results) + 2
    lines = []
    for result in results:
        lines.append(f"{marks[result.status]} {result.name.ljust(width)}{result.detail}")
        if result.fix:
            lines.append(f"  {' ' * width}fix: {result.fix}")
    counts = _counts(results)
    lines.append(
        f"\n{counts['passed']} checks passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped"
    )
    return "\n".join(lines)
