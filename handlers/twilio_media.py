"""Downloading a WhatsApp message's media: Basic auth only for the Twilio API's own host,
redirects (Twilio's hop to its CDN) followed without credentials, and a size limit."""

from __future__ import annotations

import logging

import aiohttp
from yarl import URL

from bot.errors import PermanentDeliveryError, TransientDeliveryError
from speech.errors import AudioTooLarge

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024


def origin(url: URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    return (url.scheme.lower(), (url.host or "").lower(), url.port)


class MediaDownloader:
    """Fetches media URLs with one aiohttp session; `auth` goes to `api_base_url`'s origin only."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_base_url: str,
        auth: aiohttp.BasicAuth,
        timeout: float = 60.0,
    ) -> None:
        self.session = session
        self.api_origin = origin(URL(api_base_url))
        self.auth = auth
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    def credentials_for(self, url: URL) -> aiohttp.BasicAuth | None:
        """The Basic auth for a URL on the Twilio API's origin; None for any other."""
        return self.auth if origin(url) == self.api_origin else None

    async def fetch(self, url: str, limit: int) -> bytes:
        """The bytes at `url`; AudioTooLarge over `limit`, TransientDeliveryError for what may
        pass (network, 429, 5xx), PermanentDeliveryError for what will not (other 4xx)."""
        try:
            target = URL(url)
        except ValueError as exc:
            raise PermanentDeliveryError(f"media URL {url!r} is malformed: {exc}") from exc
        if target.scheme not in ("http", "https") or not target.host or target.user is not None:
            raise PermanentDeliveryError(
                f"media URL {url!r} is not an http(s) address without credentials"
            )
        auth = self.credentials_for(target)
        if auth is None:
            log.warning(
                "media at %s is not on the Twilio API host: fetched without credentials",
                target.origin(),
            )
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with self.session.get(
                    target, auth=auth, allow_redirects=False, timeout=self.timeout
                ) as response:
                    if response.status in REDIRECTS and "Location" in response.headers:
                        # A redirect (Twilio's signed CDN address) never gets the credentials.
                        target = _redirect(target, response.headers["Location"])
                        auth = None
                        continue
                    _check_status(response, target)
                    return await _read_limited(response, limit)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransientDeliveryError(
                    f"downloading media from {target.origin()}: {type(exc).__name__}: {exc}"
                ) from exc
        raise PermanentDeliveryError(f"media URL {url!r}: more than {MAX_REDIRECTS} redirects")


def _redirect(current: URL, location: str) -> URL:
    """Where a redirect leads: http(s) only, and no credentials in the URL."""
    try:
        target = current.join(URL(location))
    except ValueError as exc:
        raise PermanentDeliveryError(f"media redirect to {location!r} is malformed") from exc
    if target.scheme not in ("http", "https") or not target.host or target.user is not None:
        raise PermanentDeliveryError(f"media redirect to {location!r} is not an http(s) address")
    return target


def _check_status(response: aiohttp.ClientResponse, url: URL) -> None:
    status = response.status
    if status < 400:
        return
    where = f"media download from {url.origin()}{url.path}: HTTP {status}"
    if status == 429:  # flood control: the wait does not use up an attempt
        retry_after = response.headers.get("Retry-After", "")
        raise TransientDeliveryError(where, float(retry_after) if retry_after.isdigit() else None)
    if status >= 500:  # a failure: retried with backoff, each attempt counted
        raise TransientDeliveryError(where)
    raise PermanentDeliveryError(where)


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    if response.content_length is not None and response.content_length > limit:
        raise AudioTooLarge(f"media of {response.content_length} bytes is over {limit}")
    data = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        data.extend(chunk)
        if len(data) > limit:
            raise AudioTooLarge(f"media over {limit} bytes")
    return bytes(data)
