"""Scheduled delivery over AMQP with real proton clients: the message annotations
ActiveMQ's AMQP transformer reads (x-opt-delivery-delay, -time, -period, -repeat,
-cron) and AMQ_SCHEDULED_* application properties, all mapped onto the core's
scheduler (broker/core/scheduler.py). ActiveMQ 5.17's shared instance here has no AMQP
connector, so these follow its source (InboundTransformer): an annotation at or below
zero, or a delivery time not in the future, asks for nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from proton import Message, symbol
from proton.handlers import MessagingHandler
from proton.utils import BlockingConnection

from tests.amqp.test_amqp_messaging import amqp, amqp_url, run_container  # noqa: F401
from tests.conftest import WAIT, BrokerThread

ON = {"broker.scheduler_support": True}


@pytest.fixture
def broker(broker_factory: Callable[..., BrokerThread]) -> BrokerThread:
    return broker_factory(**ON)


def _annotated(body: str, **annotations: Any) -> Message:
    return Message(
        body=body,
        annotations={symbol(k.replace("_", "-")): v for k, v in annotations.items()},
    )


def test_delivery_delay_annotation(amqp: Callable[..., BlockingConnection]) -> None:  # noqa: F811
    c = amqp()
    r = c.create_receiver("sched.amqp.delay")
    started = time.monotonic()
    c.create_sender("sched.amqp.delay").send(_annotated("later", x_opt_delivery_delay=600))
    msg = r.receive(WAIT)
    assert time.monotonic() - started >= 0.6
    assert msg.body == "later"
    assert msg.properties["scheduledJobId"].startswith("ID:")
    r.accept()


def test_delivery_time_annotation(amqp: Callable[..., BlockingConnection]) -> None:  # noqa: F811
    c = amqp()
    r = c.create_receiver("sched.amqp.time")
    s = c.create_sender("sched.amqp.time")
    due = time.time() + 0.6
    s.send(_annotated("at", x_opt_delivery_time=int(due * 1000)))
    msg = r.receive(WAIT)
    assert time.time() >= due - 0.01
    assert msg.body == "at"
    r.accept()
    # A time in the past asks for nothing: delivered at once, not held.
    s.send(_annotated("past", x_opt_delivery_time=1000))
    assert r.receive(WAIT).body == "past"
    r.accept()


def test_period_and_repeat_annotations(amqp: Callable[..., BlockingConnection]) -> None:  # noqa: F811
    c = amqp()
    r = c.create_receiver("sched.amqp.repeat")
    c.create_sender("sched.amqp.repeat").send(
        _annotated(
            "again", x_opt_delivery_delay=100, x_opt_delivery_period=200, x_opt_delivery_repeat=2
        )
    )
    got = []
    for _ in range(3):
        got.append(r.receive(WAIT))
        r.accept()
    assert [m.body for m in got] == ["again"] * 3
    assert len({m.properties["scheduledJobId"] for m in got}) == 1
    assert not any(k.startswith("AMQ_SCHEDULED_") for m in got for k in m.properties)


def test_application_property_from_amqp_to_stomp(
    broker: BrokerThread,
    amqp: Callable[..., BlockingConnection],  # noqa: F811
) -> None:
    import stomp

    from tests.conftest import Collector

    conn = stomp.Connection12([("127.0.0.1", broker.stomp_port)])
    listener = Collector()
    conn.set_listener("c", listener)
    conn.connect(wait=True)
    try:
        conn.subscribe("/queue/sched.amqp.cross", id="s", ack="auto", receipt="sub")
        assert listener.receipt() == "sub"
        started = time.monotonic()
        amqp().create_sender("sched.amqp.cross").send(
            Message(body="cross", properties={"AMQ_SCHEDULED_DELAY": 500})
        )
        msg = listener.next()
        assert time.monotonic() - started >= 0.5
        assert "scheduledJobId" in msg.headers and "AMQ_SCHEDULED_DELAY" not in msg.headers
    finally:
        conn.disconnect()


class _SendOne(MessagingHandler):
    """Sends one message and keeps the outcome and its condition."""

    def __init__(self, url: str, address: str, msg: Message) -> None:
        super().__init__()
        self.url, self.address, self.msg = url, address, msg
        self.outcome: str | None = None
        self.condition: Any = None

    def on_start(self, event: Any) -> None:
        self.conn = event.container.connect(self.url)
        event.container.create_sender(self.conn, self.address)

    def on_sendable(self, event: Any) -> None:
        if self.outcome is None and not getattr(self, "sent", False):
            self.sent = True
            event.sender.send(self.msg)

    def on_accepted(self, event: Any) -> None:
        self.outcome = "accepted"
        event.connection.close()

    def on_rejected(self, event: Any) -> None:
        self.outcome = "rejected"
        self.condition = event.delivery.remote.condition
        event.connection.close()


@pytest.mark.parametrize(
    ("msg", "text"),
    [
        (_annotated("x", x_opt_delivery_delay="soon"), "x-opt-delivery-delay must be an integer"),
        (_annotated("x", x_opt_delivery_cron=5), "x-opt-delivery-cron must be a string"),
        (_annotated("x", x_opt_delivery_cron="bogus"), "expected 5 fields"),
        (Message(body="x", properties={"AMQ_SCHEDULED_DELAY": "abc"}), "must be an integer"),
        (Message(body="x", properties={"AMQ_SCHEDULED_PERIOD": -1}), "must not be a negative"),
    ],
)
def test_bad_scheduling_is_rejected_and_the_connection_lives(
    broker: BrokerThread,
    amqp: Callable[..., BlockingConnection],  # noqa: F811
    msg: Message,
    text: str,
) -> None:
    h = _SendOne(amqp_url(broker), "sched.amqp.bad", msg)
    run_container(h)
    assert h.outcome == "rejected"
    assert h.condition is not None and text in h.condition.description
    assert h.condition.name == "amqp:invalid-field"
    # Nothing was queued; other clients are unaffected.
    c = amqp()
    c.create_sender("sched.amqp.bad").send(Message(body="fine"))
    r = c.create_receiver("sched.amqp.bad")
    assert r.receive(WAIT).body == "fine"
    r.accept()


def test_scheduling_off_delivers_at_once(broker_factory: Callable[..., BrokerThread]) -> None:
    off = broker_factory()
    c = BlockingConnection(amqp_url(off), timeout=WAIT)
    try:
        r = c.create_receiver("sched.amqp.off")
        started = time.monotonic()
        c.create_sender("sched.amqp.off").send(_annotated("now", x_opt_delivery_delay=5000))
        msg = r.receive(WAIT)
        assert time.monotonic() - started < 4.0
        assert msg.body == "now"
        r.accept()
    finally:
        c.close()
