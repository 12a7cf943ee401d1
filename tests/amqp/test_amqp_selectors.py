"""JMS selectors over AMQP (the `apache.org:selector-filter:string` source filter), with
proton clients: typed application-properties, competing consumers, topics, browsing,
the filter echo and the refusal of a selector that does not parse."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from proton import Described, Message, symbol, ulong
from proton.reactor import Copy, Filter, Selector
from proton.utils import BlockingConnection, LinkDetached

from tests.amqp.test_amqp_messaging import amqp_url
from tests.conftest import WAIT, BrokerThread

_names = itertools.count(1)


class Conn:
    """A BlockingConnection whose receivers get distinct link names (proton names them
    after the address, and two links of one name on a connection clash)."""

    def __init__(self, conn: BlockingConnection) -> None:
        self.conn = conn

    def create_receiver(self, address: str, **kw: Any) -> Any:
        return self.conn.create_receiver(address, name=f"r{next(_names)}", **kw)

    def create_sender(self, address: str) -> Any:
        return self.conn.create_sender(address, name=f"s{next(_names)}")


@pytest.fixture
def amqp(broker: BrokerThread) -> Iterator[Callable[[], Conn]]:
    conns: list[BlockingConnection] = []

    def make() -> Conn:
        c = BlockingConnection(amqp_url(broker), timeout=WAIT)
        conns.append(c)
        return Conn(c)

    yield make
    for c in conns:
        with contextlib.suppress(Exception):
            c.close()


def receive_all(r: Any, n: int) -> list[Any]:
    out = []
    for _ in range(n):
        m = r.receive(WAIT)
        # A data section is a memoryview into proton's buffer: copy it before settling.
        out.append(bytes(m.body) if isinstance(m.body, memoryview) else m.body)
        r.accept()
    return out


def test_selective_receiver_with_typed_properties(amqp) -> None:
    c = amqp()
    s = c.create_sender("sel.typed")
    for body, props in [
        ("cheap", {"price": 5}),
        ("dear", {"price": 20.5}),
        ("text", {"price": "20"}),  # a string is not converted on AMQP (as ActiveMQ)
        ("flagged", {"price": 11, "ok": True}),
    ]:
        s.send(Message(body=body, properties=props))
    r = c.create_receiver("sel.typed", options=Selector("price > 10"))
    assert receive_all(r, 2) == ["dear", "flagged"]
    rest = c.create_receiver("sel.typed")
    assert receive_all(rest, 2) == ["cheap", "text"]


def test_selector_filter_is_echoed_and_unknown_filters_are_not(amqp) -> None:
    c = amqp()
    filters = {
        symbol("jms-selector"): Described(
            ulong(0x0000468C00000004), "JMSPriority > 4"
        ),  # by its code, under another key
        symbol("other"): Described(symbol("example:unknown-filter"), "x"),
    }
    r = c.create_receiver("sel.echo", options=Filter(filters))
    echoed = r.link.remote_source.filter
    echoed.rewind()
    echoed.next()
    got = echoed.get_object()
    assert list(got) == [symbol("jms-selector")]
    s = c.create_sender("sel.echo")
    s.send(Message(body="low", priority=1))
    s.send(Message(body="high", priority=9))
    assert receive_all(r, 1) == ["high"]


def test_disjoint_selectors_both_get_their_share(amqp) -> None:
    c = amqp()
    even = c.create_receiver("sel.share", credit=1, options=Selector("n % 2 = 0"))
    odd = c.create_receiver("sel.share", credit=1, options=Selector("n % 2 = 1"))
    s = c.create_sender("sel.share")
    for i in range(10):
        s.send(Message(body=str(i), properties={"n": i}))
    assert receive_all(odd, 5) == ["1", "3", "5", "7", "9"]  # even has not settled any
    assert receive_all(even, 5) == ["0", "2", "4", "6", "8"]


def test_topic_receiver_with_selector(amqp) -> None:
    c = amqp()
    red = c.create_receiver("topic://sel.t", options=Selector("color = 'red'"))
    every = c.create_receiver("topic://sel.t")
    s = c.create_sender("topic://sel.t")
    for color in ["red", "blue", "red"]:
        s.send(Message(body=color, properties={"color": color}))
    assert receive_all(red, 2) == ["red", "red"]
    assert receive_all(every, 3) == ["red", "blue", "red"]


def test_browser_with_selector(amqp) -> None:
    c = amqp()
    s = c.create_sender("sel.browse")
    for color in ["red", "blue", "red"]:
        s.send(Message(body=color, properties={"color": color}))
    b = c.create_receiver("sel.browse", options=[Copy(), Selector("color = 'blue'")])
    assert b.receive(WAIT).body == "blue"
    consumer = c.create_receiver("sel.browse")
    assert receive_all(consumer, 3) == ["red", "blue", "red"]


def test_stomp_headers_reach_an_amqp_selector_as_strings(amqp, connect) -> None:
    stomp = connect()
    stomp.send("/queue/sel.cross", "from stomp", headers={"color": "red", "n": "3"})
    stomp.sync()
    c = amqp()
    r = c.create_receiver("sel.cross", options=Selector("color = 'red' AND NOT (n = 3)"))
    assert receive_all(r, 1) == [b"from stomp"]


def test_selector_syntax_error_refuses_the_link(amqp) -> None:
    """As ActiveMQ: the attach is answered with a null source and a detach with
    amqp:invalid-field; here the description names the column."""
    c = amqp()
    with pytest.raises(LinkDetached) as info:
        c.create_receiver("sel.bad", options=Selector("color = = 'red'"))
    text = str(info.value)
    assert "amqp:invalid-field" in text and "column 9" in text
    c.create_sender("sel.bad").send(Message(body="still fine"))
