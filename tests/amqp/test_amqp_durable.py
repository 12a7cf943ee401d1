"""Durable topic subscriptions over AMQP with proton clients (issue 12), mapped as
ActiveMQ 5.17's AmqpSession.createSender maps them: the connection's container-id is
the client id, the receiving link's name the subscription name, a topic source with
terminus durability makes it durable; detach keeps it, detach with closed=true deletes
it; a null source recovers it by link name (what the Qpid JMS client sends)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from proton import Described, Message, Terminus, symbol
from proton.reactor import DurableSubscription, LinkOption, Selector
from proton.utils import BlockingConnection, ConnectionClosed, LinkDetached

from tests.amqp.test_amqp_messaging import amqp_url
from tests.conftest import WAIT, BrokerThread, subscribe, wait_until

_ids = itertools.count(1)
TOPIC = "topic://durable.amqp"


class NullSource(LinkOption):
    """Attach with a null source, as the JMS client recovering a durable subscription."""

    def apply(self, link: Any) -> None:
        link.source.type = Terminus.UNSPECIFIED


@pytest.fixture
def amqp(broker: BrokerThread) -> Iterator[Callable[..., BlockingConnection]]:
    conns: list[BlockingConnection] = []

    def make(container_id: str | None = None) -> BlockingConnection:
        kw = {"container_id": container_id} if container_id else {}
        c = BlockingConnection(amqp_url(broker), timeout=WAIT, **kw)
        conns.append(c)
        return c

    yield make
    for c in conns:
        with contextlib.suppress(Exception):
            c.close()


def _cid() -> str:
    return f"amqp-durable-{next(_ids)}"


def detach(broker: BrokerThread, conn: BlockingConnection, receiver: Any, label: str) -> None:
    """Detach without closing (the link's subscription stays); returns once the broker
    has let go of the link (a detach changes no endpoint state proton shows)."""
    receiver.link.detach()

    def gone() -> bool:
        s = broker.stats(label, kind="durable")
        return s is None or s.consumers == 0

    conn.wait(gone, msg="detach")


def publish(conn: BlockingConnection, *bodies: str, durable: bool = True, **props: Any) -> None:
    s = conn.create_sender(TOPIC, name=f"p{next(_ids)}")
    for body in bodies:
        s.send(Message(body=body, durable=durable, properties=props or None))
    s.close()


def take(r: Any, n: int) -> list[Any]:
    out = []
    for _ in range(n):
        m = r.receive(WAIT)
        # A data section (a STOMP sender's bytes) is a view into the message's buffer:
        # copied while `m` holds it.
        out.append(bytes(m.body).decode() if isinstance(m.body, memoryview) else m.body)
        r.accept()
    return out


def test_detach_keeps_close_deletes(broker: BrokerThread, amqp) -> None:
    cid = _cid()
    c = amqp(cid)
    r = c.create_receiver(TOPIC, name="sub", options=DurableSubscription())
    detach(broker, c, r, f"{cid}:sub")
    p = amqp()
    publish(p, "p1", "p2")
    publish(p, "np", durable=False)
    s = broker.stats(f"{cid}:sub", kind="durable")
    assert (s.depth, s.consumers) == (3, 0)
    r = c.create_receiver(TOPIC, name="sub", options=DurableSubscription(), credit=10)
    assert take(r, 3) == ["p1", "p2", "np"]
    r.close()
    assert broker.stats(f"{cid}:sub", kind="durable") is None
    publish(p, "after")
    r = c.create_receiver(TOPIC, name="sub", options=DurableSubscription(), credit=10)
    with pytest.raises(Exception):  # noqa: B017 - proton's Timeout: a new, empty one
        r.receive(0.3)


def test_a_non_durable_topic_link_keeps_nothing(broker: BrokerThread, amqp) -> None:
    c = amqp(_cid())
    r = c.create_receiver(TOPIC, name="plain")
    r.link.detach()
    c.create_sender("queue://durable.amqp.sync", name="sync").send(Message(body="sync"))
    assert [s for s in broker.call(broker.broker.core.stats) if s.kind == "durable"] == []


def test_the_same_subscription_from_stomp_and_amqp(broker: BrokerThread, amqp, connect) -> None:
    """One core subscription: a STOMP client-id + name is an AMQP container-id + link."""
    cid = _cid()
    st = connect(headers={"client-id": cid})
    subscribe(st, "/topic/durable.amqp", "d1", **{"activemq.subscriptionName": "shared"})
    st.unsubscribe(id="d1", receipt="u")
    assert st.listener.receipt() == "u"
    st.send("/topic/durable.amqp", "from-stomp", headers={"persistent": "true"})
    st.sync()
    st.disconnect()
    # The client id is one connection's at a time (as ActiveMQ's): it is free once the
    # STOMP connection has gone.
    c = _open_when_free(amqp, cid)
    r = c.create_receiver(TOPIC, name="shared", options=DurableSubscription(), credit=10)
    assert take(r, 1) == ["from-stomp"]


def _open_when_free(amqp: Callable[..., BlockingConnection], cid: str) -> BlockingConnection:
    opened: list[BlockingConnection] = []

    def attempt() -> bool:
        try:
            opened.append(amqp(cid))
        except ConnectionClosed:
            return False
        return True

    assert wait_until(attempt)
    return opened[0]


def test_second_consumer_is_refused_first_unaffected(amqp) -> None:
    """A second connection with the subscriber's container-id is refused at open (the
    client id is taken), so the durable consumer cannot be doubled; the first goes on."""
    cid = _cid()
    c = amqp(cid)
    r = c.create_receiver(TOPIC, name="sub", options=DurableSubscription(), credit=10)
    with pytest.raises(ConnectionClosed) as info:
        amqp(cid)
    assert "amqp:invalid-field" in str(info.value)
    assert f"Client: {cid} already connected" in str(info.value)
    publish(amqp(), "still")
    assert take(r, 1) == ["still"]


def test_recovery_by_link_name_with_a_null_source(broker: BrokerThread, amqp) -> None:
    cid = _cid()
    c = amqp(cid)
    r = c.create_receiver(
        TOPIC, name="jms", options=[DurableSubscription(), Selector("color = 'red'")]
    )
    detach(broker, c, r, f"{cid}:jms")
    p = amqp()
    publish(p, "red", color="red")
    publish(p, "blue", color="blue")
    r = c.create_receiver(None, name="jms", options=NullSource(), credit=10)
    src = r.link.remote_source
    assert src.address == TOPIC
    assert src.durability == Terminus.DELIVERIES
    assert src.expiry_policy == Terminus.EXPIRE_NEVER
    assert src.distribution_mode == Terminus.DIST_MODE_COPY
    src.filter.rewind()
    assert src.filter.next()
    filters = src.filter.get_object()
    assert filters == {
        symbol("apache.org:selector-filter:string"): Described(
            symbol("apache.org:selector-filter:string"), "color = 'red'"
        )
    }
    assert take(r, 1) == ["red"]
    # Still the same subscription with the same selector: nothing was replaced.
    with pytest.raises(Exception):  # noqa: B017 - proton's Timeout
        r.receive(0.3)


def test_recovery_of_an_unknown_link_is_refused(amqp) -> None:
    c = amqp(_cid())
    with pytest.raises(LinkDetached) as info:
        c.create_receiver(None, name="nobody", options=NullSource())
    assert "amqp:not-found" in str(info.value)
    assert "Unknown subscription link: nobody" in str(info.value)
    # The connection goes on.
    c.create_sender("queue://durable.amqp.ok", name="ok").send(Message(body="fine"))


def test_unacknowledged_come_back_after_detach(broker: BrokerThread, amqp) -> None:
    cid = _cid()
    c = amqp(cid)
    r = c.create_receiver(TOPIC, name="sub", options=DurableSubscription(), credit=10)
    publish(amqp(), "a", "b")
    first = r.receive(WAIT)
    assert first.body == "a"
    r.accept()
    assert r.receive(WAIT).body == "b"  # not settled
    detach(broker, c, r, f"{cid}:sub")
    r = c.create_receiver(TOPIC, name="sub", options=DurableSubscription(), credit=10)
    again = r.receive(WAIT)
    assert again.body == "b" and again.delivery_count >= 1
