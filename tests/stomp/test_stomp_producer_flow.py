"""Producer flow control as a per-destination policy, seen by stomp.py producers (issue
12): a queue over its memory limit pauses a fast producer (its socket is not read) until
a consumer drains it; with `producer_flow_control = false` the producer is not paused and
the queue keeps the messages past its limit, within `overflow_memory_limit`; with
`send_fail_if_no_space` the send is refused with ActiveMQ 5.17.2's ERROR (seen on a
private ActiveMQ with sendFailIfNoSpace: the message header below, `receipt-id`, the
connection kept open). Nothing accepted is lost."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import stomp

from tests.conftest import WAIT, BrokerThread, Collector, RawClient, headers_of, wait_until

LIMIT = 256 * 1024
OVERFLOW = 2 * 1024 * 1024
BIG = 64 * 1024
# What the broker may take beyond a limit before it stops reading a producer: the
# frames of one read (the socket's buffer).
SLACK = 2 * 1024 * 1024
POLICIES = [
    {"pattern": "pfc.block.>", "kind": "queue", "memory_limit": LIMIT},
    {
        "pattern": "pfc.free.>",
        "kind": "queue",
        "memory_limit": LIMIT,
        "producer_flow_control": False,
    },
]


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, BrokerThread]]:
    """One broker with the policies above, one that refuses instead of pausing."""
    base: Path = tmp_path_factory.mktemp("pfc")
    made = {
        "pfc": BrokerThread(
            base / "pfc",
            **{
                "destinations.policies": POLICIES,
                "destinations.overflow_memory_limit": OVERFLOW,
            },
        ).start(),
        "fail": BrokerThread(
            base / "fail",
            **{
                "destinations.queue_memory_limit": LIMIT,
                "destinations.send_fail_if_no_space": True,
            },
        ).start(),
    }
    yield made
    for b in made.values():
        b.stop()


@pytest.fixture
def client() -> Iterator[Callable[[BrokerThread], tuple[stomp.Connection12, Collector]]]:
    conns: list[stomp.Connection12] = []

    def make(b: BrokerThread) -> tuple[stomp.Connection12, Collector]:
        conn = stomp.Connection12([("127.0.0.1", b.stomp_port)])
        listener = Collector()
        conn.set_listener("c", listener)
        conn.connect(wait=True)
        conns.append(conn)
        return conn, listener

    yield make
    for conn in conns:
        with contextlib.suppress(Exception):
            conn.disconnect()


def producer(b: BrokerThread, dest: str, start: int, total: int) -> threading.Event:
    """A stomp.py producer in a thread sending `total` 64 KiB non-persistent messages;
    the event is set once it has sent them all and seen the last one's receipt."""
    done = threading.Event()

    def run() -> None:
        conn = stomp.Connection12([("127.0.0.1", b.stomp_port)])
        listener = Collector()
        conn.set_listener("p", listener)
        conn.connect(wait=True)
        body = b"y" * BIG
        for i in range(start, start + total - 1):
            conn.send(dest, body, headers={"n": str(i)})
        conn.send(dest, body, headers={"n": str(start + total - 1), "receipt": "last"})
        if listener.receipt(timeout=60) == "last":
            done.set()
        conn.disconnect()

    threading.Thread(target=run, daemon=True).start()
    return done


def drain(listener: Collector, total: int) -> list[int]:
    return [int(f.headers["n"]) for f in listener.take(total, timeout=30)]


def test_fast_producer_is_paused_until_a_consumer_drains(brokers, client) -> None:
    b = brokers["pfc"]
    total = 100  # 6.4 MB against a 256 KiB limit
    done = producer(b, "/queue/pfc.block.a", 0, total)
    assert wait_until(lambda: (s := b.stats("pfc.block.a")) is not None and s.memory > LIMIT)
    assert not done.wait(0.5)
    # Paused: the queue holds its limit and what one read carried, not the 6.4 MB.
    assert b.stats("pfc.block.a").memory <= LIMIT + SLACK
    # Other clients are not held back: a send to another queue is received.
    other, other_l = client(b)
    other.send("/queue/pfc.other", "hello", headers={"receipt": "o"})
    assert other_l.receipt() == "o"
    consumer, listener = client(b)
    consumer.subscribe("/queue/pfc.block.a", id="c", ack="auto")
    assert drain(listener, total) == list(range(total))
    assert done.wait(WAIT)


def test_without_flow_control_the_producer_is_not_paused(brokers, client) -> None:
    b = brokers["pfc"]
    first = 24  # 1.5 MB: past the queue's 256 KiB, within the 2 MiB overflow
    done = producer(b, "/queue/pfc.free.a", 0, first)
    # Every message taken with nobody consuming.
    assert done.wait(WAIT)
    stats = b.stats("pfc.free.a")
    assert stats.depth == first and stats.memory > 4 * LIMIT
    # Past the overflow bound memory stays bounded: the producer is paused after all.
    more = 76
    done = producer(b, "/queue/pfc.free.a", first, more)
    assert wait_until(lambda: b.stats("pfc.free.a").memory > LIMIT + OVERFLOW)
    assert not done.wait(0.5)
    assert b.stats("pfc.free.a").memory <= LIMIT + OVERFLOW + SLACK
    consumer, listener = client(b)
    consumer.subscribe("/queue/pfc.free.a", id="c", ack="auto")
    assert drain(listener, first + more) == list(range(first + more))
    assert done.wait(WAIT)
    assert wait_until(lambda: b.stats("pfc.free.a").memory == 0)


def test_send_fail_if_no_space_answers_activemqs_error(brokers, client) -> None:
    b = brokers["fail"]
    raw = RawClient(b.stomp_port)
    raw.connect("1.2")
    body = b"f" * BIG
    for i in range(100):
        raw.send(
            f"SEND\ndestination:/queue/pfc.fail\nreceipt:r{i}\nn:{i}\n\n".encode() + body + b"\x00"
        )
        frame = raw.frame()
        if frame.startswith(b"ERROR"):
            break
        assert frame.startswith(b"RECEIPT")
    command, headers = headers_of(frame)
    assert command == "ERROR", "never refused"
    assert headers["receipt-id"] == f"r{i}"
    # (STOMP 1.2 escapes a header's colons on the wire; stomp.py shows ActiveMQ's as here)
    assert headers["message"].replace("\\c", ":") == (
        "Usage Manager Memory Limit reached on queue://pfc.fail. See "
        "http://activemq.apache.org/producer-flow-control.html for more info"
    )
    # As ActiveMQ: refused at the limit (16 of 64 KiB fit 1 MiB there; here 256 KiB).
    assert LIMIT // BIG <= i <= LIMIT // BIG + 1
    # The connection stays open and other queues take its sends.
    raw.send(b"SEND\ndestination:/queue/pfc.fail.other\nreceipt:ok\n\nx\x00")
    assert headers_of(raw.frame())[1]["receipt-id"] == "ok"
    # Nothing accepted is lost, the refused one is not there.
    consumer, listener = client(b)
    consumer.subscribe("/queue/pfc.fail", id="c", ack="auto")
    assert drain(listener, i) == list(range(i))
    assert listener.none_within(0.2)
    # Drained: the queue takes sends again.
    raw.send(b"SEND\ndestination:/queue/pfc.fail\nreceipt:again\n\nx\x00")
    assert headers_of(raw.frame())[1]["receipt-id"] == "again"
    raw.close()
