"""Expiry: at dispatch, by the periodic sweep on the fake clock, and to the DLQ."""

from __future__ import annotations

from broker.core import AUTO, QUEUE, Address, Core, Message
from tests.core.conftest import MakeCore
from tests.core.fakes import FakeLoop, RecordingConsumer

Q = Address(QUEUE, "ttl")
DLQ = Address(QUEUE, "ActiveMQ.DLQ")


def test_expired_at_dispatch_persistent_to_dlq_rest_dropped(core: Core, clock: FakeLoop) -> None:
    soon = core.now_ms() + 500
    core.send(Q, Message(b"p", persistent=True, expiration=soon))
    core.send(Q, Message(b"n", expiration=soon))
    core.send(Q, Message(b"forever"))
    clock.advance(1.0)
    c = RecordingConsumer()
    core.subscribe(Q, c, ack_mode=AUTO)
    assert c.bodies == [b"forever"]
    assert core.queue(Q).expired == 2
    (dead,) = core.browse(DLQ)
    assert dead.body == b"p" and dead.expiration == 0
    assert dead.properties["originalExpiration"] == soon
    assert str(dead.properties["dlqDeliveryFailureCause"]).startswith("Message Expired")


def test_not_yet_expired_is_delivered(core: Core, clock: FakeLoop) -> None:
    core.send(Q, Message(b"p", expiration=core.now_ms() + 5000))
    clock.advance(4.0)
    c = RecordingConsumer()
    core.subscribe(Q, c)
    assert c.bodies == [b"p"]


def test_sweep_expires_pending_without_consumers(make_core: MakeCore, clock: FakeLoop) -> None:
    core = make_core(expiry_check_interval=10.0, expired_to_dlq=False)
    core.send(Q, Message(b"p", persistent=True, expiration=core.now_ms() + 1000))
    clock.advance(5.0)
    assert core.queue(Q).count == 1
    clock.advance(6.0)  # the sweep at t+10s
    assert core.queue(Q).count == 0 and core.queue(Q).expired == 1
    assert DLQ not in core.queues
    # The sweep re-arms itself; close cancels it.
    assert clock.pending == 1
    core.close()
    assert clock.pending == 0
