"""Bad input: every bad frame is answered with an ERROR frame carrying a `message` header.

Framing errors (bytes that cannot be parsed into a frame) close the connection, and must
not disturb anybody else: another connected client keeps working and messages already
stored on a queue are still there. Semantic errors (a well-formed frame the broker cannot
act on) leave the connection usable, as ActiveMQ 5.17 does (see
/work/notes/activemq-stomp.md); the ERROR then carries `receipt-id` when the frame asked
for a receipt.
"""

from __future__ import annotations

import pytest

from tests.conftest import BrokerThread, Client, RawClient, headers_of

# Small limits so that breaking them takes few bytes.
MAX_FRAME_SIZE = 1024
MAX_HEADERS = 10
MAX_HEADER_LENGTH = 256


# A case ActiveMQ accepts (so ZoneMQ does by default) that only a strict broker refuses.
STRICT = pytest.mark.strict_stomp


@pytest.fixture
def broker(broker_factory, request: pytest.FixtureRequest) -> BrokerThread:
    """This module's broker (also behind `connect` and `raw`) has small frame limits, and
    is `listeners.stomp.strict` for a test (case) marked STRICT."""
    return broker_factory(
        **{
            "listeners.stomp.max_frame_size": MAX_FRAME_SIZE,
            "listeners.stomp.max_headers": MAX_HEADERS,
            "listeners.stomp.max_header_length": MAX_HEADER_LENGTH,
            "listeners.stomp.strict": request.node.get_closest_marker("strict_stomp") is not None,
        }
    )


def expect_error(frame: bytes, receipt: str | None = None) -> dict[str, str]:
    command, headers = headers_of(frame)
    assert command == "ERROR", frame
    assert headers.get("message"), frame
    if receipt is not None:
        assert headers.get("receipt-id") == receipt, frame
    return headers


def expect_receipt(raw: RawClient, receipt: str) -> None:
    command, headers = headers_of(raw.frame())
    assert (command, headers.get("receipt-id")) == ("RECEIPT", receipt)


def still_usable(raw: RawClient, tag: str = "after") -> None:
    """A SEND with a receipt still works on this connection."""
    raw.send(f"SEND\ndestination:/queue/errors.after\nreceipt:{tag}\n\nok\x00".encode())
    expect_receipt(raw, tag)


# -- framing errors -------------------------------------------------------------------------

BAD = "/queue/errors.bad"


def _headers(n: int) -> bytes:
    return b"".join(b"h%d:v\n" % i for i in range(n))


# (bad bytes, send CONNECT first?)
FRAMING = [
    pytest.param(b"\xde\xad\xbe\xef\x01\x02garbage\n\n\x00", False, id="garbage-binary"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", False, id="garbage-http"),
    pytest.param(b"z" * 4096, False, id="garbage-without-eol"),
    pytest.param(b"connect\naccept-version:1.2\n\n\x00", False, id="lowercase-connect"),
    pytest.param(b"FOO\nreceipt:bad\n\n\x00", True, id="unknown-command"),
    pytest.param(b"send\ndestination:/queue/errors.bad\n\nhi\x00", True, id="lowercase-command"),
    pytest.param(
        b"SEND\ndestination:/queue/errors.bad\ncontent-length:abc\nreceipt:bad\n\nhi\x00",
        True,
        id="content-length-non-numeric",
    ),
    pytest.param(
        b"SEND\ndestination:/queue/errors.bad\ncontent-length:-1\nreceipt:bad\n\nhi\x00",
        True,
        id="content-length-negative",
    ),
    pytest.param(
        b"SEND\ndestination:/queue/errors.bad\ncontent-length:2\nreceipt:bad\n\nhello\x00",
        True,
        id="content-length-not-followed-by-nul",
        marks=STRICT,
    ),
    pytest.param(
        b"SEND\ndestination:/queue/errors.bad\n\n" + b"a" * (MAX_FRAME_SIZE * 2) + b"\x00",
        True,
        id="frame-too-large",
    ),
    pytest.param(
        b"SEND\ndestination:/queue/errors.bad\ncontent-length:%d\n\n" % (MAX_FRAME_SIZE * 2)
        + b"a" * (MAX_FRAME_SIZE * 2)
        + b"\x00",
        True,
        id="frame-too-large-content-length",
    ),
    pytest.param(
        b"SEND\ndestination:/queue/errors.bad\n" + _headers(MAX_HEADERS * 2) + b"\nhi\x00",
        True,
        id="too-many-headers",
    ),
    pytest.param(
        b"SEND\ndestination:/queue/errors.bad\nlong:"
        + b"x" * (MAX_HEADER_LENGTH * 2)
        + b"\n\nhi\x00",
        True,
        id="header-line-too-long",
    ),
    pytest.param(
        b"SEND\ndestination:/queue/errors.bad\nbad:\xff\xfe\xc3\x28\n\nhi\x00",
        True,
        id="invalid-utf8-header",
    ),
    pytest.param(
        b"SEND\ndestination:/queue/errors.bad\ntab:a\\tb\nreceipt:bad\n\nhi\x00",
        True,
        id="undefined-escape",
        marks=STRICT,
    ),
]


@pytest.mark.parametrize(("bad", "connect_first"), FRAMING)
def test_framing_error_closes_only_the_offender(
    broker: BrokerThread, connect, raw, bad: bytes, connect_first: bool
) -> None:
    # Messages stored before the error.
    producer: Client = connect("1.2")
    for i in range(3):
        producer.send("/queue/errors.stored", f"stored-{i}")
    producer.sync()
    # A bystander in the middle of its own conversation.
    bystander: Client = connect("1.2")
    bystander.subscribe("/queue/errors.bystander", id="b", ack="auto")
    bystander.sync()

    offender: RawClient = raw()
    if connect_first:
        offender.connect("1.2")
    offender.send(bad)
    expect_error(offender.frame())
    assert offender.closed(), "a framing error must close the connection"

    # Nothing of the bad frame was delivered.
    stats = broker.stats("errors.bad")
    assert stats is None or stats.enqueued == 0

    # The bystander is untouched and still works both ways.
    bystander.send("/queue/errors.bystander", "still here")
    assert bystander.listener.next().body == "still here"
    assert bystander.listener.errors.empty()
    assert not bystander.listener.disconnected.is_set()

    # The stored messages survived; drain them.
    drainer: Client = connect("1.1")
    drainer.subscribe("/queue/errors.stored", id="d", ack="client-individual")
    got = drainer.listener.take(3)
    assert sorted(m.body for m in got) == ["stored-0", "stored-1", "stored-2"]
    for m in got:
        drainer.ack_frame(m)
    drainer.sync()
    stats = broker.stats("errors.stored")
    assert (stats.enqueued, stats.acked, stats.depth) == (3, 3, 0)


def test_what_activemq_accepts_is_delivered_by_default(connect, raw) -> None:
    """listeners.stomp.strict false (the default): a body longer than its content-length
    is cut to it and an undefined escape is kept, as ActiveMQ 5.17 reads them."""
    consumer: Client = connect("1.2")
    consumer.subscribe("/queue/errors.lenient", id="c", ack="auto")
    consumer.sync()
    sender: RawClient = raw()
    sender.connect("1.2")
    sender.send(
        b"SEND\ndestination:/queue/errors.lenient\ncontent-length:2\ntab:a\\tb\n"
        b"receipt:r1\n\nhello\x00"
    )
    assert sender.frame().startswith(b"RECEIPT\nreceipt-id:r1")
    got = consumer.listener.next()
    assert got.body == "he"
    assert got.headers["tab"] == "a\\tb"


def test_unknown_ack_mode_is_auto_by_default(broker: BrokerThread, connect) -> None:
    """ActiveMQ reads an ack mode it does not know as auto: the message is consumed."""
    c: Client = connect("1.2")
    c.subscribe("/queue/errors.ackmode", id="s", ack="sometimes")
    c.send("/queue/errors.ackmode", "m", receipt="r")
    assert c.listener.next().body == "m"
    c.disconnect()
    # Gone for good with no ACK sent (an unacknowledged one would be back on the queue).
    stats = broker.stats("errors.ackmode")
    assert (stats.depth, stats.acked) == (0, 1)


@STRICT
def test_unknown_ack_mode_is_refused_when_strict(raw) -> None:
    offender: RawClient = raw()
    offender.connect("1.2")
    offender.send(b"SUBSCRIBE\ndestination:/queue/errors.ackmode\nid:s\nack:sometimes\n\n\x00")
    headers = expect_error(offender.frame())
    assert "Invalid ack mode" in headers.get("message", "")


def test_framing_error_split_across_packets(raw) -> None:
    """The limit applies to the frame, not to one read: a body trickled in small pieces
    that adds up past max_frame_size is refused too."""
    offender: RawClient = raw()
    offender.connect("1.2")
    offender.send(b"SEND\ndestination:/queue/errors.bad\n\n")
    for _ in range(MAX_FRAME_SIZE // 64 + 2):
        offender.send(b"b" * 64)
    expect_error(offender.frame())
    assert offender.closed()


@pytest.mark.parametrize(
    "bad",
    [b"HELLO\nreceipt:r\n\n\x00", b"send\ndestination:/queue/errors.bad\nreceipt:r\n\nhi\x00"],
    ids=["unknown", "lowercase"],
)
def test_unknown_command_error_carries_receipt_id(raw, bad: bytes) -> None:
    """As ActiveMQ: the whole frame is read, and its ERROR answers its receipt."""
    offender: RawClient = raw()
    offender.connect("1.2")
    offender.send(bad)
    expect_error(offender.frame(), receipt="r")
    assert offender.closed()


def test_frames_before_the_bad_one_are_still_processed(broker: BrokerThread, raw) -> None:
    """Good frames in the same packet as a framing error are acted on before it."""
    offender: RawClient = raw()
    offender.connect("1.2")
    offender.send(b"SEND\ndestination:/queue/errors.early\nreceipt:good\n\nfirst\x00BOGUS\n\n\x00")
    expect_receipt(offender, "good")
    expect_error(offender.frame())
    assert offender.closed()
    assert broker.stats("errors.early").enqueued == 1


def test_limits_are_not_errors_when_respected(raw) -> None:
    """Right at the limits nothing is wrong."""
    c: RawClient = raw()
    c.connect("1.2")
    body = b"c" * MAX_FRAME_SIZE
    extra = _headers(MAX_HEADERS - 2)  # + destination + receipt
    long_value = b"v" * (MAX_HEADER_LENGTH - len(b"receipt:"))
    c.send(
        b"SEND\ndestination:/queue/errors.limits\n"
        + extra
        + b"receipt:"
        + long_value
        + b"\n\n"
        + body
        + b"\x00"
    )
    expect_receipt(c, long_value.decode())


# -- semantic errors ---------------------------------------------------------------------------

# (version, setup frames each answered by RECEIPT "setup-N", the bad frame)
SEMANTIC = [
    pytest.param("1.2", [], "SEND\nreceipt:bad\n\nhi\x00", id="send-without-destination"),
    pytest.param("1.0", [], "SEND\nreceipt:bad\n\nhi\x00", id="send-without-destination-1.0"),
    pytest.param(
        "1.2", [], "SUBSCRIBE\nid:s1\nreceipt:bad\n\n\x00", id="subscribe-without-destination"
    ),
    pytest.param(
        "1.2",
        [],
        "SUBSCRIBE\ndestination:/queue/errors.sub\nreceipt:bad\n\n\x00",
        id="subscribe-without-id-1.2",
    ),
    pytest.param(
        "1.1",
        [],
        "SUBSCRIBE\ndestination:/queue/errors.sub\nreceipt:bad\n\n\x00",
        id="subscribe-without-id-1.1",
    ),
    pytest.param(
        "1.2", [], "UNSUBSCRIBE\nid:nope\nreceipt:bad\n\n\x00", id="unsubscribe-unknown-id"
    ),
    pytest.param(
        "1.2",
        ["SUBSCRIBE\ndestination:/queue/errors.sub\nid:A\nreceipt:setup-0\n\n\x00"],
        "UNSUBSCRIBE\nid:B\nreceipt:bad\n\n\x00",
        id="unsubscribe-other-id",
    ),
    pytest.param("1.2", [], "UNSUBSCRIBE\nreceipt:bad\n\n\x00", id="unsubscribe-without-id"),
    pytest.param("1.2", [], "ACK\nid:unknown-123\nreceipt:bad\n\n\x00", id="ack-unknown-id"),
    pytest.param("1.2", [], "NACK\nid:unknown-123\nreceipt:bad\n\n\x00", id="nack-unknown-id"),
    pytest.param("1.2", [], "ACK\nreceipt:bad\n\n\x00", id="ack-without-id"),
    pytest.param(
        "1.1",
        ["SUBSCRIBE\ndestination:/queue/errors.sub\nid:1\nack:client\nreceipt:setup-0\n\n\x00"],
        "ACK\nmessage-id:ID:bogus-1:1:1:1\nsubscription:1\nreceipt:bad\n\n\x00",
        id="ack-unknown-message-id-1.1",
    ),
    pytest.param(
        "1.0",
        [],
        "ACK\nmessage-id:ID:bogus-1:1:1:1\nreceipt:bad\n\n\x00",
        id="ack-unknown-message-id-1.0",
    ),
    pytest.param("1.0", [], "NACK\nmessage-id:x\nreceipt:bad\n\n\x00", id="nack-in-1.0"),
    pytest.param(
        "1.2",
        ["BEGIN\ntransaction:t1\nreceipt:setup-0\n\n\x00"],
        "BEGIN\ntransaction:t1\nreceipt:bad\n\n\x00",
        id="begin-open-transaction",
    ),
    pytest.param("1.2", [], "BEGIN\nreceipt:bad\n\n\x00", id="begin-without-transaction"),
    pytest.param(
        "1.2", [], "COMMIT\ntransaction:nope\nreceipt:bad\n\n\x00", id="commit-unknown-tx"
    ),
    pytest.param("1.2", [], "ABORT\ntransaction:nope\nreceipt:bad\n\n\x00", id="abort-unknown-tx"),
    pytest.param(
        "1.2",
        [
            "BEGIN\ntransaction:t8\nreceipt:setup-0\n\n\x00",
            "COMMIT\ntransaction:t8\nreceipt:setup-1\n\n\x00",
        ],
        "COMMIT\ntransaction:t8\nreceipt:bad\n\n\x00",
        id="commit-finished-tx",
    ),
    pytest.param(
        "1.2",
        [],
        "SEND\ndestination:/queue/errors.tx\ntransaction:nope\nreceipt:bad\n\nlost\x00",
        id="send-unknown-tx",
    ),
]


@pytest.mark.parametrize(("version", "setup", "bad"), SEMANTIC)
def test_semantic_error_keeps_connection_usable(
    broker: BrokerThread, raw, version: str, setup: list[str], bad: str
) -> None:
    c: RawClient = raw()
    c.connect(version)
    for i, frame in enumerate(setup):
        c.send(frame.encode())
        expect_receipt(c, f"setup-{i}")
    c.send(bad.encode())
    expect_error(c.frame(), receipt="bad")
    still_usable(c)
    # An ERROR that cancels a SEND cancels it completely.
    stats = broker.stats("errors.tx")
    assert stats is None or stats.enqueued == 0


def test_error_without_receipt_has_no_receipt_id(raw) -> None:
    c: RawClient = raw()
    c.connect("1.2")
    c.send(b"UNSUBSCRIBE\nid:nope\n\n\x00")
    headers = expect_error(c.frame())
    assert "receipt-id" not in headers
    still_usable(c)


def test_several_errors_in_a_row(raw) -> None:
    """A client that keeps making mistakes gets one ERROR per mistake and stays connected."""
    c: RawClient = raw()
    c.connect("1.2")
    for i in range(5):
        c.send(f"COMMIT\ntransaction:nope-{i}\nreceipt:bad-{i}\n\n\x00".encode())
    for i in range(5):
        expect_error(c.frame(), receipt=f"bad-{i}")
    still_usable(c)


def test_semantic_error_in_stomp_py_client(connect) -> None:
    """The same through stomp.py: the listener sees the ERROR, the connection survives."""
    c: Client = connect("1.2")
    c.unsubscribe(id="never-subscribed", headers={"receipt": "bad"})
    err = c.listener.error()
    assert err.headers["message"]
    assert err.headers["receipt-id"] == "bad"
    c.subscribe("/queue/errors.py", id="1")
    c.send("/queue/errors.py", "after the error")
    assert c.listener.next().body == "after the error"
    assert c.is_connected()


def test_double_ack_is_an_error_but_keeps_the_connection(connect) -> None:
    """ActiveMQ: the second ACK of the same ack id gets ERROR (with receipt-id), stays open."""
    c: Client = connect("1.2")
    c.subscribe("/queue/errors.double", id="1", ack="client-individual")
    c.send("/queue/errors.double", "once")
    msg = c.listener.next()
    c.ack(msg.headers["ack"], receipt="first")
    assert c.listener.receipt() == "first"
    c.ack(msg.headers["ack"], receipt="second")
    err = c.listener.error()
    assert err.headers["message"]
    assert err.headers["receipt-id"] == "second"
    c.send("/queue/errors.double", "again")
    assert c.listener.next().body == "again"


def test_send_with_unknown_transaction_is_not_enqueued(broker: BrokerThread, connect) -> None:
    c: Client = connect("1.2")
    c.subscribe("/queue/errors.tx2", id="1")
    c.send("/queue/errors.tx2", "in a ghost tx", transaction="ghost")
    assert c.listener.error().headers["message"]
    c.send("/queue/errors.tx2", "plain")
    assert c.listener.next().body == "plain"
    c.sync()
    assert broker.stats("errors.tx2").enqueued == 1


def test_ack_with_unknown_transaction_leaves_message_unacked(broker: BrokerThread, connect) -> None:
    """ActiveMQ: ERROR, the message stays unacknowledged and a plain ACK then works."""
    c: Client = connect("1.1")
    c.subscribe("/queue/errors.acktx", id="1", ack="client-individual")
    c.send("/queue/errors.acktx", "m")
    msg = c.listener.next()
    c.ack(msg.headers["message-id"], "1", transaction="ghost", receipt="bad")
    assert c.listener.error().headers["receipt-id"] == "bad"
    c.sync()
    assert broker.stats("errors.acktx").inflight == 1
    c.ack_frame(msg)
    c.sync()
    stats = broker.stats("errors.acktx")
    assert (stats.acked, stats.inflight, stats.depth) == (1, 0, 0)


# -- where ZoneMQ and ActiveMQ part ------------------------------------------------------------


def test_duplicate_subscription_id_never_breaks_the_connection(raw) -> None:
    """A deliberate difference: ActiveMQ accepts a duplicate id (and then can never
    unsubscribe the first consumer); ZoneMQ answers ERROR, keeps the connection usable
    and the first subscription delivering."""
    c: RawClient = raw()
    c.connect("1.2")
    c.send(b"SUBSCRIBE\ndestination:/queue/errors.dup1\nid:A\nreceipt:s1\n\n\x00")
    expect_receipt(c, "s1")
    c.send(b"SUBSCRIBE\ndestination:/queue/errors.dup2\nid:A\nreceipt:s2\n\n\x00")
    command, headers = headers_of(c.frame())
    assert command == "ERROR"
    assert headers.get("receipt-id") == "s2"
    c.send(b"SEND\ndestination:/queue/errors.dup1\n\nto-first\x00")
    command, headers = headers_of(frame := c.frame())
    assert command == "MESSAGE"
    assert headers["subscription"] == "A"
    assert frame.endswith(b"to-first")
    still_usable(c)


@pytest.mark.parametrize(
    "frame",
    [
        b"SEND\ndestination:/queue/errors.early\nreceipt:bad\n\nhi\x00",
        b"SUBSCRIBE\ndestination:/queue/errors.early\nid:1\nreceipt:bad\n\n\x00",
    ],
    ids=["SEND", "SUBSCRIBE"],
)
def test_frame_before_connect_keeps_connection_usable(raw, frame: bytes) -> None:
    """ActiveMQ: ERROR 'Not connected.', the connection stays open for a later CONNECT."""
    c: RawClient = raw()
    c.send(frame)
    expect_error(c.frame(), receipt="bad")
    c.connect("1.2")
    still_usable(c)


def test_disconnect_before_connect_is_ignored(raw) -> None:
    """ActiveMQ: no RECEIPT, no ERROR, the connection stays open for a later CONNECT."""
    c: RawClient = raw()
    c.send(b"DISCONNECT\nreceipt:r1\n\n\x00")
    c.connect("1.2")  # the next frame is CONNECTED: nothing was sent for the DISCONNECT
    still_usable(c)


def test_ack_of_message_waiting_before_subscribe(broker: BrokerThread, raw) -> None:
    """A message already on the queue when a 1.2 client-individual SUBSCRIBE arrives is
    delivered with an `ack` header and can be acknowledged (no false 'Unexpected ACK')."""
    c: RawClient = raw()
    c.connect("1.2")
    c.send(b"SEND\ndestination:/queue/errors.waiting\nreceipt:sent\n\nearly\x00")
    expect_receipt(c, "sent")
    c.send(b"SUBSCRIBE\ndestination:/queue/errors.waiting\nid:1\nack:client-individual\n\n\x00")
    command, headers = headers_of(c.frame())
    assert command == "MESSAGE"
    assert "ack" in headers, headers
    c.send(f"ACK\nid:{headers['ack']}\nreceipt:acked\n\n\x00".encode())
    expect_receipt(c, "acked")
    assert broker.stats("errors.waiting").acked == 1
