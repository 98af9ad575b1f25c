"""The reply media store (voice notes Twilio fetches later) and the delivery failures table."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage.delivery_failures import DeliveryFailure, DeliveryFailures
from storage.media import SqliteMediaStore


async def test_media_is_kept_across_a_restart_until_it_expires(tmp_path: Path) -> None:
    store = SqliteMediaStore(tmp_path / "media.sqlite3")
    token = await store.put(b"OggS voice", "audio/ogg", ttl=60)
    short = await store.put(b"OggS short", "audio/ogg", ttl=0.2)
    assert len(token) >= 40 and token != short
    await store.close()

    reopened = SqliteMediaStore(tmp_path / "media.sqlite3")
    media = await reopened.get(token)
    assert media is not None
    assert (media.data, media.content_type) == (b"OggS voice", "audio/ogg")
    await asyncio.sleep(0.3)
    assert await reopened.get(short) is None  # expired: as if unknown
    assert await reopened.get("no-such-token") is None
    assert await reopened.count() == 1
    assert await reopened.prune() == 1
    await reopened.close()


async def test_a_key_reuses_its_token_until_it_expires(tmp_path: Path) -> None:
    store = SqliteMediaStore(tmp_path / "media.sqlite3")
    first = await store.put(b"a", "audio/ogg", ttl=0.2, key="42:voice")
    assert await store.put(b"a", "audio/ogg", ttl=0.2, key="42:voice") == first
    await asyncio.sleep(0.3)
    renewed = await store.put(b"a", "audio/ogg", ttl=60, key="42:voice")
    assert renewed != first and await store.get(renewed) is not None
    await store.close()


async def test_delivery_failures_are_recorded_once_per_message_and_status(tmp_path: Path) -> None:
    failures = DeliveryFailures(tmp_path / "failures.sqlite3")
    failed = DeliveryFailure("whatsapp", "SM1", "whatsapp:+62", "failed", "30008", "unknown")
    assert await failures.record(failed)
    assert not await failures.record(failed)
    refusal = DeliveryFailure("whatsapp", None, "whatsapp:+62", "refused", "63016", "window")
    assert await failures.record(refusal) and await failures.record(refusal)
    assert await failures.count("whatsapp") == 3
    assert await failures.count("telegram") == 0
    [latest, *_] = await failures.recent("whatsapp")
    assert latest.error_code == "63016" and latest.at > 0
    await failures.close()
