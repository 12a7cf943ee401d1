"""The journal's destination-metadata records (DEST_META, broker/store/messages.py) that
the SQS facade keeps its queue attributes and tags in: replay keeps the latest record
per (owner, name), a deletion removes it, and compaction copies only the live one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

from broker.store import Journal
from broker.store.messages import DEST_META, MessageStore


def _open(directory: Path, segment_size: int = 64 * 1024 * 1024) -> MessageStore:
    store = MessageStore(Journal(directory, fsync="never", segment_size=segment_size))
    store.recover()
    return store


async def _durable(done: Awaitable[None] | None) -> None:
    assert done is not None  # every change is written, so there is something to wait for
    await done


def test_latest_record_per_key_wins_and_deletes_stick(tmp_path: Path) -> None:
    async def first() -> None:
        store = _open(tmp_path)
        for blob in (b"v1", b"v2", b"v3"):
            await _durable(store.put_metadata("sqs", "orders", blob))
        await _durable(store.put_metadata("sqs", "gone", b"x"))
        await _durable(store.delete_metadata("sqs", "gone"))
        await _durable(store.put_metadata("other", "orders", b"theirs"))
        assert store.metadata("sqs") == {"orders": b"v3"}
        await store.journal.close()

    async def second() -> None:
        store = _open(tmp_path)
        assert store.metadata("sqs") == {"orders": b"v3"}
        assert store.metadata("other") == {"orders": b"theirs"}
        # Only the two latest puts hold anything: the rest were released at replay.
        assert sum(s.live for s in store.journal.segments()) == 2
        await store.journal.close()

    asyncio.run(first())
    asyncio.run(second())


def test_compaction_copies_only_the_live_record(tmp_path: Path) -> None:
    async def first() -> None:
        store = _open(tmp_path, segment_size=4096)
        await _durable(store.put_metadata("sqs", "keep", b"k" * 100))
        for i in range(200):
            await _durable(store.put_metadata("sqs", "churn", b"%d" % i + b"c" * 100))
        await _durable(store.delete_metadata("sqs", "churn"))
        before = len(store.journal.segments())
        moved = await store.compact()
        assert moved == 1  # "keep"; every "churn" record is dead
        await store.journal.commit()  # the copies; then the old segments go
        assert len(store.journal.segments()) < before
        await store.journal.close()

    async def second() -> None:
        store = _open(tmp_path, segment_size=4096)
        assert store.metadata("sqs") == {"keep": b"k" * 100}
        await store.journal.close()

    asyncio.run(first())
    asyncio.run(second())


def test_record_type_is_the_next_free_number() -> None:
    # Numbers are on disk forever: DEST_META must never be renumbered.
    assert DEST_META == 6
