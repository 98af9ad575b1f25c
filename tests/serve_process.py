"""`python -m bot` in a child process with a clean environment, and waiting for `serve`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from bot.settings import PROJECT_DIR

HANDBOOK = PROJECT_DIR / "tests" / "fixtures" / "handbook"


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A clean environment: nothing from the developer's shell or .env leaks in."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "DATA_DIR": str(data_dir),
        "KNOWLEDGE_SOURCES": str(HANDBOOK),
        "LOG_LEVEL": "WARNING",
    }
    env.update(extra)
    return env


def start_serve(data_dir: Path, port: int, **extra: str) -> subprocess.Popen[bytes]:
    """`python -m bot serve` on 127.0.0.1:`port`; its log goes to DATA_DIR/serve.log."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "serve.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--port", str(port)],
            cwd=PROJECT_DIR,
            env=cli_env(data_dir, **extra),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


async def wait_until_serving(
    url: str, *, models: bool = False, timeout: float = 60.0
) -> dict[str, Any]:
    """/health of `url` once the first index run is over (and the models loaded, if asked)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as session:
        while loop.time() < deadline:
            try:
                async with session.get(f"{url}/health") as response:
                    body: dict[str, Any] = await response.json()
                    indexed = body["index"].get("status") == "ok"
                    if indexed and (not models or body["models"] != "loading"):
                        return body
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not become ready in {timeout:.0f} s")
