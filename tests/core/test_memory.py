"""What a queue counts toward its memory limit (issue 10): the whole message — body,
headers and properties, a per-message overhead — not the body alone; and the store
limit (`store_limit`, `store_full_policy`) on what the store holds."""

from __future__ import annotations

import pytest

from broker.core import AUTO, QUEUE, TOPIC, Address, CoreCode, CoreError, Message
from broker.core.message import MESSAGE_OVERHEAD
from tests.core.conftest import MakeCore
from tests.core.fakes import FakeLoop, MemoryStore, RecordingConsumer

Q = Address(QUEUE, "heavy")
HEADER = 100_000


def heavy(persistent: bool = False) -> Message:
    """One byte of body under 100 kB of headers."""
    return Message(b"x", properties={"h": "v" * HEADER}, persistent=persistent)


def test_size_is_computed_once_with_headers_and_overhead() -> None:
    msg = Message(
        b"body",
        properties={"k": "vv", "n": 5, "b": b"123"},
        correlation_id="c1",
        content_type="text/plain",
    )
    assert msg.head == (1 + 2) + (1 + 8) + (1 + 3) + 2 + 10
    assert msg.size == 4 + msg.head + MESSAGE_OVERHEAD
    # A copy keeps the figures its original was counted with.
    assert msg.copy().size == msg.size


def test_gauge_counts_header_bytes(make_core: MakeCore) -> None:
    core = make_core(queue_memory_limit=64 * 1024 * 1024)
    for _ in range(10):
        core.send(Q, heavy())
    q = core.queue(Q)
    assert q.bytes >= 10 * HEADER
    c = RecordingConsumer()
    core.subscribe(Q, c, ack_mode=AUTO)
    assert len(c.got) == 10 and q.bytes == 0


def test_header_heavy_producer_meets_flow_control(make_core: MakeCore) -> None:
    core = make_core(queue_memory_limit=256 * 1024)
    for _ in range(3):
        assert not core.full(Q)
        core.send(Q, heavy())
    # Three bytes of body, but 300 kB of headers: the queue is full and a producer waits.
    assert core.full(Q)
    woken: list[bool] = []
    assert core.when_space(Q, lambda: woken.append(True))
    core.subscribe(Q, RecordingConsumer(), ack_mode=AUTO)
    assert woken == [True] and not core.full(Q)


def test_paged_out_message_still_counts_its_headers(
    make_core: MakeCore, store: MemoryStore
) -> None:
    core = make_core(store, queue_memory_limit=150 * 1024)
    for _ in range(4):
        core.send(Q, heavy(persistent=True))
    q = core.queue(Q)
    paged = [m for m in q.entries() if isinstance(m, Message) and m.body is None]
    assert len(paged) == 2
    # The body went to the journal; the headers did not, and are still counted.
    assert q.bytes >= 4 * HEADER
    core.subscribe(Q, RecordingConsumer(), ack_mode=AUTO)
    assert q.bytes == 0


# -- the store limit (destinations.store_limit) ---------------------------------------


def test_store_limit_blocks_producers_until_the_store_drains(
    make_core: MakeCore, store: MemoryStore, clock: FakeLoop
) -> None:
    core = make_core(store, store_limit=1000)
    core.send(Q, Message(b"p", persistent=True))
    assert not core.store_full and not core.when_space(Q, lambda: None)
    store.stored_bytes = 1001
    woken: list[bool] = []
    # A producer to a durable queue waits; the send itself was taken (as for memory).
    assert core.store_full and core.when_space(Q, lambda: woken.append(True))
    clock.advance(1.0)
    assert woken == []
    store.stored_bytes = 950  # below the limit, but not yet below 90% of it
    clock.advance(1.0)
    assert woken == []
    store.stored_bytes = 900
    clock.advance(1.0)
    assert woken == [True] and not core.store_full


def test_store_limit_fail_policy_refuses_persistent_sends(
    make_core: MakeCore, store: MemoryStore
) -> None:
    core = make_core(store, store_limit=1000, store_full_policy="fail")
    store.stored_bytes = 1001
    with pytest.raises(CoreError) as err:
        core.send(Q, Message(b"p", persistent=True))
    assert err.value.code == CoreCode.STORE_FULL
    tx = core.begin()
    with pytest.raises(CoreError):
        core.send(Q, Message(b"p", persistent=True), tx=tx)
    # What the store would not hold is still taken: non-persistent messages, topics.
    core.send(Q, Message(b"n"))
    core.send(Address(TOPIC, "t"), Message(b"p", persistent=True))
    assert core.queue(Q).count == 1
    # "fail" never makes a producer wait.
    assert not core.when_space(Q, lambda: None)
