"""Memory bounds an AMQP client cannot get around (issue 10): a SASL frame before
authentication is small, the store limit (`destinations.store_limit`) holds a producer
back ("block": no more credit) or refuses its transfers ("fail"), and a producer that
sends beyond its credit has its link detached (half-received input:
test_amqp_partial.py)."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

import pytest
from proton import Message
from proton.utils import BlockingConnection, SendException

from broker.core.message import MESSAGE_OVERHEAD
from tests.conftest import WAIT, BrokerThread


def amqp_conn(broker: BrokerThread, **kw) -> BlockingConnection:
    return BlockingConnection(f"127.0.0.1:{broker.broker.port('amqp')}", timeout=WAIT, **kw)


def test_sasl_frame_before_authentication_is_small(broker_factory) -> None:
    b: BrokerThread = broker_factory(**{"auth.users": {"alice": "secret"}})
    sock = socket.create_connection(("127.0.0.1", b.broker.port("amqp")), WAIT)
    sock.sendall(b"AMQP\x03\x01\x00\x00")
    # A sasl-init frame header declaring 95 MB: refused without waiting for the body.
    sock.sendall(struct.pack(">IBBH", 95 * 1024 * 1024, 2, 1, 0) + b"\x00" * 65536)
    got = b""
    sock.settimeout(WAIT)
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    sock.close()
    assert b"\x00S\x44" in got  # sasl-outcome, then the broker closed the socket


def test_store_full_fail_policy_rejects_transfers(broker_factory) -> None:
    b: BrokerThread = broker_factory(
        **{"destinations.store_limit": 32 * 1024, "destinations.store_full_policy": "fail"}
    )
    c = amqp_conn(b)
    try:
        s = c.create_sender("limits.amqp.fail")
        with pytest.raises(SendException) as info:
            for _ in range(100):
                s.send(Message(body=b"a" * 4096, durable=True))
        assert "resource-limit-exceeded" in str(info.value.state) or info.value.state
        # Non-durable messages are not stored and still go in.
        s.send(Message(body=b"n"))
    finally:
        c.close()


def test_store_full_block_policy_withholds_credit(broker_factory) -> None:
    limit = 64 * 1024
    total = 1500
    b: BrokerThread = broker_factory(**{"destinations.store_limit": limit, "store.fsync": "never"})
    sent = threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        # The connection is this thread's alone (proton is not thread-safe).
        try:
            c = amqp_conn(b)
            s = c.create_sender("limits.amqp.block")
            for _ in range(total):
                s.send(Message(body=b"b" * 4096, durable=True))
            c.close()
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)
        finally:
            sent.set()

    threading.Thread(target=produce, daemon=True).start()
    stored = lambda: b.call(lambda: b.broker.core.store.stored_bytes)  # noqa: E731
    pause = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if stored() > limit:
            break
        pause.wait(0.01)
    # 6 MB to send, 64 KiB of store: once the credit it had (1000 transfers) is used up,
    # the producer gets no more.
    assert not sent.wait(1.0)
    assert limit < stored() < limit + 1100 * (4096 + MESSAGE_OVERHEAD)
    # Consuming makes room: the producer gets credit again and finishes.
    c = amqp_conn(b)
    try:
        r = c.create_receiver("limits.amqp.block", credit=100)
        for _ in range(total):
            r.receive(timeout=WAIT)
            r.accept()
    finally:
        c.close()
    assert sent.wait(WAIT) and not errors


def test_transfers_beyond_link_credit_detach_the_link(broker_factory) -> None:
    # Proton does not refuse a transfer the peer had no credit for, so withholding
    # credit from a producer to a full queue bounds only producers that obey it.
    from proton import Data, Described, uint, ulong

    def frame(code: int, fields: list[object], payload: bytes = b"") -> bytes:
        d = Data()
        d.put_object(Described(ulong(code), fields))
        body = d.encode() + payload
        return struct.pack(">IBBH", 8 + len(body), 2, 0, 0) + body

    limit = 64 * 1024
    b: BrokerThread = broker_factory(**{"destinations.queue_memory_limit": limit})
    sock = socket.create_connection(("127.0.0.1", b.broker.port("amqp")), WAIT)
    target = Described(ulong(0x29), ["limits.amqp.credit"])
    sock.sendall(
        b"AMQP\x00\x01\x00\x00"
        + frame(0x10, ["credit-violator"])
        + frame(0x11, [None, uint(0), uint(5000), uint(5000)])
        + frame(0x12, ["p", uint(0), False, None, None, None, target])
    )
    got = b""
    sock.settimeout(WAIT)
    while b"\x00S\x13" not in got:  # the broker's first flow: 1000 credits
        got += sock.recv(65536)
    payload = Message(body=b"c" * 1024).encode()
    transfers = b"".join(
        frame(0x14, [uint(0), uint(i), b"%d" % i, uint(0), True], payload) for i in range(3000)
    )
    with contextlib.suppress(OSError):
        sock.sendall(transfers)
    while b"transfer-limit-exceeded" not in got:
        chunk = sock.recv(65536)
        assert chunk, got
        got += chunk
    sock.close()
    # The queue took what the credit allowed (1000 transfers at most), not all 3000.
    depth = b.stats("limits.amqp.credit").depth
    assert 0 < depth <= 1000
