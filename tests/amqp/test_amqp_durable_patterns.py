"""Durable subscriptions on wildcard and composite topics over AMQP with proton clients
(issue 12): a receiving link with a durable terminus on `topic://a.*` or
`topic://a,topic://b`, keyed by container-id and link name as ActiveMQ 5.17 keys them
(broker/core/durable.py; the STOMP side and the comparison with ActiveMQ are in
tests/stomp/test_stomp_durable_patterns.py)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from proton import Message, Terminus
from proton.reactor import DurableSubscription, LinkOption
from proton.utils import BlockingConnection

from tests.amqp.test_amqp_messaging import amqp_url
from tests.conftest import WAIT, BrokerThread

_ids = itertools.count(1)


class NullSource(LinkOption):
    """Attach with a null source, as the JMS client recovering a durable subscription."""

    def apply(self, link: Any) -> None:
        link.source.type = Terminus.UNSPECIFIED


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerThread]:
    b = BrokerThread(tmp_path_factory.mktemp("amqp-durwild"))
    b.start()
    yield b
    b.stop()


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


def _run() -> str:
    return f"amqdw{next(_ids)}"


def detach(broker: BrokerThread, conn: BlockingConnection, receiver: Any, label: str) -> None:
    """Detach without closing (the subscription stays); returns once the broker has let
    go of the link."""
    receiver.link.detach()

    def gone() -> bool:
        s = broker.stats(label, kind="durable")
        return s is None or s.consumers == 0

    conn.wait(gone, msg="detach")


def publish(conn: BlockingConnection, address: str, *bodies: str) -> None:
    s = conn.create_sender(address, name=f"p{next(_ids)}")
    for body in bodies:
        s.send(Message(body=body, durable=True))  # each waits for its disposition
    s.close()


def take(r: Any, n: int) -> list[tuple[str, str]]:
    """(body, to) of the next `n` messages, each accepted."""
    out = []
    for _ in range(n):
        m = r.receive(WAIT)
        body = m.body
        if isinstance(body, (memoryview, bytes)):  # a STOMP sender's bytes: a data section
            body = bytes(body).decode()
        out.append((body, m.address))
        r.accept()
    return out


def nothing_more(r: Any) -> bool:
    with contextlib.suppress(Exception):  # proton's Timeout
        r.receive(0.3)
        return False
    return True


def test_a_durable_terminus_on_a_wildcard_keeps_what_matching_topics_get(
    broker: BrokerThread, amqp
) -> None:
    r = _run()
    cid = f"{r}-c"
    c = amqp(cid)
    p = amqp()
    publish(p, f"topic://{r}.a.old", "before")  # the topic exists first
    rcv = c.create_receiver(f"topic://{r}.a.*", name="sub", options=DurableSubscription())
    detach(broker, c, rcv, f"{cid}:sub")
    publish(p, f"topic://{r}.a.old", "to-old")
    publish(p, f"topic://{r}.a.new", "to-new")  # first used while away
    publish(p, f"topic://{r}.b.new", "other")
    publish(p, f"topic://{r}.a.x.y", "too-deep")
    assert broker.stats(f"{cid}:sub", kind="durable").depth == 2
    rcv = c.create_receiver(
        f"topic://{r}.a.*", name="sub", options=DurableSubscription(), credit=10
    )
    assert take(rcv, 2) == [
        ("to-old", f"topic://{r}.a.old"),
        ("to-new", f"topic://{r}.a.new"),
    ]
    assert nothing_more(rcv)
    rcv.close()  # detach with closed=true deletes it
    assert broker.stats(f"{cid}:sub", kind="durable") is None


def test_a_composite_is_recovered_by_link_name_with_its_address(broker: BrokerThread, amqp) -> None:
    r = _run()
    cid = f"{r}-c"
    address = f"topic://{r}.c.x,topic://{r}.c.*"
    c = amqp(cid)
    rcv = c.create_receiver(address, name="jms", options=DurableSubscription())
    detach(broker, c, rcv, f"{cid}:jms")
    p = amqp()
    publish(p, f"topic://{r}.c.x", "matched-twice")
    publish(p, f"topic://{r}.c.later", "matched-once")
    rcv = c.create_receiver(None, name="jms", options=NullSource(), credit=10)
    src = rcv.link.remote_source
    assert src.address == address
    assert src.durability == Terminus.DELIVERIES
    assert [body for body, _ in take(rcv, 2)] == ["matched-twice", "matched-once"]
    assert nothing_more(rcv)
    # Another pattern under the same link name replaces it (as ActiveMQ).
    detach(broker, c, rcv, f"{cid}:jms")
    publish(p, f"topic://{r}.c.x", "dropped")
    rcv = c.create_receiver(f"topic://{r}.d.*", name="jms", options=DurableSubscription())
    assert nothing_more(rcv)
    d = broker.call(lambda: broker.broker.core.durables.find(cid, "jms"))
    assert [p.name for p in d.parts] == [f"{r}.d.*"]


def test_the_same_wildcard_subscription_from_stomp_and_amqp(
    broker: BrokerThread, amqp, connect
) -> None:
    """One core subscription: STOMP client-id + name is AMQP container-id + link name."""
    r = _run()
    cid = f"{r}-c"
    st = connect(headers={"client-id": cid})
    st.subscribe(
        f"/topic/{r}.s.>", id="d1", headers={"activemq.subscriptionName": "shared"}, receipt="s"
    )
    assert st.listener.receipt() == "s"
    st.unsubscribe(id="d1", receipt="u")
    assert st.listener.receipt() == "u"
    st.send(f"/topic/{r}.s.deep.er", "from-stomp", headers={"persistent": "true"})
    st.disconnect(receipt="bye")
    assert st.listener.receipt() == "bye"
    c = amqp(cid)
    rcv = c.create_receiver(
        f"topic://{r}.s.>", name="shared", options=DurableSubscription(), credit=10
    )
    assert take(rcv, 1) == [("from-stomp", f"topic://{r}.s.deep.er")]
