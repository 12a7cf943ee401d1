"""Durable topic subscriptions in the real store (DURABLE_SUB records, type 30, and the
subscription's messages as ADDs under its queue address): through compaction, which
copies the subscription's record forward with the messages, restart, and deletion,
which leaves nothing live."""

from __future__ import annotations

import asyncio
import marshal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.core import AUTO, INDIVIDUAL, QUEUE, TOPIC, Address, Core, CoreLimits, Message
from broker.store import Journal
from broker.store.messages import DURABLE_SUB, MessageStore
from tests.core.fakes import RecordingConsumer

SEGMENT = 65536
T = Address(TOPIC, "store.prices")
CHURN = Address(QUEUE, "store.churn")
KEY = ("client-s", "sub")
LIMIT = 1024


class Node:
    """A journal, its MessageStore and a Core, restored as the broker restores them."""

    def __init__(self, directory: Path) -> None:
        self.journal = Journal(directory, segment_size=SEGMENT, fsync="never")
        self.store = MessageStore(self.journal)
        self.recovered = self.store.recover(page_over=LIMIT)
        loop = asyncio.get_running_loop()
        self.core = Core(
            CoreLimits(queue_memory_limit=LIMIT), call_later=loop.call_later, store=self.store
        )
        self.core.restore(self.recovered.queues, self.recovered.flags, self.recovered.subscriptions)

    async def close(self) -> None:
        done = self.core.barrier()
        if done is not None:
            await done
        self.core.close()
        await self.journal.close()


async def records(directory: Path, rtype: int) -> list[tuple[object, ...]]:
    """The payloads of the records of `rtype` in a closed journal, oldest first."""
    journal = Journal(directory, segment_size=SEGMENT, fsync="never")
    try:
        return [marshal.loads(r.payload) for r in journal.open() if r.rtype == rtype]
    finally:
        await journal.close()


@pytest.fixture
async def data(tmp_path: Path) -> AsyncIterator[Path]:
    yield tmp_path / "journal"


def message(i: int) -> Message:
    return Message(f"m-{i:05d}".encode() * 20, persistent=True, properties={"n": i})


async def test_compaction_and_restart_keep_the_subscription_and_its_messages(
    data: Path,
) -> None:
    node = Node(data)
    node.core.subscribe(T, RecordingConsumer(), durable=KEY, ack_mode=INDIVIDUAL).close()
    for round_ in range(10):
        for i in range(round_ * 20, round_ * 20 + 20):
            node.core.send(T, message(i))
        for i in range(60):
            node.core.send(CHURN, message(i))
        await asyncio.sleep(0)
    node.core.subscribe(CHURN, RecordingConsumer(), ack_mode=AUTO)
    await node.journal.commit()
    d = node.core.durables.find(*KEY)
    assert d is not None and sum(type(e) is int for e in d.queue.entries()) > 150
    moved = 0
    for _ in range(10):
        moved += await node.store.compact()
    assert moved
    await node.close()
    again = Node(data)
    assert again.recovered.subscriptions == {KEY: ("topic", T.name, None, False, False)}
    c = RecordingConsumer()
    again.core.subscribe(T, c, durable=KEY, ack_mode=AUTO)
    assert [m.properties["n"] for m in c.got] == list(range(200))
    await again.close()


async def test_a_deleted_subscription_leaves_nothing_live(data: Path) -> None:
    node = Node(data)
    node.core.subscribe(T, RecordingConsumer(), durable=KEY).close()
    for i in range(50):
        node.core.send(T, message(i))
    node.core.remove_subscription(*KEY)
    assert node.store.stored_bytes == 0
    await node.close()
    # Both records of the subscription are there, its deletion last.
    assert [t[2] is None for t in await records(data, DURABLE_SUB)] == [False, True]
    again = Node(data)
    assert again.recovered.subscriptions == {}
    assert again.core.durables.find(*KEY) is None
    for _ in range(3):
        await again.store.compact()
    await again.close()
    third = Node(data)
    assert third.recovered.subscriptions == {} and third.store.stored_bytes == 0
    await third.close()


async def test_a_composite_with_a_wildcard_through_compaction_and_restart(data: Path) -> None:
    """The record carries the composite's names (a tuple) and the pattern; after a
    restart (topics are not journaled) a topic first used then still feeds it."""
    node = Node(data)
    parts = (Address(TOPIC, "store.p.a"), Address(TOPIC, "store.p.w.*"))
    node.core.subscribe(parts, RecordingConsumer(), durable=KEY, ack_mode=INDIVIDUAL).close()
    for round_ in range(10):
        for i in range(round_ * 20, round_ * 20 + 20):
            node.core.send(
                Address(TOPIC, "store.p.a" if i % 2 else f"store.p.w.t{i % 3}"), message(i)
            )
        for i in range(60):
            node.core.send(CHURN, message(i))
        await asyncio.sleep(0)
    node.core.subscribe(CHURN, RecordingConsumer(), ack_mode=AUTO)
    await node.journal.commit()
    moved = 0
    for _ in range(10):
        moved += await node.store.compact()
    assert moved
    await node.close()
    (saved,) = await records(data, DURABLE_SUB)
    assert saved[2] == ("topic", ("store.p.a", "store.p.w.*"), None, False, False)
    again = Node(data)
    assert again.recovered.subscriptions == {KEY: saved[2]}
    again.core.send(Address(TOPIC, "store.p.w.fresh"), message(200))
    c = RecordingConsumer()
    again.core.subscribe(parts, c, durable=KEY, ack_mode=AUTO)
    assert [m.properties["n"] for m in c.got] == list(range(201))
    await again.close()
