"""A peer cannot make the broker buffer AMQP input without bound (issue 10): a link the
broker detached for a too-large message drops what still comes on it.

The misbehaving peer is python-qpid-proton's own engine in client mode over a plain
socket: it speaks real AMQP, and the test decides how much of its output to send."""

from __future__ import annotations

import socket
import threading
from typing import Any

from proton import Connection, Delivery, Message, Transport
from proton.utils import BlockingConnection

from tests.conftest import WAIT, BrokerThread


def wait_until(predicate: Any, timeout: float = WAIT) -> bool:
    """Poll a condition on a short event wait (bounded), for state with no event."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        pause.wait(0.01)
    return predicate()


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
