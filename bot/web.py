"""The aiohttp web app that `serve` runs: health, readiness and metrics, the channels'
webhooks and the dispatcher, the HTTP API and web chat (bot.api), and the re-index schedule."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from bot.components import Components, open_components
from bot.messaging import Messaging
from bot.metrics import CONTENT_TYPE, Metrics
from bot.probes import not_ready, provider_states
from bot.scheduler import describe_schedule, start_scheduler
from bot.settings import Settings
from rag.errors import RagError

log = logging.getLogger(__name__)

COMPONENTS = web.AppKey("components", Components)
STATE = web.AppKey("state", dict)
MESSAGING = web.AppKey("messaging", Messaging)
METRICS = web.AppKey("metrics", Metrics)


def create_app(
    settings: Settings, *, telegram_polling: bool = False, freeze_gc: bool = False
) -> web.Application:
    """The web app; stores, models and channels open when it starts and close when it stops.

    `freeze_gc` (for the process `serve` runs in): once the models are loaded, move every live
    object out of the garbage collector's sight (a full collection over them stalled webhook
    answers ~100 ms; bench.telegram_webhook). Not for a process that builds many apps."""
    app = web.Application()
    app[STATE] = {"started_at": time.time(), "models": "loading", "stores": "closed"}
    metrics = app[METRICS] = Metrics()  # one registry per app
    messaging = app[MESSAGING] = Messaging(settings, telegram_polling=telegram_polling)
    app.add_routes(messaging.routes())

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        async with (
            open_components(settings, metrics) as components,
            messaging.running(components),
        ):
            app[COMPONENTS] = components
            app[STATE]["stores"] = "open"
            tasks = [
                asyncio.create_task(_warm_up(app, freeze_gc), name="warm-up"),
                asyncio.create_task(_expire_conversations(app), name="expire-conversations"),
            ]
            if settings.reindex_on_start:
                tasks.append(asyncio.create_task(_index(app), name="index-on-start"))
            scheduler = start_scheduler(components)
            yield
            app[STATE]["stores"] = "closing"
            if scheduler is not None:
                scheduler.shutdown(wait=False)  # cancels a scheduled run in progress
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/health", health)
    from bot.api import http_routes  # imported here: bot.api reads this module's app keys

    app.add_routes(http_routes(settings))
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics_page)
    return app


async def _index(app: web.Application) -> None:
    """The re-index on start (REINDEX_ON_START); it shares the scheduled runs' lock."""
    try:
        await app[COMPONENTS].reindex(trigger="start")
    except RagError as exc:  # logged with its traceback and recorded by reindex
        log.error("indexing on start failed: %s; the previous index keeps answering", exc)
    except Exception:
        log.exception("indexing on start failed; the previous index keeps answering")


async def _warm_up(app: web.Application, freeze_gc: bool = False) -> None:
    try:
        await app[COMPONENTS].speech.warm_up()
    except Exception:
        app[STATE]["models"] = "failed"
        log.exception("loading the speech models failed; voice messages will fail until fixed")
    warm_embedder = getattr(app[COMPONENTS].embedder, "warm_up", None)  # a local model
    if warm_embedder is not None:
        try:
            await warm_embedder()
        except Exception:
            app[STATE]["embeddings"] = "failed"
            log.exception("loading the embeddings model failed; retrieval falls back to BM25")
    if app[STATE]["models"] == "loading":
        app[STATE]["models"] = "ready"
    if freeze_gc:  # what is loaded now lives as long as the process
        gc.collect()
        gc.freeze()


async def _expire_conversations(app: web.Application, every_seconds: float = 3600) -> None:
    """Forget idle conversations (THREAD_TTL_DAYS) once an hour while serving."""
    components = app[COMPONENTS]
    while True:
        await asyncio.sleep(every_seconds)
        try:
            await components.conversations.expire(components.settings.thread_ttl_days * 86400)
        except Exception:
            log.exception("expiring idle conversations failed; will retry in an hour")


async def health(request: web.Request) -> web.Response:
    """The detailed view: the stores, the index and its last run, each provider's state, the
    channels and the inbox. 503 (status `failing`) when a store cannot be read."""
    components = request.app[COMPONENTS]
    messaging = request.app[MESSAGING]
    store: dict[str, Any] = {"status": "ok", "index": str(components.index.path)}
    index: dict[str, Any] = {"schedule": describe_schedule(components.settings)}
    inbox: dict[str, Any] | None = None
    try:
        runs = await asyncio.to_thread(components.runs.last, 1)
        index["documents"] = await asyncio.to_thread(components.index.document_count)
        index["chunks"] = await asyncio.to_thread(components.index.chunk_count)
        inbox = (await messaging.inbox.stats()).__dict__
        channel_health = await messaging.health()
    except Exception as exc:
        log.exception("/health: a store cannot be read")
        store = {**store, "status": "error", "error": f"{type(exc).__name__}: {exc}"}
        runs, channel_health = [], {}
    # running, else the last run's: ok, failed, interrupted; none before the first run
    index["status"] = (
        "running" if components.reindex_running else (runs[0].status if runs else "none")
    )
    index["last_run"] = runs[0].to_json() if runs else None
    failing = store["status"] != "ok"
    body: dict[str, Any] = {
        "status": "failing" if failing else "ok",
        "uptime_s": round(time.time() - request.app[STATE]["started_at"], 1),
        "store": store,
        "index": index,
        "providers": components.providers,
        "provider_states": provider_states(components, request.app[STATE]),
        "models": request.app[STATE]["models"],
        "channels": sorted(messaging.channels),
        "inbox": inbox,
    }
    if channel_health:
        body["channel_health"] = channel_health
    return web.json_response(body, status=503 if failing else 200)


async def ready(request: web.Request) -> web.Response:
    """200 once the stores are open, the speech models loaded and the first index built; else
    503 with the reasons (for a load balancer or an orchestrator)."""
    app = request.app
    reasons = await not_ready(app[STATE], app.get(COMPONENTS), app[MESSAGING].inbox)
    if reasons:
        return web.json_response({"ready": False, "reasons": reasons}, status=503)
    return web.json_response({"ready": True})


async def metrics_page(request: web.Request) -> web.Response:
    """The Prometheus text format; the inbox gauges are read now."""
    app = request.app
    token = app[COMPONENTS].settings.metrics_token
    if token is not None:
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        expected = f"Bearer {token.get_secret_value()}".encode()
        if not hmac.compare_digest(
            hashlib.sha256(given).digest(), hashlib.sha256(expected).digest()
        ):
            return web.json_response(
                {"error": "unauthorized", "message": "Send METRICS_TOKEN as a Bearer token."},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    try:
        app[METRICS].set_inbox(await app[MESSAGING].inbox.stats())
    except Exception:
        log.exception("could not read the inbox for /metrics; its gauges keep their last values")
    return web.Response(body=app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE})
