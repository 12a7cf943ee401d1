"""Wildcards, composite addresses and virtual topics over AMQP (issue 12), with real
proton clients. Addresses as ActiveMQ's AMQP reads them: `topic://a.*`, `queue://a.>`,
`queue://a,topic://b,c` (a bare part takes the first part's kind)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from proton import Delivery, Message
from proton.handlers import MessagingHandler
from proton.reactor import Container
from proton.utils import BlockingConnection, LinkDetached, SendException

from tests.conftest import WAIT, BrokerThread


@pytest.fixture
def amqp(broker: BrokerThread) -> Iterator[Callable[..., BlockingConnection]]:
    conns: list[BlockingConnection] = []

    def make(**kw: Any) -> BlockingConnection:
        c = BlockingConnection(f"127.0.0.1:{broker.broker.port('amqp')}", timeout=WAIT, **kw)
        conns.append(c)
        return c

    yield make
    for c in conns:
        with contextlib.suppress(Exception):
            c.close()


def receive_all(r: Any, n: int) -> list[Message]:
    out = []
    for _ in range(n):
        out.append(r.receive(timeout=WAIT))
        r.accept()
    return out


def nothing_more(r: Any) -> bool:
    with contextlib.suppress(Exception):
        r.receive(timeout=0.3)
        return False
    return True


def test_wildcard_topic_source(amqp) -> None:
    c = amqp()
    r = c.create_receiver("topic://route.amqp.*")
    s = c.create_sender(None)
    for to in ("topic://route.amqp.a", "topic://route.amqp.new", "topic://route.amqp.a.b"):
        s.send(Message(body=to, address=to))
    got = receive_all(r, 2)
    assert [(m.body, m.address) for m in got] == [
        ("topic://route.amqp.a", "topic://route.amqp.a"),
        ("topic://route.amqp.new", "topic://route.amqp.new"),
    ]
    assert nothing_more(r)


def test_wildcard_queue_source_takes_existing_and_new_queues(amqp) -> None:
    c = amqp()
    c.create_sender("queue://route.amqpq.a").send(Message(body="before"))
    r = c.create_receiver("queue://route.amqpq.>", credit=10)
    c.create_sender("queue://route.amqpq.b.c").send(Message(body="new"))
    got = receive_all(r, 2)
    assert [(m.body, m.address) for m in got] == [
        ("before", "queue://route.amqpq.a"),
        ("new", "queue://route.amqpq.b.c"),
    ]
    assert nothing_more(r)


def test_sending_to_a_wildcard_target_is_refused(amqp, broker: BrokerThread) -> None:
    c = amqp()
    with pytest.raises(LinkDetached) as err:
        c.create_sender("queue://route.amqpw.*")
    assert "amqp:invalid-field" in str(err.value) and "wildcard" in str(err.value)
    relay = c.create_sender(None)
    with pytest.raises(SendException) as refused:
        relay.send(Message(body="x", address="topic://route.amqpw.>"), timeout=WAIT)
    assert refused.value.state == Delivery.REJECTED
    # The connection is unaffected.
    c.create_sender("queue://route.amqpw.ok").send(Message(body="fine"))
    assert broker.stats("route.amqpw.ok").depth == 1


def test_composite_target_and_relay(amqp) -> None:
    c = amqp()
    q1 = c.create_receiver("queue://route.comp.q1")
    t2 = c.create_receiver("topic://route.comp.t2")
    q3 = c.create_receiver("queue://route.comp.q3")
    c.create_sender("queue://route.comp.q1,topic://route.comp.t2,route.comp.q3").send(
        Message(body="link")
    )
    c.create_sender(None).send(
        Message(body="relay", address="topic://route.comp.t2,queue://route.comp.q1")
    )
    assert [m.body for m in receive_all(q1, 2)] == ["link", "relay"]
    assert [m.body for m in receive_all(t2, 2)] == ["link", "relay"]
    got = receive_all(q3, 1)
    assert got[0].body == "link" and got[0].address == "queue://route.comp.q3"
    assert nothing_more(q3)


def test_composite_source_takes_the_first_parts_kind(amqp) -> None:
    c = amqp()
    r = c.create_receiver("queue://route.cs.a,route.cs.b,topic://route.cs.t", credit=10)
    s = c.create_sender(None)
    for to in ("queue://route.cs.a", "queue://route.cs.b", "topic://route.cs.t"):
        s.send(Message(body=to, address=to))
    assert sorted(m.body for m in receive_all(r, 2)) == ["queue://route.cs.a", "queue://route.cs.b"]
    assert nothing_more(r)


def test_bad_composite_address_is_refused(amqp) -> None:
    c = amqp()
    for address in ("queue://a,,queue://b", "queue://a,"):
        with pytest.raises(LinkDetached) as err:
            c.create_receiver(address)
        assert "amqp:invalid-field" in str(err.value)


def test_virtual_topic_over_amqp(amqp) -> None:
    c = amqp()
    a = c.create_receiver("queue://Consumer.A.VirtualTopic.amqp")
    b = c.create_receiver("queue://Consumer.B.VirtualTopic.amqp")
    c.create_sender("topic://VirtualTopic.amqp").send(Message(body="vt", durable=True))
    ma, mb = receive_all(a, 1)[0], receive_all(b, 1)[0]
    assert (ma.body, mb.body) == ("vt", "vt")
    assert ma.address == "queue://Consumer.A.VirtualTopic.amqp" and ma.durable
    assert ma.id == mb.id


class TwoCredits(MessagingHandler):
    """Grants a wildcard source 2 credits, never more, and counts what comes in 0.5 s
    (a proton timer in the client, the only way to see that nothing more is sent)."""

    def __init__(self, url: str, address: str, broker: BrokerThread, names: list[str]) -> None:
        super().__init__(prefetch=0, auto_accept=False)
        self.url = url
        self.address = address
        self.broker = broker
        self.names = names
        self.got: list[str] = []
        self.inflight = -1
        self.conn: Any = None

    def on_start(self, event: Any) -> None:
        self.conn = event.container.connect(self.url)
        event.container.create_receiver(self.conn, self.address)

    def on_link_opened(self, event: Any) -> None:
        if event.receiver is not None:
            event.receiver.flow(2)
            event.container.schedule(0.5, self)

    def on_message(self, event: Any) -> None:
        self.got.append(event.message.body)

    def on_timer_task(self, event: Any) -> None:
        self.inflight = sum(self.broker.stats(n).inflight for n in self.names)
        self.conn.close()


def test_wildcard_queue_source_respects_link_credit(amqp, broker: BrokerThread) -> None:
    """Credit is the link's, over all the queues a wildcard source consumes from."""
    c = amqp()
    names = [f"route.credit.{n}" for n in "abc"]
    for name in names:
        s = c.create_sender(f"queue://{name}")
        for i in range(3):
            s.send(Message(body=f"{name}{i}"))
    handler = TwoCredits(
        f"127.0.0.1:{broker.broker.port('amqp')}", "queue://route.credit.*", broker, names
    )
    done = threading.Thread(target=Container(handler).run, daemon=True)
    done.start()
    done.join(WAIT)
    assert not done.is_alive()
    assert len(handler.got) == 2 and handler.inflight == 2
