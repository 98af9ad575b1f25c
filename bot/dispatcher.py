"""Runs inbox messages: many chats in parallel (bounded), each chat's messages in arrival order.

Failures are retried with exponential backoff; after the last attempt the user gets an apology
and the message is parked with its error. Unfinished messages resume after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.errors import PermanentDeliveryError, TransientDeliveryError
from bot.log_context import bind_message
from storage.inbox import Inbox, InboxItem

log = logging.getLogger(__name__)

Process = Callable[[InboxItem], Awaitable[None]]
GiveUp = Callable[[InboxItem, BaseException], Awaitable[None]]


@dataclass(frozen=True)
class DispatchPolicy:
    concurrency: int = 8  # chats answered at the same time
    max_attempts: int = 5
    retry_base: float = 2.0  # seconds before the 2nd attempt; doubles each time
    retry_max: float = 300.0
    lease_seconds: float = 600.0
    poll_seconds: float = 5.0  # looks for due retries at least this often
    stop_grace: float = 10.0  # a graceful stop lets running messages finish this long

    def backoff(self, attempts: int) -> float:
        """Delay before the next attempt, with +-20% jitter."""
        delay = min(self.retry_max, self.retry_base * 2.0 ** max(0, attempts - 1))
        jitter: float = random.uniform(0.8, 1.2)
        return delay * jitter


class Dispatcher:
    """Claims due chat heads from the inbox and runs `process` on each, one task per message."""

    def __init__(
        self, inbox: Inbox, process: Process, give_up: GiveUp, policy: DispatchPolicy
    ) -> None:
        self.inbox = inbox
        self.process = process
        self.give_up = give_up
        self.policy = policy
        self._wake = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        """A message was accepted (or finished): look for work now."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def start(self) -> None:
        released = await self.inbox.recover()
        if released:
            log.warning("resuming %d messages left unfinished by a previous run", released)
        self._loop_task = asyncio.create_task(self._loop(), name="dispatcher")

    async def stop(self) -> None:
        """Stop claiming; let running messages finish for a while, then release the rest."""
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._running:
            _, pending = await asyncio.wait(
                list(self._running.values()), timeout=self.policy.stop_grace
            )
            unfinished = [item_id for item_id, task in self._running.items() if task in pending]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            try:
                await self.inbox.release(unfinished)
            except Exception:
                log.exception(
                    "could not release %d leases; they resume at the next start", len(unfinished)
                )

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                free = self.policy.concurrency - len(self._running)
                items = await self.inbox.claim(free, self.policy.lease_seconds) if free else []
                for item in items:
                    if item.id in self._running:  # cannot happen with a lease we hold; be sure
                        continue
                    task = asyncio.create_task(self._run(item), name=f"message-{item.id}")
                    self._running[item.id] = task
                wait = await self._idle_wait() if not items else 0.0
            except Exception:
                log.exception("the dispatcher could not read the inbox; retrying shortly")
                wait = self.policy.poll_seconds
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def _idle_wait(self) -> float:
        """How long to sleep when nothing was claimed: until the next retry is due, at most
        `poll_seconds`; a newly accepted message or a finished one wakes the loop earlier."""
        if len(self._running) >= self.policy.concurrency:
            return self.policy.poll_seconds
        due = await self.inbox.next_due_in()
        if due is None:
            return self.policy.poll_seconds
        return min(self.policy.poll_seconds, max(due, 0.01))

    async def _run(self, item: InboxItem) -> None:
        # Every log line about this message, down to the speech and rag workers, carries its id.
        with bind_message(f"{item.channel}:{item.message_id}"):
            try:
                await self._attempt(item)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Only the inbox's own bookkeeping gets here (after its retries): the message
                # stays leased until the next start, which resumes it.
                log.exception(
                    "could not record the outcome of %s message %s", item.chat_key, item.id
                )
            finally:
                self._running.pop(item.id, None)
                self.wake()

    async def _book(self, write: Callable[[], Awaitable[None]], what: str) -> None:
        """An inbox write, retried a few times: losing it would re-run or stall the message."""
        for attempt in range(3):
            try:
                await write()
                return
            except Exception:
                if attempt == 2:
                    raise
                log.warning("inbox %s failed, retrying", what, exc_info=True)
                await asyncio.sleep(0.2 * 2**attempt)

    async def _attempt(self, item: InboxItem) -> None:
        context = (
            f"{item.chat_key} message {item.message_id} (inbox {item.id}, attempt {item.attempts})"
        )
        log.debug("processing %s", context)
        try:
            await self.process(item)
        except asyncio.CancelledError:
            raise
        except PermanentDeliveryError as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("cannot deliver %s, parking it: %s", context, exc)
            if exc.reachable:  # say sorry when the chat itself can still be written to
                await self._give_up(item, exc)
            await self._book(lambda: self.inbox.park(item.id, error), "park")
            return
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            # Flood control says when to come back: waiting it out is not a failed attempt.
            flood = isinstance(exc, TransientDeliveryError) and exc.retry_after is not None
            if item.attempts >= self.policy.max_attempts and not flood:
                log.error("giving up on %s: %s", context, error, exc_info=exc)
                await self._give_up(item, exc)
                await self._book(lambda: self.inbox.park(item.id, error), "park")
                return
            delay = self.policy.backoff(item.attempts)
            if isinstance(exc, TransientDeliveryError) and exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
            log.warning("%s failed, retrying in %.1f s: %s", context, delay, error, exc_info=exc)
            await self._book(
                lambda: self.inbox.retry(item.id, error, delay, counted=not flood), "retry"
            )
            return
        await self._book(lambda: self.inbox.complete(item.id), "complete")

    async def _give_up(self, item: InboxItem, exc: BaseException) -> None:
        try:
            await self.give_up(item, exc)
        except Exception:
            log.exception(
                "could not send the apology for %s message %s", item.chat_key, item.message_id
            )
