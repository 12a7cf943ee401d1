"""Map and Stream bodies that do not decode, sent by hand over a real socket: the send is
refused with a JMSException and the connection stays; a map an AMQP producer nested
deeper than a JMS body may be reaches a JMS consumer as bytes (protocols/openwire/bodies.py)."""

from __future__ import annotations

import itertools

from proton import Message
from proton.utils import BlockingConnection

from protocols.openwire.codec import commands as c
from protocols.openwire.codec import primitives
from tests.conftest import WAIT, BrokerThread
from tests.openwire.conftest import Jms, url
from tests.openwire.test_openwire_resend import RawJms

_ids = itertools.count(1)


def _send(raw: RawJms, msg: c.Message, queue: str, seq: int) -> c.Response:
    msg.producer_id = raw.producer
    msg.destination = c.Queue(queue)
    msg.message_id = c.MessageId(producer_id=raw.producer, producer_sequence_id=seq)
    msg.persistent = True
    return raw.request(msg)


def test_undecodable_map_and_stream_bodies_are_refused_and_the_connection_stays(
    ow_broker: BrokerThread,
) -> None:
    q = f"ow.badbody.{next(_ids)}"
    raw = RawJms(ow_broker.broker.port("openwire"), f"ID:bad-{q}")
    good = primitives.encode_map({"k": "v"})
    bad = [
        c.MapMessage(content=good[:-1]),  # truncated
        c.MapMessage(content=b"\x00\x00\x00\x01\x00\x01k\x63"),  # unknown type 0x63
        c.StreamMessage(content=b"\x09\x00\x05ab"),  # a string shorter than its length
    ]
    for seq, msg in enumerate(bad, 1):
        answer = _send(raw, msg, q, seq)
        assert isinstance(answer, c.ExceptionResponse), answer
        assert answer.exception is not None and answer.exception[0] == "javax.jms.JMSException"
    # Still connected: a good one is taken, and nothing else was stored.
    assert type(_send(raw, c.MapMessage(content=good), q, 9)) is c.Response
    assert ow_broker.stats(q).enqueued == 1
    raw.sock.close()


def test_an_amqp_map_nested_too_deep_for_jms_arrives_as_bytes(
    jms: Jms, ow_broker: BrokerThread
) -> None:
    q = f"ow.deep.{next(_ids)}"
    deep: dict[str, object] = {"leaf": 1}
    for _ in range(primitives.MAX_DEPTH + 2):
        deep = {"n": deep}
    conn = BlockingConnection(f"127.0.0.1:{ow_broker.broker.port('amqp')}", timeout=WAIT)
    try:
        s = conn.create_sender(f"queue://{q}")
        s.send(Message(body=deep))
        s.send(Message(body={"shallow": "ok"}))
    finally:
        conn.close()
    out = jms.run(url(ow_broker), "receive", q, "2", program="Bodies")
    assert out[0] == ("class", "ActiveMQBytesMessage")
    assert out[2:] == [("class", "ActiveMQMapMessage"), ("map.shallow", "String:ok")]
