"""A local fake of Twilio's REST API (Messages, the account, incoming media behind Basic auth),
a second media host that records whether credentials reached it, and WhatsApp webhooks
shaped and signed as Twilio sends them."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from aiohttp import web
from twilio.request_validator import RequestValidator

from tests.fakes.server import FakeServer

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 8 + "0123456789abcdef01234567"
WHATSAPP_NUMBER = "whatsapp:+14155238886"  # the sandbox sender
BODY_LIMIT = 1600
_ids = itertools.count(1)


def sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits."""
    return f"{prefix}{next(_ids):032x}"


@dataclass
class SentMessage:
    """One Messages.json create the bot made."""

    sid: str
    to: str
    from_: str
    body: str | None
    media_urls: list[str]
    status_callback: str | None
    at: float = field(default_factory=time.monotonic)


@dataclass
class Failure:
    status: int
    code: int
    message: str
    retry_after: int | None = None


class FakeTwilio(FakeServer):
    """Serves /2010-04-01/Accounts/{sid}.json, .../Messages.json and .../Media/{id}, each only
    with Basic auth `ACCOUNT_SID:AUTH_TOKEN` (401 and Twilio's error 20003 otherwise)."""

    def __init__(self) -> None:
        self.sent: list[SentMessage] = []
        self.creates = 0  # Messages.json posts with the right credentials, failed ones too
        self.refused_auth = 0
        self.failures: list[Failure | None] = []  # None: that create succeeds
        self.media: dict[str, tuple[bytes, str, str | None]] = {}
        self.media_auth: list[str | None] = []  # Authorization of each media request
        self.open = asyncio.Event()
        self.open.set()

    def build_app(self) -> web.Application:
        app = web.Application()
        base = "/2010-04-01/Accounts/{account}"
        app.router.add_get(base + ".json", self._account)
        app.router.add_post(base + "/Messages.json", self._create)
        app.router.add_get(base + "/Messages/{message}/Media/{media}", self._media)
        return app

    async def stop(self) -> None:
        self.open.set()
        await super().stop()

    # --- control -------------------------------------------------------------------------
    def fail(
        self,
        status: int,
        code: int,
        times: int = 1,
        retry_after: int | None = None,
        after: int = 0,
    ) -> None:
        """After `after` more creates succeed, the next `times` answer `status` with Twilio
        error `code` (and a Retry-After header when given)."""
        message = {
            63016: "Failed to send freeform message because you are outside the allowed window."
            " If you are using WhatsApp, please use a Message Template.",
            20429: "Too Many Requests",
            20500: "Internal Server Error",
        }.get(code, "fake failure")
        self.failures.extend([None] * after + [Failure(status, code, message, retry_after)] * times)

    def hold(self) -> None:
        """Message creates wait until `release()` (the bot sees them in flight)."""
        self.open.clear()

    def release(self) -> None:
        self.open.set()

    def add_media(
        self, data: bytes, content_type: str = "audio/ogg", redirect_to: str | None = None
    ) -> str:
        """A media URL as Twilio puts in MediaUrl0; `redirect_to` answers 307 there instead,
        as Twilio does towards its CDN."""
        media_sid = sid("ME")
        self.media[media_sid] = (data, content_type, redirect_to)
        message = f"{self.origin}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid('MM')}"
        return f"{message}/Media/{media_sid}"

    def messages(self, to: str | None = None) -> list[SentMessage]:
        return [m for m in self.sent if to is None or m.to == to]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; sent so far: {self.sent}")
            await asyncio.sleep(0.02)

    # --- the API ---------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        ok = (
            request.headers.get("Authorization") == f"Basic {expected}"
            and request.match_info["account"] == ACCOUNT_SID
        )
        if not ok:
            self.refused_auth += 1
        return ok

    async def _account(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        return web.json_response(
            {
                "sid": ACCOUNT_SID,
                "friendly_name": "Suara tests",
                "status": "active",
                "type": "Full",
                "date_created": formatdate(usegmt=True),
                "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}.json",
            }
        )

    async def _create(self, request: web.Request) -> web.Response:
        form = await request.post()  # read before holding: a held client may give up
        await self.open.wait()
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        self.creates += 1
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
            return _error(failure.status, failure.code, failure.message, headers)
        to, from_ = str(form.get("To", "")), str(form.get("From", ""))
        body = form.get("Body")
        media_urls = [str(url) for url in form.getall("MediaUrl", [])]
        if not to.startswith("whatsapp:+") or from_ != WHATSAPP_NUMBER:
            return _error(400, 21211, f"Invalid 'To' or 'From': {to!r}, {from_!r}")
        if body is None and not media_urls:
            return _error(400, 21619, "A text message body or media urls must be specified.")
        if body is not None and len(str(body)) > BODY_LIMIT:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 limit.")
        if len(media_urls) > 1:
            return _error(400, 63019, "WhatsApp messages carry one media item")
        message = SentMessage(
            sid=sid("SM"),
            to=to,
            from_=from_,
            body=None if body is None else str(body),
            media_urls=media_urls,
            status_callback=str(form["StatusCallback"]) if "StatusCallback" in form else None,
        )
        self.sent.append(message)
        now = formatdate(usegmt=True)
        return web.json_response(
            {
                "account_sid": ACCOUNT_SID,
                "api_version": "2010-04-01",
                "body": message.body or "",
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": from_,
                "messaging_service_sid": None,
                "num_media": str(len(media_urls)),
                "num_segments": "1",
                "price": None,
                "price_unit": None,
                "sid": message.sid,
                "status": "queued",
                "subresource_uris": {
                    "media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}/Media.json"
                },
                "to": to,
                "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}.json",
            },
            status=201,
        )

    async def _media(self, request: web.Request) -> web.Response:
        self.media_auth.append(request.headers.get("Authorization"))
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        entry = self.media.get(request.match_info["media"])
        if entry is None:
            return _error(404, 20404, "The requested resource was not found")
        data, content_type, redirect_to = entry
        if redirect_to is not None:
            raise web.HTTPTemporaryRedirect(redirect_to)
        return web.Response(body=data, content_type=content_type)


def _error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status, headers=headers)


class MediaHost(FakeServer):
    """Another host (`localhost` rather than 127.0.0.1): serves files to anyone and records the
    Authorization header of every request, so a test can see credentials never reach it."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Authorization)

    @property
    def origin(self) -> str:
        return f"http://localhost:{self.port}"

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{name}", self._file)
        return app

    def add(self, name: str, data: bytes, content_type: str = "audio/ogg") -> str:
        self.files[name] = (data, content_type)
        return f"{self.origin}/{name}"

    async def _file(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, request.headers.get("Authorization")))
        entry = self.files.get(request.match_info["name"])
        if entry is None:
            return web.Response(status=404)
        return web.Response(body=entry[0], content_type=entry[1])


# --- webhooks as Twilio sends them ----------------------------------------------------------
def inbound(
    number: str,
    *,
    body: str = "",
    media: list[tuple[str, str]] | None = None,
    profile_name: str = "Ana",
    message_sid: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The form fields of an incoming WhatsApp message from `number` (+E164)."""
    message_sid = message_sid or sid("SM" if not media else "MM")
    media = media or []
    kind = "text"
    if media:
        kind = "audio" if media[0][1].startswith("audio/") else "image"
    fields = {
        "SmsMessageSid": message_sid,
        "NumMedia": str(len(media)),
        "ProfileName": profile_name,
        "MessageType": kind,
        "SmsSid": message_sid,
        "WaId": number.lstrip("+"),
        "SmsStatus": "received",
        "Body": body,
        "To": WHATSAPP_NUMBER,
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": message_sid,
        "AccountSid": ACCOUNT_SID,
        "From": f"whatsapp:{number}",
        "ApiVersion": "2010-04-01",
    }
    for index, (url, content_type) in enumerate(media):
        fields[f"MediaUrl{index}"] = url
        fields[f"MediaContentType{index}"] = content_type
    fields.update(extra)
    return fields


def location(number: str, **kw: Any) -> dict[str, str]:
    return inbound(
        number,
        Latitude="-6.2000",
        Longitude="106.8166",
        Address="Jakarta",
        MessageType="location",
        **kw,
    )


def status_callback(
    message_sid: str, to: str, status: str, error_code: str | None = None
) -> dict[str, str]:
    """A status callback's fields, as Twilio posts them to the StatusCallback URL."""
    fields = {
        "SmsSid": message_sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "ChannelToAddress": to.removeprefix("whatsapp:"),
        "To": to,
        "ChannelPrefix": "whatsapp",
        "MessageSid": message_sid,
        "AccountSid": ACCOUNT_SID,
        "From": WHATSAPP_NUMBER,
        "ApiVersion": "2010-04-01",
        "ChannelInstallSid": sid("XE"),
    }
    if error_code is not None:
        fields["ErrorCode"] = error_code
        fields["ErrorMessage"] = "fake failure"
    return fields


def signature(url: str, fields: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """X-Twilio-Signature exactly as Twilio computes it for a form POST to `url`."""
    return str(RequestValidator(token).compute_signature(url, fields))
