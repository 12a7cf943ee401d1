"""Producer flow control as a per-destination policy, seen by proton senders (issue 12):
a queue over its memory limit withholds link credit from a producer of non-durable
messages until a consumer drains it; durable messages to a durable queue page out and do
not hold the producer back; `producer_flow_control = false` does not withhold credit;
`send_fail_if_no_space` rejects the transfer with amqp:resource-limit-exceeded."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from proton import Message
from proton.utils import BlockingConnection, SendException

from broker.core.message import MESSAGE_OVERHEAD
from tests.conftest import WAIT, BrokerThread, wait_until

LIMIT = 64 * 1024
BODY = b"a" * 1024
# Credit a producer was given before the queue filled (PRODUCER_CREDIT, 1000 transfers).
SLACK = 1100 * (len(BODY) + MESSAGE_OVERHEAD)


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, BrokerThread]]:
    base: Path = tmp_path_factory.mktemp("amqp-pfc")
    made = {
        "pfc": BrokerThread(
            base / "pfc",
            **{
                "store.fsync": "never",
                "destinations.overflow_memory_limit": 4 * 1024 * 1024,
                "destinations.policies": [
                    {"pattern": "apfc.block.>", "memory_limit": LIMIT},
                    {
                        "pattern": "apfc.free.>",
                        "memory_limit": LIMIT,
                        "producer_flow_control": False,
                    },
                ],
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


def amqp_conn(b: BrokerThread) -> BlockingConnection:
    return BlockingConnection(f"127.0.0.1:{b.broker.port('amqp')}", timeout=WAIT)


def produce(b: BrokerThread, address: str, total: int, durable: bool) -> threading.Event:
    """Send `total` messages from a thread (proton is not thread-safe: its own connection)."""
    done = threading.Event()

    def run() -> None:
        c = amqp_conn(b)
        s = c.create_sender(address)
        for i in range(total):
            s.send(Message(body=BODY, durable=durable, properties={"n": i}))
        c.close()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done


def consume(b: BrokerThread, address: str, total: int) -> list[int]:
    c = amqp_conn(b)
    try:
        r = c.create_receiver(address, credit=200)
        got = []
        for _ in range(total):
            got.append(r.receive(timeout=WAIT).properties["n"])
            r.accept()
        return got
    finally:
        c.close()


def test_credit_is_withheld_until_a_consumer_drains(brokers) -> None:
    b = brokers["pfc"]
    total = 1500  # 1.5 MB against 64 KiB, more than the credit it has
    done = produce(b, "apfc.block.a", total, durable=False)
    assert wait_until(lambda: (s := b.stats("apfc.block.a")) is not None and s.memory > LIMIT)
    assert not done.wait(0.5)
    assert b.stats("apfc.block.a").memory <= LIMIT + SLACK
    assert consume(b, "apfc.block.a", total) == list(range(total))
    assert done.wait(WAIT)


def test_durable_messages_page_out_and_do_not_hold_the_producer(brokers) -> None:
    b = brokers["pfc"]
    total = 1500
    assert produce(b, "apfc.block.d", total, durable=True).wait(WAIT)
    s = b.stats("apfc.block.d")
    assert s.depth == total and s.memory < total * len(BODY) / 2
    assert consume(b, "apfc.block.d", total) == list(range(total))


def test_without_flow_control_credit_is_not_withheld(brokers) -> None:
    b = brokers["pfc"]
    total = 1500  # past the queue's limit, within the 4 MiB overflow
    assert produce(b, "apfc.free.a", total, durable=False).wait(WAIT)
    assert b.stats("apfc.free.a").memory > total * len(BODY)
    assert consume(b, "apfc.free.a", total) == list(range(total))


def test_send_fail_if_no_space_rejects_the_transfer(brokers) -> None:
    b = brokers["fail"]
    c = amqp_conn(b)
    try:
        s = c.create_sender("apfc.fail")
        sent = 0
        with pytest.raises(SendException) as info:
            for i in range(200):
                s.send(Message(body=BODY, properties={"n": i}))
                sent += 1
        cond = info.value.state
        # Refused at the limit (each message counts its body, headers and overhead).
        assert LIMIT // (2 * (len(BODY) + MESSAGE_OVERHEAD)) <= sent <= LIMIT // len(BODY) + 1
        assert cond is not None
        # The connection still works: another queue takes transfers.
        c.create_sender("apfc.fail.other").send(Message(body=b"x"))
    finally:
        c.close()
    assert consume(b, "apfc.fail", sent) == list(range(sent))
