"""SqliteInbox: deduplication, per-chat ordering, leases, retries, parking, recovery, pruning."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from handlers.messages import Reply, SourceRef
from speech.types import VoiceNote
from storage.errors import StorageError
from storage.inbox import InboxItem, SqliteInbox

LEASE = 600.0


@pytest.fixture
async def inbox(tmp_path: Path) -> AsyncIterator[SqliteInbox]:
    box = SqliteInbox(tmp_path / "inbox.db")
    yield box
    await box.close()


async def put(box: SqliteInbox, chat: str, message: str, channel: str = "telegram") -> bool:
    return await box.enqueue(channel, chat, message, "text", {"text": f"hello {message}"})


def keys(items: list[InboxItem]) -> list[tuple[str, str]]:
    return [(item.chat_key, item.message_id) for item in items]


async def test_enqueue_dedupes_on_channel_and_message_id(inbox: SqliteInbox) -> None:
    assert await put(inbox, "1", "m1") is True
    assert await put(inbox, "1", "m1") is False
    assert await put(inbox, "2", "m1") is False  # same channel, same message id
    assert await put(inbox, "1", "m1", channel="whatsapp") is True  # another channel: distinct

    stats = await inbox.stats()
    assert stats.pending == 2


async def test_claim_returns_the_stored_message(inbox: SqliteInbox) -> None:
    payload = {"text": "Apa kabar? 😀 <b>&", "nested": {"n": [1, 2]}}
    await inbox.enqueue("telegram", "42", "7", "voice", payload)

    [item] = await inbox.claim(5, LEASE)

    assert item.channel == "telegram"
    assert item.chat_id == "42"
    assert item.chat_key == "telegram:42"
    assert item.message_id == "7"
    assert item.kind == "voice"
    assert item.payload == payload
    assert item.attempts == 1
    assert item.reply is None
    assert item.voice is None
    assert item.sent_parts == set()


async def test_claim_hands_out_only_the_oldest_message_of_each_chat(inbox: SqliteInbox) -> None:
    await put(inbox, "A", "a1")
    await put(inbox, "A", "a2")
    await put(inbox, "B", "b1")
    await put(inbox, "A", "a3")
    await put(inbox, "B", "b2")

    first = await inbox.claim(10, LEASE)
    assert keys(first) == [("telegram:A", "a1"), ("telegram:B", "b1")]

    # While the heads are leased nothing else of those chats is handed out.
    assert await inbox.claim(10, LEASE) == []

    a1 = first[0]
    await inbox.complete(a1.id)
    assert keys(await inbox.claim(10, LEASE)) == [("telegram:A", "a2")]
    assert await inbox.claim(10, LEASE) == []


async def test_claim_respects_the_limit(inbox: SqliteInbox) -> None:
    for chat in ("A", "B", "C"):
        await put(inbox, chat, f"{chat}1")

    assert await inbox.claim(0, LEASE) == []
    assert keys(await inbox.claim(1, LEASE)) == [("telegram:A", "A1")]
    assert keys(await inbox.claim(5, LEASE)) == [("telegram:B", "B1"), ("telegram:C", "C1")]


async def test_retry_with_delay_is_not_due_until_then(inbox: SqliteInbox) -> None:
    await put(inbox, "A", "a1")
    assert await inbox.next_due_in() == 0.0
    [item] = await inbox.claim(1, LEASE)
    assert await inbox.next_due_in() is None  # leased: nothing waits

    await inbox.retry(item.id, "RuntimeError: boom", 0.3)

    due = await inbox.next_due_in()
    assert due is not None
    assert 0.2 < due <= 0.3
    assert await inbox.claim(1, LEASE) == []

    await asyncio.sleep(due + 0.02)
    [again] = await inbox.claim(1, LEASE)
    assert again.id == item.id
    assert again.attempts == 2


async def test_retry_keeps_the_message_at_the_head_of_its_chat(inbox: SqliteInbox) -> None:
    await put(inbox, "A", "a1")
    await put(inbox, "A", "a2")
    await put(inbox, "B", "b1")
    a1, b1 = await inbox.claim(10, LEASE)
    await inbox.complete(b1.id)

    await inbox.retry(a1.id, "RuntimeError: boom", 0.2)

    # a2 is due but must wait for a1: strict order within a chat.
    assert await inbox.claim(10, LEASE) == []
    await asyncio.sleep(0.22)
    assert keys(await inbox.claim(10, LEASE)) == [("telegram:A", "a1")]


async def test_next_due_in_ignores_messages_waiting_behind_a_delayed_head(
    inbox: SqliteInbox,
) -> None:
    """`next_due_in` must say when something can actually be claimed: a message queued behind
    its chat's delayed head is not claimable, so it must not make the answer 0 (the dispatcher
    would poll the inbox every 10 ms for the whole backoff)."""
    await put(inbox, "A", "a1")
    await put(inbox, "A", "a2")
    [a1] = await inbox.claim(10, LEASE)
    await inbox.retry(a1.id, "RuntimeError: boom", 5.0)

    assert await inbox.claim(10, LEASE) == []
    due = await inbox.next_due_in()
    assert due is not None
    assert due > 4.0


async def test_next_due_in_ignores_messages_waiting_behind_a_leased_head(
    inbox: SqliteInbox,
) -> None:
    """While a chat's head is being processed, its next message is not claimable either."""
    await put(inbox, "A", "a1")
    await put(inbox, "A", "a2")
    assert len(await inbox.claim(10, LEASE)) == 1

    assert await inbox.claim(10, LEASE) == []
    assert await inbox.next_due_in() is None


async def test_park_releases_the_chat_and_is_listed(inbox: SqliteInbox) -> None:
    await put(inbox, "A", "a1")
    await put(inbox, "A", "a2")
    [a1] = await inbox.claim(10, LEASE)

    await inbox.park(a1.id, "ValueError: cannot answer")

    assert keys(await inbox.claim(10, LEASE)) == [("telegram:A", "a2")]
    [parked] = await inbox.parked()
    assert parked["id"] == a1.id
    assert parked["channel"] == "telegram"
    assert parked["chat_id"] == "A"
    assert parked["message_id"] == "a1"
    assert parked["error"] == "ValueError: cannot answer"
    assert parked["attempts"] == 1
    assert parked["finished_at"] >= parked["received_at"]
    stats = await inbox.stats()
    assert (stats.pending, stats.parked, stats.done) == (1, 1, 0)


async def test_parked_lists_the_most_recent_first_up_to_limit(inbox: SqliteInbox) -> None:
    for chat in ("A", "B", "C"):
        await put(inbox, chat, f"{chat}1")
    items = await inbox.claim(10, LEASE)
    for item in items:
        await inbox.park(item.id, f"error {item.chat_id}")
        await asyncio.sleep(0.002)

    assert [p["error"] for p in await inbox.parked()] == ["error C", "error B", "error A"]
    assert [p["error"] for p in await inbox.parked(limit=2)] == ["error C", "error B"]


async def test_attempts_count_every_claim(inbox: SqliteInbox) -> None:
    await put(inbox, "A", "a1")
    attempts = []
    for _ in range(3):
        [item] = await inbox.claim(1, LEASE)
        attempts.append(item.attempts)
        await inbox.retry(item.id, "RuntimeError: again", 0)
    [item] = await inbox.claim(1, LEASE)
    await inbox.release([item.id])  # a graceful stop: the lease goes, the attempt is given back
    [item] = await inbox.claim(1, LEASE)
    attempts.append(item.attempts)
    await inbox.retry(item.id, "RetryAfter: flood control", 0, counted=False)
    [item] = await inbox.claim(1, LEASE)
    attempts.append(item.attempts)  # flood control is not a failed attempt either

    assert attempts == [1, 2, 3, 4, 4]


async def test_sent_parts_and_saved_reply_come_back_on_the_next_claim(
    inbox: SqliteInbox,
) -> None:
    await put(inbox, "A", "a1")
    [item] = await inbox.claim(1, LEASE)
    reply = Reply(
        text="Jawaban: 2 < 3 & 😀",
        voice=VoiceNote(b"OggS\x00\x01\xff voice bytes", 2.5, "audio/ogg"),
        sources=[SourceRef("Handbook", "handbook.md", "Leave", 0.87, "passage")],
        language="id",
        transcript="berapa?",
    )
    voice = reply.voice
    assert voice is not None

    await inbox.save_reply(item.id, reply.to_stored(), voice.data)
    await inbox.record_part(item.id, "text:0")
    await inbox.record_part(item.id, "text:0")  # recorded twice: still one part
    await inbox.record_part(item.id, "voice")
    await inbox.retry(item.id, "TransientDeliveryError: network", 0)

    [again] = await inbox.claim(1, LEASE)

    assert again.id == item.id
    assert again.sent_parts == {"text:0", "voice"}
    assert again.reply == reply.to_stored()
    assert again.voice == voice.data
    restored = Reply.from_stored(again.reply, again.voice)
    assert restored.text == reply.text
    assert restored.sources == reply.sources
    assert restored.voice == voice


async def test_parts_belong_to_their_message(inbox: SqliteInbox) -> None:
    await put(inbox, "A", "a1")
    await put(inbox, "B", "b1")
    a1, b1 = await inbox.claim(10, LEASE)
    await inbox.record_part(a1.id, "text:0")
    await inbox.release([a1.id, b1.id])

    a1, b1 = await inbox.claim(10, LEASE)

    assert a1.sent_parts == {"text:0"}
    assert b1.sent_parts == set()


async def test_recover_releases_leases_left_by_a_dead_process(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    dead = SqliteInbox(path)
    await put(dead, "A", "a1")
    await put(dead, "A", "a2")
    await put(dead, "B", "b1")
    leased = await dead.claim(10, LEASE)
    assert keys(leased) == [("telegram:A", "a1"), ("telegram:B", "b1")]
    await dead.close()  # "died" without completing or releasing

    fresh = SqliteInbox(path)
    try:
        assert fresh.owner != dead.owner
        assert await fresh.claim(10, LEASE) == []  # the leases are still held
        assert await fresh.recover() == 2
        resumed = await fresh.claim(10, LEASE)
        assert keys(resumed) == [("telegram:A", "a1"), ("telegram:B", "b1")]
        assert [item.attempts for item in resumed] == [2, 2]
        assert await fresh.recover() == 2  # its own leases too: recover is for start-up only
    finally:
        await fresh.close()


async def test_recover_leaves_finished_messages_alone(inbox: SqliteInbox) -> None:
    await put(inbox, "A", "a1")
    await put(inbox, "B", "b1")
    a1, b1 = await inbox.claim(10, LEASE)
    await inbox.complete(a1.id)
    await inbox.park(b1.id, "boom")

    assert await inbox.recover() == 0
    stats = await inbox.stats()
    assert (stats.pending, stats.done, stats.parked) == (0, 1, 1)


async def test_data_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "inbox.db"
    first = SqliteInbox(path)
    await put(first, "A", "a1")
    await put(first, "A", "a2")
    [a1] = await first.claim(1, LEASE)
    await first.save_reply(a1.id, {"text": "kept"}, b"voice")
    await first.record_part(a1.id, "text:0")
    await first.release([a1.id])
    await first.close()

    second = SqliteInbox(path)
    try:
        assert await put(second, "A", "a1") is False  # still deduplicated
        [again] = await second.claim(10, LEASE)
        assert again.message_id == "a1"
        assert again.payload == {"text": "hello a1"}
        assert again.attempts == 1  # the released attempt was given back
        assert again.reply == {"text": "kept"}
        assert again.voice == b"voice"
        assert again.sent_parts == {"text:0"}
        assert (await second.stats()).pending == 2
    finally:
        await second.close()


async def test_stats_counts_and_oldest_pending_age(inbox: SqliteInbox) -> None:
    empty = await inbox.stats()
    assert (empty.pending, empty.parked, empty.done, empty.oldest_pending_age) == (0, 0, 0, 0.0)

    await put(inbox, "A", "a1")
    await asyncio.sleep(0.05)
    await put(inbox, "A", "a2")
    await put(inbox, "B", "b1")
    await put(inbox, "C", "c1")

    stats = await inbox.stats()
    assert stats.pending == 4
    assert 0.05 <= stats.oldest_pending_age < 5.0

    a1, b1, c1 = await inbox.claim(10, LEASE)
    await inbox.complete(a1.id)
    await inbox.park(b1.id, "boom")
    await inbox.retry(c1.id, "again", 10)

    stats = await inbox.stats()
    assert (stats.pending, stats.parked, stats.done) == (2, 1, 1)
    # a1 is done: the oldest pending is now a2, enqueued after the pause.
    assert stats.oldest_pending_age < 0.05


async def test_prune_removes_only_old_finished_messages(inbox: SqliteInbox) -> None:
    for chat in ("A", "B", "C", "D"):
        await put(inbox, chat, f"{chat}1")
    a1, b1, c1, d1 = await inbox.claim(10, LEASE)
    await inbox.complete(a1.id)
    await inbox.park(b1.id, "boom")
    await asyncio.sleep(0.2)
    await inbox.complete(c1.id)  # finished, but recently
    # d1 stays pending (and leased)

    assert await inbox.prune(3600) == 0
    assert await inbox.prune(0.1) == 2

    stats = await inbox.stats()
    assert (stats.pending, stats.done, stats.parked) == (1, 1, 0)
    assert await inbox.parked() == []
    # Pruned ids no longer deduplicate; kept ones still do.
    assert await put(inbox, "A", "A1") is True
    assert await put(inbox, "B", "B1") is True
    assert await put(inbox, "C", "C1") is False
    assert await put(inbox, "D", "D1") is False
    await inbox.complete(d1.id)
    assert keys(await inbox.claim(10, LEASE)) == [("telegram:A", "A1"), ("telegram:B", "B1")]


async def test_prune_drops_the_sent_parts_of_pruned_messages(inbox: SqliteInbox) -> None:
    await put(inbox, "A", "a1")
    [a1] = await inbox.claim(1, LEASE)
    await inbox.record_part(a1.id, "text:0")
    await inbox.complete(a1.id)
    await asyncio.sleep(0.01)

    assert await inbox.prune(0) == 1

    # The same message id is a new message, with no parts marked as already sent.
    assert await put(inbox, "A", "a1") is True
    [fresh] = await inbox.claim(1, LEASE)
    assert fresh.sent_parts == set()
    assert fresh.attempts == 1


async def test_a_file_that_cannot_be_opened_raises_storage_error(tmp_path: Path) -> None:
    box = SqliteInbox(tmp_path)  # a directory, not a database file
    try:
        with pytest.raises(StorageError, match="inbox"):
            await put(box, "A", "a1")
        with pytest.raises(StorageError):
            await box.stats()
    finally:
        await box.close()
