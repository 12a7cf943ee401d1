"""Message groups over AMQP, with proton clients: properties.group-id is the group
(ActiveMQ's JMSXGroupID), properties.group-sequence its JMSXGroupSeq; a uint past
2**31 - 1 is the negative int ActiveMQ reads from it (UnsignedInteger.intValue), so
4294967295 is -1 and closes the group. ActiveMQ's AMQP receivers have no way to ask
for consumer priority or exclusivity, so neither do ZoneMQ's; a STOMP consumer's
priority and exclusivity still hold against AMQP receivers of the same queue."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stomp
from proton import Message
from proton.utils import BlockingConnection

from tests.amqp.test_amqp_messaging import amqp_url
from tests.conftest import WAIT, BrokerThread, Collector

_names = itertools.count(1)


@pytest.fixture
def amqp(broker: BrokerThread) -> Iterator[Callable[[], BlockingConnection]]:
    conns: list[BlockingConnection] = []

    def make() -> BlockingConnection:
        c = BlockingConnection(amqp_url(broker), timeout=WAIT)
        conns.append(c)
        return c

    yield make
    for c in conns:
        with contextlib.suppress(Exception):
            c.close()


def receiver(conn: BlockingConnection, address: str, credit: int = 10) -> Any:
    return conn.create_receiver(address, name=f"r{next(_names)}", credit=credit)


def sender(conn: BlockingConnection, address: str) -> Any:
    return conn.create_sender(address, name=f"s{next(_names)}")


def take(r: Any, n: int) -> list[str]:
    out = []
    for _ in range(n):
        out.append(r.receive(WAIT).body)
        r.accept()
    return out


def nothing_for(r: Any, conn: BlockingConnection) -> bool:
    """True if `r` has nothing: a round trip on its connection first (a sender's
    settled transfer), so anything the broker had sent it is in."""
    sender(conn, "grp.amqp.sync").send(Message(body="sync"))
    with contextlib.suppress(Exception):
        r.receive(0.2)
        return False
    return True


def test_group_id_pins_each_group_to_one_receiver(amqp) -> None:
    c1, c2, cp = amqp(), amqp(), amqp()
    r1, r2 = receiver(c1, "grp.amqp.pin"), receiver(c2, "grp.amqp.pin")
    s = sender(cp, "grp.amqp.pin")
    for i in range(3):
        for g in ("g1", "g2", "g3"):
            s.send(Message(body=f"{g}-{i}", group_id=g))
    assert take(r1, 6) == ["g1-0", "g3-0", "g1-1", "g3-1", "g1-2", "g3-2"]
    assert take(r2, 3) == ["g2-0", "g2-1", "g2-2"]


def test_a_group_moves_when_its_receiver_detaches(amqp) -> None:
    c1, c2, cp = amqp(), amqp(), amqp()
    r1, r2 = receiver(c1, "grp.amqp.move"), receiver(c2, "grp.amqp.move")
    s = sender(cp, "grp.amqp.move")
    s.send(Message(body="m1", group_id="g"))
    first = r1.receive(WAIT)
    assert first.body == "m1"
    r1.close()  # unsettled: m1 comes back and goes, with its group, to r2
    again = r2.receive(WAIT)
    assert (again.body, again.delivery_count) == ("m1", 1)
    r2.accept()
    s.send(Message(body="m2", group_id="g"))
    assert take(r2, 1) == ["m2"]


def test_a_released_message_goes_back_to_its_group_owner(amqp) -> None:
    c1, c2, cp = amqp(), amqp(), amqp()
    r1, r2 = receiver(c1, "grp.amqp.back"), receiver(c2, "grp.amqp.back")
    s = sender(cp, "grp.amqp.back")
    s.send(Message(body="m1", group_id="g"))
    assert r1.receive(WAIT).body == "m1"
    r1.release(delivered=False)  # released: back unchanged, to the group's owner
    back = r1.receive(WAIT)
    assert (back.body, back.delivery_count) == ("m1", 0)
    r1.accept()
    assert nothing_for(r2, c2)


@pytest.mark.parametrize("close", [False, True])
def test_group_sequence_4294967295_closes_the_group(amqp, close: bool) -> None:
    address = f"grp.amqp.close.{close}"
    c1, c2, cp = amqp(), amqp(), amqp()
    r1, r2 = receiver(c1, address), receiver(c2, address)
    s = sender(cp, address)
    s.send(Message(body="m1", group_id="g", group_sequence=1))
    s.send(Message(body="m2", group_id="g", group_sequence=2**32 - 1 if close else 2))
    s.send(Message(body="m3", group_id="g"))
    assert take(r1, 2) == ["m1", "m2"]
    taker, other = (r2, c1) if close else (r1, c2)
    assert take(taker, 1) == ["m3"]
    assert nothing_for(r1 if close else r2, other)


def test_a_stomp_exclusive_consumer_holds_the_queue_against_amqp_receivers(
    broker: BrokerThread, amqp
) -> None:
    c1, cp = amqp(), amqp()
    r1 = receiver(c1, "grp.amqp.excl")
    conn = stomp.Connection12([("127.0.0.1", broker.stomp_port)], heartbeats=(0, 0))
    listener = Collector()
    conn.set_listener("c", listener)
    conn.connect(wait=True)
    try:
        conn.subscribe(
            "/queue/grp.amqp.excl",
            id="x",
            headers={"activemq.exclusive": "true"},
            receipt="sub",
        )
        assert listener.receipt() == "sub"
        s = sender(cp, "grp.amqp.excl")
        for i in range(3):
            s.send(Message(body=f"e{i}"))
        assert [listener.next().body for _ in range(3)] == ["e0", "e1", "e2"]
        assert nothing_for(r1, c1)
    finally:
        conn.disconnect()
    s.send(Message(body="e3"))
    assert take(r1, 1) == ["e3"]


def test_a_stomp_group_end_reaches_amqp_as_the_uint_it_would_be(broker: BrokerThread, amqp) -> None:
    r = receiver(amqp(), "grp.amqp.fromstomp")
    conn = stomp.Connection12([("127.0.0.1", broker.stomp_port)], heartbeats=(0, 0))
    conn.connect(wait=True)
    try:
        for seq in ("3", "-1"):
            conn.send(
                "/queue/grp.amqp.fromstomp",
                seq,
                headers={"JMSXGroupID": "g", "JMSXGroupSeq": seq},
            )
        got = [r.receive(WAIT) for _ in range(2)]
        r.accept()
        assert [(m.group_id, m.group_sequence) for m in got] == [("g", 3), ("g", 2**32 - 1)]
    finally:
        conn.disconnect()
