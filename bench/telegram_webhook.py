"""Telegram webhook acknowledgement: latency (p50, p99) at a steady rate, then the most updates
per second it accepts, on loopback against `python -m bot serve`.

Run: `.venv/bin/python -m bench.telegram_webhook [--rate 500] [--seconds 10] [--burst 5000]`.
The server runs in its own process (the real app and dispatcher; the fake Bot API runs here).
Both phases run twice: first while the Bot API holds every send (the dispatcher is stalled, so
this is the webhook path alone), then while the server answers as fast as it can in the same
process. The count of accepted updates is checked against the inbox: none may be lost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.telegram_api import TOKEN, FakeTelegram, message_update
from tests.serve_process import start_serve, wait_until_serving

SECRET = "bench-secret"
WARM_UP_SECONDS = 2.0
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
QUESTIONS = ["When is the library open?", "How do I reset my password?", "hello"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(data_dir: Path, port: int, fake: FakeTelegram) -> subprocess.Popen[bytes]:
    return start_serve(
        data_dir,
        port,
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_WEBHOOK_SECRET=SECRET,
        TELEGRAM_API_BASE_URL=fake.base_url,
        TELEGRAM_FILE_BASE_URL=fake.file_base_url,
        # A thousand chats asking over and over: measure answering, not the rate limits.
        RATE_LIMIT_PER_MINUTE="0",
        RATE_LIMIT_PER_HOUR="0",
        RATE_LIMIT_PER_DAY="0",
        **{k: v for k, v in os.environ.items() if k.startswith("INBOX_")},
    )


async def health(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(f"{url}/health") as response:
        body: dict[str, Any] = await response.json()
        return body


async def post(session: aiohttp.ClientSession, url: str, update: dict[str, Any]) -> float:
    started = time.perf_counter()
    async with session.post(f"{url}/telegram/webhook", json=update, headers=HEADERS) as response:
        await response.read()
        if response.status != 200:
            raise SystemExit(f"update {update['update_id']} got {response.status}")
    return (time.perf_counter() - started) * 1000


def updates(count: int, chats: int = 1000) -> list[dict[str, Any]]:
    return [
        message_update(10_000 + i % chats, text=QUESTIONS[i % len(QUESTIONS)]) for i in range(count)
    ]  # update ids are unique across calls, so every update is new to the server


async def steady(
    session: aiohttp.ClientSession, url: str, rate: float, seconds: float, quiet: bool = False
) -> None:
    """Open loop: one update every 1/rate s, whatever the answers' latency."""
    batch = updates(int(rate * seconds))
    tasks = []
    started = time.perf_counter()
    for i, update in enumerate(batch):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(session, url, update)))
    latencies = sorted(await asyncio.gather(*tasks))
    elapsed = time.perf_counter() - started
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    if quiet:
        return
    print(
        f"steady {rate:.0f}/s for {seconds:.0f} s: {len(batch)} accepted in {elapsed:.2f} s; "
        f"ack p50 {statistics.median(latencies):.2f} ms, p99 {p99:.2f} ms, "
        f"max {latencies[-1]:.2f} ms"
    )


async def burst(session: aiohttp.ClientSession, url: str, count: int, clients: int) -> None:
    """Closed loop: `clients` senders back to back; the sustained accepted rate."""
    batch = updates(count)
    queue = iter(batch)
    latencies: list[float] = []

    async def sender() -> None:
        for update in queue:
            latencies.append(await post(session, url, update))

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    print(
        f"burst of {count} with {clients} concurrent senders: {count / elapsed:.0f} updates/s "
        f"accepted; ack p50 {statistics.median(latencies):.2f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.2f} ms"
    )


async def main(rate: float, seconds: float, count: int, clients: int) -> None:
    fake = await FakeTelegram().start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), port, fake)
        try:
            connector = aiohttp.TCPConnector(limit=64)
            async with aiohttp.ClientSession(connector=connector) as session:
                await wait_until_serving(url, models=True)
                print(f"cpus: {os.cpu_count()}; server: python -m bot serve")
                print("-- webhook path alone (the Bot API holds sends; nothing is answered)")
                fake.hold()
                # Warm-up, not measured: first requests, and the first answers (computed, then
                # held at sending) all happen here.
                await steady(session, url, rate, WARM_UP_SECONDS, quiet=True)
                await steady(session, url, rate, seconds)
                await burst(session, url, count, clients)
                print("-- while the same process answers as fast as it can")
                fake.release()
                await steady(session, url, rate, seconds)
                await burst(session, url, count, clients)
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
        finally:
            server.terminate()
            server.wait(timeout=60)
            await fake.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=500, help="steady updates per second")
    parser.add_argument("--seconds", type=float, default=10, help="length of the steady phase")
    parser.add_argument("--burst", type=int, default=5000, help="updates in the closed-loop phase")
    parser.add_argument("--clients", type=int, default=16, help="concurrent senders in the burst")
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.seconds, args.burst, args.clients))
