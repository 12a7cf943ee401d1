"""AMQP bad input over raw sockets, SASL, idle timeout and limits: the connection (not the
broker) is closed with the spec's error condition and nothing stored is lost."""

from __future__ import annotations

import socket
import struct

import pytest
from proton import ConnectionException, Data, Described, Message, uint, ulong
from proton.utils import BlockingConnection, LinkDetached, SendException

from tests.conftest import WAIT, BrokerThread

AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
EMPTY_FRAME = b"\x00\x00\x00\x08\x02\x00\x00\x00"


def frame(code: int, fields: list[object], channel: int = 0) -> bytes:
    """One AMQP frame carrying the performative `code` with `fields`."""
    d = Data()
    d.put_object(Described(ulong(code), fields))
    body = d.encode()
    return struct.pack(">IBBH", 8 + len(body), 2, 0, channel) + body


OPEN = frame(0x10, ["raw-client"])
BEGIN = frame(0x11, [None, 0, 100, 100])


class Raw:
    def __init__(self, broker: BrokerThread) -> None:
        self.sock = socket.create_connection(("127.0.0.1", broker.broker.port("amqp")), WAIT)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until_closed(self, timeout: float = WAIT) -> bytes:
        """Everything the broker sends until it closes the socket (fails on timeout)."""
        self.sock.settimeout(timeout)
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return self.buf
            if not chunk:
                return self.buf
            self.buf += chunk

    def read_until(self, needle: bytes, timeout: float = WAIT) -> bytes:
        self.sock.settimeout(timeout)
        while needle not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; got {self.buf!r}")
            self.buf += chunk
        return self.buf

    def close(self) -> None:
        self.sock.close()


def amqp_conn(broker: BrokerThread, **kw: object) -> BlockingConnection:
    return BlockingConnection(f"127.0.0.1:{broker.broker.port('amqp')}", timeout=WAIT, **kw)


def store_one(broker: BrokerThread, queue: str) -> None:
    c = amqp_conn(broker)
    c.create_sender(queue).send(Message(body="precious", durable=True))
    c.close()


def assert_still_there(broker: BrokerThread, queue: str) -> None:
    c = amqp_conn(broker)
    r = c.create_receiver(queue, credit=1)
    assert r.receive(WAIT).body == "precious"
    r.accept()
    c.close()


def test_wrong_protocol_header_gets_ours_and_a_close(broker: BrokerThread) -> None:
    store_one(broker, "safe.1")
    raw = Raw(broker)
    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    got = raw.read_until_closed()
    assert got.startswith(AMQP_HEADER)
    raw.close()
    assert_still_there(broker, "safe.1")


def test_garbage_after_the_header_is_a_framing_error(broker: BrokerThread) -> None:
    store_one(broker, "safe.2")
    raw = Raw(broker)
    raw.send(AMQP_HEADER + b"\x00\x00\x00\x10\xff\xff\xff\xffgarbage!")
    got = raw.read_until_closed()
    assert got.startswith(AMQP_HEADER)
    assert b"amqp:connection:framing-error" in got
    raw.close()
    assert_still_there(broker, "safe.2")


def test_frame_over_max_frame_size_is_a_framing_error(broker_factory) -> None:
    broker = broker_factory(**{"listeners.amqp.max_frame_size": 512})
    raw = Raw(broker)
    raw.send(AMQP_HEADER + OPEN)
    raw.read_until(AMQP_HEADER)
    big = frame(0x11, [None, 0, 100, 100, None, None, None, {"pad": "x" * 1000}])
    raw.send(big)
    got = raw.read_until_closed()
    assert b"amqp:connection:framing-error" in got


def test_open_advertises_the_limits(broker_factory) -> None:
    broker = broker_factory(
        **{"listeners.amqp.max_frame_size": 4096, "listeners.amqp.channel_max": 7}
    )
    c = amqp_conn(broker)
    try:
        transport = c.conn.transport
        assert transport.remote_max_frame_size == 4096
        assert transport.remote_channel_max == 7
        # A session is fine; a large message is split into frames of the negotiated size.
        s = c.create_sender("frames.q")
        s.send(Message(body=b"y" * 20000))
        r = c.create_receiver("frames.q", credit=1)
        assert r.receive(WAIT).body == b"y" * 20000
        r.accept()
    finally:
        c.close()


def test_channel_above_channel_max_closes_the_connection(broker_factory) -> None:
    broker = broker_factory(**{"listeners.amqp.channel_max": 3})
    raw = Raw(broker)
    raw.send(AMQP_HEADER + OPEN + frame(0x11, [None, 0, 100, 100], channel=9))
    got = raw.read_until_closed()
    assert b"channel_max" in got or b"amqp:connection:framing-error" in got


def test_transfer_on_an_unattached_link_closes_the_connection(broker: BrokerThread) -> None:
    store_one(broker, "safe.3")
    raw = Raw(broker)
    transfer = frame(0x14, [uint(5), uint(0), b"t1", uint(0), True])
    raw.send(AMQP_HEADER + OPEN + BEGIN)
    raw.read_until(b"\x00S\x11")  # the broker's begin
    raw.send(transfer + b"payload")
    got = raw.read_until_closed()
    assert b"amqp:invalid-field" in got or b"no such handle" in got
    raw.close()
    assert_still_there(broker, "safe.3")


def test_oversized_message_closes_the_link(broker_factory) -> None:
    broker = broker_factory(
        **{"listeners.amqp.max_frame_size": 1024, "listeners.amqp.max_message_size": 4000}
    )
    c = amqp_conn(broker)
    try:
        s = c.create_sender("big.q")
        with pytest.raises((SendException, LinkDetached)) as info:
            s.send(Message(body=b"z" * 20000))
        assert "message-size-exceeded" in str(info.value) or isinstance(info.value, SendException)
        c.create_sender("small.q").send(Message(body=b"ok"))  # the connection lives on
    finally:
        c.close()


def test_idle_peer_is_dropped_with_resource_limit_exceeded(broker_factory) -> None:
    broker = broker_factory(**{"listeners.amqp.idle_timeout": 0.4})
    raw = Raw(broker)
    raw.send(AMQP_HEADER + OPEN)
    got = raw.read_until_closed(timeout=5)
    assert b"amqp:resource-limit-exceeded" in got


def test_broker_keeps_an_idle_client_alive_with_empty_frames(broker: BrokerThread) -> None:
    raw = Raw(broker)
    # idle-time-out 200 ms: the broker must send something at least every 100 ms.
    raw.send(AMQP_HEADER + frame(0x10, ["raw-client", None, None, None, uint(200)]))
    raw.read_until(AMQP_HEADER)
    raw.buf = raw.buf[len(AMQP_HEADER) :]
    raw.read_until(EMPTY_FRAME, timeout=2)
    raw.close()


def test_too_many_connections_are_closed_with_a_condition(broker_factory) -> None:
    broker = broker_factory(**{"listeners.amqp.max_connections": 1})
    first = amqp_conn(broker)
    try:
        with pytest.raises(ConnectionException) as info:
            amqp_conn(broker)
        assert "amqp:resource-limit-exceeded" in str(info.value)
    finally:
        first.close()


# -- SASL ------------------------------------------------------------------------------


@pytest.fixture
def secured(broker_factory) -> BrokerThread:
    return broker_factory(**{"auth.users": {"alice": "s3cret"}})


def test_plain_with_good_credentials(secured: BrokerThread) -> None:
    c = amqp_conn(secured, user="alice", password="s3cret", allow_insecure_mechs=True)
    c.create_sender("auth.q").send(Message(body="in"))
    c.close()


def test_plain_with_a_bad_password_is_refused(secured: BrokerThread) -> None:
    with pytest.raises(ConnectionException):
        amqp_conn(secured, user="alice", password="wrong", allow_insecure_mechs=True)


def test_anonymous_is_refused_when_users_exist(secured: BrokerThread) -> None:
    with pytest.raises(ConnectionException):
        amqp_conn(secured)


def test_skipping_sasl_is_refused_when_users_exist(secured: BrokerThread) -> None:
    raw = Raw(secured)
    raw.send(AMQP_HEADER + OPEN)
    assert raw.read_until_closed() == b"AMQP\x03\x01\x00\x00"  # SASL, or nothing


def test_plain_without_users_accepts_anyone(broker: BrokerThread) -> None:
    c = amqp_conn(broker, user="who", password="ever", allow_insecure_mechs=True)
    c.close()


def test_no_sasl_at_all_is_fine_without_users(broker: BrokerThread) -> None:
    raw = Raw(broker)
    raw.send(AMQP_HEADER + OPEN)
    got = raw.read_until(b"zonemq")
    assert got.startswith(AMQP_HEADER)
    raw.close()


def test_invalid_utf8_in_an_address_is_a_decode_error(broker: BrokerThread, caplog) -> None:
    """A fuzz finding (bench/fuzz): proton decodes strings lazily, so invalid UTF-8 in
    an attach's target address used to surface inside the link handler and close the
    connection as an internal error. It is the peer's decode-error (AMQP 1.0 2.8.15)."""
    store_one(broker, "safe.utf8")
    target = Described(ulong(0x29), ["queue://badXX"])
    attach = frame(0x12, ["l1", uint(0), False, None, None, None, target], channel=0)
    attach = attach.replace(b"badXX", b"bad\xc3\x28")
    raw = Raw(broker)
    raw.send(AMQP_HEADER + OPEN + BEGIN)
    raw.read_until(b"\x00S\x11")
    raw.send(attach)
    got = raw.read_until_closed()
    raw.close()
    assert b"amqp:decode-error" in got
    assert not [r for r in caplog.records if r.name.startswith("zonemq") and r.levelname == "ERROR"]
    assert_still_there(broker, "safe.utf8")


def test_sasl_init_that_is_not_a_list_is_refused(broker: BrokerThread, caplog) -> None:
    """A fuzz finding: a sasl-init descriptor on a scalar (here a boolean) raised inside
    the SASL layer (logged as an internal error); it is a malformed frame: the SASL
    outcome is sys-perm and the connection closes."""
    d = Data()
    d.put_object(Described(ulong(0x41), True))
    body = d.encode()
    init = struct.pack(">IBBH", 8 + len(body), 2, 1, 0) + body
    raw = Raw(broker)
    raw.send(b"AMQP\x03\x01\x00\x00")
    raw.read_until(b"\x00S\x40")  # sasl-mechanisms
    raw.send(init)
    got = raw.read_until_closed()
    raw.close()
    assert b"\x00S\x44" in got  # sasl-outcome
    assert not [r for r in caplog.records if r.name.startswith("zonemq") and r.levelname == "ERROR"]
