"""WhatsApp (Twilio) webhook acknowledgement: latency (p50, p99) at a steady rate, then the most
messages per second it accepts, on loopback against `python -m bot serve`.

Run: `.venv/bin/python -m bench.whatsapp_webhook [--rate 500] [--seconds 10] [--burst 5000]`.
The same phases as bench.telegram_webhook: the server runs in its own process (the real app,
signature check and dispatcher; the fake Twilio REST API runs here), each webhook a form post
signed as Twilio signs it. First while the fake holds every message create (the webhook path
alone), then while the server answers as fast as it can in the same process. The count of
accepted messages is checked against the inbox: none may be lost.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
from functools import partial
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

from bench.webhook_load import Send, bench_webhook, parse_args, serve_env
from tests.fakes.twilio_api import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    WHATSAPP_NUMBER,
    FakeTwilio,
    inbound,
    signature,
)
from tests.serve_process import start_serve

WEBHOOK = "/whatsapp/webhook"
QUESTIONS = ["When is the library open?", "How do I reset my password?", "hello"]


def start_server(data_dir: Path, port: int, fake: FakeTwilio) -> subprocess.Popen[bytes]:
    return start_serve(
        data_dir,
        port,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_WHATSAPP_NUMBER=WHATSAPP_NUMBER,
        TWILIO_API_BASE_URL=fake.origin,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        **serve_env(),
    )


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> None:
    async with session.post(url + WEBHOOK, data=body, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise SystemExit(f"a message got {response.status}: {body[:80]!r}")


def sends(session: aiohttp.ClientSession, url: str, count: int, chats: int = 1000) -> list[Send]:
    """Encoded and signed ahead of time (as Twilio would send them); message SIDs are unique
    across calls, so each is new to the server."""
    result: list[Send] = []
    for i in range(count):
        fields = inbound(f"+62811{i % chats:07d}", body=QUESTIONS[i % len(QUESTIONS)])
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature(url + WEBHOOK, fields),
        }
        result.append(partial(post, session, url, urlencode(fields).encode(), headers))
    return result


async def main(args: argparse.Namespace) -> None:
    fake = await FakeTwilio().start()
    await bench_webhook(fake, partial(start_server, fake=fake), sends, args)
    print(f"replies sent through the fake Twilio API: {len(fake.sent)}")


if __name__ == "__main__":
    asyncio.run(main(parse_args(__doc__, "messages")))
