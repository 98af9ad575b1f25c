"""Starting and stopping the fake servers' aiohttp apps on a free loopback port."""

from __future__ import annotations

from aiohttp import web


async def start_app(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve `app` on 127.0.0.1 at a free port; returns the runner and the port."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])


async def stop_app(runner: web.AppRunner | None) -> None:
    if runner is not None:
        await runner.cleanup()
