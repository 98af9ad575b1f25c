"""The web chat page at `/`: static HTML, JS and CSS from the package (bot/static/webchat),
served with a strict Content-Security-Policy; it talks to /web/chat and /web/audio."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files

from aiohttp import web

STATIC = files("bot") / "static" / "webchat"
ASSETS = {  # path -> (file, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/webchat/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/webchat/style.css": ("style.css", "text/css; charset=utf-8"),
}
HEADERS = {
    # Everything comes from this server; replies play from data: URLs.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self';"
    " connect-src 'self'; img-src 'self' data:; media-src 'self' data: blob:;"
    " form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _asset(name: str, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    body = (STATIC / name).read_bytes()  # a few KB each, read once when the app is built
    headers = {**HEADERS, "Content-Type": content_type}

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, headers=headers)

    return serve


def page_routes() -> list[web.RouteDef]:
    """GET routes for the page and its script and stylesheet."""
    return [web.get(path, _asset(*asset)) for path, asset in ASSETS.items()]
