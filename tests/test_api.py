"""The HTTP API end to end: the real app on a local port, real synthesized speech, every refusal,
conversation memory and order, and the OpenAPI description checked against what is served."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer

from bot.api import http_routes, key_fingerprint
from bot.api_errors import reply_status
from bot.api_schema import OPENAPI
from bot.errors import SettingsError
from bot.settings import PROJECT_DIR, load_settings
from bot.web import COMPONENTS, create_app
from handlers.messages import Reply
from speech.errors import AudioTooLong, CorruptAudio, EmptyAudio, SilentAudio
from speech.factory import SpeechServices
from speech.ffmpeg import ffmpeg_binary
from speech.transcode import to_pcm16k, to_voice_note
from speech.types import EMOTION_LABELS, Pcm
from tests.conftest import SettingsFactory
from tests.serve_process import start_serve, wait_until_serving

HANDBOOK = str(PROJECT_DIR / "tests" / "fixtures" / "handbook")
KEY = "test-api-key-0123456789"
OTHER_KEY = "second-api-key-abcdefghij"
MAX_AUDIO = 300_000
Speak = Callable[[str], Awaitable[bytes]]
Api = TestClient[Any, Any]


@pytest.fixture(scope="module")
async def api(
    settings_factory: SettingsFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    """One served app for the module: two API keys, the web chat open, nothing indexed yet."""
    settings = settings_factory(
        data_dir=tmp_path_factory.mktemp("api"),
        knowledge_sources=[HANDBOOK],
        api_keys=f"{KEY},{OTHER_KEY}",
        reindex_on_start=False,  # the first question must wait for the first index run
        max_audio_bytes=MAX_AUDIO,
        max_audio_seconds=8.0,
        stt_language="en",
        rate_limit_per_minute=0,  # test_a_conversation_over_the_rate_limit_gets_429 has its own
        rate_limit_per_hour=0,
        rate_limit_per_day=0,
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    assert client.server.app[COMPONENTS].index.chunk_count() == 0
    yield client
    await client.close()


async def call(
    api: Api, path: str, status: int, *, key: str | None = KEY, conversation: str | None = None,
    headers: dict[str, str] | None = None, **kwargs: Any,
) -> dict[str, Any]:  # fmt: skip
    """POST to `path`; checks the status and that the OpenAPI description lists it, and the
    body's shape (an Answer for 200, an Error otherwise)."""
    sent = dict(headers or {})
    if key is not None:
        sent["X-API-Key" if path.startswith("/v1") else "X-Web-Chat-Key"] = key
    if conversation is not None:
        sent["X-Conversation-Id"] = conversation
    response = await api.post(path, headers=sent, **kwargs)
    body: dict[str, Any] = await response.json()
    assert response.status == status, body
    assert str(status) in OPENAPI["paths"][path]["post"]["responses"]
    schema = OPENAPI["components"]["schemas"]["Answer" if status == 200 else "Error"]
    assert set(schema["required"]) <= set(body) <= set(schema["properties"]), body
    if status == 200:
        assert response.headers["X-Conversation-Id"] == body["conversation_id"]
    return body


def audio_form(data: bytes, content_type: str = "audio/ogg", name: str = "q.ogg") -> FormData:
    form = FormData()
    form.add_field("audio", data, filename=name, content_type=content_type)
    return form


def tone(seconds: float, rate: int = 16_000) -> Pcm:
    samples = (
        int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate))
    )
    return Pcm(b"".join(struct.pack("<h", s) for s in samples), rate)


async def webm_opus(speech: SpeechServices, text: str) -> bytes:
    """What a browser's MediaRecorder sends: Piper speech as WebM/Opus."""
    assert speech.tts is not None
    pcm = await speech.tts.synthesize(text)
    args = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar",
            str(pcm.sample_rate), "-ac", "1", "-i", "pipe:0", "-c:a", "libopus", "-f", "webm",
            "pipe:1"]  # fmt: skip
    done = await asyncio.to_thread(subprocess.run, args, input=pcm.data, capture_output=True)
    assert done.returncode == 0 and done.stdout[:4] == b"\x1a\x45\xdf\xa3"  # EBML
    return done.stdout


def api_thread(conversation: str, key: str = KEY) -> str:
    """The thread of an API conversation: it belongs to the key that started it."""
    return f"api:{key_fingerprint(key)}/{conversation}"


async def has_thread(api: Api, thread_id: str) -> bool:
    saver = api.server.app[COMPONENTS].conversations.checkpointer
    return await saver.aget_tuple({"configurable": {"thread_id": thread_id}}) is not None


async def ask(
    api: Api, conversation: str | None, message: str, status: int = 200, **kwargs: Any
) -> dict[str, Any]:
    """A text question to /v1/chat (or `path=...`)."""
    path = kwargs.pop("path", "/v1/chat")
    return await call(
        api, path, status, conversation=conversation, json={"message": message}, **kwargs
    )


async def chunked(data: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    """`data` sent with chunked transfer encoding: no Content-Length."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def multipart(data: bytes, content_type: str = "audio/ogg") -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body with one `audio` part, and its Content-Type header."""
    boundary = "suara-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="q.ogg"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    )
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


# --- answers ---------------------------------------------------------------------------------
async def test_a_text_question_gets_a_grounded_answer_with_its_sources(api: Api) -> None:
    body = await ask(api, "text-1", "How many books can I borrow?")
    assert "ten books" in body["answer"] and "[1]" in body["answer"]
    assert not body["declined"] and body["language"] == "en"
    first = body["sources"][0]
    assert first["title"] == "Campus Library" and first["section"] == "Borrowing books"
    assert first["source"].endswith("library.md") and first["url"] is None
    assert body["emotion"]["label"] in EMOTION_LABELS
    assert body["transcript"] is None and body["voice"] is None  # asked by text: text only
    assert {"retrieve", "generate", "total"} <= set(body["exec_time"])
    assert body["conversation_id"] == "text-1"
    assert await has_thread(api, api_thread("text-1"))


async def test_a_spoken_question_gets_its_transcript_an_answer_and_a_voice_note(
    api: Api, speak: Speak
) -> None:
    audio = await speak("How many books can I borrow from the library at once?")
    body = await call(api, "/v1/audio", 200, conversation="voice-1", data=audio_form(audio))
    assert "borrow" in body["transcript"].lower()
    assert "ten books" in body["answer"] and body["sources"][0]["title"] == "Campus Library"
    assert {"transcode", "stt", "emotion", "retrieve", "tts", "total"} <= set(body["exec_time"])
    assert body["exec_time"]["total"] >= body["exec_time"]["stt"] > 0
    voice = body["voice"]
    assert voice["mime_type"] == "audio/ogg" and voice["duration"] > 1
    ogg = base64.b64decode(voice["data"])
    assert ogg.startswith(b"OggS") and b"OpusHead" in ogg[:100]
    heard = await to_pcm16k(ogg, "audio/ogg", max_bytes=10**7, max_seconds=60, silence_dbfs=-50)
    assert abs(heard.duration - voice["duration"]) < 0.5  # it decodes: a playable voice note


async def test_a_browser_recording_in_webm_opus_is_understood(
    api: Api, speech: SpeechServices
) -> None:
    audio = await webm_opus(speech, "When is the library open?")
    form = audio_form(audio, "audio/webm;codecs=opus", "voice-note.webm")
    body = await call(api, "/v1/audio", 200, conversation="webm-1", data=form)
    assert "library" in body["transcript"].lower() and "open" in body["transcript"].lower()
    assert "10 p.m." in body["answer"]


async def test_without_a_conversation_id_each_request_is_a_new_conversation(api: Api) -> None:
    ask = {"message": "How many books can I borrow?"}
    first = await call(api, "/v1/chat", 200, json=ask)
    second = await call(api, "/v1/chat", 200, key=OTHER_KEY, json=ask)
    assert first["conversation_id"] != second["conversation_id"]
    assert len(first["conversation_id"]) == 32


# --- conversations ---------------------------------------------------------------------------
async def test_a_follow_up_uses_its_own_conversations_memory_only(api: Api) -> None:
    await ask(api, "mem-a", "How many books can I borrow?")
    follow_up = await ask(api, "mem-a", "For how long?")
    assert not follow_up["declined"] and "three weeks" in follow_up["answer"]
    alone = await ask(api, "mem-b", "For how long?")
    assert alone["declined"] and alone["sources"] == []
    # The same id on the web chat, or with another key, is another conversation.
    web = await ask(api, "mem-a", "For how long?", path="/web/chat", key=None)
    assert web["declined"]
    other_program = await ask(api, "mem-a", "For how long?", key=OTHER_KEY)
    assert other_program["declined"]
    assert await has_thread(api, "web:mem-a") and await has_thread(api, api_thread("mem-a"))
    assert await has_thread(api, api_thread("mem-a", OTHER_KEY))
    assert api_thread("mem-a") != api_thread("mem-a", OTHER_KEY)


async def test_one_conversations_requests_are_answered_in_the_order_they_came(
    api: Api, speak: Speak
) -> None:
    """A spoken question takes a second to transcribe; a typed follow-up sent just after it
    waits for it, so it is answered with the spoken question as its context."""
    audio = await speak("How many books can I borrow from the library at once?")
    finished: list[str] = []

    async def spoken() -> dict[str, Any]:
        body = await call(api, "/v1/audio", 200, conversation="order-1", data=audio_form(audio))
        finished.append("spoken")
        return body

    async def typed() -> dict[str, Any]:
        await asyncio.sleep(0.15)
        body = await ask(api, "order-1", "For how long?")
        finished.append("typed")
        return body

    first, follow_up = await asyncio.gather(spoken(), typed())
    assert finished == ["spoken", "typed"]
    assert "ten books" in first["answer"]
    assert not follow_up["declined"] and "three weeks" in follow_up["answer"]


async def test_the_web_chat_endpoints_answer_as_channel_web_without_a_key(
    api: Api, speak: Speak
) -> None:
    text = await ask(api, "page-1", "When is the library open?", path="/web/chat", key=None)
    assert "10 p.m." in text["answer"]
    audio = await speak("How do I reset my password?")
    form = audio_form(audio)
    spoken = await call(api, "/web/audio", 200, key=None, conversation="page-1", data=form)
    assert "password" in spoken["transcript"].lower() and spoken["voice"] is not None
    assert await has_thread(api, "web:page-1")
    assert not await has_thread(api, api_thread("page-1"))


# --- refusals --------------------------------------------------------------------------------
async def test_a_missing_or_wrong_key_gets_401_before_the_body_is_read(api: Api) -> None:
    missing = await ask(api, "deny-1", "How many books can I borrow?", 401, key=None)
    assert missing["error"] == "unauthorized" and "X-API-Key" in missing["message"]
    wrong = await ask(api, "deny-1", "How many books can I borrow?", 401, key=KEY + "x")
    assert "not valid" in wrong["message"]
    web_key = await ask(
        api, "deny-1", "How many books?", 401, headers={"X-Web-Chat-Key": KEY}, key=None
    )
    assert web_key["error"] == "unauthorized"
    # Checked before parsing: a broken body or a wrong type is still 401, not 400 or 415.
    json_type = {"Content-Type": "application/json"}
    await call(api, "/v1/chat", 401, key="wrong", data=b"{not json", headers=json_type)
    await call(api, "/v1/audio", 401, key="", data=b"x", headers={"Content-Type": "text/plain"})
    response = await api.post("/v1/chat", json={"message": "Hi"})
    assert response.headers["WWW-Authenticate"] == 'ApiKey header="X-API-Key"'
    assert not await has_thread(api, api_thread("deny-1"))


async def test_malformed_requests_get_400_with_the_reason(api: Api) -> None:
    json_type = {"Content-Type": "application/json"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"data": b"{not json", "headers": json_type}, "not valid JSON"),
        ({"data": b"\xff\xfe", "headers": json_type}, "not valid JSON"),
        ({"json": ["How many books?"]}, "JSON object"),
        ({"json": {"question": "How many books?"}}, '"message" is missing'),
        ({"json": {"message": 42}}, "must be a string"),
        ({"json": {"message": "   "}}, '"message" is empty'),
    ]
    for kwargs, reason in cases:
        body = await call(api, "/v1/chat", 400, **kwargs)
        assert body["error"] == "bad_request" and reason in body["message"], body
    for bad in ["x" * 65, "has space", "a/b", ""]:
        body = await ask(api, bad, "How many books can I borrow?", 400)
        assert "X-Conversation-Id" in body["message"]
    form = FormData(default_to_multipart=True)
    form.add_field("question", "no audio here")
    body = await call(api, "/v1/audio", 400, data=form)
    assert '"audio" is missing' in body["message"]
    no_boundary = {"Content-Type": "multipart/form-data"}
    broken = await call(api, "/v1/audio", 400, data=b"--x\r\nnope", headers=no_boundary)
    assert "malformed" in broken["message"]


async def test_wrong_content_types_get_415(api: Api, speak: Speak) -> None:
    plain = {"Content-Type": "text/plain"}
    text = await call(api, "/v1/chat", 415, data=b"How many books?", headers=plain)
    assert text["error"] == "unsupported_media_type" and "application/json" in text["message"]
    audio = await speak("How many books can I borrow from the library at once?")
    raw = await call(api, "/v1/audio", 415, data=audio, headers={"Content-Type": "audio/ogg"})
    assert "multipart/form-data" in raw["message"]
    as_text = await call(api, "/v1/audio", 415, data=audio_form(b"hello", "text/plain", "q.txt"))
    assert "audio/*" in as_text["message"]


async def test_bodies_and_audio_over_the_limits_get_413_with_or_without_a_length(
    api: Api,
) -> None:
    big = json.dumps({"message": "books " * 12_000}).encode()  # > API_MAX_BODY_BYTES (64 KiB)
    json_type = {"Content-Type": "application/json"}
    declared = await call(api, "/v1/chat", 413, data=big, headers=json_type)
    assert declared["error"] == "payload_too_large" and "65536" in declared["message"]
    await call(api, "/v1/chat", 413, data=chunked(big), headers=json_type)  # no Content-Length

    # Declared far over the limit: refused before reading; just over it: while reading.
    way_over = await call(api, "/v1/audio", 413, data=audio_form(b"\x01" * (MAX_AUDIO + 20_000)))
    assert way_over["message"] == f"The audio upload is larger than {MAX_AUDIO + 16_384} bytes."
    just_over = b"\x01" * (MAX_AUDIO + 1)
    read = await call(api, "/v1/audio", 413, data=audio_form(just_over))
    assert read["message"] == f"The audio is larger than {MAX_AUDIO} bytes."
    body, headers = multipart(just_over)
    streamed = await call(api, "/v1/audio", 413, data=chunked(body), headers=headers)
    assert streamed["message"] == f"The audio is larger than {MAX_AUDIO} bytes."


async def test_unusable_audio_gets_422_with_the_pipelines_polite_message(api: Api) -> None:
    silence = await to_voice_note(Pcm(b"\x00\x00" * 16_000 * 2, 16_000))
    too_long = await to_voice_note(tone(10.0))  # MAX_AUDIO_SECONDS is 8 here
    cases = [
        (b"OggS" + b"\x00garbage" * 50, CorruptAudio),
        (silence.data, SilentAudio),
        (too_long.data, AudioTooLong),
        (b"", EmptyAudio),
    ]
    for data, error in cases:
        body = await call(api, "/v1/audio", 422, conversation="bad-audio", data=audio_form(data))
        assert body["error"] == "unusable_audio"
        assert body["reason"] == error.__name__ and body["message"] == error.user_message
        assert body["conversation_id"] == "bad-audio"


async def test_a_conversation_over_the_rate_limit_gets_429_with_retry_after(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = settings_factory(
        data_dir=tmp_path, knowledge_sources=[HANDBOOK], api_keys=KEY, rate_limit_per_minute=2
    )
    async with TestClient(TestServer(create_app(settings))) as limited:
        for _ in range(2):
            await ask(limited, "busy", "How long can I borrow a book?")
        refused = await ask(limited, "busy", "And a laptop?", 429)
        assert refused["error"] == "rate_limited" and 50 <= refused["retry_after_s"] <= 60
        assert "try again" in refused["message"].lower()
        response = await limited.post(
            "/v1/chat",
            headers={"X-API-Key": KEY, "X-Conversation-Id": "busy", "Accept-Language": "id-ID"},
            json={"message": "Berapa lama?"},
        )
        assert response.status == 429 and 50 <= int(response.headers["Retry-After"]) <= 60
        indonesian = (await response.json())["message"]
        assert indonesian != refused["message"] and "coba" in indonesian.lower()
        await ask(limited, "another", "How long can I borrow a book?")  # its own count
        metrics = await (await limited.get("/metrics")).text()
    assert 'suara_limited_total{channel="api",limit="minute"} 2.0' in metrics
    assert 'suara_messages_total{channel="api",kind="text"} 3.0' in metrics


async def test_the_web_chat_is_limited_per_address_whatever_conversation_it_names(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = settings_factory(
        data_dir=tmp_path,
        knowledge_sources=[HANDBOOK],
        rate_limit_per_minute=2,
        client_ip_header="X-Client-Address",  # as a trusted proxy in front would set it
    )
    async with TestClient(TestServer(create_app(settings))) as limited:
        address = {"X-Client-Address": "203.0.113.7"}
        for conversation in ("fresh-1", "fresh-2"):
            await ask(limited, conversation, "How long?", path="/web/chat", key=None,
                      headers=address)  # fmt: skip
        refused = await ask(
            limited, "fresh-3", "How long?", 429, path="/web/chat", key=None, headers=address
        )
        assert refused["error"] == "rate_limited"
        await ask(limited, None, "How long?", 429, path="/web/chat", key=None, headers=address)
        other = {"X-Client-Address": "198.51.100.4"}
        await ask(limited, "fresh-1", "How long?", path="/web/chat", key=None, headers=other)


async def test_a_typed_question_over_max_text_chars_gets_413(api: Api) -> None:
    body = await ask(api, "long-1", "How long? " * 300, 413)  # 3,000 > MAX_TEXT_CHARS 2,000
    assert body["error"] == "text_too_long" and body["reason"] == "TextTooLong"


def test_pipeline_outcomes_map_to_statuses() -> None:
    assert reply_status(Reply(text="An answer")) == (200, "ok")
    assert reply_status(Reply(text="Not covered", declined=True)) == (200, "ok")
    for kind in ["CorruptAudio", "SilentAudio", "AudioTooLong", "NoSpeech", "EmptyMessage"]:
        assert reply_status(Reply(text="Sorry", error=kind)) == (422, "unusable_audio")
    assert reply_status(Reply(text="Sorry", error="AudioTooLarge")) == (413, "payload_too_large")
    assert reply_status(Reply(text="Sorry", error="ProviderError")) == (503, "speech_unavailable")
    assert reply_status(Reply(text="Too long", error="TextTooLong")) == (413, "text_too_long")
    assert reply_status(Reply(text="Sorry", error="Unexpected")) == (500, "internal_error")


async def test_with_no_keys_and_the_web_chat_off_the_endpoints_are_404(
    settings_factory: SettingsFactory, tmp_path: Path
) -> None:
    settings = settings_factory(data_dir=tmp_path, web_chat=False)
    app = web.Application()
    app.add_routes(http_routes(settings))
    async with TestClient(TestServer(app)) as client:
        off = await call(client, "/v1/chat", 404, json={"message": "Hi"})
        assert off["error"] == "not_found" and "API_KEYS" in off["message"]
        web_off = await call(client, "/web/audio", 404, key=None, data=audio_form(b"OggS"))
        assert "WEB_CHAT=false" in web_off["message"]
        assert (await client.get("/")).status == 404
        assert (await client.get("/openapi.json")).status == 200


async def test_serve_reads_api_keys_from_the_environment(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port}"
    process = start_serve(tmp_path / "data", unused_tcp_port, API_KEYS=f"{KEY}, {OTHER_KEY}")
    try:
        await wait_until_serving(url)
        async with aiohttp.ClientSession() as session:
            ask = {"message": "When is the library open?"}
            async with session.post(
                f"{url}/v1/chat", json=ask, headers={"X-API-Key": OTHER_KEY}
            ) as r:
                assert r.status == 200
                assert "10 p.m." in (await r.json())["answer"]
            async with session.post(f"{url}/v1/chat", json=ask) as r:
                assert r.status == 401
            async with session.get(url) as r:
                assert r.status == 200 and "Suara" in await r.text()
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_api_keys_are_comma_separated_and_weak_ones_are_refused() -> None:
    settings = load_settings(_env_file=None, api_keys=f" {KEY} , {OTHER_KEY} ,")
    assert [k.get_secret_value() for k in settings.api_keys] == [KEY, OTHER_KEY]
    assert load_settings(_env_file=None).api_keys == []
    with pytest.raises(SettingsError, match="API_KEYS"):
        load_settings(_env_file=None, api_keys="short")
    with pytest.raises(SettingsError, match="WEB_CHAT_KEY"):
        load_settings(_env_file=None, web_chat_key="has spaces in it, sadly")


# --- the description and the page ------------------------------------------------------------
async def test_the_openapi_description_matches_the_served_routes(api: Api) -> None:
    response = await api.get("/openapi.json")
    assert response.status == 200
    doc = await response.json()
    assert doc == json.loads(json.dumps(OPENAPI)) and doc["openapi"] == "3.1.0"
    served = set()
    for route in api.server.app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method != "HEAD" and (
            path == "/" or path.startswith(("/v1/", "/web/", "/openapi"))
        ):
            served.add((path, route.method.lower()))
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert served == documented
    answering = {"200", "400", "401", "404", "413", "415", "429", "500", "503"}
    for path in ["/v1/chat", "/web/chat"]:
        assert set(doc["paths"][path]["post"]["responses"]) == answering
    for path in ["/v1/audio", "/web/audio"]:
        assert set(doc["paths"][path]["post"]["responses"]) == answering | {"422"}
    refs = set(_refs(doc))
    for ref in refs:  # every $ref points at something
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict)
    assert "#/components/schemas/Answer" in refs


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


async def test_the_web_chat_page_and_its_assets_are_served_self_contained(api: Api) -> None:
    page = await api.get("/")
    assert page.status == 200 and page.content_type == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    html = await page.text()
    assert '<script src="/webchat/app.js"' in html and 'href="/webchat/style.css"' in html
    script = await api.get("/webchat/app.js")
    style = await api.get("/webchat/style.css")
    assert (script.content_type, style.content_type) == ("text/javascript", "text/css")
    code = await script.text()
    for text in (html, code, await style.text()):
        assert "http://" not in text and "https://" not in text  # nothing from elsewhere
    assert "innerHTML" not in code and "insertAdjacentHTML" not in code
