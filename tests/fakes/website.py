"""A local website for indexing tests: pages and sitemaps with ETag and Last-Modified, 304s,
failing and slow pages, and a log of every request."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.server import FakeServer

LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    status: int


@dataclass
class FakeSite(FakeServer):
    """`pages[path] = (body, content type)`; `failing[path] = status`; `slow` paths answer
    after `slow_seconds`; `validators=False` makes the site ignore conditional requests."""

    pages: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    failing: dict[str, int] = field(default_factory=dict)
    slow: set[str] = field(default_factory=set)
    slow_seconds: float = 1.0
    validators: bool = True
    requests: list[Request] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"

    def html(self, path: str, title: str, body: str) -> None:
        """A page with navigation and a footer around its main text."""
        page = (
            f"<html><head><title>{title} | Example</title></head><body>"
            "<nav><a href='/'>Home</a> <a href='/menu'>Navigation menu entry</a></nav>"
            f"<main><h1>{title}</h1>{body}</main>"
            "<footer>Copyright footer text</footer></body></html>"
        )
        self.pages[path] = (page.encode(), "text/html")

    def sitemap(self, path: str, page_paths: list[str], *, index: bool = False) -> None:
        kind, item = ("sitemapindex", "sitemap") if index else ("urlset", "url")
        entries = "".join(f"<{item}><loc>{self.url(p)}</loc></{item}>" for p in page_paths)
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<{kind} xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</{kind}>'
        )
        self.pages[path] = (xml.encode(), "application/xml")

    def served(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in self.slow:
            await asyncio.sleep(self.slow_seconds)
        status = self.failing.get(path) or (200 if path in self.pages else 404)
        response: web.StreamResponse
        if status != 200:
            response = web.Response(status=status, text="failure")
        else:
            body, content_type = self.pages[path]
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if self.validators and request.headers.get("If-None-Match") == etag:
                status = 304
                response = web.Response(status=304)
            else:
                response = web.Response(body=body, content_type=content_type)
            if self.validators:
                response.headers["ETag"] = etag
                response.headers["Last-Modified"] = LAST_MODIFIED
        self.requests.append(Request(path, dict(request.headers), status))
        return response

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        return app
