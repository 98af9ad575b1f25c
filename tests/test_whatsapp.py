"""The WhatsApp channel end to end: webhooks signed exactly as Twilio signs them, the real twilio
client sending replies to a local fake REST API that checks Basic auth, media on the fake's host
and on a second host, and real synthesized speech."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.errors import PermanentDeliveryError, SettingsError
from bot.responder import deliver_parts
from bot.settings import PROJECT_DIR, Settings
from bot.web import COMPONENTS, MESSAGING, create_app
from handlers.messages import Reply
from handlers.twilio_media import MediaDownloader
from handlers.whatsapp import WhatsAppChannel
from speech.errors import AudioTooLarge
from speech.types import VoiceNote
from storage.inbox import InboxItem, SqliteInbox
from tests.conftest import SettingsFactory
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.twilio_api import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    WHATSAPP_NUMBER,
    FakeTwilio,
    MediaHost,
    SentMessage,
    inbound,
    location,
    signature,
    status_callback,
)

HANDBOOK = str(PROJECT_DIR / "tests" / "fixtures" / "handbook")
WEBHOOK = "/whatsapp/webhook"
STATUS = "/whatsapp/status"
Speak = Callable[[str], Awaitable[bytes]]
UNSET: Any = object()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Harness:
    """The served app (reachable at PUBLIC_BASE_URL), its test client and the fake Twilio."""

    def __init__(self, client: TestClient[Any, Any], twilio: FakeTwilio, public: str) -> None:
        self.client = client
        self.twilio = twilio
        self.public = public

    @property
    def app(self) -> Any:
        return self.client.server.app

    @property
    def channel(self) -> WhatsAppChannel:
        channel = self.app[MESSAGING].channels["whatsapp"]
        assert isinstance(channel, WhatsAppChannel)
        return channel

    async def post(
        self, fields: dict[str, str], path: str = WEBHOOK, signed: Any = UNSET
    ) -> tuple[int, str, str]:
        """(status, body, content type); signed as Twilio would unless `signed` is given."""
        sig = signature(self.public + path, fields) if signed is UNSET else signed
        headers = {"X-Twilio-Signature": sig} if sig is not None else {}
        async with self.client.post(path, data=fields, headers=headers) as response:
            return response.status, await response.text(), response.content_type

    def texts(self, number: str) -> list[SentMessage]:
        return [m for m in self.twilio.messages(f"whatsapp:{number}") if m.body is not None]

    def voices(self, number: str) -> list[SentMessage]:
        return [m for m in self.twilio.messages(f"whatsapp:{number}") if m.media_urls]

    async def answers(self, number: str, count: int, timeout: float = 60.0) -> list[SentMessage]:
        await self.twilio.wait_for(lambda: len(self.texts(number)) >= count, timeout)
        return self.texts(number)

    async def idle(self, timeout: float = 60.0) -> None:
        inbox = self.app[MESSAGING].inbox
        deadline = time.monotonic() + timeout
        while (await inbox.stats()).pending:
            assert time.monotonic() < deadline, "the inbox did not drain"
            await asyncio.sleep(0.02)

    async def health(self) -> dict[str, Any]:
        async with self.client.get("/health") as response:
            body: dict[str, Any] = await response.json()
            return body


def whatsapp_settings(
    factory: SettingsFactory, data_dir: Path, twilio: FakeTwilio, port: int, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "knowledge_sources": [HANDBOOK],
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_whatsapp_number": WHATSAPP_NUMBER,
        "twilio_api_base_url": twilio.origin,
        "public_base_url": f"http://127.0.0.1:{port}",
        "inbox_retry_seconds": 0.05,
        **overrides,
    }
    return factory(**values)


async def serving(
    factory: SettingsFactory, data_dir: Path, twilio: FakeTwilio, **overrides: Any
) -> Harness:
    port = free_port()
    settings = whatsapp_settings(factory, data_dir, twilio, port, **overrides)
    client = TestClient(TestServer(create_app(settings), host="127.0.0.1", port=port))
    await client.start_server()
    harness = Harness(client, twilio, f"http://127.0.0.1:{port}")
    await harness.app[COMPONENTS].ensure_indexed()
    return harness


@pytest.fixture(scope="module")
async def twilio() -> AsyncIterator[FakeTwilio]:
    server = await FakeTwilio().start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def media_host() -> AsyncIterator[MediaHost]:
    server = await MediaHost().start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def bot(
    twilio: FakeTwilio, settings_factory: SettingsFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Harness]:
    """One running bot for most tests; each test writes from numbers of its own."""
    harness = await serving(settings_factory, tmp_path_factory.mktemp("whatsapp"), twilio)
    yield harness
    await harness.client.close()


LONG_SENTENCES = 60


def long_answer(body: dict[str, Any]) -> str:
    """A grounded model answer of about 4,000 characters, its sentences numbered in order."""
    return " ".join(
        f"Sentence {n:03d} says that members may borrow books and renew them online [1]."
        for n in range(LONG_SENTENCES)
    )


@pytest.fixture(scope="module")
async def tuned(
    twilio: FakeTwilio, settings_factory: SettingsFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Harness]:
    """A second bot: a language model (local fake) writing long answers, voice replies that
    expire after 2 s, and only two numbers allowed."""
    openai = await FakeOpenAI(chat_handler=long_answer).start()
    harness = await serving(
        settings_factory,
        tmp_path_factory.mktemp("whatsapp-tuned"),
        twilio,
        openai_api_key=openai.api_key,
        openai_base_url=openai.base_url,
        media_ttl=2,
        twilio_allowed_numbers="+628110000001, whatsapp:+62 811-0000-002",
    )
    yield harness
    await harness.client.close()
    await openai.stop()


async def test_a_text_question_is_answered_with_plain_text_and_sources(bot: Harness) -> None:
    number = "+628120000001"
    status, body, content_type = await bot.post(
        inbound(number, body="How many books can I borrow at once?")
    )
    assert status == 200
    assert content_type == "text/xml" and "<Response/>" in body
    [answer] = await bot.answers(number, 1)
    assert answer.from_ == WHATSAPP_NUMBER
    assert answer.status_callback == f"{bot.public}/whatsapp/status"
    assert answer.body is not None
    assert "[1]" in answer.body and "*Sources*" in answer.body and "Library" in answer.body
    assert "<" not in answer.body  # no HTML on WhatsApp
    await bot.idle()
    assert bot.voices(number) == []  # asked by text: answered by text
    assert bot.twilio.refused_auth == 0  # every REST call carried the right Basic auth


async def test_a_voice_note_is_answered_with_text_and_a_voice_note_served_as_ogg(
    bot: Harness, speak: Speak
) -> None:
    number = "+628120000002"
    audio = await speak("How many books can I borrow from the library at once?")
    url = bot.twilio.add_media(audio, "audio/ogg")
    auth_before = len(bot.twilio.media_auth)
    assert (await bot.post(inbound(number, media=[(url, "audio/ogg")])))[0] == 200
    [answer] = await bot.answers(number, 1)
    assert answer.body is not None and "[1]" in answer.body and "Library" in answer.body
    await bot.twilio.wait_for(lambda: bool(bot.voices(number)))
    [voice] = bot.voices(number)
    assert voice.body is None and voice.at > answer.at  # the voice note comes last
    # The media download went to the Twilio API's host, with the account's credentials.
    assert bot.twilio.media_auth[auth_before:] and all(bot.twilio.media_auth[auth_before:])
    [media_url] = voice.media_urls
    assert re.fullmatch(rf"{re.escape(bot.public)}/media/[A-Za-z0-9_-]{{43}}\.ogg", media_url)
    async with aiohttp.ClientSession() as session, session.get(media_url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "audio/ogg"
        data = await response.read()
    assert data.startswith(b"OggS") and b"OpusHead" in data[:100]
    assert 1000 < len(data) < 512_000


async def test_forged_or_missing_signatures_are_refused_before_anything_is_stored(
    bot: Harness,
) -> None:
    number = "+628120000003"
    before = await bot.app[MESSAGING].inbox.stats()
    fields = inbound(number, body="When is the library open?")
    forged = signature(bot.public + WEBHOOK, fields, token="0" * 32)
    assert (await bot.post(fields, signed=forged))[0] == 403
    assert (await bot.post(fields, signed=None))[0] == 403
    other_url = signature("https://elsewhere.example.org" + WEBHOOK, fields)
    assert (await bot.post(fields, signed=other_url))[0] == 403
    tampered = {**fields, "Body": "Something else"}
    assert (await bot.post(tampered, signed=signature(bot.public + WEBHOOK, fields)))[0] == 403
    # Not even a body that is not a form reaches parsing: 403, not 400.
    async with bot.client.post(
        WEBHOOK, data=b"{not a form", headers={"X-Twilio-Signature": "abc"}
    ) as response:
        assert response.status == 403
    after = await bot.app[MESSAGING].inbox.stats()
    assert after.pending + after.done == before.pending + before.done
    await asyncio.sleep(0.2)
    assert bot.twilio.messages(f"whatsapp:{number}") == []


async def test_signed_but_malformed_webhooks_get_400(bot: Harness) -> None:
    fields = inbound("+628120000004", body="hello")
    without_sid = {k: v for k, v in fields.items() if k not in ("MessageSid", "SmsMessageSid")}
    assert (await bot.post(without_sid))[0] == 400
    without_from = {k: v for k, v in fields.items() if k != "From"}
    assert (await bot.post(without_from))[0] == 400
    assert (await bot.post({**fields, "NumMedia": "two"}))[0] == 400


async def test_a_replayed_message_sid_is_answered_once(bot: Harness) -> None:
    number = "+628120000005"
    fields = inbound(number, body="When is the library open?")
    first, second = await asyncio.gather(bot.post(fields), bot.post(fields))
    assert first[0] == second[0] == 200 and "<Response/>" in second[1]
    await bot.answers(number, 1)
    await bot.idle()
    assert (await bot.post(fields))[0] == 200  # and again after it was answered
    await asyncio.sleep(0.3)
    assert len(bot.texts(number)) == 1


async def test_media_on_a_foreign_host_never_receives_the_credentials(
    bot: Harness, media_host: MediaHost, speak: Speak
) -> None:
    number = "+628120000006"
    audio = await speak("When is the library open?")
    url = media_host.add("foreign.ogg", audio)
    await bot.post(inbound(number, media=[(url, "audio/ogg")]))
    [answer] = await bot.answers(number, 1)
    assert answer.body is not None and "Library" in answer.body
    foreign = [auth for path, auth in media_host.requests if path == "/foreign.ogg"]
    assert foreign == [None]


async def test_a_redirect_from_twilio_media_is_followed_without_the_credentials(
    bot: Harness, media_host: MediaHost, speak: Speak
) -> None:
    number = "+628120000007"
    audio = await speak("When is the library open?")
    cdn = media_host.add("cdn-signed.ogg", audio)
    url = bot.twilio.add_media(audio, redirect_to=cdn)
    auth_before = len(bot.twilio.media_auth)
    await bot.post(inbound(number, media=[(url, "audio/ogg")]))
    [answer] = await bot.answers(number, 1)
    assert answer.body is not None and "Library" in answer.body
    assert bot.twilio.media_auth[auth_before:][0] is not None  # Twilio's host: with auth
    assert ("/cdn-signed.ogg", None) in media_host.requests  # the CDN: without


async def test_media_downloads_have_a_size_limit_and_only_http(
    twilio: FakeTwilio, media_host: MediaHost
) -> None:
    url = media_host.add("big.ogg", b"OggS" + b"\0" * 5000)
    credentials = aiohttp.BasicAuth(ACCOUNT_SID, AUTH_TOKEN)
    async with aiohttp.ClientSession() as session:
        downloader = MediaDownloader(session, twilio.origin, credentials)
        with pytest.raises(AudioTooLarge):
            await downloader.fetch(url, limit=1000)
        assert len(await downloader.fetch(url, limit=10_000)) == 5004
        with pytest.raises(PermanentDeliveryError):
            await downloader.fetch("file:///etc/passwd", limit=10_000)
        with pytest.raises(PermanentDeliveryError, match="404"):
            await downloader.fetch(media_host.add("x", b"") + "-missing", limit=10_000)
        # Odd addresses fail once, for good, instead of being retried.
        for odd in ("https://user:secret@api.twilio.com/x", "http://bad\\host/x", "http://[::1"):
            with pytest.raises(PermanentDeliveryError):
                await downloader.fetch(odd, limit=10_000)
        to_file = twilio.add_media(b"", redirect_to="file:///etc/passwd")
        with pytest.raises(PermanentDeliveryError, match="redirect"):
            await downloader.fetch(to_file, limit=10_000)


async def test_a_voice_reply_too_large_for_whatsapp_is_skipped_and_the_text_still_sent(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    number = "+628120000014"
    item = InboxItem(
        id=10**9,
        channel="whatsapp",
        chat_id=number.lstrip("+"),
        message_id="SM" + "12" * 16,
        kind="message",
        payload={"address": f"whatsapp:{number}"},
        attempts=1,
        received_at=time.time(),
    )
    reply = Reply(text="Short answer.", voice=VoiceNote(b"OggS" + bytes(16_000_000), 900.0))
    recorded: list[str] = []

    async def record(part: str) -> None:
        recorded.append(part)

    with caplog.at_level(logging.WARNING, logger="bot.responder"):
        await deliver_parts(bot.channel, item, reply, set(), record)
    assert recorded == ["text:0"]
    assert [m.body for m in bot.twilio.messages(f"whatsapp:{number}")] == ["Short answer."]
    assert "over WhatsApp's 16 MB" in caplog.text


async def test_unknown_media_tokens_get_404(bot: Harness) -> None:
    async with bot.client.get("/media/" + "A" * 43 + ".ogg") as response:
        assert response.status == 404
    async with bot.client.get("/media/not-a-token") as response:
        assert response.status == 404


async def test_commands_are_words_and_a_question_starting_with_one_is_still_a_question(
    bot: Harness,
) -> None:
    number = "+628120000008"
    await bot.post(inbound(number, body="help"))
    [help_text] = await bot.answers(number, 1)
    assert help_text.body is not None
    assert "voice on" in help_text.body and "reset" in help_text.body
    assert "/reset" not in help_text.body
    await bot.post(inbound(number, body="Voice on"))
    await bot.post(inbound(number, body="reset my password?"))
    answers = await bot.answers(number, 3)
    assert answers[1].body is not None and "Voice replies are on" in answers[1].body
    assert answers[2].body is not None and "password" in answers[2].body.lower()
    await bot.twilio.wait_for(lambda: len(bot.voices(number)) == 1)  # voice on: a voice note

    conversations = bot.app[COMPONENTS].conversations.checkpointer
    thread = {"configurable": {"thread_id": f"whatsapp:{number.lstrip('+')}"}}
    assert await conversations.aget_tuple(thread)
    await bot.post(inbound(number, body="reset"))
    answers = await bot.answers(number, 4)
    assert answers[3].body is not None and "forgotten our conversation" in answers[3].body
    assert await conversations.aget_tuple(thread) is None


async def test_images_and_locations_get_a_polite_note_without_a_download(bot: Harness) -> None:
    number = "+628120000009"
    image = bot.twilio.add_media(b"\xff\xd8\xff\xe0 a jpeg", "image/jpeg")
    auth_before = len(bot.twilio.media_auth)
    await bot.post(inbound(number, media=[(image, "image/jpeg")], body="what is this?"))
    await bot.post(location(number))
    answers = await bot.answers(number, 2)
    assert all(a.body is not None and "voice notes" in a.body for a in answers)
    assert len(bot.twilio.media_auth) == auth_before


async def test_outside_the_24_hour_window_is_recorded_and_not_retried(bot: Harness) -> None:
    number = "+628120000010"
    bot.twilio.fail(400, 63016)
    creates = bot.twilio.creates
    await bot.post(inbound(number, body="When is the library open?"))
    await bot.idle()
    await asyncio.sleep(0.3)
    assert bot.twilio.creates == creates + 1  # one try, no retry, no apology
    assert bot.texts(number) == []
    parked = await bot.app[MESSAGING].inbox.parked()
    assert any(p["chat_id"] == number.lstrip("+") and "63016" in p["error"] for p in parked)
    failures = await bot.channel.failures.recent("whatsapp")
    assert any(f.recipient == f"whatsapp:{number}" and f.error_code == "63016" for f in failures)


async def test_rate_limits_and_server_errors_are_retried_and_sent_once(bot: Harness) -> None:
    number = "+628120000011"
    bot.twilio.fail(429, 20429, retry_after=1)
    bot.twilio.fail(500, 20500)
    started = time.monotonic()
    await bot.post(inbound(number, body="When is the library open?"))
    await bot.answers(number, 1)
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured
    await bot.idle()
    assert len(bot.texts(number)) == 1


async def test_status_callbacks_record_failed_deliveries(bot: Harness) -> None:
    to = "whatsapp:+628120000012"
    before = (await bot.health())["channel_health"]["whatsapp"]["failed_deliveries"]
    failed = status_callback("SM" + "ab" * 16, to, "undelivered", error_code="63024")
    assert (await bot.post(failed, path=STATUS))[0] == 204
    assert (await bot.post(failed, path=STATUS))[0] == 204  # a retried callback counts once
    delivered = status_callback("SM" + "cd" * 16, to, "delivered")
    assert (await bot.post(delivered, path=STATUS))[0] == 204
    forged = status_callback("SM" + "ef" * 16, to, "failed", error_code="30008")
    assert (await bot.post(forged, path=STATUS, signed="bm90IGEgc2lnbmF0dXJl"))[0] == 403
    health = await bot.health()
    assert health["channels"] == ["whatsapp"]
    assert health["channel_health"]["whatsapp"]["failed_deliveries"] == before + 1
    [latest, *_] = await bot.channel.failures.recent("whatsapp")
    assert (latest.message_sid, latest.status, latest.error_code) == (
        "SM" + "ab" * 16,
        "undelivered",
        "63024",
    )


async def test_a_long_answer_arrives_in_ordered_parts_and_a_retry_resends_only_the_rest(
    tuned: Harness,
) -> None:
    number = "+628110000001"
    tuned.twilio.fail(500, 20500, after=1)  # the second part fails once
    creates = tuned.twilio.creates
    await tuned.post(inbound(number, body="How many books can I borrow and how do I renew?"))
    await tuned.idle()
    parts = [m.body or "" for m in tuned.texts(number)]
    assert len(parts) >= 3
    assert all(len(part) <= 1600 for part in parts)
    assert tuned.twilio.creates == creates + len(parts) + 1  # only the failed part again
    numbers = [int(n) for n in re.findall(r"Sentence (\d{3})", "\n".join(parts))]
    assert numbers == list(range(LONG_SENTENCES))  # every sentence once, in order
    # Cut between sentences, never inside one; the sources close the last part.
    assert all(part.split("*Sources*")[0].rstrip().endswith("online [1].") for part in parts)
    assert "*Sources*" in parts[-1] and "Campus Library" in parts[-1]


async def test_voice_replies_expire_after_media_ttl(tuned: Harness) -> None:
    number = "+628110000002"
    await tuned.post(inbound(number, body="voice on"))
    await tuned.post(inbound(number, body="When is the library open?"))
    await tuned.twilio.wait_for(lambda: len(tuned.voices(number)) == 1)
    [media_url] = tuned.voices(number)[0].media_urls
    async with aiohttp.ClientSession() as session:
        async with session.get(media_url) as response:
            assert response.status == 200
        await asyncio.sleep(2.2)
        async with session.get(media_url) as response:
            assert response.status == 404


async def test_numbers_not_allowed_get_a_refusal_and_nothing_reaches_the_agent(
    tuned: Harness,
) -> None:
    number = "+628110000003"
    await tuned.post(inbound(number, body="When is the library open?"))
    [refusal] = await tuned.answers(number, 1)
    assert refusal.body is not None and "isn't available" in refusal.body
    # More messages the same day are not refused again: each refusal is a paid send.
    await tuned.post(inbound(number, body="Hello?"))
    await tuned.post(inbound(number, body="Anyone there?"))
    await tuned.idle()
    assert len(tuned.twilio.messages(f"whatsapp:{number}")) == 1
    conversations = tuned.app[COMPONENTS].conversations.checkpointer
    assert not await conversations.aget_tuple(
        {"configurable": {"thread_id": f"whatsapp:{number.lstrip('+')}"}}
    )


async def test_a_webhook_the_inbox_cannot_store_gets_503_so_twilio_retries(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the inbox's folder should be")
    public = "https://suara.example.org"
    settings = settings_factory(
        data_dir=tmp_path,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_whatsapp_number=WHATSAPP_NUMBER,
        public_base_url=public,
    )
    inbox = SqliteInbox(blocked / "inbox.sqlite3")
    channel = WhatsAppChannel(settings, inbox, lambda: None)
    app = web.Application()
    app.add_routes(channel.routes())
    async with TestClient(TestServer(app)) as client:
        fields = inbound("+628120000013", body="hello")
        headers = {"X-Twilio-Signature": signature(public + WEBHOOK, fields)}
        async with client.post(WEBHOOK, data=fields, headers=headers) as response:
            assert response.status == 503
    await channel.stop()
    await inbox.close()


async def test_wrong_twilio_credentials_stop_the_start_with_a_clear_error(
    twilio: FakeTwilio, settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    refused = twilio.refused_auth
    settings = whatsapp_settings(
        settings_factory, tmp_path, twilio, free_port(), twilio_auth_token="0" * 32
    )
    client = TestClient(TestServer(create_app(settings)))
    with pytest.raises(PermanentDeliveryError, match="TWILIO_AUTH_TOKEN"):
        await client.start_server()
    await client.close()
    assert twilio.refused_auth == refused + 1


def test_whatsapp_settings_missing_are_named(settings_factory: SettingsFactory) -> None:
    with pytest.raises(SettingsError, match=r"TWILIO_AUTH_TOKEN.*PUBLIC_BASE_URL"):
        create_app(settings_factory(twilio_account_sid=ACCOUNT_SID, twilio_whatsapp_number=None))
    with pytest.raises(SettingsError, match="TWILIO_ACCOUNT_SID"):
        create_app(settings_factory(twilio_auth_token=AUTH_TOKEN))
    with pytest.raises(SettingsError, match="TWILIO_WHATSAPP_NUMBER"):
        settings_factory(twilio_whatsapp_number="+14155238886")
