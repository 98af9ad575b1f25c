"""The Telegram channel end to end: the real PTB Application inside the web app, talking to a
local fake Bot API, with updates shaped as Telegram sends them and real synthesized speech."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.settings import PROJECT_DIR, Settings
from bot.web import COMPONENTS, MESSAGING, create_app
from tests.conftest import SettingsFactory
from tests.fakes.telegram_api import (
    BOT_USERNAME,
    TOKEN,
    FakeTelegram,
    check_html,
    message_update,
    photo_update,
    sticker_update,
    user,
    voice_update,
)

HANDBOOK = str(PROJECT_DIR / "tests" / "fixtures" / "handbook")
SECRET = "test-secret_0123456789"
HEADER = "X-Telegram-Bot-Api-Secret-Token"
Speak = Callable[[str], Awaitable[bytes]]


class Harness:
    """The served app, its test client and the fake Bot API it talks to."""

    def __init__(self, client: TestClient[Any, Any], fake: FakeTelegram) -> None:
        self.client = client
        self.fake = fake

    @property
    def app(self) -> Any:
        return self.client.server.app

    async def post(self, update: dict[str, Any], secret: str | None = SECRET) -> int:
        headers = {HEADER: secret} if secret is not None else {}
        response = await self.client.post("/telegram/webhook", json=update, headers=headers)
        return response.status

    async def answers(self, chat_id: int, count: int, timeout: float = 60.0) -> list[Any]:
        await self.fake.wait_for(
            lambda: len(self.fake.messages(chat_id, "sendMessage")) >= count, timeout
        )
        return self.fake.messages(chat_id, "sendMessage")

    async def idle(self, timeout: float = 60.0) -> None:
        """Wait until the inbox holds nothing pending."""
        inbox = self.app[MESSAGING].inbox
        deadline = time.monotonic() + timeout
        while (await inbox.stats()).pending:
            assert time.monotonic() < deadline, "the inbox did not drain"
            await asyncio.sleep(0.02)


def telegram_settings(
    factory: SettingsFactory, data_dir: Path, fake: FakeTelegram, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "knowledge_sources": [HANDBOOK],
        "telegram_bot_token": TOKEN,
        "telegram_webhook_secret": SECRET,
        "telegram_api_base_url": fake.base_url,
        "telegram_file_base_url": fake.file_base_url,
        "inbox_retry_seconds": 0.05,
        **overrides,
    }
    return factory(**values)


async def serving(settings: Settings, fake: FakeTelegram, **kw: Any) -> Harness:
    client = TestClient(TestServer(create_app(settings, **kw)))
    await client.start_server()
    harness = Harness(client, fake)
    await harness.app[COMPONENTS].ensure_indexed()
    return harness


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram().start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def bot(
    fake: FakeTelegram, settings_factory: SettingsFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Harness]:
    """One running bot for the module's tests; each test uses chats of its own."""
    data_dir = tmp_path_factory.mktemp("telegram")
    harness = await serving(telegram_settings(settings_factory, data_dir, fake), fake)
    yield harness
    await harness.client.close()


async def test_a_text_question_gets_a_grounded_html_answer_with_sources(bot: Harness) -> None:
    chat = 4101
    assert await bot.post(message_update(chat, text="How many books can I borrow at once?")) == 200
    [answer] = await bot.answers(chat, 1)
    assert answer.parse_mode == "HTML"
    errors, visible = check_html(answer.text)
    assert not errors
    assert "[1]" in visible
    assert "Sources" in visible and "Library" in visible
    await bot.idle()
    assert bot.fake.messages(chat, "sendVoice") == []  # asked by text: answered by text
    assert (chat, "typing") in bot.fake.actions


async def test_a_voice_note_is_transcribed_and_answered_with_text_and_a_voice_note(
    bot: Harness, speak: Speak
) -> None:
    chat = 4102
    audio = await speak("How many books can I borrow from the library at once?")
    file_id = bot.fake.add_file(audio)
    assert await bot.post(voice_update(chat, file_id, size=len(audio), duration=4)) == 200
    [answer] = await bot.answers(chat, 1)
    errors, visible = check_html(answer.text)
    assert not errors and "[1]" in visible and "Library" in visible
    await bot.fake.wait_for(lambda: bool(bot.fake.messages(chat, "sendVoice")))
    [voice] = bot.fake.messages(chat, "sendVoice")
    assert voice.voice is not None and voice.voice.startswith(b"OggS")
    assert b"OpusHead" in voice.voice[:100]
    assert len(voice.voice) < 1_000_000
    assert voice.voice_filename is not None and voice.voice_filename.endswith(".ogg")
    assert voice.voice_content_type == "audio/ogg"
    assert voice.duration and voice.duration >= 1
    assert (chat, "record_voice") in bot.fake.actions


async def test_a_wrong_or_missing_secret_is_refused_before_anything_is_stored(
    bot: Harness,
) -> None:
    chat = 4103
    stats = await bot.app[MESSAGING].inbox.stats()
    assert await bot.post(message_update(chat, text="hello?"), secret=None) == 403
    assert await bot.post(message_update(chat, text="hello?"), secret="wrong-secret") == 403
    # Refused before parsing: even a body that is not JSON gets 403, not 400.
    response = await bot.client.post(
        "/telegram/webhook", data=b"{not json", headers={HEADER: "nope"}
    )
    assert response.status == 403
    after = await bot.app[MESSAGING].inbox.stats()
    assert (after.pending + after.done) == (stats.pending + stats.done)
    await asyncio.sleep(0.2)
    assert bot.fake.messages(chat) == []


async def test_malformed_updates_get_400(bot: Harness) -> None:
    headers = {HEADER: SECRET}
    bad_json = await bot.client.post("/telegram/webhook", data=b"{not json", headers=headers)
    assert bad_json.status == 400
    not_update = await bot.client.post("/telegram/webhook", json=[1, 2], headers=headers)
    assert not_update.status == 400
    no_id = await bot.client.post("/telegram/webhook", json={"message": {}}, headers=headers)
    assert no_id.status == 400


async def test_a_redelivered_update_is_answered_once(bot: Harness) -> None:
    chat = 4104
    update = message_update(chat, text="When is the library open?")
    assert await bot.post(update) == 200
    assert await bot.post(update) == 200  # Telegram retries: same update_id
    await bot.answers(chat, 1)
    await bot.idle()
    assert await bot.post(update) == 200  # and again after it was answered
    await asyncio.sleep(0.3)
    assert len(bot.fake.messages(chat, "sendMessage")) == 1


async def test_three_chats_with_interleaved_messages_are_each_answered_in_order(
    bot: Harness,
) -> None:
    questions = [
        "How many books can I borrow at once?",
        "When is the library open?",
        "How do I reset my password?",
        "How do I connect to the wifi?",
        "Where can I print documents?",
    ]
    mention = f"@{BOT_USERNAME}"
    chats = [-1004201, -1004202, -1004203]
    sent_ids: dict[int, list[int]] = {chat: [] for chat in chats}
    posts = []
    for number, question in enumerate(questions):
        for chat in chats:
            update = message_update(
                chat, text=f"{mention} {question}", from_user=user(chat * -1 % 1000 + number)
            )
            sent_ids[chat].append(update["message"]["message_id"])
            posts.append(bot.post(update))
    assert await asyncio.gather(*posts) == [200] * len(posts)
    for chat in chats:
        answers = await bot.answers(chat, len(questions))
        assert [a.reply_to for a in answers] == sent_ids[chat]
        assert all(not check_html(a.text)[0] for a in answers)


async def test_commands_change_the_chat_and_reset_forgets_it(bot: Harness) -> None:
    chat = 4105
    await bot.post(message_update(chat, text="/start"))
    [start] = await bot.answers(chat, 1)
    assert "/voice on" in start.text and "/reset" in start.text
    await bot.post(message_update(chat, text="/voice on"))
    await bot.post(message_update(chat, text="When is the library open?"))
    answers = await bot.answers(chat, 3)
    assert "Voice replies are on" in answers[1].text
    await bot.fake.wait_for(lambda: len(bot.fake.messages(chat, "sendVoice")) == 1)

    await bot.post(message_update(chat, text="/lang id"))
    answers = await bot.answers(chat, 4)
    assert "bahasa Indonesia" in answers[3].text
    await bot.post(message_update(chat, text="/lang xx"))
    answers = await bot.answers(chat, 5)
    assert "/lang en" in answers[4].text

    conversations = bot.app[COMPONENTS].conversations
    thread = f"telegram:{chat}"
    assert await conversations.checkpointer.aget_tuple({"configurable": {"thread_id": thread}})
    await bot.post(message_update(chat, text="/reset"))
    answers = await bot.answers(chat, 6)
    assert "percakapan" in answers[5].text  # Indonesian, as /lang id asked
    checkpoint = await conversations.checkpointer.aget_tuple(
        {"configurable": {"thread_id": thread}}
    )
    assert checkpoint is None


async def test_other_media_get_a_polite_note_about_what_the_bot_understands(bot: Harness) -> None:
    chat = 4106
    await bot.post(photo_update(chat))
    await bot.post(sticker_update(chat))
    answers = await bot.answers(chat, 2)
    assert all("voice notes" in a.text for a in answers)


async def test_in_groups_it_answers_only_when_addressed(bot: Harness) -> None:
    group = -1004107
    statuses = [
        await bot.post(message_update(group, text="When is the library open?")),  # not for us
        await bot.post(message_update(group, text="/help@another_bot")),  # another bot's
        await bot.post(message_update(group, text=f"@{BOT_USERNAME} When is the library open?")),
        await bot.post(message_update(group, text="/help")),
    ]
    assert statuses == [200] * 4
    answers = await bot.answers(group, 2)
    await bot.idle()
    assert len(bot.fake.messages(group, "sendMessage")) == 2
    assert "Library" in answers[0].text
    assert "/reset" in answers[1].text
    # A reply to one of the bot's messages counts as addressing it.
    bot_message = {
        "message_id": 9,
        "from": {"id": 123456, "is_bot": True, "first_name": "Suara", "username": BOT_USERNAME},
        "chat": {"id": group, "title": "Campus help", "type": "supergroup"},
        "date": int(time.time()),
        "text": "an earlier answer",
    }
    await bot.post(message_update(group, text="and on Sundays?", reply_to_message=bot_message))
    await bot.answers(group, 3)


async def test_an_oversized_voice_note_is_refused_politely_without_downloading(
    bot: Harness,
) -> None:
    chat = 4108
    file_id = bot.fake.add_file(b"OggS" + b"\0" * 100)
    calls_before = bot.fake.calls.count("getFile")
    await bot.post(voice_update(chat, file_id, size=50_000_000))
    [answer] = await bot.answers(chat, 1)
    assert "too large" in answer.text
    assert bot.fake.calls.count("getFile") == calls_before


async def test_flood_control_retry_after_is_honoured(bot: Harness) -> None:
    chat = 4109
    bot.fake.fail("sendMessage", 429, retry_after=1)
    started = time.monotonic()
    await bot.post(message_update(chat, text="When is the library open?"))
    await bot.answers(chat, 1)
    assert time.monotonic() - started >= 1.0
    await bot.idle()
    assert len(bot.fake.messages(chat, "sendMessage")) == 1


async def test_a_failing_send_is_retried_and_sent_once(bot: Harness) -> None:
    chat = 4110
    bot.fake.fail("sendMessage", 502, times=2)
    await bot.post(message_update(chat, text="When is the library open?"))
    await bot.answers(chat, 1)
    await bot.idle()
    assert len(bot.fake.messages(chat, "sendMessage")) == 1


async def test_after_the_last_attempt_the_user_gets_an_apology_and_the_message_is_parked(
    fake: FakeTelegram, settings_factory: SettingsFactory, tmp_path: Path, speak: Speak
) -> None:
    settings = telegram_settings(settings_factory, tmp_path, fake, inbox_max_attempts=2)
    harness = await serving(settings, fake)
    try:
        chat = 4111
        audio = await speak("When is the library open?")
        file_id = harness.fake.add_file(audio)
        harness.fake.fail("getFile", 502, times=2)  # the download fails on both attempts
        await harness.post(voice_update(chat, file_id, size=len(audio)))
        [apology] = await harness.answers(chat, 1)
        assert "went wrong" in apology.text
        await harness.idle()
        parked = await harness.app[MESSAGING].inbox.parked()
        assert [p["chat_id"] for p in parked] == [str(chat)]
        assert "getFile" in parked[0]["error"]
        # The next message of the chat is answered normally.
        await harness.post(message_update(chat, text="When is the library open?"))
        answers = await harness.answers(chat, 2)
        assert "Library" in answers[1].text
    finally:
        await harness.client.close()


async def test_a_blocked_bot_parks_the_message_without_retrying(bot: Harness) -> None:
    chat = 4112
    bot.fake.fail("sendMessage", 403)
    await bot.post(message_update(chat, text="When is the library open?"))
    await bot.idle()
    parked = await bot.app[MESSAGING].inbox.parked()
    assert any(p["chat_id"] == str(chat) and "blocked" in p["error"] for p in parked)
    assert bot.fake.messages(chat) == []


async def test_only_allowed_chats_reach_the_agent(
    fake: FakeTelegram, settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = telegram_settings(
        settings_factory, tmp_path, fake, telegram_allowed_chats="4201,@trusted"
    )
    harness = await serving(settings, fake)
    try:
        await harness.post(message_update(4202, text="When is the library open?"))
        [refusal] = await harness.answers(4202, 1)
        assert "isn't available" in refusal.text
        trusted = user(4203, username="Trusted")
        await harness.post(
            message_update(4203, text="When is the library open?", from_user=trusted)
        )
        await harness.post(message_update(4201, text="When is the library open?"))
        assert "Library" in (await harness.answers(4203, 1))[0].text
        assert "Library" in (await harness.answers(4201, 1))[0].text
        conversations = harness.app[COMPONENTS].conversations.checkpointer
        assert await conversations.aget_tuple({"configurable": {"thread_id": "telegram:4201"}})
        assert not await conversations.aget_tuple({"configurable": {"thread_id": "telegram:4202"}})
    finally:
        await harness.client.close()


async def test_polling_mode_answers_without_a_webhook(
    fake: FakeTelegram, settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = telegram_settings(settings_factory, tmp_path, fake, telegram_webhook_secret=None)
    fake.webhook = {"url": "https://old.example.org/telegram/webhook"}
    fake.updates.append(message_update(4301, text="When is the library open?"))
    harness = await serving(settings, fake, telegram_polling=True)
    try:
        [answer] = await harness.answers(4301, 1)
        assert "Library" in answer.text
        assert fake.webhook == {}  # polling removed the webhook first
        missing = await harness.client.post("/telegram/webhook", json={})
        assert missing.status in (404, 405)
    finally:
        await harness.client.close()


async def test_set_webhook_registers_the_url_secret_and_updates(
    fake: FakeTelegram, tmp_path: Path
) -> None:
    from tests.serve_process import cli_env

    env = cli_env(
        tmp_path,
        **fake.serve_env(SECRET),
        PUBLIC_BASE_URL="https://bot.example.org/",
    )
    command = [sys.executable, "-m", "bot", "telegram", "set-webhook"]
    done = await asyncio.to_thread(
        subprocess.run, command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert fake.webhook["url"] == "https://bot.example.org/telegram/webhook"
    assert fake.webhook["secret_token"] == SECRET
    assert json.loads(fake.webhook["allowed_updates"]) == ["message"]
    assert "https://bot.example.org/telegram/webhook" in done.stdout

    env["PUBLIC_BASE_URL"] = "http://insecure.example.org"
    refused = await asyncio.to_thread(
        subprocess.run, command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert "PUBLIC_BASE_URL" in refused.stderr and "Traceback" not in refused.stderr


async def test_a_webhook_without_a_secret_setting_refuses_to_start(
    fake: FakeTelegram, settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    from bot.errors import SettingsError

    settings = telegram_settings(settings_factory, tmp_path, fake, telegram_webhook_secret=None)
    with pytest.raises(SettingsError, match="TELEGRAM_WEBHOOK_SECRET"):
        create_app(settings)
    with pytest.raises(SettingsError, match="TELEGRAM_WEBHOOK_SECRET"):
        settings_factory(data_dir=tmp_path, telegram_webhook_secret="has spaces")


async def test_a_secret_header_that_is_not_utf8_gets_403_not_500(bot: Harness) -> None:
    server = bot.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    body = json.dumps(message_update(4113, text="hi")).encode()
    writer.write(
        b"POST /telegram/webhook HTTP/1.1\r\nHost: localhost\r\n"
        b"X-Telegram-Bot-Api-Secret-Token: \xe9\xff\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    assert status_line.split()[1] == b"403"


async def test_updates_with_malformed_fields_get_400(bot: Harness) -> None:
    for broken in (
        {"update_id": 5, "message": "x"},
        {"update_id": 6, "message": {"message_id": 1, "date": 1e20, "chat": {"id": 1}}},
    ):
        assert await bot.post(broken) == 400


async def test_an_audio_document_is_transcribed(bot: Harness, speak: Speak) -> None:
    chat = 4114
    audio = await speak("When is the library open?")
    document = {
        "file_name": "question.ogg",
        "mime_type": "application/ogg",
        "file_id": bot.fake.add_file(audio),
        "file_unique_id": "AgADdoc",
        "file_size": len(audio),
    }
    await bot.post(message_update(chat, document=document))
    [answer] = await bot.answers(chat, 1)
    assert "Library" in answer.text
