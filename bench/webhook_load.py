"""The load both webhook benchmarks apply: acknowledgement latency at a steady rate, then the
most requests per second accepted, first with sending held (the webhook path alone), then while
the same server answers; every accepted message must be in the inbox."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from tests.serve_process import wait_until_serving

WARM_UP_SECONDS = 2.0

Send = Callable[[], Awaitable[None]]  # posts one new message; raises unless it was accepted
MakeSends = Callable[[int], list[Send]]  # `count` sends of messages never posted before


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def health(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(f"{url}/health") as response:
        body: dict[str, Any] = await response.json()
        return body


async def timed(send: Send) -> float:
    started = time.perf_counter()
    await send()
    return (time.perf_counter() - started) * 1000


def p99(latencies: list[float]) -> float:
    return latencies[int(len(latencies) * 0.99) - 1]


async def steady(make: MakeSends, rate: float, seconds: float, quiet: bool = False) -> None:
    """Open loop: one message every 1/rate s, whatever the answers' latency."""
    sends = make(int(rate * seconds))
    tasks = []
    started = time.perf_counter()
    for i, send in enumerate(sends):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(send)))
    latencies = sorted(await asyncio.gather(*tasks))
    elapsed = time.perf_counter() - started
    if quiet:
        return
    print(
        f"steady {rate:.0f}/s for {seconds:.0f} s: {len(sends)} accepted in {elapsed:.2f} s; "
        f"ack p50 {statistics.median(latencies):.2f} ms, p99 {p99(latencies):.2f} ms, "
        f"max {latencies[-1]:.2f} ms"
    )


async def burst(make: MakeSends, count: int, clients: int) -> None:
    """Closed loop: `clients` senders back to back; the sustained accepted rate."""
    queue = iter(make(count))
    latencies: list[float] = []

    async def sender() -> None:
        for send in queue:
            latencies.append(await timed(send))

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    print(
        f"burst of {count} with {clients} concurrent senders: {count / elapsed:.0f} accepted/s; "
        f"ack p50 {statistics.median(latencies):.2f} ms, p99 {p99(latencies):.2f} ms"
    )


async def run_phases(
    session: aiohttp.ClientSession,
    url: str,
    make: MakeSends,
    hold: Callable[[], None],
    release: Callable[[], None],
    *,
    rate: float,
    seconds: float,
    count: int,
    clients: int,
) -> None:
    """Both phases, twice (sending held, then released); exits 1 if a message was lost."""
    print(f"cpus: {os.cpu_count()}; server: python -m bot serve")
    print("-- webhook path alone (the fake API holds sends; nothing is answered)")
    hold()
    # Warm-up, not measured: first requests, and the first answers (computed, then held at
    # sending) all happen here.
    await steady(make, rate, WARM_UP_SECONDS, quiet=True)
    await steady(make, rate, seconds)
    await burst(make, count, clients)
    print("-- while the same process answers as fast as it can")
    release()
    await steady(make, rate, seconds)
    await burst(make, count, clients)
    sent = 2 * (int(rate * seconds) + count) + int(rate * WARM_UP_SECONDS)
    inbox = (await health(session, url))["inbox"]
    stored = inbox["pending"] + inbox["done"] + inbox["parked"]
    print(
        f"accepted {sent}, in the inbox {stored} "
        f"({inbox['done']} answered so far, {inbox['pending']} waiting): "
        + ("none lost" if stored == sent else f"{sent - stored} LOST")
    )
    if stored != sent:
        raise SystemExit(1)


class HeldApi(Protocol):
    """A fake channel API that can hold every send, and let them go."""

    def hold(self) -> None: ...

    def release(self) -> None: ...

    async def stop(self) -> None: ...


def serve_env() -> dict[str, str]:
    """`serve`'s extra settings in a webhook bench: INBOX_* passed through from this shell, and
    no rate limits (a thousand chats ask over and over: measure answering, not the limits)."""
    limits_off = {f"RATE_LIMIT_PER_{w}": "0" for w in ("MINUTE", "HOUR", "DAY")}
    return {**{k: v for k, v in os.environ.items() if k.startswith("INBOX_")}, **limits_off}


async def bench_webhook(
    fake: HeldApi,
    start: Callable[[Path, int], subprocess.Popen[bytes]],
    make: Callable[[aiohttp.ClientSession, str, int], list[Send]],
    args: argparse.Namespace,
) -> None:
    """`serve` started by `start(data_dir, port)`, loaded with `make`'s messages in both phases;
    stops the server and `fake` after."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        server = start(Path(tmp), port)
        try:
            connector = aiohttp.TCPConnector(limit=64)
            async with aiohttp.ClientSession(connector=connector) as session:
                await wait_until_serving(url, models=True)
                await run_phases(
                    session,
                    url,
                    partial(make, session, url),
                    fake.hold,
                    fake.release,
                    rate=args.rate,
                    seconds=args.seconds,
                    count=args.burst,
                    clients=args.clients,
                )
        finally:
            server.terminate()
            server.wait(timeout=60)
            await fake.stop()


def parse_args(description: str | None, unit: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rate", type=float, default=500, help=f"steady {unit} per second")
    parser.add_argument("--seconds", type=float, default=10, help="length of the steady phase")
    parser.add_argument("--burst", type=int, default=5000, help=f"{unit} in the closed-loop phase")
    parser.add_argument("--clients", type=int, default=16, help="concurrent senders in the burst")
    return parser.parse_args()
