"""Backpressure end to end: a slow consumer stops dispatch, a full queue stops producers."""

from __future__ import annotations

import socket
import threading

import stomp

from tests.conftest import WAIT, BrokerThread, RawClient, headers_of, wait_until

BIG = 64 * 1024


def test_consumer_that_stops_reading_stops_dispatch(broker: BrokerThread, connect) -> None:
    total = 300  # ~19 MiB: far beyond socket buffers plus the connection's write buffer
    lazy = RawClient(broker.stomp_port)
    lazy.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    lazy.connect("1.2")
    lazy.send(b"SUBSCRIBE\ndestination:/queue/flow.slow\nid:1\nack:auto\nreceipt:s\n\n\x00")
    assert lazy.frame().startswith(b"RECEIPT")
    producer = connect()
    body = b"x" * BIG
    for i in range(total):
        producer.send("/queue/flow.slow", body, headers={"n": str(i)})
    producer.sync()
    stats = broker.stats("flow.slow")
    # The broker stopped handing messages to a consumer that does not read.
    assert stats.dispatched < total / 2
    assert stats.depth > total / 2
    # Once it reads again every message arrives, in order, exactly once.
    seen = []
    while len(seen) < total:
        command, headers = headers_of(lazy.frame())
        assert command == "MESSAGE"
        seen.append(int(headers["n"]))
    assert seen == list(range(total))
    lazy.close()


def test_producer_to_full_queue_waits_until_it_drains(broker_factory, connect) -> None:
    limit = 256 * 1024
    b: BrokerThread = broker_factory(**{"destinations.queue_memory_limit": limit})
    total = 400  # 25 MiB against a 256 KiB queue limit
    done = threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            conn = stomp.Connection12([("127.0.0.1", b.stomp_port)])
            conn.connect(wait=True)
            body = b"y" * BIG
            for i in range(total):
                conn.send("/queue/flow.full", body, headers={"n": str(i)})
            conn.disconnect()
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=produce, daemon=True).start()
    assert wait_until(lambda: (s := b.stats("flow.full")) is not None and s.memory > limit)
    # The producer is held back: it cannot finish while nobody consumes, and the queue
    # holds at most the limit plus what one read from the socket can carry.
    assert not done.wait(0.5)
    assert b.stats("flow.full").memory <= limit + 2 * 1024 * 1024
    consumer = connect(port=b.stomp_port)
    consumer.subscribe("/queue/flow.full", id="c", ack="auto")
    got = [int(f.headers["n"]) for f in consumer.listener.take(total, timeout=30)]
    assert got == list(range(total))
    assert done.wait(WAIT)
    assert not errors
