"""Topics over STOMP: fan-out, no history for late joiners, slow-consumer policies."""

from __future__ import annotations

import pytest

from tests.conftest import bodies, quiet, subscribe

VERSIONS = ["1.0", "1.1", "1.2"]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_subscriber_gets_each_message(connect, version: str) -> None:
    subs = [connect(version) for _ in range(3)]
    for i, c in enumerate(subs):
        subscribe(c, "/topic/news", f"s{i}")
    producer = connect(version)
    for i in range(5):
        producer.send("/topic/news", f"m{i}")
    producer.sync()

    expected = [f"m{i}" for i in range(5)]
    for i, c in enumerate(subs):
        got = c.listener.take(5)
        assert bodies(got) == expected
        assert {f.headers["destination"] for f in got} == {"/topic/news"}
        assert {f.headers["subscription"] for f in got} == {f"s{i}"}
        assert quiet(c)


def test_two_subscriptions_on_one_connection_each_get_a_copy(connect) -> None:
    c = connect()
    subscribe(c, "/topic/dup", "a")
    subscribe(c, "/topic/dup", "b")
    c.send("/topic/dup", "hello")
    got = c.listener.take(2)
    assert sorted(f.headers["subscription"] for f in got) == ["a", "b"]
    assert bodies(got) == ["hello", "hello"]
    assert quiet(c)


def test_late_subscriber_does_not_get_earlier_messages(connect) -> None:
    early = connect()
    subscribe(early, "/topic/late", "early")
    producer = connect()
    producer.send("/topic/late", "before")
    producer.sync()
    assert early.listener.next().body == "before"

    late = connect()
    subscribe(late, "/topic/late", "late")
    producer.send("/topic/late", "after")
    producer.sync()

    assert late.listener.next().body == "after"
    assert quiet(late)
    assert early.listener.next().body == "after"


def test_topic_without_subscribers_keeps_nothing(connect) -> None:
    producer = connect()
    producer.send("/topic/void", "lost")
    producer.sync()
    c = connect()
    subscribe(c, "/topic/void", "s1")
    assert quiet(c)


def test_slow_subscriber_drop_oldest(broker_factory, connect) -> None:
    b = broker_factory(**{"destinations.topic_pending_limit": 5})
    slow = connect(port=b.stomp_port)
    subscribe(
        slow, "/topic/ticks", "slow", ack="client-individual", **{"activemq.prefetchSize": "1"}
    )
    fast = connect(port=b.stomp_port)
    subscribe(fast, "/topic/ticks", "fast")
    producer = connect(port=b.stomp_port)
    for i in range(20):
        producer.send("/topic/ticks", f"m{i}")
    producer.sync()

    assert bodies(fast.listener.take(20)) == [f"m{i}" for i in range(20)]

    first = slow.listener.next()
    assert first.body == "m0"
    assert quiet(slow)
    stats = b.stats("ticks", "topic")
    assert stats is not None
    # one in flight + the 5 newest pending; the 14 in between were dropped
    assert stats.discarded == 14

    received = []
    frame = first
    for _ in range(5):
        slow.ack_frame(frame)
        frame = slow.listener.next()
        received.append(frame.body)
    assert received == [f"m{i}" for i in range(15, 20)]
    slow.ack_frame(frame)
    assert quiet(slow)


def test_slow_subscriber_disconnect_policy(broker_factory, connect) -> None:
    b = broker_factory(
        **{
            "destinations.topic_pending_limit": 5,
            "destinations.slow_consumer_policy": "disconnect",
        }
    )
    # The slow subscriber comes first in the topic's list: dropping it while the topic
    # is fanning a message out must not make the next subscriber miss that message.
    slow = connect(port=b.stomp_port)
    subscribe(
        slow, "/topic/feed", "slow", ack="client-individual", **{"activemq.prefetchSize": "1"}
    )
    fast = connect(port=b.stomp_port)
    subscribe(fast, "/topic/feed", "fast")
    producer = connect(port=b.stomp_port)
    for i in range(20):
        producer.send("/topic/feed", f"m{i}")
    producer.sync()

    err = slow.listener.error()
    assert err.headers.get("message")
    assert slow.listener.disconnected.wait(5)
    assert bodies(fast.listener.take(20, timeout=2)) == [f"m{i}" for i in range(20)]
    assert quiet(fast)
    assert fast.is_connected()
    stats = b.stats("feed", "topic")
    assert stats is not None
    assert stats.consumers == 1
