"""Producer flow control as a per-destination policy (issue 12): `producer_flow_control`
(ActiveMQ's producerFlowControl, true by default), the broker-wide bound on what queues
without it hold past their limits (`overflow_memory_limit`), and
`send_fail_if_no_space` (ActiveMQ's sendFailIfNoSpace), in the core on a fake clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker.core import AUTO, QUEUE, Address, CoreCode, CoreError, Message
from broker.core.core import CoreLimits, default_policy
from broker.core.policy import Policy
from tests.core.conftest import MakeCore
from tests.core.fakes import FakeLoop, MemoryStore, RecordingConsumer

FLOW = Address(QUEUE, "flow.a")
FREE = Address(QUEUE, "free.a")
FREE_B = Address(QUEUE, "free.b")
KB = 1024


def no_flow_control(limit: int) -> tuple[tuple[str, Policy], ...]:
    """A policy for `free.>`: a small memory limit and no producer flow control."""
    base = default_policy(CoreLimits())
    return (("free.>", replace(base, memory_limit=limit, producer_flow_control=False)),)


def body(n: int = 4 * KB, persistent: bool = False) -> Message:
    return Message(b"x" * n, persistent=persistent)


def test_default_is_flow_control_at_the_queue_limit(make_core: MakeCore) -> None:
    core = make_core(queue_memory_limit=16 * KB)
    assert core.policies.for_name("flow.a").producer_flow_control
    while not core.full(FLOW):
        core.send(FLOW, body())
    woken: list[bool] = []
    assert core.when_space(FLOW, lambda: woken.append(True))
    # Draining below 70% of the limit wakes the producer at once (no timer).
    core.subscribe(FLOW, RecordingConsumer(), ack_mode=AUTO)
    assert woken == [True] and not core.full(FLOW)


def test_without_flow_control_a_queue_goes_past_its_limit(make_core: MakeCore) -> None:
    core = make_core(policies=no_flow_control(16 * KB), overflow_memory_limit=256 * KB)
    for _ in range(40):  # 160 KiB against a 16 KiB limit
        core.send(FREE, body())
        assert not core.full(FREE)
        assert not core.when_space(FREE, lambda: pytest.fail("never waits"))
    q = core.queue(FREE)
    assert q.bytes > 8 * q.memory_limit and q in core.overflowing
    # Another queue of the same policy is not full either, nor is one with flow control.
    core.send(FREE_B, body())
    assert not core.full(FREE_B) and not core.full(FLOW)


def test_overflow_of_all_such_queues_is_bounded(make_core: MakeCore, clock: FakeLoop) -> None:
    limit = 64 * KB
    core = make_core(policies=no_flow_control(8 * KB), overflow_memory_limit=limit)
    sent = 0
    while not core.full(FREE):
        # Two queues share the bound.
        core.send(FREE if sent % 2 else FREE_B, body())
        sent += 1
        assert sent < 100
    assert core.full(FREE_B)
    over = sum(q.bytes - q.memory_limit for q in (core.queue(FREE), core.queue(FREE_B)))
    assert limit < over <= limit + 2 * body().size
    woken: list[str] = []
    assert core.when_space(FREE, lambda: woken.append("a"))
    assert core.when_space(FREE_B, lambda: woken.append("b"))
    # A consumer on one queue drains it: the overflow falls below 90% of the bound, and
    # the core, which looks every 0.1 s while someone waits, wakes both producers.
    c = RecordingConsumer()
    core.subscribe(FREE, c, ack_mode=AUTO)
    assert woken == []
    clock.advance(0.2)
    assert sorted(woken) == ["a", "b"]
    assert not core.full(FREE) and not core.full(FREE_B)
    assert core.queue(FREE) not in core.overflowing


def test_deleted_queue_leaves_the_overflow(make_core: MakeCore) -> None:
    core = make_core(policies=no_flow_control(4 * KB), overflow_memory_limit=32 * KB)
    while not core.full(FREE):
        core.send(FREE, body())
    core.delete(FREE)
    core.send(FREE_B, body())
    assert not core.full(FREE_B) and not core.overflow_full


def test_send_fail_if_no_space_refuses_with_activemqs_text(make_core: MakeCore) -> None:
    core = make_core(queue_memory_limit=16 * KB, send_fail_if_no_space=True)
    accepted = 0
    with pytest.raises(CoreError) as info:
        for _ in range(100):
            core.send(FLOW, body())
            accepted += 1
    assert info.value.code == CoreCode.STORE_FULL
    assert info.value.message == (
        "Usage Manager Memory Limit reached on queue://flow.a. See "
        "http://activemq.apache.org/producer-flow-control.html for more info"
    )
    # Refusing replaces pausing: no producer is made to wait.
    assert not core.when_space(FLOW, lambda: pytest.fail("never waits"))
    q = core.queue(FLOW)
    # The refused message is not on the queue; what was accepted is all there.
    assert q.count == accepted and accepted == 16 * KB // body().size + 1
    # In a transaction the send is refused when it is made, as ActiveMQ's.
    tx = core.begin()
    with pytest.raises(CoreError):
        core.send(FLOW, body(), tx=tx)
    tx.abort()
    core.subscribe(FLOW, RecordingConsumer(), ack_mode=AUTO)
    core.send(FLOW, body())  # room again


def test_send_fail_does_not_refuse_what_pages_out(make_core: MakeCore, store: MemoryStore) -> None:
    core = make_core(store, queue_memory_limit=16 * KB, send_fail_if_no_space=True)
    for _ in range(20):  # 80 KiB of persistent messages: bodies go to the journal
        core.send(FLOW, body(persistent=True))
    assert core.queue(FLOW).count == 20
    with pytest.raises(CoreError):
        core.send(FLOW, body())  # a non-persistent one would stay in memory


def test_send_fail_without_flow_control_waits_for_the_overflow(make_core: MakeCore) -> None:
    core = make_core(
        policies=no_flow_control(4 * KB),
        overflow_memory_limit=32 * KB,
        send_fail_if_no_space=True,
    )
    for _ in range(8):  # past the queue's own limit, within the overflow
        core.send(FREE, body())
    with pytest.raises(CoreError) as info:
        for _ in range(20):
            core.send(FREE, body())
    assert "queue://free.a" in info.value.message
