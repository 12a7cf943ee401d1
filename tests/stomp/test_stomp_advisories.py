"""Advisory topics seen from STOMP (and AMQP producers): what ActiveMQ's STOMP transport
shows of an advisory — type `Advisory`, priority 0, the origin broker properties, the
counts, `transformation:jms-advisory-json` and the event's OpenWire structure as JSON
(ConnectionInfo, ConsumerInfo, DestinationInfo, RemoveInfo, the advised message; shapes
compared live with ActiveMQ 5.17.2, bench.compare_configured) — for connections,
consumers, producers, destinations, expiry and dead-lettering, the replay to a new
advisory subscriber, and advisory_support off."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

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
        and h["transformation"] == "jms-advisory-json"
        and h["priority"] == "0"
        and len(json.loads(frame.body)) == 1
        and "content-length" not in h
        and h.get("persistent") != "true"
    )


def info(frame) -> tuple[str, dict[str, Any]]:
    """An advisory's body: the structure's class name and its fields."""
    ((name, fields),) = json.loads(frame.body).items()
    return name, fields


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
    name, consumer = info(first)
    assert name == "ConsumerInfo"
    assert consumer["destination"] == {"@class": "ActiveMQQueue", "string": "orders", "null": ""}
    assert consumer["prefetchSize"] == 1000 and consumer["priority"] == 0
    assert consumer["consumerId"]["connectionId"].startswith("ID:")
    a.unsubscribe("a")
    a.sync()
    gone = watch.listener.next()
    assert is_advisory(gone, "Consumer.Queue.orders")
    assert gone.headers["consumerCount"] == "1"
    name, removed = info(gone)
    assert name == "RemoveInfo" and removed["objectId"]["@class"] == "ConsumerId"
    assert {k: v for k, v in removed["objectId"].items() if k != "@class"} == consumer["consumerId"]
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
    # STOMP selectors are ActiveMQ's string-converting ones, and say so.
    assert [info(f)[1].get("selector") for f in replayed] == [
        None,
        "convert_string_expressions:a = 1",
    ]
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
    came = watch.listener.next()
    assert is_advisory(came, "Connection")
    name, connection = info(came)
    assert name == "ConnectionInfo" and connection["clientId"] == "app-1"
    assert connection["clientIp"] == "127.0.0.1" and "userName" not in connection
    c.disconnect()
    went = watch.listener.next()
    assert is_advisory(went, "Connection")
    assert info(went) == (
        "RemoveInfo",
        {
            "commandId": 0,
            "responseRequired": True,
            "objectId": {"@class": "ConnectionId", "value": connection["connectionId"]["value"]},
            "lastDeliveredSequenceId": -2,
        },
    )
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
    frames = watch.listener.take(3)
    got = [f.headers["destination"] for f in frames]
    assert got == [ADV + "Queue", ADV + "Topic", ADV + "TempQueue"]
    name, created = info(frames[0])
    assert name == "DestinationInfo" and created["operationType"] == 0
    assert created["destination"] == {"@class": "ActiveMQQueue", "string": "fresh", "null": ""}
    assert "connectionId" not in created  # no creating connection known
    temp = info(frames[2])[1]
    assert temp["destination"]["@class"] == "ActiveMQTempQueue"
    # Its connection's id, the prefix of its name as in ActiveMQ.
    assert temp["destination"]["string"].startswith(temp["connectionId"]["value"] + ":")
    c.disconnect()  # the temporary queue goes with its connection
    gone = watch.listener.next()
    assert gone.headers["destination"] == ADV + "TempQueue"
    assert info(gone)[1]["operationType"] == 1  # removed
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
    # The message, its body left out; stomp.py sends content-length: a bytes message.
    name, message = info(expired)
    assert (
        name == "ActiveMQBytesMessage"
        and message["messageId"]["value"] == (expired.headers["orignalMessageId"])
    )
    assert message["destination"]["string"] == "ttl" and "late" not in expired.body
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
    """As ActiveMQ's TopicSubscription: advised once when a message comes while more
    than its prefetch wait beyond the prefetch (not at the pending limit), never for a
    prefetch of 1."""
    policy = [{"pattern": "ticks", "kind": "topic", "advisory_for_slow_consumers": True}]
    b = broker_factory(**{"destinations.policies": policy})
    watch = connect(port=b.stomp_port)
    subscribe(watch, ADV + "SlowConsumer.Topic.ticks", "w")
    subscribe(watch, ADV + "SlowConsumer.Topic.other", "o")
    slow = connect(port=b.stomp_port)
    subscribe(slow, "/topic/ticks", "s", ack="client", **{"activemq.prefetchSize": "10"})
    subscribe(slow, "/topic/other", "o", ack="client", **{"activemq.prefetchSize": "10"})
    one = connect(port=b.stomp_port)
    subscribe(one, "/topic/ticks", "1", ack="client", **{"activemq.prefetchSize": "1"})
    p = connect(port=b.stomp_port)
    # ActiveMQ 5.17.2 live (sends 150 ms apart, bench.compare_configured): prefetch 10,
    # advised at the 22nd message.
    for i in range(21):  # 10 dispatched, 11 pending: not yet
        p.send("/topic/ticks", f"t{i}")
        p.send("/topic/other", f"o{i}")
    p.sync()
    assert quiet(watch, 0.2)
    p.send("/topic/ticks", "t21")  # comes while 11 (more than the prefetch) wait
    p.sync()
    frame = watch.listener.next()
    assert is_advisory(frame, "SlowConsumer.Topic.ticks")
    name, consumer = info(frame)
    assert name == "ConsumerInfo" and consumer["prefetchSize"] == 10
    cid = consumer["consumerId"]
    assert frame.headers["consumerId"] == f"{cid['connectionId']}:-1:{cid['value']}"
    for i in range(50):  # still slow: not advised again
        p.send("/topic/ticks", f"more{i}")
    p.sync()
    assert quiet(watch, 0.2)


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
