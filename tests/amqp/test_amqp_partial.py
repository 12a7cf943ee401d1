"""Half-received AMQP input is bounded (issue 10): the bytes proton holds for a frame not
yet complete and for a multi-frame delivery not yet complete count against one budget
for all connections of the listener (`listeners.amqp.max_partial_bytes`), and a frame or
message (or a SASL frame, before the engine) must complete within
`listeners.amqp.frame_timeout` however its bytes trickle; a link the broker detached for a
too-large message drops what still comes on it.

The misbehaving peer is python-qpid-proton's own engine in client mode over a plain
socket: it speaks real AMQP, and the test decides how much of its output to send."""

from __future__ import annotations

import socket
from typing import Any

from proton import Connection, Delivery, Message, Transport
from proton.utils import BlockingConnection

from tests.conftest import WAIT, BrokerThread, wait_until


class Peer:
    """An AMQP client (proton's engine, no reactor) whose output the test may hold back."""

    def __init__(self, broker: BrokerThread, address: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", broker.broker.port("amqp")), WAIT)
        self.transport = Transport()
        self.conn = Connection()
        self.transport.bind(self.conn)
        self.conn.open()
        session = self.conn.session()
        session.open()
        self.sender = session.sender("partial-peer")
        self.sender.target.address = address
        self.sender.open()
        self.closed = False
        self.held = b""

    def output(self) -> bytes:
        out = []
        while (n := self.transport.pending()) > 0:
            out.append(self.transport.peek(n))
            self.transport.pop(n)
        return b"".join(out)

    def pump(self, until: Any, timeout: float = WAIT) -> bool:
        """Send what the engine has, read the broker's answers, until `until()` holds or
        the broker closes the socket (False then) or the timeout passes (an assertion)."""
        self.sock.settimeout(0.05)
        for _ in range(int(timeout / 0.05)):
            out = self.output()
            if out:
                self.sock.sendall(out)
            if until():
                return True
            if not self.read():
                return False
        raise AssertionError("timed out")

    def read(self) -> bool:
        """Feed what the broker sent; False once it has closed the socket."""
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return True
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.transport.push(data)
        return True

    def attach(self) -> None:
        assert self.pump(lambda: self.sender.credit > 0)

    def encode(self, body: bytes) -> bytes:
        """The frames of one durable transfer of `body`, not sent yet."""
        dlv = self.sender.delivery(b"t%d" % len(body))
        self.sender.send(Message(body=body, durable=True).encode())
        self.sender.advance()
        self.dlv = dlv
        return self.output()

    def accepted(self) -> bool:
        return self.dlv.remote_state == Delivery.ACCEPTED

    def close_condition(self) -> str | None:
        """The broker's close condition once it has closed the socket (None if it sent none)."""
        assert wait_until(lambda: self.closed or not self.read())
        cond = self.conn.remote_condition
        return cond.name if cond is not None else None


def amqp_conn(broker: BrokerThread) -> BlockingConnection:
    return BlockingConnection(f"127.0.0.1:{broker.broker.port('amqp')}", timeout=WAIT)


def partial_bytes(b: BrokerThread) -> int:
    return b.call(lambda: b.broker.listeners["amqp"].partial_bytes)  # type: ignore[no-any-return]


def assert_others_unaffected(b: BrokerThread, queue: str) -> None:
    c = amqp_conn(b)
    try:
        c.create_sender(queue).send(Message(body="bystander", durable=True))
        r = c.create_receiver(queue, credit=1)
        assert r.receive(WAIT).body == "bystander"
        r.accept()
    finally:
        c.close()


def assert_stored(b: BrokerThread, queue: str, body: bytes) -> None:
    c = amqp_conn(b)
    try:
        r = c.create_receiver(queue, credit=1)
        assert r.receive(WAIT).body == body
        r.accept()
    finally:
        c.close()


def test_listener_caps_half_received_frames_of_all_connections(broker_factory) -> None:
    # The default frame size (1 MiB): each message is one frame, held whole by proton
    # until its last byte has come.
    b: BrokerThread = broker_factory(**{"listeners.amqp.max_partial_bytes": 1536 * 1024})
    body = b"f" * (900 * 1024)
    first = Peer(b, "partial.frames")
    first.attach()
    wire = first.encode(body)
    first.sock.sendall(wire[: 800 * 1024])
    assert wait_until(lambda: partial_bytes(b) >= 800 * 1024)
    second = Peer(b, "partial.frames.2")
    second.attach()
    second.sock.sendall(second.encode(body)[: 800 * 1024])
    # The connection that would take the listener past its budget is closed...
    assert second.close_condition() == "amqp:resource-limit-exceeded"
    # ... the others go on, and the first finishes its frame: stored and accepted.
    assert_others_unaffected(b, "partial.bystander")
    first.sock.sendall(wire[800 * 1024 :])
    assert first.pump(first.accepted)
    assert_stored(b, "partial.frames", body)
    assert wait_until(lambda: partial_bytes(b) == 0)
    first.sock.close()


def test_listener_caps_incomplete_multi_frame_deliveries(broker_factory) -> None:
    # Small frames: a 1 MiB message is 16+ frames, each complete; proton assembles them
    # into one delivery it buffers until the last.
    b: BrokerThread = broker_factory(
        **{"listeners.amqp.max_frame_size": 65536, "listeners.amqp.max_partial_bytes": 1536 * 1024}
    )
    body = b"d" * (1024 * 1024)
    first = Peer(b, "partial.deliveries")
    first.attach()
    wire = first.encode(body)
    cut = len(wire) - 32 * 1024  # all but the last frame or so, on a frame boundary or not
    first.sock.sendall(wire[:cut])
    assert wait_until(lambda: partial_bytes(b) >= cut - 65536)
    second = Peer(b, "partial.deliveries.2")
    second.attach()
    second.sock.sendall(second.encode(body)[:cut])
    assert second.close_condition() == "amqp:resource-limit-exceeded"
    assert_others_unaffected(b, "partial.bystander")
    first.sock.sendall(wire[cut:])
    assert first.pump(first.accepted)
    assert_stored(b, "partial.deliveries", body)
    assert wait_until(lambda: partial_bytes(b) == 0)
    first.sock.close()


def trickle(peer: Peer, data: bytes, step: int) -> str | None:
    """Send `data` `step` bytes at a time, one step per 50 ms of waiting for the broker,
    until it closes the connection; its close condition (fails if it has not within
    WAIT seconds)."""
    peer.sock.settimeout(0.05)
    steps = int(WAIT / 0.05)
    assert len(data) > steps * step  # the message must not be complete by then
    for i in range(0, steps * step, step):
        try:
            peer.sock.sendall(data[i : i + step])
        except OSError:
            break
        if not peer.read():
            break
    else:
        raise AssertionError("the broker took the whole trickle")
    return peer.close_condition()


def test_half_sent_frame_times_out_even_while_bytes_trickle(broker_factory) -> None:
    # Idle timeout far away: every byte would keep proton's liveness clock happy.
    b: BrokerThread = broker_factory(**{"listeners.amqp.frame_timeout": 0.5})
    peer = Peer(b, "partial.trickle")
    peer.attach()
    wire = peer.encode(b"t" * 4096)
    assert trickle(peer, wire, 1) == "amqp:resource-limit-exceeded"
    assert wait_until(lambda: partial_bytes(b) == 0)
    assert_others_unaffected(b, "partial.bystander")


def test_message_trickled_frame_by_frame_times_out(broker_factory) -> None:
    # Every frame completes at once, the message never does.
    b: BrokerThread = broker_factory(
        **{"listeners.amqp.frame_timeout": 0.5, "listeners.amqp.max_frame_size": 512}
    )
    peer = Peer(b, "partial.trickle.frames")
    peer.attach()
    wire = peer.encode(b"m" * 65536)
    assert trickle(peer, wire, 512) == "amqp:resource-limit-exceeded"
    assert wait_until(lambda: partial_bytes(b) == 0)
    assert_others_unaffected(b, "partial.bystander")


def held_by_receivers(b: BrokerThread) -> int:
    """Bytes proton's engine holds in the deliveries not read yet of every link the
    broker receives on, live or detached (white-box: the engine gives no total)."""

    def measure() -> int:
        total = 0
        for conn in b.broker.listeners["amqp"].connections:
            link = conn.conn.link_head(0)
            while link is not None:
                if link.is_receiver and link.current is not None:
                    total += link.current.pending
                link = link.next(0)
        return total

    return b.call(measure)  # type: ignore[no-any-return]


def test_transfer_frames_after_a_too_large_message_are_dropped(broker_factory) -> None:
    b: BrokerThread = broker_factory(
        **{"listeners.amqp.max_frame_size": 1024, "listeners.amqp.max_message_size": 4000}
    )
    peer = Peer(b, "partial.too.large")
    peer.attach()
    # The peer sends all 200 KiB of its message without waiting for the detach that the
    # first 4 KB of it earn: proton must not keep what follows.
    peer.sock.sendall(peer.encode(b"L" * (200 * 1024)))
    assert peer.pump(lambda: peer.sender.remote_condition is not None)
    assert peer.sender.remote_condition.name == "amqp:link:message-size-exceeded"
    peer.sock.sendall(peer.output())
    # The broker answers a ping only after it has read all that came before it.
    ping = peer.conn.session()
    ping.open()
    assert peer.pump(lambda: ping.state & ping.REMOTE_ACTIVE)
    assert held_by_receivers(b) < 8192
    assert partial_bytes(b) == 0
    assert_others_unaffected(b, "partial.bystander")
    peer.sock.close()


def test_sasl_frame_trickled_before_authentication_times_out(broker_factory) -> None:
    b: BrokerThread = broker_factory(
        **{"listeners.amqp.frame_timeout": 0.5, "auth.users": {"alice": "secret"}}
    )
    sock = socket.create_connection(("127.0.0.1", b.broker.port("amqp")), WAIT)
    sock.sendall(b"AMQP\x03\x01\x00\x00")
    # A sasl-init frame header declaring 4000 bytes, then its bytes one at a time.
    sock.sendall(b"\x00\x00\x0f\xa0\x02\x01\x00\x00")
    sock.settimeout(0.05)
    closed = False
    for _ in range(int(WAIT / 0.05)):
        try:
            sock.sendall(b"\x00")
            closed = sock.recv(65536) == b""
        except TimeoutError:
            continue
        except OSError:
            closed = True
        if closed:
            break
    sock.close()
    assert closed
    assert wait_until(lambda: partial_bytes(b) == 0)
