"""Push dispatch: order, credit, competing consumers, pause/resume, topics."""

from __future__ import annotations

from broker.core import AUTO, CLIENT, INDIVIDUAL, QUEUE, TOPIC, Address, Core, Message
from broker.core.policy import Policy
from tests.core.conftest import MakeCore
from tests.core.fakes import RecordingConsumer

Q = Address(QUEUE, "orders")
T = Address(TOPIC, "news")


def test_arrival_order_whatever_the_priority_by_default(core: Core) -> None:
    """ActiveMQ's default (prioritizedMessages=false): FIFO, priorities ignored."""
    for body, prio in [(b"low1", 1), (b"high", 9), (b"low2", 1), (b"mid", 4)]:
        core.send(Q, Message(body, priority=prio))
    c = RecordingConsumer()
    core.subscribe(Q, c, ack_mode=AUTO)
    assert c.bodies == [b"low1", b"high", b"low2", b"mid"]
    # Priority is kept on the message, only dispatch ignores it.
    assert [m.priority for m in c.got] == [1, 9, 1, 4]


def test_prioritized_policy_by_pattern(make_core: MakeCore) -> None:
    core = make_core(policies=(("orders", Policy("ActiveMQ.DLQ", 6, True)),))
    other = Address(QUEUE, "other")
    for body, prio in [(b"low", 1), (b"high", 9)]:
        core.send(Q, Message(body, priority=prio))
        core.send(other, Message(body, priority=prio))
    a, b = RecordingConsumer(), RecordingConsumer()
    core.subscribe(Q, a, ack_mode=AUTO)
    core.subscribe(other, b, ack_mode=AUTO)
    assert a.bodies == [b"high", b"low"] and b.bodies == [b"low", b"high"]


def test_priority_lanes_then_fifo(make_core: MakeCore) -> None:
    core = make_core(prioritized_messages=True)
    for body, prio in [(b"low1", 1), (b"high", 9), (b"low2", 1), (b"mid", 4)]:
        core.send(Q, Message(body, priority=prio))
    c = RecordingConsumer()
    core.subscribe(Q, c, ack_mode=AUTO)
    assert c.bodies == [b"high", b"mid", b"low1", b"low2"]
    assert core.queue(Q).count == 0


def test_prefetch_bounds_inflight_and_ack_frees_credit(core: Core) -> None:
    for i in range(5):
        core.send(Q, Message(b"%d" % i))
    c = RecordingConsumer()
    sub = core.subscribe(Q, c, ack_mode=INDIVIDUAL, prefetch=2)
    assert c.bodies == [b"0", b"1"]
    assert sub.ack(c.got[1].id)
    assert c.bodies == [b"0", b"1", b"2"]
    assert not sub.ack("no-such-id")
    assert core.queue(Q).inflight_count == 2


def test_client_ack_is_cumulative_individual_is_not(core: Core) -> None:
    for mode, left in [(CLIENT, 0), (INDIVIDUAL, 2)]:
        q = Address(QUEUE, mode)
        for i in range(3):
            core.send(q, Message(b"%d" % i))
        c = RecordingConsumer()
        sub = core.subscribe(q, c, ack_mode=mode, prefetch=10)
        sub.ack(c.got[2].id)
        assert len(sub.inflight) == left, mode


def test_competing_consumers_round_robin(core: Core) -> None:
    a, b = RecordingConsumer(), RecordingConsumer()
    core.subscribe(Q, a, ack_mode=AUTO)
    core.subscribe(Q, b, ack_mode=AUTO)
    for i in range(4):
        core.send(Q, Message(b"%d" % i))
    assert a.bodies == [b"0", b"2"]
    assert b.bodies == [b"1", b"3"]


def test_pause_holds_dispatch_and_resume_restarts_it(core: Core) -> None:
    c = RecordingConsumer()
    sub = core.subscribe(Q, c, ack_mode=AUTO, paused=True)
    core.send(Q, Message(b"a"))
    assert c.got == [] and core.queue(Q).count == 1
    sub.resume()
    assert c.bodies == [b"a"]
    sub.pause()
    assert sub.paused and not sub.ready()
    core.send(Q, Message(b"b"))
    assert c.bodies == [b"a"]
    sub.set_paused(False)
    assert c.bodies == [b"a", b"b"]


def test_topic_fans_out_and_no_local_skips_own(core: Core) -> None:
    me, other = object(), object()
    mine, theirs = RecordingConsumer(), RecordingConsumer()
    core.subscribe(T, mine, no_local=True, origin=me)
    core.subscribe(T, theirs, origin=other)
    core.send(T, Message(b"x", origin=me))
    assert mine.got == [] and theirs.bodies == [b"x"]
    core.send(T, Message(b"y", origin=other))
    assert mine.bodies == [b"y"] and theirs.bodies == [b"x", b"y"]


def test_slow_topic_subscriber_disconnect_policy(make_core: MakeCore) -> None:
    core = make_core(topic_pending_limit=2, slow_consumer_policy="disconnect")
    c = RecordingConsumer()
    sub = core.subscribe(T, c, paused=True)
    for i in range(3):
        core.send(T, Message(b"%d" % i))
    assert c.slowed == [sub]
    # The oldest message was dropped to stay within the limit.
    assert [m.body for m in sub.source.browse()] == [b"1", b"2"]
    assert sub.source.discarded == 1
