"""A local fake of the Telegram Bot API (and its file server), and updates shaped as Telegram
sends them. It records what the bot sent and can hold, fail or flood-limit requests."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer

TOKEN = "123456:AAEfakeTOKENfor-tests_only"
BOT_ID = 123456
BOT_USERNAME = "suara_test_bot"
ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre"}


@dataclass
class Sent:
    """One message the bot sent."""

    method: str
    chat_id: int
    text: str | None = None
    reply_to: int | None = None
    parse_mode: str | None = None
    voice: bytes | None = None
    voice_filename: str | None = None
    voice_content_type: str | None = None
    duration: int | None = None
    at: float = field(default_factory=time.monotonic)


class _HtmlChecker(HTMLParser):
    """Telegram refuses text whose HTML has unknown tags or unbalanced ones."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.errors.append(f"unsupported tag <{tag}>")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")

    def handle_data(self, data: str) -> None:
        self.text += data


def check_html(text: str) -> tuple[list[str], str]:
    """(errors, visible text) of a Telegram HTML message."""
    checker = _HtmlChecker()
    checker.feed(text)
    checker.close()
    if checker.stack:
        checker.errors.append(f"unclosed {checker.stack}")
    if "<" in checker.text and "&lt;" not in text:
        checker.errors.append("a raw '<'")
    return checker.errors, checker.text


class FakeTelegram(FakeServer):
    """Serves /bot{TOKEN}/{method} and /file/bot{TOKEN}/{path} on 127.0.0.1."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.actions: list[tuple[int, str]] = []
        self.calls: list[str] = []
        self.webhook: dict[str, Any] = {}
        self.webhook_status: dict[str, Any] = {}  # e.g. last_error_date, last_error_message
        self.files: dict[str, bytes] = {}
        self.updates: list[dict[str, Any]] = []
        self.failures: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.open = asyncio.Event()
        self.open.set()
        self.epoch = 0  # requests held across a `release(drop_held=True)` are dropped
        self.on_request: Callable[[str], None] | None = None
        self._ids = itertools.count(1000)

    # --- control -------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        return app

    async def stop(self) -> None:
        self.open.set()  # let held requests finish so the server can shut down
        await super().stop()

    @property
    def base_url(self) -> str:
        return f"{self.origin}/bot"

    @property
    def file_base_url(self) -> str:
        return f"{self.origin}/file/bot"

    def serve_env(self, secret: str) -> dict[str, str]:
        """The settings that point a `serve` process at this fake, webhook secret included."""
        return {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": secret,
            "TELEGRAM_API_BASE_URL": self.base_url,
            "TELEGRAM_FILE_BASE_URL": self.file_base_url,
        }

    def fail(
        self, method: str, status: int, times: int = 1, retry_after: int | None = None
    ) -> None:
        """The next `times` calls of `method` answer `status` (429 carries retry_after)."""
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": "fake failure"}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
            body["description"] = f"Too Many Requests: retry after {retry_after}"
        if status == 403:
            body["description"] = "Forbidden: bot was blocked by the user"
        self.failures.setdefault(method, []).extend([(status, body)] * times)

    def hold(self) -> None:
        """Stop answering: requests wait (the bot sees them in flight)."""
        self.open.clear()

    def release(self, drop_held: bool = False) -> None:
        """Answer again; `drop_held` makes the held requests fail unrecorded, as if Telegram
        never received them (their client was killed)."""
        if drop_held:
            self.epoch += 1
        self.open.set()

    def add_file(self, data: bytes) -> str:
        file_id = f"AwACAgIAAxkBAAI{next(self._ids)}"
        self.files[file_id] = data
        return file_id

    def messages(self, chat_id: int | None = None, method: str | None = None) -> list[Sent]:
        return [
            s
            for s in self.sent
            if (chat_id is None or s.chat_id == chat_id) and (method is None or s.method == method)
        ]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; sent so far: {self.sent}")
            await asyncio.sleep(0.02)

    # --- the API ---------------------------------------------------------------------------
    async def _method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls.append(method)
        if self.on_request is not None:
            self.on_request(method)
        form = await request.post()  # read before holding: a held client may give up
        epoch = self.epoch
        await self.open.wait()
        if epoch != self.epoch:
            return _error(502, "Bad Gateway")
        if request.match_info["token"] != TOKEN:
            return _error(401, "Unauthorized")
        queued = self.failures.get(method)
        if queued:
            status, body = queued.pop(0)
            return web.json_response(body, status=status)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return _error(404, f"Not Found: method {method} is not faked")
        result = await handler(fields, form)
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.Response:
        await self.open.wait()
        if request.match_info["token"] != TOKEN:
            return web.Response(status=401)
        file_id = request.match_info["path"].rsplit("/", 1)[-1]
        if file_id not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[file_id], content_type="application/octet-stream")

    async def _api_getMe(self, fields: dict[str, str], form: Any) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Suara",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _api_sendMessage(self, fields: dict[str, str], form: Any) -> dict[str, Any]:
        text = fields["text"]
        if fields.get("parse_mode") == "HTML":
            errors, visible = check_html(text)
            if errors:
                raise web.HTTPBadRequest(
                    text=json.dumps(
                        {"ok": False, "error_code": 400, "description": f"can't parse: {errors}"}
                    ),
                    content_type="application/json",
                )
        else:
            visible = text
        if len(visible.encode("utf-16-le")) // 2 > 4096:
            raise web.HTTPBadRequest(
                text=json.dumps({"ok": False, "error_code": 400, "description": "too long"}),
                content_type="application/json",
            )
        reply = json.loads(fields["reply_parameters"]) if "reply_parameters" in fields else {}
        sent = Sent(
            "sendMessage",
            int(fields["chat_id"]),
            text=text,
            reply_to=reply.get("message_id"),
            parse_mode=fields.get("parse_mode"),
        )
        self.sent.append(sent)
        return self._message(sent.chat_id, {"text": visible})

    async def _api_sendVoice(self, fields: dict[str, str], form: Any) -> dict[str, Any]:
        part = form["voice"]
        data = part.file.read()
        sent = Sent(
            "sendVoice",
            int(fields["chat_id"]),
            voice=data,
            voice_filename=part.filename,
            voice_content_type=part.content_type,
            duration=int(fields["duration"]) if "duration" in fields else None,
        )
        self.sent.append(sent)
        voice = {
            "file_id": self.add_file(data),
            "file_unique_id": "AgAD",
            "duration": sent.duration or 1,
            "mime_type": "audio/ogg",
            "file_size": len(data),
        }
        return self._message(sent.chat_id, {"voice": voice})

    async def _api_sendChatAction(self, fields: dict[str, str], form: Any) -> bool:
        self.actions.append((int(fields["chat_id"]), fields["action"]))
        return True

    async def _api_getFile(self, fields: dict[str, str], form: Any) -> dict[str, Any]:
        file_id = fields["file_id"]
        if file_id not in self.files:
            raise web.HTTPBadRequest(
                text=json.dumps({"ok": False, "error_code": 400, "description": "file not found"}),
                content_type="application/json",
            )
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id[-6:]}",
            "file_size": len(self.files[file_id]),
            "file_path": f"voice/{file_id}",
        }

    async def _api_setWebhook(self, fields: dict[str, str], form: Any) -> bool:
        self.webhook = dict(fields)
        return True

    async def _api_deleteWebhook(self, fields: dict[str, str], form: Any) -> bool:
        self.webhook = {}
        return True

    async def _api_getWebhookInfo(self, fields: dict[str, str], form: Any) -> dict[str, Any]:
        return {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": 0,
            **self.webhook_status,
        }

    async def _api_getUpdates(self, fields: dict[str, str], form: Any) -> list[dict[str, Any]]:
        offset = int(fields.get("offset", 0))
        self.updates = [u for u in self.updates if u["update_id"] >= offset]
        if not self.updates:
            await asyncio.sleep(min(float(fields.get("timeout", 0)), 0.2))
        return list(self.updates)

    def _message(self, chat_id: int, content: dict[str, Any]) -> dict[str, Any]:
        chat_type = "private" if chat_id > 0 else "supergroup"
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = "Test"
        else:
            chat["title"] = "Test group"
        return {
            "message_id": next(self._ids),
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Suara", "username": BOT_USERNAME},
            "chat": chat,
            "date": int(time.time()),
            **content,
        }


def _error(status: int, description: str) -> web.Response:
    return web.json_response(
        {"ok": False, "error_code": status, "description": description}, status=status
    )


# --- updates as Telegram sends them ---------------------------------------------------------
_update_ids = itertools.count(500_000_000)
_message_ids = itertools.count(1)


def user(user_id: int, username: str | None = None, language: str = "en") -> dict[str, Any]:
    person: dict[str, Any] = {
        "id": user_id,
        "is_bot": False,
        "first_name": "Ana",
        "last_name": f"User{user_id}",
        "language_code": language,
    }
    if username:
        person["username"] = username
    return person


def message_update(
    chat_id: int,
    *,
    text: str | None = None,
    from_user: dict[str, Any] | None = None,
    update_id: int | None = None,
    message_id: int | None = None,
    **content: Any,
) -> dict[str, Any]:
    """An update carrying one message; private chat when chat_id > 0, supergroup otherwise."""
    sender = from_user or user(abs(chat_id) if chat_id > 0 else 777)
    if chat_id > 0:
        chat = {
            k: v for k, v in sender.items() if k in ("id", "first_name", "last_name", "username")
        }
        chat["type"] = "private"
    else:
        chat = {"id": chat_id, "title": "Campus help", "type": "supergroup"}
    message: dict[str, Any] = {
        "message_id": message_id if message_id is not None else next(_message_ids),
        "from": sender,
        "chat": chat,
        "date": int(time.time()),
    }
    if text is not None:
        message["text"] = text
        entities = []
        if text.startswith("/"):
            entities.append({"offset": 0, "length": len(text.split()[0]), "type": "bot_command"})
        mention = f"@{BOT_USERNAME}"
        if mention in text:
            entities.append(
                {
                    "offset": _utf16_offset(text, text.index(mention)),
                    "length": len(mention),
                    "type": "mention",
                }
            )
        if entities:
            message["entities"] = entities
    message.update(content)
    return {
        "update_id": update_id if update_id is not None else next(_update_ids),
        "message": message,
    }


def voice_update(
    chat_id: int, file_id: str, size: int, duration: int = 3, **kw: Any
) -> dict[str, Any]:
    voice = {
        "duration": duration,
        "mime_type": "audio/ogg",
        "file_id": file_id,
        "file_unique_id": f"AgAD{file_id[-5:]}",
        "file_size": size,
    }
    return message_update(chat_id, voice=voice, **kw)


def photo_update(chat_id: int, **kw: Any) -> dict[str, Any]:
    sizes = [
        {
            "file_id": "AgACAgQAAxk1",
            "file_unique_id": "AQAD1",
            "file_size": 1404,
            "width": 90,
            "height": 67,
        },
        {
            "file_id": "AgACAgQAAxk2",
            "file_unique_id": "AQAD2",
            "file_size": 20312,
            "width": 320,
            "height": 240,
        },
    ]
    return message_update(chat_id, photo=sizes, **kw)


def sticker_update(chat_id: int, **kw: Any) -> dict[str, Any]:
    sticker = {
        "width": 512,
        "height": 512,
        "emoji": "👍",
        "set_name": "HotCherry",
        "is_animated": False,
        "is_video": False,
        "type": "regular",
        "file_id": "CAACAgIAAxkBAAEL",
        "file_unique_id": "AgADfAADwDZPEw",
        "file_size": 21958,
    }
    return message_update(chat_id, sticker=sticker, **kw)


def _utf16_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-16-le")) // 2
