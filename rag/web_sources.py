"""Web sources: fetch pages with conditional requests, size and time limits and a User-Agent,
and read sitemaps (XML, sitemap indexes, gzip, or plain lists of URLs) into page URLs."""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import urldefrag, urljoin, urlsplit

import aiohttp
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from rag.errors import IndexingError
from rag.loaders import SUPPORTED_SUFFIXES

log = logging.getLogger(__name__)

MAX_SITEMAP_DEPTH = 3  # a sitemap index may list sitemap indexes, this deep at most
_CONTENT_SUFFIXES = {
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "application/pdf": ".pdf",
}


@dataclass(frozen=True)
class WebOptions:
    """How pages and sitemaps are fetched."""

    timeout: float = 30.0  # seconds for one request, body included
    max_bytes: int = 10_000_000  # a larger page or (unpacked) sitemap is an error
    user_agent: str = "Suara-indexer/0.1"
    concurrency: int = 4  # requests at once


class FetchError(IndexingError):
    """A page or sitemap could not be fetched."""


@dataclass(frozen=True)
class Page:
    """A fetched page: its body, media type and the validators the server sent."""

    url: str
    data: bytes
    content_type: str
    etag: str | None = None
    last_modified: str | None = None

    @property
    def name(self) -> str:
        """A file name for the loaders: the URL's own suffix when supported, else one that
        matches the media type (HTML when unknown)."""
        path = PurePosixPath(urlsplit(self.url).path)
        stem = path.stem or urlsplit(self.url).hostname or "page"
        if path.suffix.lower() in SUPPORTED_SUFFIXES:
            return f"{stem}{path.suffix.lower()}"
        return stem + _CONTENT_SUFFIXES.get(self.content_type, ".html")


@dataclass
class UrlDiscovery:
    """Page URLs found in the URL sources, sitemaps that failed, and errors by source."""

    pages: list[str] = field(default_factory=list)
    failed_sitemaps: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


def is_url(source: str) -> bool:
    return source.strip().lower().startswith(("http://", "https://"))


def is_sitemap(url: str) -> bool:
    """A URL source whose path ends in .xml or .xml.gz is a sitemap; any other is a page."""
    return urlsplit(url).path.lower().endswith((".xml", ".xml.gz"))


def sitemap_scope(url: str) -> str:
    """The URL prefix a sitemap may list pages under (sitemaps.org: its own folder)."""
    return urljoin(url, ".")


def open_session(options: WebOptions) -> aiohttp.ClientSession:
    """An HTTP client session identifying itself with the User-Agent of `options`."""
    return aiohttp.ClientSession(
        headers={"User-Agent": options.user_agent},
        timeout=aiohttp.ClientTimeout(total=options.timeout),
    )


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    options: WebOptions,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
) -> Page | None:
    """GET `url`; None when the server answers 304 Not Modified to the validators given.

    Raises FetchError on a network error, a timeout, a status other than 200 or 304, or a
    body larger than `options.max_bytes`.
    """
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        async with session.get(url, headers=headers) as response:
            if response.status == 304 and headers:
                return None
            if response.status != 200:
                raise FetchError(f"HTTP {response.status} {response.reason or ''}".strip())
            if (response.content_length or 0) > options.max_bytes:
                raise FetchError(_too_large(options))
            body = bytearray()
            async for piece in response.content.iter_chunked(65536):
                body += piece
                if len(body) > options.max_bytes:
                    raise FetchError(_too_large(options))
            return Page(
                url=url,
                data=bytes(body),
                content_type=response.content_type,
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
            )
    except TimeoutError as exc:
        raise FetchError(f"no complete answer within {options.timeout:g} s") from exc
    except aiohttp.ClientError as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}") from exc


def _too_large(options: WebOptions) -> str:
    return f"larger than the {options.max_bytes} bytes allowed (WEB_MAX_BYTES)"


def parse_sitemap(data: bytes, max_bytes: int) -> tuple[list[str], list[str]]:
    """(page URLs, sitemap URLs) listed by a sitemap: an XML `urlset` or `sitemapindex`,
    gzip-compressed or not, or a plain text file of one URL per line."""
    if data[:2] == b"\x1f\x8b":
        unpack = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        data = unpack.decompress(data, max_bytes + 1)
        if len(data) > max_bytes:
            raise FetchError(f"unpacks to more than the {max_bytes} bytes allowed")
    text = data.lstrip()
    if not text.startswith(b"<"):
        lines = (line.strip() for line in text.decode("utf-8", "replace").splitlines())
        return [line for line in lines if is_url(line)], []
    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise FetchError(f"not a valid sitemap: {exc}") from exc
    kind = root.tag.rsplit("}", 1)[-1]
    if kind not in ("urlset", "sitemapindex"):
        raise FetchError(f"not a sitemap: the root element is <{kind}>")
    locs = [
        (element.text or "").strip()
        for element in root.iter()
        if element.tag.rsplit("}", 1)[-1] == "loc"
    ]
    urls = [urldefrag(loc).url for loc in locs if is_url(loc)]
    return (urls, []) if kind == "urlset" else ([], urls)


async def discover_urls(
    sources: list[str], session: aiohttp.ClientSession, options: WebOptions
) -> UrlDiscovery:
    """Expand URL sources: a page stands for itself, a sitemap for the pages it lists
    (following sitemap indexes). A sitemap that cannot be read is an error and is noted in
    `failed_sitemaps`, so that the pages it listed are kept."""
    found = UrlDiscovery()
    seen: set[str] = set()

    def add(url: str) -> None:
        if url not in seen:
            seen.add(url)
            found.pages.append(url)

    async def read(url: str, depth: int, source: str) -> None:
        try:
            page = await fetch(session, url, options)
            assert page is not None  # no validators were sent
            pages, children = await asyncio.to_thread(parse_sitemap, page.data, options.max_bytes)
        except FetchError as exc:
            found.failed_sitemaps.append(url)
            found.errors.append((url, f"sitemap: {exc}"))
            return
        for page_url in pages:
            add(page_url)
        if children and depth >= MAX_SITEMAP_DEPTH:
            found.errors.append((source, f"sitemap indexes nested deeper than {depth}"))
            return
        for child in children:
            await read(child, depth + 1, source)

    for source in sources:
        url = urldefrag(source.strip()).url
        if is_sitemap(url):
            await read(url, 0, url)
        else:
            add(url)
    if found.pages:
        log.debug("found %d web pages in %d URL sources", len(found.pages), len(sources))
    return found
