"""Memory bounds a STOMP client cannot get around (issue 10): a producer that never reads
its receipts is stopped being read; an unauthenticated connection gets a small frame
budget, and all connections of a listener share a cap on half-received frames; a frame
must complete within `frame_timeout`."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from tests.conftest import WAIT, BrokerThread, RawClient

USERS = {"auth.users": {"alice": "secret"}}


def wait_until(predicate: Any, timeout: float = WAIT) -> bool:
    """Poll a condition on a short event wait (bounded), for state with no event."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        pause.wait(0.01)
    return predicate()


def buffered(b: BrokerThread) -> list[int]:
    """Bytes each live STOMP connection holds: transport write buffer, outbound list
    and half-parsed input."""

    def measure() -> list[int]:
        out = []
        for conn in b.broker.listeners["stomp"].connections:
            t = conn.transport
            size = t.get_write_buffer_size() if t is not None else 0
            out.append(size + conn._out_bytes + conn.parser.buffered())
        return out

    return b.call(measure)


def test_producer_that_never_reads_receipts_is_paused(broker_factory) -> None:
    high = 256 * 1024
    b: BrokerThread = broker_factory(
        **{
            "listeners.stomp.write_buffer_high": high,
            "listeners.stomp.write_buffer_low": high // 4,
            "store.fsync": "never",
        }
    )
    raw = RawClient(b.stomp_port)
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    raw.connect("1.2")
    # A long receipt id makes each RECEIPT as big as the SEND that asked for it.
    pad = "r" * 200
    frames = b"".join(
        f"SEND\ndestination:/queue/limits.noread\npersistent:true\nreceipt:{pad}{i}\n\nx\x00".encode()
        for i in range(500)
    )
    raw.sock.settimeout(2.0)
    sent = 0
    blocked = False
    # Without the pause the broker reads all of it and buffers as many bytes of receipts;
    # with it, the sockets' buffers and the watermark hold well under a megabyte.
    while sent < 24 * 1024 * 1024:
        try:
            raw.sock.sendall(frames)
        except TimeoutError:
            blocked = True
            break
        sent += len(frames)
    assert blocked, f"the broker kept reading: {sent} bytes sent, none read back"
    # What the broker holds for this connection stays near its watermark.
    assert max(buffered(b)) < 4 * high
    # Reading the receipts lets it go on.
    raw.sock.settimeout(WAIT)
    assert raw.frame().startswith(b"RECEIPT")
    raw.close()


def test_unauthenticated_connect_gets_a_small_budget(broker_factory) -> None:
    b: BrokerThread = broker_factory(**USERS)
    # A CONNECT declaring a 95 MB body is refused as soon as it is declared...
    raw = RawClient(b.stomp_port)
    raw.send(b"CONNECT\naccept-version:1.2\nlogin:alice\ncontent-length:99614720\n\n")
    raw.send(b"x" * 65536)
    assert raw.frame().startswith(b"ERROR")
    assert raw.closed()
    # ... and one without content-length once it holds more than the budget.
    raw = RawClient(b.stomp_port)
    raw.send(b"CONNECT\naccept-version:1.2\nlogin:alice\n\n")
    with contextlib.suppress(OSError):  # the broker may close first: what the test wants
        for _ in range(64):
            raw.send(b"y" * 65536)
    assert raw.closed()
    # A huge header block is not an escape either.
    raw = RawClient(b.stomp_port)
    line = b"h:" + b"z" * 10000 + b"\n"
    with contextlib.suppress(OSError):
        raw.send(b"CONNECT\naccept-version:1.2\n" + line * 200)
    assert raw.closed()
    assert b.call(lambda: b.broker.listeners["stomp"].partial_bytes) == 0


def test_after_connect_the_full_frame_size_applies(broker_factory) -> None:
    b: BrokerThread = broker_factory(**USERS)
    raw = RawClient(b.stomp_port)
    raw.connect("1.2", "login:alice\npasscode:secret\n")
    body = b"b" * (1024 * 1024)
    raw.send(
        b"SEND\ndestination:/queue/limits.big\nreceipt:r\n"
        + f"content-length:{len(body)}\n\n".encode()
        + body
        + b"\x00"
    )
    assert raw.frame().startswith(b"RECEIPT")
    raw.close()


def test_listener_caps_partial_frames_of_all_connections(broker_factory) -> None:
    budget = 1536 * 1024
    b: BrokerThread = broker_factory(**{"listeners.stomp.max_partial_bytes": budget})
    head = b"SEND\ndestination:/queue/limits.partial\nreceipt:r\ncontent-length:1000000\n\n"
    part = b"p" * (800 * 1024)
    first = RawClient(b.stomp_port)
    first.connect("1.2")
    first.send(head + part)
    assert wait_until(lambda: b.call(lambda: b.broker.listeners["stomp"].partial_bytes) > 0)
    second = RawClient(b.stomp_port)
    second.connect("1.2")
    second.send(head + part)
    # The connection that would take the listener past its budget is refused...
    error = second.frame()
    assert error.startswith(b"ERROR") and b"partial frames" in error
    assert second.closed()
    # ... the other finishes its frame.
    first.send(b"p" * (1000000 - len(part)) + b"\x00")
    assert first.frame().startswith(b"RECEIPT")
    assert wait_until(lambda: b.call(lambda: b.broker.listeners["stomp"].partial_bytes) == 0)
    first.close()


def test_half_sent_frame_times_out_even_while_bytes_trickle(broker_factory) -> None:
    b: BrokerThread = broker_factory(**{"listeners.stomp.frame_timeout": 0.5})
    raw = RawClient(b.stomp_port)
    # Heart-beats on both sides, so silence is not what drops it.
    raw.connect("1.2", "heart-beat:100,100\n")
    raw.send(b"SEND\ndestination:/queue/limits.slow\n")
    error = b""
    for _ in range(int(WAIT / 0.1)):
        try:
            raw.send(b"h")  # one byte of a header line, the frame never ends
        except OSError:
            break
        raw.sock.settimeout(0.1)
        try:
            chunk = raw.sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        raw.buf += chunk
        if b"ERROR" in raw.buf:
            error = raw.buf
            break
    assert b"Frame not completed" in error
    assert raw.closed()
