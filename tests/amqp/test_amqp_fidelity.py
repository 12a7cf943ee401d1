"""AMQP message fidelity (issue 12): application-properties keep their AMQP types end to
end (also through the journal and a restart), STOMP sees them as ActiveMQ's STOMP
transport shows them, and the broker's attach echoes the client's settle modes; a
pre-settled consumer link is at-most-once. Real proton and stomp.py clients against the
broker fixture.

The STOMP text forms are those of ActiveMQ 5.17.2, whose STOMP transport writes each
property as Java's `"" + value` of what its AMQP transformer stored (InboundTransformer:
unsigned types as the signed Java type holding the value, a ulong as the long with its
bits, symbol and binary as strings, binary as proton-j's Binary.toString). The shared
reference ActiveMQ has no AMQP connector (and its jar could not be fetched here), so
the forms were compared by sending those Java types to it over OpenWire (jshell with
the Debian activemq-client jar, queue fid.textforms) and reading them with stomp.py:

  JMS type and value        ActiveMQ's STOMP header   ZoneMQ (AMQP type sent)
  byte -5                   -5                        -5 (byte; ubyte/short alike)
  short -300 / int -7       -300 / -7                 the same (short / int)
  long -1                   -1                        -1 (ulong 2^64-1)
  float 1.1f / 16777216f    1.1 / 1.6777216E7         the same (float)
  double 1e20 / 0.0001      1.0E20 / 1.0E-4           the same (double)
  double 123456.789         123456.789                the same
  boolean true              true                      true
  Character é               é                         é (char)
  null                      null                      null

Where ActiveMQ keeps no type (unsigned, symbol, binary, uuid, timestamp) ZoneMQ keeps
AMQP's, by design (README, "Differences from ActiveMQ 5.17").
"""

from __future__ import annotations

import contextlib
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import stomp
from proton import (
    Data,
    Link,
    Message,
    byte,
    char,
    decimal32,
    float32,
    int32,
    short,
    symbol,
    timestamp,
    ubyte,
    uint,
    ulong,
    ushort,
)
from proton.handlers import MessagingHandler
from proton.reactor import Container, LinkOption
from proton.utils import BlockingConnection

from broker.core import Message as CoreMessage
from protocols.amqp.mapping import decode_message, encode_sections, property_value
from protocols.aws.attributes import from_message
from tests.conftest import WAIT, BrokerThread, Client, Collector, wait_until

UUID = uuid.UUID("12345678-1234-5678-9abc-def012345678")
# One of every simple type AMQP has; what proton decodes them as is checked by type().
TYPED: dict[str, Any] = {
    "i": int32(-7),
    "i_big": int32(2**31 - 1),
    "s": short(-300),
    "b": byte(-5),
    "ub": ubyte(200),
    "us": ushort(65535),
    "ui": uint(4_000_000_000),
    "ui0": uint(0),
    "ul": ulong(2**64 - 1),
    "ul_small": ulong(7),
    "l": 2**40,
    "l_small": -3,
    "f": float32(1.100000023841858),  # 1.1f
    "f_big": float32(16777216.0),
    "d": 1e20,
    "d_small": 0.0001,
    "d_mid": 123456.789,
    "c": char("é"),
    "t": timestamp(1_764_000_000_123),
    "u": UUID,
    "sym": symbol("a-symbol"),
    "bin": b"a\x00\\\xff",
    "yes": True,
    "no": False,
    "nil": None,
    "str": "plain",
}
# What a STOMP consumer sees (ActiveMQ's text forms; see the module docstring).
STOMP_TEXT = {
    "i": "-7",
    "i_big": "2147483647",
    "s": "-300",
    "b": "-5",
    "ub": "200",
    "us": "65535",
    "ui": "4000000000",
    "ui0": "0",
    "ul": "-1",  # UnsignedLong.longValue(): the 64 bits as Java's long
    "ul_small": "7",
    "l": str(2**40),
    "l_small": "-3",
    "f": "1.1",
    "f_big": "1.6777216E7",
    "d": "1.0E20",
    "d_small": "1.0E-4",
    "d_mid": "123456.789",
    "c": "é",
    "t": "1764000000123",  # ActiveMQ refuses a Date property; ZoneMQ shows its ms
    "u": str(UUID),
    "sym": "a-symbol",
    "bin": "a\\x00\\x5c\\xff",
    "yes": "true",
    "no": "false",
    "nil": "null",
    "str": "plain",
}
# Values the hand codec leaves to proton's Message (decimals, a list the spec forbids in
# application-properties but peers send): kept as their AMQP encoding.
UNUSUAL: dict[str, Any] = {"dec": decimal32(0x3280000F), "lst": [1, "x"]}


def amqp_url(broker: BrokerThread) -> str:
    return f"127.0.0.1:{broker.broker.port('amqp')}"


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


@pytest.fixture
def stomp_client(broker: BrokerThread) -> Iterator[Client]:
    conn = stomp.Connection12([("127.0.0.1", broker.stomp_port)], auto_content_length=False)
    listener = Collector()
    conn.set_listener("c", listener)
    conn.connect(wait=True)
    client = Client(conn, listener, "1.2")
    yield client
    client.close()


def assert_same_types(got: dict[str, Any], sent: dict[str, Any]) -> None:
    assert set(got) == set(sent)
    for key, value in sent.items():
        if isinstance(value, bytes):  # binary: proton decodes it as a memoryview
            assert type(got[key]) is memoryview and bytes(got[key]) == value, key
            continue
        assert type(got[key]) is type(value), (key, type(got[key]), type(value))
        assert got[key] == value, key


def receive(c: BlockingConnection, address: str) -> Message:
    r = c.create_receiver(address, credit=1)
    m = r.receive(WAIT)
    r.accept()
    r.close()
    return m


# -- 1. typed application-properties --------------------------------------------------------


@pytest.mark.parametrize(
    "body, props",
    [
        ("text", TYPED),  # the hand codec both ways
        ({"map": 1}, TYPED),  # a map body: proton's Message both ways
        ("text", {**TYPED, **UNUSUAL}),  # typed values proton's path carries
    ],
    ids=["hand-codec", "proton-path", "decimal-and-list"],
)
def test_typed_properties_reach_an_amqp_consumer_with_their_types(
    amqp: Callable[[], BlockingConnection], body: Any, props: dict[str, Any]
) -> None:
    c = amqp()
    c.create_sender("queue://fid.types").send(Message(body=body, properties=dict(props)))
    m = receive(c, "queue://fid.types")
    assert m.body == body
    assert_same_types(m.properties, props)


@pytest.mark.parametrize("body", ["text", {"map": 1}], ids=["hand-codec", "proton-path"])
def test_message_annotations_keep_their_types_too(
    amqp: Callable[[], BlockingConnection], body: Any
) -> None:
    """Kept annotations are typed like application-properties (before: a ulong >= 2^63
    closed the consumer's connection with amqp:internal-error)."""
    sent = {
        symbol("x-opt-big"): ulong(2**64 - 1),
        symbol("x-opt-sym"): symbol("s"),
        symbol("x-opt-us"): ushort(9),
        symbol("x-opt-c"): char("c"),
    }
    c = amqp()
    c.create_sender("queue://fid.annotations").send(Message(body=body, annotations=sent))
    got = receive(c, "queue://fid.annotations").annotations
    for key, value in sent.items():
        assert type(got[key]) is type(value) and got[key] == value, key


def test_the_hand_codec_takes_typed_properties() -> None:
    """Typed values do not push a message off the fast paths (both directions)."""
    data = bytes(Message(body="x", address="queue://q", properties=dict(TYPED)).encode())
    msg = decode_message(data, None, now_ms=0, origin=None)
    assert msg is not None
    assert msg.properties["ui"] == ("uint", 4_000_000_000)
    assert msg.properties["u"] == ("uuid", UUID.bytes)
    assert msg.properties["nil"] is None
    msg.id = "ID:1"
    assert encode_sections(msg) is not None


def test_typed_properties_survive_the_journal_and_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    b = BrokerThread(data).start()
    try:
        c = BlockingConnection(amqp_url(b), timeout=WAIT)
        s = c.create_sender("queue://fid.durable")
        # Accepted only once journaled; one through each inbound path.
        s.send(Message(body="one", durable=True, properties=dict(TYPED)))
        s.send(Message(body="two", durable=True, properties={**TYPED, **UNUSUAL}))
        c.close()
    finally:
        b.stop()
    b2 = BrokerThread(data).start()
    try:
        c = BlockingConnection(amqp_url(b2), timeout=WAIT)
        r = c.create_receiver("queue://fid.durable", credit=2)
        first, second = r.receive(WAIT), r.receive(WAIT)
        r.accept()
        r.accept()
        assert (first.body, first.durable, second.body) == ("one", True, "two")
        assert_same_types(first.properties, TYPED)
        assert_same_types(second.properties, {**TYPED, **UNUSUAL})
        c.close()
    finally:
        b2.stop()


def test_a_stomp_consumer_sees_activemq_text_forms(
    amqp: Callable[[], BlockingConnection], stomp_client: Client
) -> None:
    stomp_client.subscribe("/queue/fid.text", "s1")
    c = amqp()
    c.create_sender("queue://fid.text").send(Message(body="x", properties=dict(TYPED)))
    frame = stomp_client.listener.next()
    got = {k: frame.headers.get(k) for k in STOMP_TEXT}
    assert got == STOMP_TEXT


def test_stomp_headers_arrive_at_amqp_as_strings(
    amqp: Callable[[], BlockingConnection], stomp_client: Client
) -> None:
    headers = {"n": "5", "f": "1.5", "flag": "true", "empty": ""}
    stomp_client.send("/queue/fid.strings", "x", headers=headers, receipt="r1")
    assert stomp_client.listener.receipt() == "r1"
    m = receive(amqp(), "queue://fid.strings")
    assert {k: m.properties[k] for k in headers} == headers
    assert all(type(m.properties[k]) is str for k in headers)


class Selecting(LinkOption):
    def __init__(self, selector: str) -> None:
        self.selector = selector

    def apply(self, link: Any) -> None:
        link.source.filter.put_map()
        link.source.filter.enter()
        link.source.filter.put_symbol("jms-selector")
        link.source.filter.put_described()
        link.source.filter.enter()
        link.source.filter.put_symbol("apache.org:selector-filter:string")
        link.source.filter.put_string(self.selector)
        link.source.filter.exit()
        link.source.filter.exit()


@pytest.mark.parametrize(
    "selector, matching",
    [
        ("n > 100", {"a"}),  # a uint compared as a number
        ("n + 1 = 201", {"a"}),  # arithmetic on it
        ("tag = 'red'", {"a"}),  # a symbol as a string
        ("tag LIKE 'gr%'", {"b"}),
        ("tag IN ('green', 'blue')", {"b"}),
        ("f < 2", {"a", "b"}),  # a float32
        ("ch = 'x'", set()),  # a char is not a string (ActiveMQ: a Character)
    ],
)
def test_selectors_see_typed_values_as_activemq_would(
    amqp: Callable[[], BlockingConnection], selector: str, matching: set[str]
) -> None:
    c = amqp()
    s = c.create_sender("queue://fid.select")
    s.send(
        Message(
            body="a",
            properties={"n": uint(200), "tag": symbol("red"), "f": float32(1.5), "ch": char("x")},
        )
    )
    s.send(
        Message(
            body="b",
            properties={"n": ushort(5), "tag": symbol("green"), "f": float32(0.5), "ch": char("y")},
        )
    )
    s.send(Message(body="end", properties={"n": ulong(1), "tag": "end"}))
    r = c.create_receiver(
        "queue://fid.select", credit=10, options=Selecting(f"({selector}) OR tag = 'end'")
    )
    seen = set()
    while (m := r.receive(WAIT)).body != "end":
        seen.add(m.body)
        r.accept()
    r.accept()
    assert seen == matching


def test_sqs_attributes_of_typed_properties() -> None:
    msg = CoreMessage(
        b"x",
        properties={"n": ("uint", 7), "f": ("float", 1.5), "sym": ("symbol", "s"), "z": None},
    )
    attrs = from_message(msg)
    assert {k: (a.data_type, a.value) for k, a in attrs.items()} == {
        "n": ("Number", "7"),
        "f": ("Number", "1.5"),
        "sym": ("String", "s"),
        "z": ("String", "null"),
    }


# -- 2. settle modes ------------------------------------------------------------------------

SND = {"settled": Link.SND_SETTLED, "unsettled": Link.SND_UNSETTLED, "mixed": Link.SND_MIXED}
RCV = {"first": Link.RCV_FIRST, "second": Link.RCV_SECOND}


class Modes(LinkOption):
    def __init__(self, snd: int, rcv: int) -> None:
        self.snd, self.rcv = snd, rcv

    def apply(self, link: Any) -> None:
        link.snd_settle_mode = self.snd
        link.rcv_settle_mode = self.rcv


@pytest.mark.parametrize("rcv", RCV)
@pytest.mark.parametrize("snd", SND)
def test_attach_echoes_settle_modes_on_a_consumer_link(
    amqp: Callable[[], BlockingConnection], snd: str, rcv: str
) -> None:
    """The broker sends on this link: its snd-settle-mode is the client's, its
    rcv-settle-mode the client's too (either is honoured: the broker settles after the
    client's outcome)."""
    r = amqp().create_receiver("queue://fid.modes", options=Modes(SND[snd], RCV[rcv]))
    assert r.link.remote_snd_settle_mode == SND[snd]
    assert r.link.remote_rcv_settle_mode == RCV[rcv]


@pytest.mark.parametrize("rcv", RCV)
@pytest.mark.parametrize("snd", SND)
def test_attach_echoes_snd_settle_mode_on_a_producer_link(
    amqp: Callable[[], BlockingConnection], snd: str, rcv: str
) -> None:
    """The broker receives on this link: snd-settle-mode echoes the client's,
    rcv-settle-mode is first, the mode the broker uses (as ActiveMQ)."""
    c = amqp()
    s = c.create_sender("queue://fid.pmodes", options=Modes(SND[snd], RCV[rcv]))
    assert s.link.remote_snd_settle_mode == SND[snd]
    assert s.link.remote_rcv_settle_mode == Link.RCV_FIRST
    s.send(Message(body="still works"))
    assert receive(c, "queue://fid.pmodes").body == "still works"


class Consume(MessagingHandler):
    """Receives `n` messages on a link attached with snd-settle-mode `snd`, never sending a
    disposition; records whether each transfer came settled."""

    def __init__(self, url: str, address: str, snd: int, n: int) -> None:
        super().__init__(prefetch=10, auto_accept=False, auto_settle=False)
        self.url, self.address, self.snd, self.n = url, address, snd, n
        self.settled: list[bool] = []
        self.done = threading.Event()
        self.got: queue.Queue[str] = queue.Queue()

    def on_start(self, event: Any) -> None:
        self.conn = event.container.connect(self.url)
        event.container.create_receiver(
            self.conn, self.address, options=Modes(self.snd, Link.RCV_FIRST)
        )

    def on_message(self, event: Any) -> None:
        self.settled.append(event.delivery.settled)  # the transfer came settled
        self.got.put(event.message.body)
        if len(self.settled) == self.n:
            self.done.set()
            event.connection.close()


def run(handler: Consume) -> None:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            Container(handler).run()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(WAIT * 2)
    assert not t.is_alive(), "consumer did not finish"
    if errors:
        raise errors[0]


def test_a_presettled_consumer_is_at_most_once(
    broker: BrokerThread, amqp: Callable[[], BlockingConnection]
) -> None:
    """snd-settle-mode settled: every transfer is settled, the broker never waits for a
    disposition (50 persistent messages through a window of 10 with none sent) and the
    messages are consumed as sent (nothing comes back when the link goes)."""
    s = amqp().create_sender("queue://fid.atmost")
    for i in range(50):
        s.send(Message(body=f"m{i}", durable=True))
    consumer = Consume(amqp_url(broker), "queue://fid.atmost", Link.SND_SETTLED, 50)
    run(consumer)
    assert consumer.settled == [True] * 50
    assert wait_until(lambda: broker.stats("fid.atmost").consumers == 0)
    stats = broker.stats("fid.atmost")
    assert (stats.depth, stats.inflight, stats.acked) == (0, 0, 50)


@pytest.mark.parametrize("snd", ["unsettled", "mixed"])
def test_unsettled_and_mixed_consumers_get_unsettled_transfers(
    broker: BrokerThread, amqp: Callable[[], BlockingConnection], snd: str
) -> None:
    """Without a disposition nothing is consumed: the message comes back, redelivered."""
    c = amqp()
    c.create_sender(f"queue://fid.{snd}").send(Message(body="again", durable=True))
    consumer = Consume(amqp_url(broker), f"queue://fid.{snd}", SND[snd], 1)
    run(consumer)
    assert consumer.settled == [False]
    assert wait_until(lambda: broker.stats(f"fid.{snd}").inflight == 0)
    r = c.create_receiver(f"queue://fid.{snd}", credit=1)
    m = r.receive(WAIT)
    r.accept()
    assert (m.body, m.first_acquirer, m.delivery_count) == ("again", False, 1)


def test_decimal_and_list_properties_are_kept_as_their_encoding() -> None:
    """The core keeps an AMQP value it has no typed value for as its encoding and text."""
    data = Data()
    data.put_object([1, "x"])
    msg = Message(body="x", address="queue://q", properties={"lst": [1, "x"]})
    assert property_value([1, "x"]) == ("amqp", data.encode(), "[1, 'x']")
    assert decode_message(bytes(msg.encode()), None, now_ms=0, origin=None) is None
