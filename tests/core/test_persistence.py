"""The storage seam: the journaled rule, the records it causes, the null store, paging."""

from __future__ import annotations

from broker.core import (
    AUTO,
    INDIVIDUAL,
    QUEUE,
    TEMP_QUEUE,
    TOPIC,
    Address,
    Core,
    Message,
)
from broker.core.message import MESSAGE_OVERHEAD
from broker.core.persistence import NullStore, journaled
from tests.core.conftest import MakeCore
from tests.core.fakes import MemoryStore, RecordingConsumer

Q = Address(QUEUE, "jobs")


def test_without_store_nothing_is_durable(core: Core) -> None:
    assert isinstance(core.store, NullStore) and not core.records.persists
    assert not core.queue(Q).durable
    assert core.send(Q, Message(b"p", persistent=True)) is None
    assert core.barrier() is None
    assert not core.stored(Q, Message(b"p", persistent=True))


def test_journaled_rule(durable_core: Core, store: MemoryStore) -> None:
    core = durable_core
    owner = object()
    tmp = Address(TEMP_QUEUE, "tmp")
    core.create_temporary(tmp, owner)
    cases = [
        (Q, True, True),
        (Q, False, False),
        (Address(TOPIC, "t"), True, False),
        (tmp, True, False),
    ]
    for address, persistent, expected in cases:
        msg = Message(b"x", persistent=persistent)
        assert core.stored(address, msg) is expected, (address, persistent)
        before = len(store.ops("add"))
        core.send(address, msg)
        assert (len(store.ops("add")) > before) is expected, (address, persistent)
        if address.is_queue:
            assert journaled(core.queue(address), msg) is expected
            assert core.journaled(core.queue(address), msg) is expected


def test_queue_lifecycle_records(durable_core: Core, store: MemoryStore) -> None:
    core = durable_core
    core.queue(Q)
    core.queue(Q)
    core.set_own_limit(Q)
    core.delete(Q)
    assert store.ops("queue_created", "queue_deleted") == [
        ("queue_created", Q, None),
        ("queue_created", Q, {"own_limit": True}),
        ("queue_deleted", Q),
    ]


def test_delivery_and_ack_records(durable_core: Core, store: MemoryStore) -> None:
    core = durable_core
    core.send(Q, Message(b"p", persistent=True))
    core.send(Q, Message(b"n"))
    c = RecordingConsumer()
    sub = core.subscribe(Q, c, ack_mode=INDIVIDUAL)
    p, n = c.got
    sub.nack(p.id)
    sub.ack(n.id)
    sub.ack(c.got[2].id)
    assert store.ops("add", "delivered", "returned", "remove") == [
        ("add", Q, p.id),
        ("delivered", Q, p.id, 0),
        ("returned", Q, p.id, 1),
        ("delivered", Q, p.id, 1),
        ("remove", Q, p.id),
    ]
    assert store.held == {}


def test_auto_ack_removes_on_delivery(durable_core: Core, store: MemoryStore) -> None:
    core = durable_core
    core.subscribe(Q, RecordingConsumer(), ack_mode=AUTO)
    msg = Message(b"p", persistent=True)
    core.send(Q, msg)
    assert store.ops("add", "remove") == [("add", Q, msg.id), ("remove", Q, msg.id)]
    assert store.barriers == 1


def test_dead_letter_is_one_move_record(make_core: MakeCore, store: MemoryStore) -> None:
    core = make_core(store, max_redeliveries=0)
    core.send(Q, Message(b"p", persistent=True))
    c = RecordingConsumer()
    sub = core.subscribe(Q, c, ack_mode=INDIVIDUAL)
    sub.nack(c.got[0].id)
    (record,) = store.ops("transaction")
    _, adds, removes = record
    dlq = Address(QUEUE, "ActiveMQ.DLQ")
    assert [a for a, _ in adds] == [dlq] and removes == [(Q, c.got[0].id)]
    assert list(store.held) == [(dlq, adds[0][1])]


def test_purge_removes_journaled_only(durable_core: Core, store: MemoryStore) -> None:
    core = durable_core
    core.send(Q, Message(b"p", persistent=True))
    core.send(Q, Message(b"n"))
    assert core.purge(Q) == 2
    assert len(store.ops("remove")) == 1 and store.held == {}


def test_paging_over_memory_limit(make_core: MakeCore, store: MemoryStore) -> None:
    one = 8 + MESSAGE_OVERHEAD  # a message's size: its body and a fixed overhead
    core = make_core(store, queue_memory_limit=one + 2)
    for body in (b"aaaaaaaa", b"bbbbbbbb", b"cccccccc"):
        core.send(Q, Message(body, persistent=True))
    q = core.queue(Q)
    # The third arrived over the limit: only its index entry stays in memory.
    assert q.bytes == 2 * one and [m.body for m in q.entries()][2] is None  # type: ignore[union-attr]
    c = RecordingConsumer()
    core.subscribe(Q, c, ack_mode=AUTO)
    assert c.bodies == [b"aaaaaaaa", b"bbbbbbbb", b"cccccccc"]
    assert len(store.ops("load")) == 1 and q.bytes == 0


def test_non_persistent_never_pages(make_core: MakeCore, store: MemoryStore) -> None:
    core = make_core(store, queue_memory_limit=4)
    for _ in range(3):
        core.send(Q, Message(b"12345678"))
    assert core.queue(Q).bytes == 3 * (8 + MESSAGE_OVERHEAD) and core.full(Q)
    assert store.ops("add") == []
