"""The WhatsApp channel through Twilio: signed webhooks into the inbox, replies through the
twilio REST client (async), voice replies served by the app at expiring URLs.

Webhooks and status callbacks are checked with Twilio's `RequestValidator` before anything
else; a message is stored in the inbox before the webhook answers empty TwiML.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp import web
from multidict import MultiDict
from twilio.base.exceptions import TwilioException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.errors import PermanentDeliveryError, TransientDeliveryError
from bot.settings import Settings
from handlers.commands import COMMANDS
from handlers.messages import Media, Reply
from handlers.twilio_media import MediaDownloader
from handlers.whatsapp_format import whatsapp_messages
from speech.types import VoiceNote
from storage.delivery_failures import DeliveryFailure, DeliveryFailures
from storage.inbox import Inbox, InboxItem
from storage.media import MediaStore, SqliteMediaStore

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"
WEBHOOK_PATH = "/whatsapp/webhook"
STATUS_PATH = "/whatsapp/status"
MEDIA_ROUTE = "/media/{token:[A-Za-z0-9_-]{16,128}}.ogg"
SIGNATURE_HEADER = "X-Twilio-Signature"
FORM = "application/x-www-form-urlencoded"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
VOICE_LIMIT = 16_000_000  # bytes: WhatsApp's (and Twilio's) limit for one audio file
SEND_TIMEOUT = 30.0  # seconds for one REST call (the twilio client sets none)
OUTSIDE_WINDOW = 63016  # free-form message more than 24 h after the user's last message
FAILED_STATUSES = frozenset({"failed", "undelivered"})
CLEANUP_EVERY = 900.0  # seconds between removals of expired media
_COMMAND = re.compile(r"/?([a-z]+)(?:\s+([a-z]+))?", re.IGNORECASE)

# Retry-After of the last Twilio response in this task: TwilioRestException carries no headers.
_retry_after: ContextVar[float | None] = ContextVar("twilio_retry_after", default=None)


async def _note_retry_after(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
) -> None:
    value = params.response.headers.get("Retry-After", "")
    _retry_after.set(float(value) if value.isdigit() else None)


def digits(address: str) -> str:
    """`whatsapp:+62 812-345` -> `62812345`: a number compared without its decorations."""
    return re.sub(r"\D", "", address)


def parse_command(body: str) -> tuple[str, list[str]] | None:
    """A whole message that is a command written as words (`reset`, `voice on`, `lang id`);
    None for anything else, so "reset my password?" stays a question."""
    match = _COMMAND.fullmatch(body.strip().rstrip(".!?").strip())
    if match is None:
        return None
    name, arg = match.group(1).lower(), match.group(2)
    if name not in COMMANDS:
        return None
    if arg is None:
        return name, []
    if name == "voice" and arg.lower() in ("on", "off"):
        return name, [arg]
    if name == "lang" and len(arg) <= 12:
        return name, [arg]
    return None


def _audio(mime_type: str) -> bool:
    mime = mime_type.lower()
    return mime.startswith("audio/") or mime.startswith("application/ogg")


class WhatsAppChannel:
    """Accepts Twilio webhooks into the inbox; fetches media and sends replies for the
    dispatcher; serves the voice replies Twilio fetches and records failed deliveries."""

    name = CHANNEL
    title = "WhatsApp"
    command_prefix = ""
    voice_limit = VOICE_LIMIT

    def __init__(self, settings: Settings, inbox: Inbox, on_accepted: Callable[[], None]) -> None:
        sid, token = settings.twilio_account_sid, settings.twilio_auth_token
        number, public = settings.twilio_whatsapp_number, settings.public_base_url
        if sid is None or token is None or number is None or public is None:
            raise ValueError(
                "the WhatsApp channel needs its Twilio settings (checked by Messaging)"
            )
        self.settings = settings
        self.inbox = inbox
        self.on_accepted = on_accepted
        self.account_sid = sid
        self._token = token.get_secret_value()
        self.number = number
        self.public_base_url = public.rstrip("/")
        self._validator = RequestValidator(self._token)
        self._allowed = {digits(n) for n in settings.twilio_allowed_numbers} - {""}
        self.media_store: MediaStore = SqliteMediaStore(settings.path("media.sqlite3"))
        self.failures = DeliveryFailures(settings.path("delivery_failures.sqlite3"))
        self._http: Any = None  # AsyncTwilioHttpClient, made inside the running loop
        self._client: Any = None  # twilio.rest.Client
        self._downloader: MediaDownloader | None = None
        self._cleanup: asyncio.Task[None] | None = None

    @property
    def status_callback_url(self) -> str:
        return self.public_base_url + STATUS_PATH

    def media_url(self, token: str) -> str:
        return f"{self.public_base_url}/media/{token}.ogg"

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Make the REST client (inside the loop), check the credentials, start the cleanup."""
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(_note_retry_after)
        self._http = AsyncTwilioHttpClient(trace_configs=[trace], timeout=SEND_TIMEOUT)
        # A mapping of our own, so TWILIO_EDGE / TWILIO_REGION in the process environment
        # cannot rewrite the host of TWILIO_API_BASE_URL.
        self._client = Client(
            self.account_sid,
            self._token,
            http_client=self._http,
            environment={"TWILIO_ACCOUNT_SID": self.account_sid},
        )
        self._client.api.base_url = self.settings.twilio_api_base_url
        self._downloader = MediaDownloader(
            aiohttp.ClientSession(),
            self.settings.twilio_api_base_url,
            aiohttp.BasicAuth(self.account_sid, self._token),
        )
        try:
            account = await self._call(
                self._client.api.v2010.account.fetch_async(), "checking the account"
            )
        except PermanentDeliveryError as exc:
            await self.stop()
            raise PermanentDeliveryError(
                f"Twilio refused TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN: {exc}"
            ) from exc
        except TransientDeliveryError as exc:
            await self.stop()
            raise TransientDeliveryError(
                f"cannot reach the Twilio API at {self.settings.twilio_api_base_url}: {exc}"
            ) from exc
        self._cleanup = asyncio.create_task(self._clean_up(), name="whatsapp-media-cleanup")
        log.info(
            "WhatsApp through Twilio ready: account %s (%s), sender %s",
            self.account_sid,
            getattr(account, "status", "?"),
            self.number,
        )

    async def stop_receiving(self) -> None:
        """Nothing to do: the webhook stops with the web server."""

    async def stop(self) -> None:
        if self._cleanup is not None:
            self._cleanup.cancel()
            await asyncio.gather(self._cleanup, return_exceptions=True)
        await self._close_clients()
        await self.media_store.close()
        await self.failures.close()

    async def _close_clients(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._downloader is not None:
            await self._downloader.session.close()
            self._downloader = None

    async def _clean_up(self) -> None:
        """Forget expired voice replies, and failures older than INBOX_RETENTION_DAYS."""
        while True:
            try:
                removed = await self.media_store.prune()
                if removed:
                    log.info("removed %d expired voice replies", removed)
                await self.failures.prune(self.settings.inbox_retention_days * 86400)
            except Exception:
                log.exception("cleaning up expired WhatsApp media failed; will retry")
            await asyncio.sleep(CLEANUP_EVERY)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(WEBHOOK_PATH, self.webhook),
            web.post(STATUS_PATH, self.status_callback),
            web.get(MEDIA_ROUTE, self.serve_media),
        ]

    async def health(self) -> dict[str, Any]:
        return {
            "failed_deliveries": await self.failures.count(CHANNEL),
            "voice_replies_kept": await self.media_store.count(),
        }

    # --- accepting -------------------------------------------------------------------------
    async def _signed_form(self, request: web.Request) -> MultiDict[str] | None:
        """The form fields when X-Twilio-Signature matches PUBLIC_BASE_URL + path and every
        field; None (and a log line) otherwise. The body is read only to check it."""
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            log.warning("refused a call to %s from %s: no signature", request.path, request.remote)
            return None
        form: MultiDict[str] = MultiDict()
        if request.content_type == FORM:
            try:
                posted = await request.post()
            except ValueError as exc:  # a body that is not form-encoded text
                log.warning("refused a call to %s: unreadable form: %s", request.path, exc)
                return None
            form.extend((k, v) for k, v in posted.items() if isinstance(v, str))
        url = self.public_base_url + request.raw_path
        if not self._validator.validate(url, form, signature):
            log.warning(
                "refused a call to %s from %s: wrong signature (is PUBLIC_BASE_URL %s the"
                " address Twilio calls?)",
                request.path,
                request.remote,
                self.public_base_url,
            )
            return None
        return form

    async def webhook(self, request: web.Request) -> web.Response:
        """403 without a valid signature (checked first), 400 when it is not a message,
        empty TwiML once stored (or already known), 503 when the inbox cannot store it."""
        form = await self._signed_form(request)
        if form is None:
            return web.Response(status=403, text="forbidden")
        try:
            classified = self.classify(form)
        except ValueError as exc:
            log.warning("malformed Twilio webhook %s: %s", form.get("MessageSid"), exc)
            return web.Response(status=400, text=f"not a message: {exc}")
        chat_id, kind, payload = classified
        sid = form["MessageSid"]
        try:
            new = await self.inbox.enqueue(CHANNEL, chat_id, sid, kind, payload)
        except Exception:
            log.exception("could not store WhatsApp message %s; Twilio will retry", sid)
            return web.Response(status=503, text="try again")
        if new:
            self.on_accepted()
        else:
            log.info("WhatsApp message %s was already accepted", sid)
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    def classify(self, form: Mapping[str, str]) -> tuple[str, str, dict[str, Any]]:
        """(chat id, inbox kind, payload) of an incoming message; ValueError when malformed."""
        sid, address = form.get("MessageSid", ""), form.get("From", "")
        if not sid or not address:
            raise ValueError("MessageSid and From are required")
        wa_id = form.get("WaId") or digits(address)
        if not wa_id:
            raise ValueError(f"no number in From {address!r}")
        payload: dict[str, Any] = {
            "address": address,
            "user_id": wa_id,
            "user_name": form.get("ProfileName"),
        }
        if self._allowed and digits(address) not in self._allowed:
            log.info("refusing WhatsApp %s (not in TWILIO_ALLOWED_NUMBERS)", wa_id)
            return wa_id, "refused", payload
        count = form.get("NumMedia") or "0"
        if not count.isdigit():
            raise ValueError(f"NumMedia {count!r} is not a number")
        media = [
            (form.get(f"MediaUrl{i}", ""), form.get(f"MediaContentType{i}", ""))
            for i in range(int(count))
        ]
        body = form.get("Body", "").strip()
        audio = [(url, mime) for url, mime in media if url and _audio(mime)]
        if audio:
            url, mime = audio[0]
            return wa_id, "message", {**payload, "media": {"url": url, "mime_type": mime}}
        if media or "Latitude" in form:  # images, documents, stickers, locations...
            return wa_id, "unsupported", payload
        command = parse_command(body)
        if command is not None:
            name, args = command
            return wa_id, "command", {**payload, "command": name, "args": args}
        if body:
            return wa_id, "message", {**payload, "text": body}
        return wa_id, "unsupported", payload  # contacts, reactions and the like carry no text

    async def status_callback(self, request: web.Request) -> web.Response:
        """Records failed and undelivered messages (signature checked first)."""
        form = await self._signed_form(request)
        if form is None:
            return web.Response(status=403, text="forbidden")
        status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
        sid = form.get("MessageSid")
        if not status or not sid:
            return web.Response(status=400, text="MessageSid and MessageStatus are required")
        if status not in FAILED_STATUSES:
            return web.Response(status=204)
        failure = DeliveryFailure(
            channel=CHANNEL,
            message_sid=sid,
            recipient=form.get("To"),
            status=status,
            error_code=form.get("ErrorCode"),
            error_message=form.get("ErrorMessage"),
        )
        try:
            new = await self.failures.record(failure)
        except Exception:
            log.exception("could not record the failed delivery of %s", sid)
            return web.Response(status=503, text="try again")
        if new:
            log.warning(
                "WhatsApp message %s to %s %s: error %s%s",
                sid,
                failure.recipient,
                status,
                failure.error_code,
                f" ({failure.error_message})" if failure.error_message else "",
            )
        return web.Response(status=204)

    async def serve_media(self, request: web.Request) -> web.Response:
        """A voice reply while its token is valid; 404 once expired or when unknown."""
        try:
            media = await self.media_store.get(request.match_info["token"])
        except Exception:
            log.exception("could not read a voice reply from the media store")
            return web.Response(status=503, text="try again")
        if media is None:
            return web.Response(status=404, text="not found")
        return web.Response(
            body=media.data,
            content_type=media.content_type,
            headers={"Cache-Control": "private, no-store"},
        )

    # --- answering (called by the dispatcher) ---------------------------------------------------
    def media(self, item: InboxItem) -> Media | None:
        info = item.payload.get("media")
        if not info:
            return None
        url = info["url"]

        async def fetch() -> bytes:
            if self._downloader is None:
                raise TransientDeliveryError("the WhatsApp channel is not started")
            return await self._downloader.fetch(url, self.settings.max_audio_bytes)

        return Media(mime_type=info.get("mime_type"), fetch=fetch)

    @contextlib.asynccontextmanager
    async def activity(self, item: InboxItem, voice: bool) -> AsyncIterator[None]:
        """WhatsApp through Twilio shows no typing indicator here: nothing to show."""
        yield

    def texts(self, reply: Reply) -> list[str]:
        return whatsapp_messages(reply)

    async def send_text(self, item: InboxItem, number: int, text: str, part: str) -> None:
        await self._send(item.payload["address"], part, body=text)

    async def send_voice(self, item: InboxItem, voice: VoiceNote, part: str) -> None:
        """By URL: the app serves it at /media/{token}.ogg (a retry reuses the token)."""
        token = await self.media_store.put(
            voice.data, voice.mime_type, self.settings.media_ttl, key=f"{item.id}:{part}"
        )
        await self._send(item.payload["address"], part, media_url=[self.media_url(token)])

    async def _send(
        self, to: str, part: str, body: str | None = None, media_url: list[str] | None = None
    ) -> None:
        if self._client is None:
            raise TransientDeliveryError("the WhatsApp channel is not started")
        fields: dict[str, Any] = {"status_callback": self.status_callback_url}
        if body is not None:
            fields["body"] = body
        if media_url is not None:
            fields["media_url"] = media_url
        request = self._client.messages.create_async(from_=self.number, to=to, **fields)
        try:
            await self._call(request, f"sending {part} to {to}")
        except PermanentDeliveryError as exc:
            code = getattr(exc.__cause__, "code", None)
            if code == OUTSIDE_WINDOW:
                try:
                    await self.failures.record(
                        DeliveryFailure(CHANNEL, None, to, "refused", str(code), str(exc))
                    )
                except Exception:
                    log.exception("could not record the refused delivery to %s", to)
            raise

    async def _call(self, request: Awaitable[Any], what: str) -> Any:
        """Await a Twilio REST call, turning its errors into retry-or-not delivery errors."""
        _retry_after.set(None)
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                return await request
        except TwilioException as exc:
            status = getattr(exc, "status", None)
            code = getattr(exc, "code", None)
            message = getattr(exc, "msg", None) or getattr(exc, "detail", None) or str(exc)
            detail = f"{what}: Twilio answered HTTP {status}, error {code}: {message}"
            if code == OUTSIDE_WINDOW:
                log.warning("%s (outside the 24-hour window: not retried)", detail)
                raise PermanentDeliveryError(detail, reachable=False) from exc
            if status == 429:  # flood control: the wait does not use up an attempt
                raise TransientDeliveryError(detail, _retry_after.get()) from exc
            if not isinstance(status, int) or status >= 500:  # retried, each attempt counted
                raise TransientDeliveryError(detail) from exc
            # 401/403: our credentials or sender are refused; nothing can reach the chat.
            raise PermanentDeliveryError(detail, reachable=status not in (401, 403)) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransientDeliveryError(f"{what}: {type(exc).__name__}: {exc}") from exc
