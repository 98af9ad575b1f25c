"""Dispatcher over a real SqliteInbox: per-chat order, bounded parallelism, retries, parking,
graceful stop and resumption, waking."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.dispatcher import Dispatcher, DispatchPolicy, GiveUp, Process
from bot.errors import PermanentDeliveryError, TransientDeliveryError
from storage.inbox import InboxItem, SqliteInbox

FAST = DispatchPolicy(
    concurrency=4,
    max_attempts=5,
    retry_base=0.01,
    retry_max=0.05,
    lease_seconds=60.0,
    poll_seconds=0.05,
    stop_grace=2.0,
)


def policy(**changes: float) -> DispatchPolicy:
    values = {**FAST.__dict__, **changes}
    return DispatchPolicy(**values)


@dataclass
class Recorder:
    """What `process` saw: calls in start order, per-chat and overall concurrency."""

    started: list[tuple[str, str, int]] = field(default_factory=list)  # chat, message, attempt
    finished: list[tuple[str, str]] = field(default_factory=list)
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    active: int = 0
    max_active: int = 0
    active_chats: set[str] = field(default_factory=set)
    overlaps: list[str] = field(default_factory=list)
    given_up: list[tuple[str, int, str]] = field(default_factory=list)

    def enter(self, item: InboxItem) -> None:
        self.started.append((item.chat_key, item.message_id, item.attempts))
        self.times[item.message_id].append(time.monotonic())
        if item.chat_key in self.active_chats:
            self.overlaps.append(item.chat_key)
        self.active_chats.add(item.chat_key)
        self.active += 1
        self.max_active = max(self.max_active, self.active)

    def leave(self, item: InboxItem, ok: bool) -> None:
        self.active -= 1
        self.active_chats.discard(item.chat_key)
        if ok:
            self.finished.append((item.chat_key, item.message_id))

    async def give_up(self, item: InboxItem, exc: BaseException) -> None:
        self.given_up.append((item.message_id, item.attempts, f"{type(exc).__name__}: {exc}"))

    def attempts(self, message_id: str) -> list[int]:
        return [a for _, m, a in self.started if m == message_id]


def make_process(rec: Recorder, body: Callable[[InboxItem], object] | None = None) -> Process:
    """A process that records and then awaits `body(item)` (a coroutine) if given."""

    async def process(item: InboxItem) -> None:
        rec.enter(item)
        ok = False
        try:
            if body is not None:
                result = body(item)
                if asyncio.iscoroutine(result):
                    await result
            ok = True
        finally:
            rec.leave(item, ok)

    return process


@pytest.fixture
async def inbox(tmp_path: Path) -> AsyncIterator[SqliteInbox]:
    box = SqliteInbox(tmp_path / "inbox.db")
    yield box
    await box.close()


@pytest.fixture
async def dispatchers() -> AsyncIterator[list[Dispatcher]]:
    """Dispatchers a test starts; stopped at the end whatever happened."""
    started: list[Dispatcher] = []
    yield started
    for dispatcher in started:
        await dispatcher.stop()


async def start(
    started: list[Dispatcher],
    inbox: SqliteInbox,
    process: Process,
    give_up: GiveUp,
    dispatch_policy: DispatchPolicy = FAST,
) -> Dispatcher:
    dispatcher = Dispatcher(inbox, process, give_up, dispatch_policy)
    await dispatcher.start()
    started.append(dispatcher)
    return dispatcher


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def put(inbox: SqliteInbox, chat: str, message: str) -> None:
    assert await inbox.enqueue("telegram", chat, message, "text", {"text": message})


async def test_per_chat_order_holds_with_bounded_parallelism(
    inbox: SqliteInbox, dispatchers: list[Dispatcher]
) -> None:
    rng = random.Random(1234)
    chats = [f"c{n}" for n in range(8)]
    per_chat = 6
    delays = {f"{c}-{i}": rng.uniform(0.0, 0.01) for c in chats for i in range(per_chat)}
    rec = Recorder()

    async def work(item: InboxItem) -> None:
        await asyncio.sleep(delays[item.message_id])

    dispatcher = await start(dispatchers, inbox, make_process(rec, work), rec.give_up)

    # Interleave the chats' messages, each chat's in order, while the dispatcher runs.
    queues = {c: [f"{c}-{i}" for i in range(per_chat)] for c in chats}
    while any(queues.values()):
        chat = rng.choice([c for c, q in queues.items() if q])
        await put(inbox, chat, queues[chat].pop(0))
        dispatcher.wake()
        if rng.random() < 0.3:
            await asyncio.sleep(0.002)

    await eventually(lambda: len(rec.finished) == len(chats) * per_chat)

    by_chat: dict[str, list[str]] = defaultdict(list)
    for chat_key, message_id, _ in rec.started:
        by_chat[chat_key].append(message_id)
    for chat in chats:
        assert by_chat[f"telegram:{chat}"] == [f"{chat}-{i}" for i in range(per_chat)]
    assert all(attempt == 1 for _, _, attempt in rec.started)  # each processed exactly once
    assert rec.overlaps == []  # a chat never ran concurrently with itself
    assert 1 < rec.max_active <= FAST.concurrency
    stats = await inbox.stats()
    assert (stats.pending, stats.done, stats.parked) == (0, len(chats) * per_chat, 0)


async def test_parallelism_never_exceeds_concurrency(
    inbox: SqliteInbox, dispatchers: list[Dispatcher]
) -> None:
    rec = Recorder()
    gate = asyncio.Event()

    async def work(item: InboxItem) -> None:
        await gate.wait()

    for n in range(6):
        await put(inbox, f"chat{n}", f"m{n}")
    dispatcher = await start(
        dispatchers, inbox, make_process(rec, work), rec.give_up, policy(concurrency=3)
    )

    await eventually(lambda: rec.active == 3)
    await asyncio.sleep(0.15)  # a few poll periods: nobody else starts
    assert rec.active == 3
    assert dispatcher.in_flight == 3
    gate.set()
    await eventually(lambda: len(rec.finished) == 6)
    assert rec.max_active == 3


async def test_a_failing_message_is_retried_until_it_succeeds(
    inbox: SqliteInbox, dispatchers: list[Dispatcher]
) -> None:
    rec = Recorder()

    def work(item: InboxItem) -> None:
        if item.attempts < 3:
            raise RuntimeError(f"flaky {item.attempts}")

    await put(inbox, "A", "a1")
    await start(dispatchers, inbox, make_process(rec, work), rec.give_up)

    await eventually(lambda: rec.finished == [("telegram:A", "a1")])
    assert rec.attempts("a1") == [1, 2, 3]
    assert rec.given_up == []
    stats = await inbox.stats()
    assert (stats.pending, stats.done, stats.parked) == (0, 1, 0)


async def test_retries_back_off_exponentially(
    inbox: SqliteInbox, dispatchers: list[Dispatcher]
) -> None:
    rec = Recorder()

    def work(item: InboxItem) -> None:
        if item.attempts < 4:
            raise RuntimeError("flaky")

    await put(inbox, "A", "a1")
    await start(
        dispatchers,
        inbox,
        make_process(rec, work),
        rec.give_up,
        policy(retry_base=0.05, retry_max=10.0),
    )

    await eventually(lambda: len(rec.finished) == 1)
    times = rec.times["a1"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # 0.05, 0.1, 0.2 s with +-20% jitter (and the gap includes some bookkeeping).
    for gap, base in zip(gaps, (0.05, 0.1, 0.2), strict=True):
        assert base * 0.8 - 0.005 <= gap < base * 1.2 + 0.5


async def test_after_max_attempts_give_up_is_called_once_and_the_chat_moves_on(
    inbox: SqliteInbox, dispatchers: list[Dispatcher]
) -> None:
    rec = Recorder()

    def work(item: InboxItem) -> None:
        if item.message_id == "a1":
            raise RuntimeError("always broken")

    await put(inbox, "A", "a1")
    await put(inbox, "A", "a2")
    await start(dispatchers, inbox, make_process(rec, work), rec.give_up, policy(max_attempts=3))

    await eventually(lambda: rec.finished == [("telegram:A", "a2")])
    assert rec.attempts("a1") == [1, 2, 3]
    assert rec.given_up == [("a1", 3, "RuntimeError: always broken")]
    # a2 only started once a1 was given up on.
    assert [m for _, m, _ in rec.started] == ["a1", "a1", "a1", "a2"]
    [parked] = await inbox.parked()
    assert parked["message_id"] == "a1"
    assert parked["attempts"] == 3
    assert parked["error"] == "RuntimeError: always broken"


async def test_a_failing_give_up_still_parks(
    inbox: SqliteInbox, dispatchers: list[Dispatcher]
) -> None:
    rec = Recorder()
    apologies: list[str] = []

    def work(item: InboxItem) -> None:
        raise RuntimeError("broken")

    async def give_up(item: InboxItem, exc: BaseException) -> None:
        apologies.append(item.message_id)
        raise TransientDeliveryError("apology could not be sent")

    await put(inbox, "A", "a1")
    await start(dispatchers, inbox, make_process(rec, work), give_up, policy(max_attempts=2))

    await eventually(lambda: len(apologies) == 1)
    await eventually(lambda: len(rec.started) == 2 and rec.active == 0)
    for _ in range(100):
        if (await inbox.stats()).parked == 1:
            break
        await asyncio.sleep(0.01)
    assert (await inbox.stats()).parked == 1
    assert apologies == ["a1"]


async def test_permanent_delivery_error_parks_at_once_without_give_up(
    inbox: SqliteInbox, dispatchers: list[Dispatcher]
) -> None:
    rec = Recorder()

    def work(item: InboxItem) -> None:
        if item.message_id == "a1":
            raise PermanentDeliveryError("Forbidden: bot was blocked by the user", reachable=False)

    await put(inbox, "A", "a1")
    await put(inbox, "A", "a2")
    await start(dispatchers, inbox, make_process(rec, work), rec.give_up)

    await eventually(lambda: rec.finished == [("telegram:A", "a2")])
    assert rec.attempts("a1") == [1]
    assert rec.given_up == []
    [parked] = await inbox.parked()
    assert parked["message_id"] == "a1"
    assert parked["error"] == "PermanentDeliveryError: Forbidden: bot was blocked by the user"


async def test_a_permanent_error_in_a_reachable_chat_parks_with_an_apology(
    inbox: SqliteInbox, dispatchers: list[Dispatcher]
) -> None:
    rec = Recorder()

    def work(item: InboxItem) -> None:
        if item.message_id == "a1":
            raise PermanentDeliveryError("Bad Request: message is too long")

    await put(inbox, "A", "a1")
    await put(inbox, "A", "a2")
    await start(dispatchers, inbox, make_process(rec, work), rec.give_up)

    await eventually(lambda: rec.finished == [("telegram:A", "a2")])
    assert rec.attempts("a1") == [1]
    assert [(m, n) for m, n, _ in rec.given_up] == [("a1", 1)]
    [parked] = await inbox.parked()
    assert parked["message_id"] == "a1"


async def test_transient_error_retry_after_is_honoured(
    inbox: SqliteInbox, dispatchers: list[Dispatcher]
) -> None:
    rec = Recorder()
    failed_at: list[float] = []

    def work(item: InboxItem) -> None:
        if not failed_at:
            failed_at.append(time.monotonic())
            raise TransientDeliveryError("Too Many Requests", retry_after=0.3)

    await put(inbox, "A", "a1")
    await start(dispatchers, inbox, make_process(rec, work), rec.give_up)

    await eventually(lambda: len(rec.finished) == 1)
    [first_failure] = failed_at
    second_start = rec.times["a1"][1]
    # retry_base is 0.01 s: only retry_after can explain the wait (clock skew allowance 10 ms).
    assert 0.29 <= second_start - first_failure < 2.0
    assert rec.attempts("a1") == [1, 1]  # waiting out flood control is not a failed attempt


async def test_stop_lets_a_running_message_finish_within_grace(
    inbox: SqliteInbox, dispatchers: list[Dispatcher]
) -> None:
    rec = Recorder()

    async def work(item: InboxItem) -> None:
        await asyncio.sleep(0.2)

    await put(inbox, "A", "a1")
    dispatcher = await start(dispatchers, inbox, make_process(rec, work), rec.give_up)
    await eventually(lambda: rec.active == 1)

    began = time.monotonic()
    await dispatcher.stop()
    took = time.monotonic() - began

    assert rec.finished == [("telegram:A", "a1")]
    assert took < FAST.stop_grace
    stats = await inbox.stats()
    assert (stats.pending, stats.done) == (0, 1)


async def test_stop_stops_claiming(inbox: SqliteInbox, dispatchers: list[Dispatcher]) -> None:
    rec = Recorder()
    dispatcher = await start(dispatchers, inbox, make_process(rec), rec.give_up)
    await dispatcher.stop()

    await put(inbox, "A", "a1")
    dispatcher.wake()
    await asyncio.sleep(0.15)  # three poll periods

    assert rec.started == []
    assert (await inbox.stats()).pending == 1


async def test_stop_releases_a_slow_message_and_a_new_dispatcher_resumes_it(
    inbox: SqliteInbox, dispatchers: list[Dispatcher]
) -> None:
    rec = Recorder()
    hang = asyncio.Event()  # never set

    async def stuck(item: InboxItem) -> None:
        await hang.wait()

    await put(inbox, "A", "a1")
    await put(inbox, "A", "a2")
    first = await start(
        dispatchers, inbox, make_process(rec, stuck), rec.give_up, policy(stop_grace=0.1)
    )
    await eventually(lambda: rec.active == 1)

    began = time.monotonic()
    await first.stop()
    assert time.monotonic() - began < 1.0
    assert rec.finished == []
    assert rec.active == 0  # the slow process was cancelled
    assert first.in_flight == 0
    # Released, not failed: due now, not parked.
    assert await inbox.next_due_in() == 0.0
    assert (await inbox.stats()).parked == 0

    rec2 = Recorder()
    await start(dispatchers, inbox, make_process(rec2), rec2.give_up)
    await eventually(lambda: len(rec2.finished) == 2)
    # The interrupted attempt was given back: a restart is not the message's fault.
    assert rec2.started == [("telegram:A", "a1", 1), ("telegram:A", "a2", 1)]


async def test_a_new_dispatcher_resumes_leases_of_a_dead_one(
    tmp_path: Path, dispatchers: list[Dispatcher]
) -> None:
    path = tmp_path / "inbox.db"
    dead = SqliteInbox(path)
    await put(dead, "A", "a1")
    assert len(await dead.claim(1, 600.0)) == 1  # leased by a process that then died
    await dead.close()

    inbox = SqliteInbox(path)
    try:
        rec = Recorder()
        dispatcher = await start(dispatchers, inbox, make_process(rec), rec.give_up)
        await eventually(lambda: len(rec.finished) == 1)
        assert rec.started == [("telegram:A", "a1", 2)]
        await dispatcher.stop()
    finally:
        await inbox.close()


async def test_wake_starts_a_new_message_promptly(
    inbox: SqliteInbox, dispatchers: list[Dispatcher]
) -> None:
    rec = Recorder()
    dispatcher = await start(
        dispatchers, inbox, make_process(rec), rec.give_up, policy(poll_seconds=5.0)
    )
    await asyncio.sleep(0.05)  # let the loop find nothing and go idle

    await put(inbox, "A", "a1")
    enqueued = time.monotonic()
    dispatcher.wake()
    await eventually(lambda: len(rec.finished) == 1, timeout=4.0)

    assert rec.times["a1"][0] - enqueued < 0.5


async def test_a_finished_message_lets_its_chat_continue_promptly(
    inbox: SqliteInbox, dispatchers: list[Dispatcher]
) -> None:
    """Finishing wakes the loop: the chat's next message need not wait for a poll."""
    rec = Recorder()
    for n in range(5):
        await put(inbox, "A", f"a{n}")
    began = time.monotonic()
    await start(dispatchers, inbox, make_process(rec), rec.give_up, policy(poll_seconds=5.0))

    await eventually(lambda: len(rec.finished) == 5, timeout=4.0)
    assert time.monotonic() - began < 1.0
    assert [m for _, m, _ in rec.started] == [f"a{n}" for n in range(5)]


class CountingInbox(SqliteInbox):
    """A real SqliteInbox that counts how often the dispatcher asks it for work."""

    claims = 0

    async def claim(self, limit: int, lease_seconds: float) -> list[InboxItem]:
        self.claims += 1
        return await super().claim(limit, lease_seconds)


async def test_idle_dispatcher_does_not_busy_poll_behind_a_running_chat_head(
    tmp_path: Path, dispatchers: list[Dispatcher]
) -> None:
    """While a chat's first message is processed its second one cannot be claimed, so the loop
    should sleep (until woken or `poll_seconds`), not ask the inbox every 10 ms."""
    inbox = CountingInbox(tmp_path / "inbox.db")
    try:
        rec = Recorder()

        async def slow(item: InboxItem) -> None:
            await asyncio.sleep(0.5)

        await put(inbox, "A", "a1")
        await put(inbox, "A", "a2")
        await start(
            dispatchers, inbox, make_process(rec, slow), rec.give_up, policy(poll_seconds=0.1)
        )
        await eventually(lambda: rec.active == 1)
        before = inbox.claims
        await asyncio.sleep(0.4)
        during = inbox.claims - before

        # poll_seconds=0.1 allows ~4 looks in 0.4 s; a 10 ms spin makes ~40.
        assert during <= 8, f"{during} claims in 0.4 s while nothing could be claimed"
        await eventually(lambda: len(rec.finished) == 2)
    finally:
        for dispatcher in dispatchers:
            await dispatcher.stop()
        dispatchers.clear()
        await inbox.close()


async def test_a_message_outliving_its_lease_is_not_processed_twice(
    inbox: SqliteInbox, dispatchers: list[Dispatcher]
) -> None:
    rec = Recorder()

    async def work(item: InboxItem) -> None:
        await asyncio.sleep(0.6)

    await put(inbox, "A", "a1")
    policy = DispatchPolicy(concurrency=4, retry_base=0.01, lease_seconds=0.1, poll_seconds=0.05)
    dispatcher = Dispatcher(inbox, make_process(rec, work), rec.give_up, policy)
    dispatchers.append(dispatcher)
    await dispatcher.start()
    await eventually(lambda: len(rec.finished) == 1)
    await asyncio.sleep(0.2)
    assert rec.attempts("a1") == [1]
