"""What `/ready` and `/health` say beyond counts: why the app is not ready yet, and the state
of each provider (loading, ready, failed, degraded by a recent failure, off)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bot.components import Components
from bot.metrics import Failure
from storage.inbox import Inbox

DEGRADED_FOR = 300.0  # seconds a provider shows as degraded after a failure
SPEECH_MODELS = ("stt", "tts", "emotion")  # loaded by the warm-up


async def not_ready(
    state: dict[str, Any], components: Components | None, inbox: Inbox
) -> list[str]:
    """Why the app cannot answer yet: [] once the stores are open, the speech models loaded
    and the first index built."""
    if components is None or state.get("stores") != "open":
        return ["the stores are not open"]
    reasons = []
    models = state.get("models")
    if models != "ready":
        reasons.append(f"the speech models are {'loading' if models == 'loading' else 'failed'}")
    index = components.index
    try:
        empty = await asyncio.to_thread(lambda: index.document_count() + index.chunk_count() == 0)
        if empty:
            reasons.append("the first index is not built yet")
    except Exception as exc:
        reasons.append(f"the index cannot be read: {exc}")
    try:
        await inbox.stats()
    except Exception as exc:
        reasons.append(f"the inbox cannot be read: {exc}")
    return reasons


def provider_states(
    components: Components, state: dict[str, Any], now: float | None = None
) -> dict[str, dict[str, Any]]:
    """{part: {"name", "state", "last_failure"}} for each provider /health lists."""
    now = time.time() if now is None else now
    failures = components.metrics.failures
    states = {}
    for part, name in components.providers.items():
        failure = failures.get(part)
        states[part] = {
            "name": name,
            "state": _state(part, name, state, failure, now),
            "last_failure": {"at": failure.at, "what": failure.what} if failure else None,
        }
    return states


def _state(part: str, name: str, state: dict[str, Any], failure: Failure | None, now: float) -> str:
    if name == "none":
        return "off"
    loaded = state.get("models") if part in SPEECH_MODELS else state.get(part, "ready")
    if loaded in ("loading", "failed"):
        return str(loaded)
    if failure is not None and now - failure.at < DEGRADED_FOR:
        return "degraded"
    return "ready"
