"""The re-index schedule inside `serve`: one APScheduler job on REINDEX_CRON or
REINDEX_INTERVAL, never two runs at once, missed runs coalesced into one."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from rag.errors import RagError

if TYPE_CHECKING:
    from bot.components import Components
    from bot.settings import Settings

log = logging.getLogger(__name__)

JOB_ID = "reindex"
MISFIRE_GRACE_S = 300  # a run missed by longer (the machine slept) waits for the next time
_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NUMERIC_WEEKDAYS = re.compile(r"^(\*|(\d)(?:-(\d))?)(?:/(\d+))?$")


def crontab_weekdays(field: str) -> str:
    """A crontab weekday field (0 or 7 is Sunday) in APScheduler 3's terms, whose numbers
    start at Monday: numbers become day names; names and `*` stay."""
    if field in ("*", "?"):
        return "*"
    parts: list[str] = []
    for part in field.split(","):
        match = _NUMERIC_WEEKDAYS.match(part)
        if not match:
            parts.append(part)  # names (mon-fri), or wrong: CronTrigger says what is wrong
            continue
        whole, first, last, step = match.groups()
        low, high = (0, 6) if whole == "*" else (int(first), int(last or first))
        if not 0 <= low <= high <= 7:
            raise ValueError(f"wrong weekday range {part!r} (0-7, Sunday is 0 or 7)")
        days = range(low, high + 1, int(step or 1))
        parts.extend(_WEEKDAY_NAMES[day % 7] for day in days)
    return ",".join(dict.fromkeys(parts))


def cron_trigger(expression: str) -> CronTrigger:
    """A trigger for a standard five-field crontab line; ValueError when it is not one."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r} is not a crontab schedule: it needs 5 fields"
            " (minute hour day month weekday)"
        )
    minute, hour, day, month, weekday = fields
    try:
        return CronTrigger(
            minute=minute, hour=hour, day=day, month=month, day_of_week=crontab_weekdays(weekday)
        )
    except ValueError as exc:
        raise ValueError(f"{expression!r} is not a crontab schedule: {exc}") from exc


def schedule_trigger(settings: Settings) -> BaseTrigger | None:
    """The trigger from REINDEX_CRON or REINDEX_INTERVAL; None when neither is set."""
    if settings.reindex_cron:
        return cron_trigger(settings.reindex_cron)
    if settings.reindex_interval:
        return IntervalTrigger(seconds=settings.reindex_interval)
    return None


def describe_schedule(settings: Settings) -> str | None:
    """The schedule in words, for /health and logs."""
    if settings.reindex_cron:
        return f"cron {settings.reindex_cron}"
    if settings.reindex_interval:
        return f"every {settings.reindex_interval:g} s"
    return None


async def scheduled_reindex(components: Components) -> None:
    """The job: one incremental re-index, skipped while another run is in progress. A failed
    run is already logged and recorded by `Components.reindex`."""
    if components.reindex_running:
        log.info("a re-index is in progress; skipping the scheduled one")
        return
    try:
        await components.reindex(trigger="schedule")
    except RagError as exc:
        log.error("the scheduled re-index failed: %s; the next one runs on schedule", exc)


def start_scheduler(components: Components) -> AsyncIOScheduler | None:
    """Start the re-index schedule on the running event loop; None when none is configured.
    Stop it with `scheduler.shutdown(wait=False)`."""
    trigger = schedule_trigger(components.settings)
    if trigger is None:
        return None
    scheduler = AsyncIOScheduler()
    scheduler.add_job(
        scheduled_reindex,
        trigger,
        args=(components,),
        id=JOB_ID,
        name="re-index the knowledge sources",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=MISFIRE_GRACE_S,
    )
    scheduler.start()
    log.info("re-indexing %s", describe_schedule(components.settings))
    return scheduler
