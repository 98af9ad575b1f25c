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
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from bench.webhook_load import Send, bench_webhook, parse_args, serve_env
from tests.fakes.telegram_api import FakeTelegram, message_update
from tests.serve_process import start_serve

SECRET = "bench-secret"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
QUESTIONS = ["When is the library open?", "How do I reset my password?", "hello"]


def start_server(data_dir: Path, port: int, fake: FakeTelegram) -> subprocess.Popen[bytes]:
    return start_serve(
        data_dir,
        port,
        **fake.serve_env(SECRET),
        **serve_env(),
    )


async def post(session: aiohttp.ClientSession, url: str, update: dict[str, Any]) -> None:
    async with session.post(f"{url}/telegram/webhook", json=update, headers=HEADERS) as response:
        await response.read()
        if response.status != 200:
            raise SystemExit(f"update {update['update_id']} got {response.status}")


def sends(session: aiohttp.ClientSession, url: str, count: int, chats: int = 1000) -> list[Send]:
    """Update ids are unique across calls, so every update is new to the server."""
    return [
        partial(post, session, url, message_update(10_000 + i % chats, text=QUESTIONS[i % 3]))
        for i in range(count)
    ]


async def main(args: argparse.Namespace) -> None:
    fake = await FakeTelegram().start()
    await bench_webhook(fake, partial(start_server, fake=fake), sends, args)


if __name__ == "__main__":
    asyncio.run(main(parse_args(__doc__, "updates")))
