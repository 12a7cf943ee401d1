"""Advisory topics seen from STOMP (and AMQP producers): what ActiveMQ's STOMP transport
shows of an advisory — type `Advisory`, the origin broker properties, the counts, an
empty body — for connections, consumers, producers, destinations, expiry and
dead-lettering, the replay to a new advisory subscriber, and advisory_support off."""

from __future__ import annotations

import contextlib
import time

from proton import Message as AmqpMessage
from proton.utils import BlockingConnection

from tests.conftest import WAIT, quiet, subscribe

ADV = "/topic/ActiveMQ.Advisory."


def is_advisory(frame, topic: str) -> bool:
    h = frame.headers
    return (
        h["destination"] == ADV + topic
        and h["type"] == "Advisory"
        and h["originBrokerName"]
        and h["originBrokerId"]
        and h["originBrokerURL"].startswith("stomp://127.0.0.1:")
        and frame.body == ""
        and "content-length" not in h
        and h.get("persistent") != "true"
    )


def test_consumer_advisories_count_consumers_as_they_come_and_go(connect) -> None:
    watch = connect()
    subscribe(watch, ADV + "Consumer.Queue.orders", "w")
    assert quiet(watch)  # no consumer yet: nothing to replay
    a = connect()
    subscribe(a, "/queue/orders", "a")
    b = connect()
    subscribe(b, "/queue/orders", "b")
    first, second = watch.listener.take(2)
    assert is_advisory(first, "Consumer.Queue.orders")
    assert [first.headers["consumerCount"], second.headers["consumerCount"]] == ["1", "2"]
    a.unsubscribe("a")
    a.sync()
    gone = watch.listener.next()
    assert is_advisory(gone, "Consumer.Queue.orders")
    assert gone.headers["consumerCount"] == "1"
    b.disconnect()  # a closing connection's subscriptions end: advised too
    assert watch.listener.next().headers["consumerCount"] == "0"
    # Other destinations' consumers are other topics.
    subscribe(a, "/queue/invoices", "i")
    subscribe(a, "/topic/orders", "t")
    assert quiet(watch)


def test_a_new_advisory_subscriber_gets_what_exists(connect) -> None:
    c = connect()
    subscribe(c, "/topic/prices", "p1")
    subscribe(c, "/topic/prices", "p2", selector="a = 1")
    watch = connect()
    subscribe(watch, ADV + "Consumer.Topic.prices", "w")
    replayed = watch.listener.take(2)
    assert all(is_advisory(f, "Consumer.Topic.prices") for f in replayed)
    assert [f.headers["consumerCount"] for f in replayed] == ["2", "2"]
    # The replay went to the new subscriber only.
    other = connect()
    subscribe(other, ADV + "Consumer.Topic.prices", "w2")
    assert len(other.listener.take(2)) == 2
    assert quiet(watch)


def test_connection_advisories(connect) -> None:
    watch = connect()
    subscribe(watch, ADV + "Connection", "w")
    # The watcher's own connection exists already: replayed to it.
    assert is_advisory(watch.listener.next(), "Connection")
    assert quiet(watch)
    c = connect(headers={"client-id": "app-1"})
    assert is_advisory(watch.listener.next(), "Connection")
    c.disconnect()
    assert is_advisory(watch.listener.next(), "Connection")
    assert quiet(watch)


def test_destination_advisories_on_create_and_delete(connect) -> None:
    watch = connect()
    watch.sync()  # creates the queue the test clients' round trips use
    subscribe(watch, ADV + "Queue", "q")
    subscribe(watch, ADV + "Topic", "t")
    subscribe(watch, ADV + "TempQueue", "tq")
    # Replayed: that one queue; no topic (advisory topics are never advised).
    assert watch.listener.next().headers["destination"] == ADV + "Queue"
    assert quiet(watch)
    c = connect()
    c.send("/queue/fresh", "x")
    c.send("/topic/fresh", "y")
    c.send("/queue/fresh", "again")  # exists now: no second advisory
    subscribe(c, "/temp-queue/replies", "r")
    got = [f.headers["destination"] for f in watch.listener.take(3)]
    assert got == [ADV + "Queue", ADV + "Topic", ADV + "TempQueue"]
    c.disconnect()  # the temporary queue goes with its connection
    assert watch.listener.next().headers["destination"] == ADV + "TempQueue"
    assert quiet(watch)
    # A later subscriber is told of each destination that exists.
    late = connect()
    subscribe(late, ADV + "Queue", "q")
    assert len(late.listener.take(2)) == 2  # the round-trip queue and /queue/fresh
    assert quiet(late)


def test_expired_and_dlq_advisories(connect) -> None:
    watch = connect()
    subscribe(watch, ADV + "Expired.Queue.ttl", "e")
    subscribe(watch, ADV + "MessageDLQd.Queue.work", "d")
    c = connect()
    c.send("/queue/ttl", "late", headers={"expires": str(int(time.time() * 1000) - 1000)})
    c.sync()
    subscribe(c, "/queue/ttl", "t")  # dispatch finds it expired
    expired = watch.listener.next()
    assert is_advisory(expired, "Expired.Queue.ttl")
    assert expired.headers["orignalMessageId"].startswith("ID:")
    subscribe(c, "/queue/work", "w", ack="client-individual")
    c.send("/queue/work", "poison", headers={"persistent": "true"})
    c.nack_frame(c.listener.next())
    assert is_advisory(watch.listener.next(), "MessageDLQd.Queue.work")
    assert quiet(watch)


def test_producer_advisories_from_amqp_senders(broker, connect) -> None:
    watch = connect()
    subscribe(watch, ADV + "Producer.Queue.feed", "w")
    amqp = BlockingConnection(f"127.0.0.1:{broker.broker.port('amqp')}", timeout=WAIT)
    try:
        sender = amqp.create_sender("feed")
        sender.send(AmqpMessage(body="hi"))
        came = watch.listener.next()
        assert is_advisory(came, "Producer.Queue.feed")
        assert came.headers["producerCount"] == "1"
        second = amqp.create_sender("feed", name="second")
        assert watch.listener.next().headers["producerCount"] == "2"
        second.close()
        assert watch.listener.next().headers["producerCount"] == "1"
    finally:
        with contextlib.suppress(Exception):
            amqp.close()
    # The connection's last producer goes with it.
    assert watch.listener.next().headers["producerCount"] == "0"
    # STOMP producers are anonymous (no destination), as in ActiveMQ: no advisory.
    watch.send("/queue/feed", "from stomp")
    assert quiet(watch)


def test_slow_consumer_advisory_only_where_the_policy_asks(broker_factory, connect) -> None:
    policy = [
        {
            "pattern": "ticks",
            "kind": "topic",
            "topic_pending_limit": 2,
            "advisory_for_slow_consumers": True,
        }
    ]
    b = broker_factory(**{"destinations.policies": policy})
    watch = connect(port=b.stomp_port)
    subscribe(watch, ADV + "SlowConsumer.Topic.ticks", "w")
    subscribe(watch, ADV + "SlowConsumer.Topic.other", "o")
    slow = connect(port=b.stomp_port)
    subscribe(slow, "/topic/ticks", "s", ack="client-individual", **{"activemq.prefetchSize": "1"})
    subscribe(slow, "/topic/other", "o", ack="client-individual", **{"activemq.prefetchSize": "1"})
    p = connect(port=b.stomp_port)
    for i in range(4):
        p.send("/topic/ticks", f"t{i}")
        p.send("/topic/other", f"o{i}")
    p.sync()
    frame = watch.listener.next()
    assert is_advisory(frame, "SlowConsumer.Topic.ticks")
    assert frame.headers["consumerId"]


def test_advisory_support_off_publishes_nothing(broker_factory, connect) -> None:
    b = broker_factory(**{"broker.advisory_support": False})
    watch = connect(port=b.stomp_port)
    subscribe(watch, ADV + "Consumer.Queue.orders", "w")
    subscribe(watch, ADV + "Connection", "c")
    subscribe(watch, ADV + "Queue", "q")
    c = connect(port=b.stomp_port)
    subscribe(c, "/queue/orders", "a")
    c.disconnect()
    assert quiet(watch, 0.2)


def test_a_wildcard_subscriber_gets_advisories_of_topics_not_created_yet(connect) -> None:
    watch = connect()
    subscribe(watch, ADV + "Consumer.Queue.>", "w")
    c = connect()
    subscribe(c, "/queue/new.one", "a")
    subscribe(c, "/queue/new.two", "b")
    got = sorted(f.headers["destination"] for f in watch.listener.take(2))
    assert got == [ADV + "Consumer.Queue.new.one", ADV + "Consumer.Queue.new.two"]
