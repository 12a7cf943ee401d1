"""One message model: STOMP (stomp.py) ↔ AMQP (proton) field by field, and durability of
AMQP sends across a broker restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stomp
from proton import Message, symbol
from proton.utils import BlockingConnection

from tests.conftest import WAIT, BrokerThread, Client, Collector


@pytest.fixture
def text_stomp(broker: BrokerThread) -> Iterator[Client]:
    """A STOMP 1.2 client that sends text (no content-length), as ActiveMQ's text rule needs."""
    conn = stomp.Connection12([("127.0.0.1", broker.stomp_port)], auto_content_length=False)
    listener = Collector()
    conn.set_listener("c", listener)
    conn.connect(wait=True)
    client = Client(conn, listener, "1.2")
    yield client
    client.close()


def amqp_conn(broker: BrokerThread) -> BlockingConnection:
    return BlockingConnection(f"127.0.0.1:{broker.broker.port('amqp')}", timeout=WAIT)


def test_stomp_text_message_reaches_amqp_field_by_field(
    broker: BrokerThread, text_stomp: Client
) -> None:
    expires = int(time.time() * 1000) + 600_000
    text_stomp.send(
        "/queue/interop.text",
        "héllo",
        headers={
            "persistent": "true",
            "priority": "7",
            "expires": str(expires),
            "correlation-id": "corr-1",
            "reply-to": "/queue/replies",
            "type": "greeting",
            "content-type": "text/plain",
            "JMSXGroupID": "g1",
            "color": "blue",
        },
        receipt="r1",
    )
    assert text_stomp.listener.receipt() == "r1"
    c = amqp_conn(broker)
    try:
        r = c.create_receiver("queue://interop.text", credit=1)
        m = r.receive(WAIT)
        r.accept()
    finally:
        c.close()
    assert m.body == "héllo"  # text → amqp-value string
    assert m.durable is True
    assert m.priority == 7
    assert int(m.expiry_time * 1000) == expires
    assert 0 < m.ttl <= 600
    assert m.correlation_id == "corr-1"
    assert m.reply_to == "queue://replies"
    assert m.subject == "greeting"
    assert m.content_type == "text/plain"
    assert m.group_id == "g1"
    assert m.address == "queue://interop.text"
    assert str(m.id).startswith("ID:")
    assert m.creation_time > 0
    assert m.properties == {"color": "blue"}
    assert m.annotations[symbol("x-opt-jms-dest")] == 0
    assert m.annotations[symbol("x-opt-jms-msg-type")] == 5


def test_stomp_bytes_message_reaches_amqp_as_a_data_section(broker: BrokerThread, connect) -> None:
    stomp: Client = connect()
    body = bytes(range(256))
    stomp.send("/topic/interop.bytes", body, headers={"content-length": str(len(body))})
    c = amqp_conn(broker)
    try:
        r = c.create_receiver("topic://interop.bytes", credit=1)
        stomp.send(
            "/topic/interop.bytes", body, headers={"content-length": str(len(body))}, receipt="r"
        )
        m = r.receive(WAIT)
        r.accept()
    finally:
        c.close()
    assert m.body == body
    assert m.inferred is True  # a data section, not an amqp-value binary
    assert m.annotations[symbol("x-opt-jms-msg-type")] == 3
    assert m.annotations[symbol("x-opt-jms-dest")] == 1


def test_amqp_message_reaches_stomp_field_by_field(broker: BrokerThread, connect) -> None:
    stomp: Client = connect()
    # Group id and sequence are message fields (ActiveMQ's STOMP shows them as no
    # header): a selector on them shows they arrived.
    stomp.subscribe(
        "/queue/interop.back",
        id="s",
        ack="client-individual",
        headers={"selector": "JMSXGroupID = 'grp' AND JMSXGroupSeq = 3"},
    )
    stomp.sync()
    c = amqp_conn(broker)
    try:
        s = c.create_sender("interop.back")
        s.send(
            Message(
                id="amqp-id-1",
                body="from amqp",
                durable=True,
                priority=2,
                ttl=300,
                correlation_id="corr-9",
                reply_to="topic://answers",
                subject="JMSTypeValue",
                content_type="text/plain",
                group_id="grp",
                group_sequence=3,
                properties={"n": 42, "f": 1.5, "b": True, "s": "str"},
            )
        )
    finally:
        c.close()
    frame = stomp.listener.next()
    h = frame.headers
    assert frame.body == "from amqp"
    assert "content-length" not in h  # a text message
    assert h["destination"] == "/queue/interop.back"
    assert h["persistent"] == "true"
    assert h["priority"] == "2"
    assert int(h["expires"]) > int(time.time() * 1000)
    assert h["correlation-id"] == "corr-9"
    assert h["reply-to"] == "/topic/answers"
    assert h["type"] == "JMSTypeValue"
    assert h["content-type"] == "text/plain"
    assert "JMSXGroupID" not in h and "JMSXGroupSeq" not in h
    assert h["JMS_AMQP_MessageId"] == "amqp-id-1"
    assert h["message-id"].startswith("ID:")
    assert (h["n"], h["f"], h["b"], h["s"]) == ("42", "1.5", "true", "str")
    stomp.ack_frame(frame)


def test_amqp_binary_body_reaches_stomp_as_bytes(broker: BrokerThread, connect) -> None:
    stomp: Client = connect()
    stomp.subscribe("/queue/interop.bin", id="s")
    stomp.sync()
    c = amqp_conn(broker)
    try:
        m = Message(body=b"\x00\x01binary\xff")
        m.inferred = True
        c.create_sender("interop.bin").send(m)
    finally:
        c.close()
    frame = stomp.listener.next()
    assert frame.headers["content-length"] == "9"
    assert "JMS_AMQP_ORIGINAL_ENCODING" not in frame.headers


def test_map_and_list_bodies_round_trip_over_amqp_and_reach_stomp_encoded(
    broker: BrokerThread, connect
) -> None:
    stomp: Client = connect()
    stomp.subscribe("/topic/interop.map", id="s")
    stomp.sync()
    c = amqp_conn(broker)
    try:
        r = c.create_receiver("topic://interop.map", credit=10)
        s = c.create_sender("topic://interop.map")
        s.send(Message(body={"k": "v", "n": 1}))
        seq = Message(body=[1, "two"])
        seq.inferred = True
        s.send(seq)
        s.send(Message(body=[3, "four"]))
        got: list[Any] = []
        for _ in range(3):
            m = r.receive(WAIT)
            got.append((m.body, m.inferred, m.annotations[symbol("x-opt-jms-msg-type")]))
            r.accept()
    finally:
        c.close()
    assert got == [({"k": "v", "n": 1}, False, 2), ([1, "two"], True, 4), ([3, "four"], False, 4)]
    frames = stomp.listener.take(3)
    # STOMP consumers get the AMQP encoding of the body and the code saying what it is.
    assert [f.headers["JMS_AMQP_ORIGINAL_ENCODING"] for f in frames] == ["7", "3", "8"]
    assert all("content-length" in f.headers for f in frames)


def test_stomp_reply_to_a_dynamic_amqp_queue(broker: BrokerThread, text_stomp: Client) -> None:
    c = amqp_conn(broker)
    try:
        r = c.create_receiver(None, dynamic=True, credit=1)
        reply_to = r.remote_source.address
        assert reply_to.startswith("temp-queue://")
        name = reply_to[len("temp-queue://") :]
        text_stomp.send(f"/remote-temp-queue/{name}", "pong", headers={"correlation-id": "x"})
        m = r.receive(WAIT)
        r.accept()
    finally:
        c.close()
    assert (m.body, m.correlation_id) == ("pong", "x")
    assert m.address == reply_to


def test_persistent_amqp_send_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    b = BrokerThread(data).start()
    try:
        c = amqp_conn(b)
        s = c.create_sender("durable.q")
        # BlockingSender.send returns once the broker has accepted: after the journal.
        s.send(Message(body="survivor", durable=True, properties={"k": "v"}))
        s.send(Message(body="ephemeral", durable=False))
        c.close()
    finally:
        b.stop()
    b2 = BrokerThread(data).start()
    try:
        c = amqp_conn(b2)
        r = c.create_receiver("durable.q", credit=10)
        m = r.receive(WAIT)
        r.accept()
        assert (m.body, m.durable, m.properties) == ("survivor", True, {"k": "v"})
        assert b2.stats("durable.q").depth in (0, 1)
        c.close()
    finally:
        b2.stop()
