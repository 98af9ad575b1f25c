"""`serve` killed (SIGKILL) while Telegram messages are in flight, then restarted: every message
is answered exactly once, and each chat's answers keep their order."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiohttp

from tests.fakes.telegram_api import BOT_USERNAME, FakeTelegram, message_update, user
from tests.serve_process import start_serve, wait_until_serving

SECRET = "restart-secret"
QUESTIONS = [
    "How many books can I borrow at once?",
    "When is the library open?",
    "How do I reset my password?",
    "How do I connect to the wifi?",
    "How much does a replacement student card cost?",
]
CHATS = [-1005301, -1005302, -1005303]


def start_bot(data_dir: Path, port: int, fake: FakeTelegram) -> subprocess.Popen[bytes]:
    return start_serve(
        data_dir,
        port,
        **fake.serve_env(SECRET),
        INBOX_RETRY_SECONDS="0.1",
        LOG_LEVEL="INFO",
    )


async def test_messages_in_flight_survive_a_kill_and_are_answered_exactly_once(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    fake = await FakeTelegram().start()
    url = f"http://127.0.0.1:{unused_tcp_port}"
    first = start_bot(tmp_path, unused_tcp_port, fake)
    second: subprocess.Popen[bytes] | None = None
    try:
        async with aiohttp.ClientSession() as session:
            await wait_until_serving(url)

            sends = 0

            def hold_after_four_answers(method: str) -> None:
                nonlocal sends
                if method == "sendMessage":
                    sends += 1
                    if sends == 4:
                        fake.hold()  # this answer and everything after it hangs

            fake.on_request = hold_after_four_answers
            expected: dict[int, list[int]] = {chat: [] for chat in CHATS}
            for number, question in enumerate(QUESTIONS):
                for chat in CHATS:
                    update = message_update(
                        chat, text=f"@{BOT_USERNAME} {question}", from_user=user(900 + number)
                    )
                    expected[chat].append(update["message"]["message_id"])
                    async with session.post(
                        f"{url}/telegram/webhook",
                        json=update,
                        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                    ) as response:
                        assert response.status == 200

            await fake.wait_for(lambda: not fake.open.is_set(), timeout=60)
            await asyncio.sleep(0.5)  # replies already answered get recorded
            first.kill()  # SIGKILL: no clean-up at all
            first.wait(timeout=30)
            answered_before = len(fake.messages(method="sendMessage"))
            assert 0 < answered_before < len(QUESTIONS) * len(CHATS)

            fake.on_request = None
            fake.release(drop_held=True)  # the killed process's requests never arrived
            second = start_bot(tmp_path, unused_tcp_port, fake)
            await wait_until_serving(url)
            await fake.wait_for(
                lambda: len(fake.messages(method="sendMessage")) >= len(QUESTIONS) * len(CHATS),
                timeout=90,
            )
            await asyncio.sleep(1.0)  # anything doubled would arrive now
            async with session.get(f"{url}/health") as response:
                inbox = (await response.json())["inbox"]
        for chat in CHATS:
            replies = [m.reply_to for m in fake.messages(chat, "sendMessage")]
            assert replies == expected[chat], f"chat {chat}: {replies} != {expected[chat]}"
        assert inbox["pending"] == 0 and inbox["parked"] == 0
        assert inbox["done"] == len(QUESTIONS) * len(CHATS)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
        await fake.stop()
