"""Redelivery, the redelivery limit and the dead letter queue."""

from __future__ import annotations

from broker.core import INDIVIDUAL, QUEUE, Address, Core, Message
from broker.core.policy import Policy
from tests.core.conftest import MakeCore
from tests.core.fakes import RecordingConsumer

Q = Address(QUEUE, "work")
DLQ = Address(QUEUE, "ActiveMQ.DLQ")


def _nack_until_gone(core: Core, persistent: bool = True) -> tuple[RecordingConsumer, int]:
    core.send(Q, Message(b"poison", persistent=persistent))
    c = RecordingConsumer()
    sub = core.subscribe(Q, c, ack_mode=INDIVIDUAL, prefetch=1)
    nacks = 0
    while sub.inflight:
        sub.nack(c.got[-1].id)
        nacks += 1
        assert nacks < 50
    return c, nacks


def test_nack_redelivers_counted_and_flagged(core: Core) -> None:
    core.send(Q, Message(b"m"))
    c = RecordingConsumer()
    sub = core.subscribe(Q, c, ack_mode=INDIVIDUAL)
    sub.nack(c.got[0].id)
    assert [(m.delivery_count, m.redelivered) for m in c.got] == [(0, False), (1, True)]
    assert core.queue(Q).redelivered == 1
    # The first delivery's object was not mutated: the redelivery is a copy.
    assert c.got[0] is not c.got[1]


def test_release_is_not_counted(core: Core) -> None:
    core.send(Q, Message(b"m"))
    c = RecordingConsumer()
    sub = core.subscribe(Q, c, ack_mode=INDIVIDUAL)
    sub.release(c.got[0].id)
    assert c.got[1].delivery_count == 0 and not c.got[1].redelivered


def test_past_max_redeliveries_goes_to_dlq(make_core: MakeCore) -> None:
    core = make_core(max_redeliveries=2)
    c, nacks = _nack_until_gone(core)
    # Deliveries 1..3 are allowed (counts 0, 1, 2); the third nack dead-letters.
    assert nacks == 3 and len(c.got) == 3
    (dead,) = core.browse(DLQ)
    assert dead.body == b"poison"
    assert dead.delivery_count == 0 and not dead.redelivered
    assert dead.properties["originalDestination"] == str(Q)
    assert str(dead.properties["dlqDeliveryFailureCause"]).startswith("Delivery[")
    assert core.queue(Q).dlq == 1 and core.queue(Q).count == 0


def test_policy_overrides_limit_and_dlq_name(make_core: MakeCore) -> None:
    core = make_core(policies=(("work", Policy("work.DLQ", 0)),))
    _c, nacks = _nack_until_gone(core)
    assert nacks == 1
    assert [m.body for m in core.browse(Address(QUEUE, "work.DLQ"))] == [b"poison"]


def test_non_persistent_poison_is_dropped_unless_configured(make_core: MakeCore) -> None:
    core = make_core(max_redeliveries=0)
    _nack_until_gone(core, persistent=False)
    assert DLQ not in core.queues or core.browse(DLQ) == []
    core2 = make_core(max_redeliveries=0, dead_letter_non_persistent=True)
    _nack_until_gone(core2, persistent=False)
    assert len(core2.browse(DLQ)) == 1


def test_own_limit_queue_never_dead_letters(make_core: MakeCore) -> None:
    core = make_core(max_redeliveries=1)
    core.set_own_limit(Q)
    core.send(Q, Message(b"m", persistent=True))
    c = RecordingConsumer()
    sub = core.subscribe(Q, c, ack_mode=INDIVIDUAL)
    for _ in range(5):
        sub.nack(c.got[-1].id)
    assert c.got[-1].delivery_count == 5
    assert DLQ not in core.queues


def test_no_broker_redelivery_limit_by_default(core: Core) -> None:
    """max_redeliveries -1 (ActiveMQ's default): counted returns never dead-letter."""
    core.send(Q, Message(b"m", persistent=True))
    for _ in range(20):
        c = RecordingConsumer()
        core.subscribe(Q, c, ack_mode=INDIVIDUAL).close()
    (back,) = core.browse(Q)
    assert back.delivery_count == 20 and DLQ not in core.queues


def test_closing_a_subscription_returns_unacked_counted(core: Core) -> None:
    core.send(Q, Message(b"m"))
    c = RecordingConsumer()
    core.subscribe(Q, c, ack_mode=INDIVIDUAL).close()
    (back,) = core.browse(Q)
    assert back.redelivered and back.delivery_count == 1
    d = RecordingConsumer()
    core.subscribe(Q, d, ack_mode=INDIVIDUAL)
    assert d.got[0].redelivered


def test_poison_ack_dead_letters_at_once(core: Core) -> None:
    core.send(Q, Message(b"m", persistent=True))
    c = RecordingConsumer()
    sub = core.subscribe(Q, c, ack_mode=INDIVIDUAL)
    assert sub.dead_letter(c.got[0].id, "bad payload")
    (dead,) = core.browse(DLQ)
    assert dead.properties["dlqDeliveryFailureCause"] == "bad payload"


def test_restore_dead_letters_crash_ended_deliveries_past_the_limit(make_core: MakeCore) -> None:
    core = make_core(max_redeliveries=2)
    msgs = []
    for mid, count in [("ok", 1), ("worn", 3)]:
        m = Message(mid.encode(), persistent=True)
        m.id, m.delivery_count, m.redelivered = mid, count, True
        msgs.append(m)
    core.restore({Q: msgs})
    assert [m.id for m in core.browse(Q)] == ["ok"]
    assert [m.body for m in core.browse(DLQ)] == [b"worn"]
