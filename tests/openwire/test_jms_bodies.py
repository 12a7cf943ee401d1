"""JMS Map, Stream and Object messages across protocols (protocols/openwire/bodies.py):
the real ActiveMQ 5.17 JMS client (tests/openwire/java/Bodies.java) with proton and
stomp.py consumers and producers.

Compared with ActiveMQ 5.17.2 (the shared instance: OpenWire 127.0.0.1:61626, STOMP
61623): `java Bodies ... send` then `receive` printed exactly `JMS_TO_JMS` below; a
stomp.py consumer got the three messages with an empty body and no content-length (its
STOMP transport writes only Text and Bytes bodies), their properties as headers; with
`transformation: jms-map-json`, `jms-map-xml`, `jms-object-json` or `jms-object-xml` it
got nothing at all within 10 s (the Debian package has neither XStream nor Jettison),
so those are not copied: ZoneMQ ignores the header. Knowingly different: ZoneMQ's
STOMP consumer gets the AMQP encoding of a map or list body with the
JMS_AMQP_ORIGINAL_ENCODING header saying which (7 map, 3 sequence), as for a map an
AMQP producer sent, rather than nothing. The AMQP side follows ActiveMQ's
JMSMappingOutboundTransformer / InboundTransformer (read from its source: the Debian
ActiveMQ has no AMQP connector to compare with)."""

from __future__ import annotations

import itertools
from typing import Any

import stomp
from proton import Data, Message, byte, char, float32, int32, short, symbol
from proton.utils import BlockingConnection

from tests.conftest import WAIT, BrokerThread, Client, Collector
from tests.openwire.conftest import Jms, url

_ids = itertools.count(1)

JMS_TO_JMS = [
    ("class", "ActiveMQMapMessage"),
    ("map.b", "Boolean:true"),
    ("map.bytes", "bytes:[1, 2]"),
    ("map.d", "Double:1.5"),
    ("map.i", "Integer:5"),
    ("map.l", "Long:1099511627776"),
    ("map.s", "String:v"),
    ("class", "ActiveMQStreamMessage"),
    ("item", "String:a"),
    ("item", "Integer:5"),
    ("item", "Boolean:true"),
    ("item", "bytes:[3]"),
    ("end", "eof"),
    ("class", "ActiveMQObjectMessage"),
    ("object", "ArrayList:[x, y]"),
]
MSG_TYPE = symbol("x-opt-jms-msg-type")


def _queue() -> str:
    return f"ow.bodies.{next(_ids)}"


def _amqp(b: BrokerThread) -> BlockingConnection:
    return BlockingConnection(f"127.0.0.1:{b.broker.port('amqp')}", timeout=WAIT)


def test_jms_bodies_come_back_to_jms_with_their_types(jms: Jms, ow_broker: BrokerThread) -> None:
    q = _queue()
    jms.run(url(ow_broker), "send", q, program="Bodies")
    assert jms.run(url(ow_broker), "receive", q, "3", program="Bodies") == JMS_TO_JMS


def test_jms_map_stream_and_object_reach_amqp_as_activemq_maps_them(
    jms: Jms, ow_broker: BrokerThread
) -> None:
    q = _queue()
    jms.run(url(ow_broker), "send", q, program="Bodies")
    c = _amqp(ow_broker)
    got: list[Message] = []
    try:
        r = c.create_receiver(f"queue://{q}", credit=3)
        for _ in range(3):
            got.append(r.receive(WAIT))
            r.accept()
    finally:
        c.close()
    m, st, o = got
    # MapMessage: an amqp-value map, every value with its Java type.
    assert m.body == {
        "s": "v",
        "i": 5,
        "l": 1099511627776,
        "b": True,
        "d": 1.5,
        "bytes": b"\x01\x02",
    }
    assert type(m.body["i"]) is int32 and type(m.body["l"]) is int
    assert m.annotations[MSG_TYPE] == 2 and m.properties["kind"] == "map"
    assert "JMS_AMQP_ORIGINAL_ENCODING" not in m.properties
    # StreamMessage: an amqp-sequence (proton: a list body, inferred).
    assert st.body == ["a", 5, True, b"\x03"] and st.inferred
    assert type(st.body[1]) is int32
    assert st.annotations[MSG_TYPE] == 4
    # ObjectMessage: the serialized object in a data section, marked as one.
    assert o.content_type == "application/x-java-serialized-object"
    assert bytes(o.body).startswith(b"\xac\xed")  # Java serialization's magic
    assert o.properties["kind"] == "object"


def test_amqp_map_and_lists_reach_jms_as_map_and_stream_messages(
    jms: Jms, ow_broker: BrokerThread
) -> None:
    q = _queue()
    c = _amqp(ow_broker)
    try:
        s = c.create_sender(f"queue://{q}")
        s.send(
            Message(
                body={
                    "i": int32(5),
                    "h": short(3),
                    "y": byte(-1),
                    "f": float32(0.5),
                    "c": char("z"),
                    "l": 7,
                    "s": "v",
                    "n": None,
                    "bin": b"\x09",
                }
            )
        )
        seq = Message(body=["a", int32(5), True])
        seq.inferred = True  # an amqp-sequence
        s.send(seq)
        s.send(Message(body=[1.5, "b"]))  # a list amqp-value
    finally:
        c.close()
    out = jms.run(url(ow_broker), "receive", q, "3", program="Bodies")
    assert out == [
        ("class", "ActiveMQMapMessage"),
        ("map.bin", "bytes:[9]"),
        ("map.c", "Character:z"),
        ("map.f", "Float:0.5"),
        ("map.h", "Short:3"),
        ("map.i", "Integer:5"),
        ("map.l", "Long:7"),
        ("map.n", "null"),
        ("map.s", "String:v"),
        ("map.y", "Byte:-1"),
        ("class", "ActiveMQStreamMessage"),
        ("item", "String:a"),
        ("item", "Integer:5"),
        ("item", "Boolean:true"),
        ("end", "eof"),
        ("class", "ActiveMQStreamMessage"),
        ("item", "Double:1.5"),
        ("item", "String:b"),
        ("end", "eof"),
    ]


def test_jms_map_and_stream_to_a_stomp_consumer(jms: Jms, ow_broker: BrokerThread) -> None:
    q = _queue()
    conn = stomp.Connection12([("127.0.0.1", ow_broker.stomp_port)], auto_decode=False)
    listener = Collector()
    conn.set_listener("c", listener)
    conn.connect(wait=True)
    client = Client(conn, listener, "1.2")
    try:
        client.subscribe(f"/queue/{q}", id="s")
        client.sync()
        jms.run(url(ow_broker), "send", q, program="Bodies")
        frames = listener.take(3)
    finally:
        client.close()
    assert [f.headers["kind"] for f in frames] == ["map", "stream", "object"]
    # Map and Stream: the AMQP encoding, and the code saying what it is (ActiveMQ: no
    # body at all; see the module docstring); Object: its serialized bytes, marked.
    assert [f.headers.get("JMS_AMQP_ORIGINAL_ENCODING") for f in frames] == ["7", "3", None]
    assert frames[2].headers["content-type"] == "application/x-java-serialized-object"
    assert all("content-length" in f.headers for f in frames)
    decoded = [_decode(f.body) for f in frames[:2]]
    assert decoded[0]["s"] == "v" and decoded[1] == ["a", 5, True, b"\x03"]


def _decode(body: bytes) -> Any:
    d = Data()
    d.decode(body)
    value = d.get_object()
    if isinstance(value, dict):
        return {k: bytes(v) if isinstance(v, memoryview) else v for k, v in value.items()}
    return [bytes(v) if isinstance(v, memoryview) else v for v in value]
