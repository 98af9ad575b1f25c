"""Starting and stopping the fake servers' aiohttp apps on a free loopback port."""

from __future__ import annotations

from typing import Self

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


class FakeServer:
    """Base of the aiohttp fakes: `await fake.start()` serves `build_app()` on a free port."""

    port: int = 0
    _runner: web.AppRunner | None = None

    def build_app(self) -> web.Application:
        raise NotImplementedError

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Self:
        self._runner, self.port = await start_app(self.build_app())
        return self

    async def stop(self) -> None:
        await stop_app(self._runner)
        self._runner = None
