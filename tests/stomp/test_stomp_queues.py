"""Queues over STOMP: dispatch, prefetch, priority, message headers and receipts.

Expected behaviour is ActiveMQ 5.17's (see /work/notes/activemq-stomp.md).
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import bodies, headers_of, quiet, subscribe

VERSIONS = ["1.0", "1.1", "1.2"]


# -- dispatch -------------------------------------------------------------------------------


def test_competing_consumers_get_round_robin(connect) -> None:
    consumers = [connect() for _ in range(3)]
    for i, c in enumerate(consumers):
        subscribe(c, "/queue/rr", f"s{i}")
    producer = connect()
    for i in range(9):
        producer.send("/queue/rr", f"m{i}")
    producer.sync()

    got = [bodies(c.listener.take(3)) for c in consumers]
    for c in consumers:
        assert quiet(c)
    # Each consumer gets every third message, in order, whoever went first.
    assert sorted(got) == [["m0", "m3", "m6"], ["m1", "m4", "m7"], ["m2", "m5", "m8"]]


@pytest.mark.parametrize("version", VERSIONS)
def test_prefetch_one_limits_in_flight_per_consumer(connect, version: str) -> None:
    a = connect(version)
    b = connect(version)
    for c, sid in ((a, "a"), (b, "b")):
        subscribe(c, "/queue/pf", sid, ack="client-individual", **{"activemq.prefetchSize": "1"})
    producer = connect()
    for i in range(3):
        producer.send("/queue/pf", f"m{i}")
    producer.sync()

    first_a = a.listener.next()
    first_b = b.listener.next()
    assert {first_a.body, first_b.body} == {"m0", "m1"}
    # The third message waits: both consumers hold their one allowed unacked message.
    assert quiet(a)
    assert quiet(b)

    a.ack_frame(first_a)
    third = a.listener.next()
    assert third.body == "m2"
    assert quiet(b)
    a.ack_frame(third)
    b.ack_frame(first_b)
    a.sync()
    b.sync()


def test_prefetch_one_second_message_goes_to_other_consumer(connect) -> None:
    busy = connect()
    subscribe(busy, "/queue/pf2", "busy", ack="client-individual", **{"activemq.prefetchSize": "1"})
    producer = connect()
    producer.send("/queue/pf2", "m0")
    producer.sync()
    assert busy.listener.next().body == "m0"

    idle = connect()
    subscribe(idle, "/queue/pf2", "idle", ack="client-individual", **{"activemq.prefetchSize": "1"})
    for i in (1, 2):
        producer.send("/queue/pf2", f"m{i}")
    producer.sync()
    # busy has no credit left, so m1 goes to idle; m2 has nowhere to go yet.
    assert idle.listener.next().body == "m1"
    assert quiet(busy)
    assert quiet(idle)


PRIORITIZED = {"destinations.prioritized_messages": True}


def test_priority_is_ignored_by_default(connect) -> None:
    """ActiveMQ 5.17's default, prioritizedMessages=false: arrival order; the header is
    delivered as sent."""
    producer = connect()
    sends = [(0, "a"), (9, "b"), (4, "c"), (9, "d")]
    for prio, body in sends:
        producer.send("/queue/prio-default", body, headers={"priority": str(prio)})
    producer.sync()
    c = connect()
    subscribe(c, "/queue/prio-default", "s1")
    got = c.listener.take(len(sends))
    assert [(int(f.headers["priority"]), f.body) for f in got] == sends


def test_priority_higher_first_fifo_within_priority(broker_factory, connect) -> None:
    port = broker_factory(**PRIORITIZED).stomp_port
    producer = connect(port=port)
    sends = [(0, "a"), (9, "b"), (4, "c"), (9, "d"), (0, "e"), (4, "f"), (5, "g"), (1, "h")]
    for prio, body in sends:
        producer.send("/queue/prio", body, headers={"priority": str(prio)})
    producer.sync()

    c = connect(port=port)
    subscribe(c, "/queue/prio", "s1")
    got = c.listener.take(len(sends))
    assert [(int(f.headers["priority"]), f.body) for f in got] == [
        (9, "b"),
        (9, "d"),
        (5, "g"),
        (4, "c"),
        (4, "f"),
        (1, "h"),
        (0, "a"),
        (0, "e"),
    ]


def test_priority_applies_while_consumer_is_busy(broker_factory, connect) -> None:
    port = broker_factory(**PRIORITIZED).stomp_port
    c = connect(port=port)
    subscribe(
        c, "/queue/prio-live", "s1", ack="client-individual", **{"activemq.prefetchSize": "1"}
    )
    producer = connect(port=port)
    for prio, body in [(4, "first"), (0, "low"), (4, "mid"), (9, "high")]:
        producer.send("/queue/prio-live", body, headers={"priority": str(prio)})
    producer.sync()
    frame = c.listener.next()
    got = [frame.body]
    for _ in range(3):
        c.ack_frame(frame)
        frame = c.listener.next()
        got.append(frame.body)
    assert got == ["first", "high", "mid", "low"]


def test_messages_sent_before_subscribe_wait_on_queue(connect) -> None:
    producer = connect()
    for i in range(3):
        producer.send("/queue/backlog", f"m{i}")
    producer.sync()
    producer.disconnect()
    assert producer.listener.disconnected.wait(5)

    c = connect()
    subscribe(c, "/queue/backlog", "s1")
    assert bodies(c.listener.take(3)) == ["m0", "m1", "m2"]
    assert quiet(c)


def test_destination_without_prefix_is_a_queue(connect, raw) -> None:
    c = connect()
    subscribe(c, "/queue/foo", "s1")
    producer = raw()
    producer.connect()
    producer.send(b"SEND\ndestination:foo\nreceipt:r1\n\nplain\x00")
    command, headers = headers_of(producer.frame())
    assert (command, headers["receipt-id"]) == ("RECEIPT", "r1")

    msg = c.listener.next()
    assert msg.body == "plain"
    assert msg.headers["destination"] == "/queue/foo"


# -- bodies and content-length --------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_send_without_content_length_arrives_as_text(raw, version: str) -> None:
    consumer = raw()
    consumer.connect(version)
    consumer.send(b"SUBSCRIBE\ndestination:/queue/txt\nid:s1\nreceipt:r1\n\n\x00")
    assert headers_of(consumer.frame())[0] == "RECEIPT"
    producer = raw()
    producer.connect(version)
    producer.send(b"SEND\ndestination:/queue/txt\n\nhello text\x00")

    frame = consumer.frame()
    command, headers = headers_of(frame)
    assert command == "MESSAGE"
    assert "content-length" not in headers
    assert frame.split(b"\n\n", 1)[1] == b"hello text"


@pytest.mark.parametrize("version", VERSIONS)
def test_send_with_content_length_arrives_with_content_length(connect, raw, version) -> None:
    consumer = raw()
    consumer.connect(version)
    consumer.send(b"SUBSCRIBE\ndestination:/queue/bin\nid:s1\nreceipt:r1\n\n\x00")
    assert headers_of(consumer.frame())[0] == "RECEIPT"
    producer = connect(version)
    producer.send("/queue/bin", "hello bytes")  # stomp.py always adds content-length

    frame = consumer.frame()
    command, headers = headers_of(frame)
    assert command == "MESSAGE"
    assert headers["content-length"] == str(len(b"hello bytes"))
    assert frame.split(b"\n\n", 1)[1] == b"hello bytes"


@pytest.mark.parametrize("version", VERSIONS)
def test_body_with_nul_bytes_via_content_length(connect, raw, version: str) -> None:
    body = b"ab\x00cd\x00\x00e"
    c = connect(version)
    subscribe(c, "/queue/nul", "s1")
    producer = raw()
    producer.connect(version)
    producer.send(
        b"SEND\ndestination:/queue/nul\ncontent-length:%d\nreceipt:r1\n\n%b\x00" % (len(body), body)
    )
    assert headers_of(producer.frame())[0] == "RECEIPT"

    msg = c.listener.next()
    assert msg.headers["content-length"] == str(len(body))
    assert msg.body == body.decode()


@pytest.mark.parametrize("version", VERSIONS)
def test_custom_headers_are_passed_through(connect, version: str) -> None:
    c = connect(version)
    subscribe(c, "/queue/custom", "s1")
    c.send(
        "/queue/custom",
        "x",
        headers={"color": "blue", "x-trace": "abc-123", "count": "7", "empty": ""},
    )
    msg = c.listener.next()
    assert msg.headers["color"] == "blue"
    assert msg.headers["x-trace"] == "abc-123"
    assert msg.headers["count"] == "7"
    assert msg.headers["empty"] == ""


def test_custom_header_with_special_characters_1_2(connect) -> None:
    c = connect("1.2")
    subscribe(c, "/queue/custom12", "s1")
    value = "a:b\\c\nd"
    c.send("/queue/custom12", "x", headers={"weird": value})
    assert c.listener.next().headers["weird"] == value


# -- MESSAGE headers ------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_message_headers(connect, version: str) -> None:
    c = connect(version)
    subscribe(c, "/queue/hdrs", "sub-x")
    before = int(time.time() * 1000)
    c.send("/queue/hdrs", "plain")
    expires = before + 3_600_000
    c.send(
        "/queue/hdrs",
        "persistent",
        headers={"persistent": "true", "priority": "7", "expires": str(expires)},
    )
    plain, durable = c.listener.take(2)
    after = int(time.time() * 1000)

    h = plain.headers
    assert h["message-id"]
    assert h["destination"] == "/queue/hdrs"
    assert h["subscription"] == "sub-x"
    assert "redelivered" not in h  # ActiveMQ 5.17 sends it only when true
    assert before <= int(h["timestamp"]) <= after
    assert h["expires"] == "0"
    assert h["priority"] == "4"
    assert "persistent" not in h

    d = durable.headers
    assert d["message-id"] != h["message-id"]
    assert d["persistent"] == "true"
    assert d["priority"] == "7"
    assert d["expires"] == str(expires)
    assert d["subscription"] == "sub-x"
    assert "redelivered" not in d


@pytest.mark.parametrize("ack", ["client", "client-individual"])
def test_ack_header_present_in_1_2_client_modes(connect, ack: str) -> None:
    c = connect("1.2")
    subscribe(c, "/queue/ackhdr", "s1", ack=ack)
    c.send("/queue/ackhdr", "one")
    msg = c.listener.next()
    assert msg.headers.get("ack")
    c.conn.ack(msg.headers["ack"], receipt="acked")
    assert c.listener.receipt() == "acked"
    assert c.listener.errors.empty()


@pytest.mark.parametrize(
    ("version", "ack"),
    [
        (v, a)
        for v in VERSIONS
        for a in ("auto", "client", "client-individual")
        if v != "1.2" or a == "auto"
    ],
)
def test_no_ack_header_outside_1_2_client_modes(connect, version: str, ack: str) -> None:
    c = connect(version)
    subscribe(c, "/queue/noackhdr", "s1", ack=ack)
    c.send("/queue/noackhdr", "one")
    assert "ack" not in c.listener.next().headers


# -- receipts -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_receipts_for_every_command(connect, version: str) -> None:
    c = connect(version)
    r = c.listener

    c.subscribe("/queue/rcpt", id="s1", ack="client-individual", receipt="r-sub")
    assert r.receipt() == "r-sub"
    c.send("/queue/rcpt", "m", receipt="r-send")
    assert r.receipt() == "r-send"
    msg = r.next()

    c.begin("tx1", receipt="r-begin")
    assert r.receipt() == "r-begin"
    c.send("/queue/rcpt-other", "t", transaction="tx1", receipt="r-send-tx")
    assert r.receipt() == "r-send-tx"
    c.commit("tx1", receipt="r-commit")
    assert r.receipt() == "r-commit"
    c.begin("tx2", receipt="r-begin2")
    assert r.receipt() == "r-begin2"
    c.abort("tx2", receipt="r-abort")
    assert r.receipt() == "r-abort"

    if version == "1.2":
        c.conn.ack(msg.headers["ack"], receipt="r-ack")
    elif version == "1.1":
        c.conn.ack(msg.headers["message-id"], "s1", receipt="r-ack")
    else:
        c.conn.ack(msg.headers["message-id"], receipt="r-ack")
    assert r.receipt() == "r-ack"

    c.unsubscribe(id="s1", receipt="r-unsub")
    assert r.receipt() == "r-unsub"
    assert r.errors.empty()
