"""Route + dispatch through broker.core.Core to trivial in-memory consumers.

python -m pytest bench/micro --benchmark-only
"""

from __future__ import annotations

import pytest

from broker.core import QUEUE, TOPIC, Address, Core, Message, Subscription

BODY = b"x" * 256


class CountingConsumer:
    """The smallest Consumer: counts deliveries (auto ack, so credit never runs out)."""

    def __init__(self) -> None:
        self.delivered = 0

    def deliver(self, sub: Subscription, msg: Message) -> None:
        self.delivered += 1

    def slow(self, sub: Subscription) -> None:
        raise AssertionError("never slow")


@pytest.mark.parametrize(
    ("kind", "subscribers"),
    [(QUEUE, 1), (QUEUE, 8), (TOPIC, 1), (TOPIC, 8)],
    ids=["queue-1", "queue-8-competing", "topic-1", "topic-8-fanout"],
)
def test_send_route_dispatch(benchmark, kind: str, subscribers: int) -> None:
    """core.send of one new Message; a queue hands it to one of its consumers, a topic to
    every subscriber."""
    core = Core()
    address = Address(kind, "bench")
    consumers = [CountingConsumer() for _ in range(subscribers)]
    for c in consumers:
        core.subscribe(address, c, ack_mode="auto")

    def send() -> None:
        core.send(address, Message(BODY, persistent=True))

    benchmark(send)
    delivered = sum(c.delivered for c in consumers)
    assert delivered >= (subscribers if kind == TOPIC else 1)


def test_client_individual_deliver_ack(benchmark) -> None:
    """One message through a client-individual subscription: send, deliver, ack."""
    core = Core()
    address = Address(QUEUE, "bench")
    consumer = CountingConsumer()
    sub = core.subscribe(address, consumer, ack_mode="client-individual", prefetch=1000)

    def round_trip() -> None:
        msg = Message(BODY)
        core.send(address, msg)
        sub.ack(msg.id)

    benchmark(round_trip)
    assert consumer.delivered > 0 and not sub.inflight
