"""Temporary destinations (request/reply) and message expiry over STOMP."""

from __future__ import annotations

import threading
import time

import pytest

from tests.conftest import Client, quiet, subscribe

VERSIONS = ["1.0", "1.1", "1.2"]


def disconnect(c: Client) -> None:
    c.disconnect()
    assert c.listener.disconnected.wait(5)


def now_ms() -> int:
    return int(time.time() * 1000)


# -- temporary queues -----------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_temp_queue_request_reply(connect, version: str) -> None:
    responder = connect(version)
    subscribe(responder, "/queue/requests", "work")
    requester = connect(version)
    subscribe(requester, "/temp-queue/replies", "replies")
    requester.send("/queue/requests", "ping", headers={"reply-to": "/temp-queue/replies"})

    request = responder.listener.next()
    assert request.body == "ping"
    reply_to = request.headers["reply-to"]
    assert reply_to.startswith("/remote-temp-queue/")
    assert reply_to != "/remote-temp-queue/"
    responder.send(reply_to, "pong", headers={"correlation-id": "c-1"}, receipt="replied")
    assert responder.listener.receipt() == "replied"

    reply = requester.listener.next()
    assert reply.body == "pong"
    assert reply.headers["correlation-id"] == "c-1"
    assert reply.headers["destination"] == "/temp-queue/replies"
    assert reply.headers["subscription"] == "replies"
    assert quiet(responder)


def test_temp_queue_named_only_in_reply_to_exists(connect) -> None:
    responder = connect()
    subscribe(responder, "/queue/requests-rt", "work")
    requester = connect()
    requester.send("/queue/requests-rt", "ping", headers={"reply-to": "/temp-queue/later"})
    reply_to = responder.listener.next().headers["reply-to"]
    assert reply_to.startswith("/remote-temp-queue/")
    responder.send(reply_to, "pong", receipt="replied")
    assert responder.listener.receipt(timeout=2) == "replied"
    assert responder.listener.errors.empty()

    subscribe(requester, "/temp-queue/later", "replies")
    reply = requester.listener.next()
    assert reply.body == "pong"
    assert reply.headers["destination"] == "/temp-queue/later"


def test_temp_topic_request_reply(connect) -> None:
    responder = connect()
    subscribe(responder, "/queue/requests-tt", "work")
    requester = connect()
    subscribe(requester, "/temp-topic/events", "events")
    requester.send("/queue/requests-tt", "ping", headers={"reply-to": "/temp-topic/events"})

    reply_to = responder.listener.next().headers["reply-to"]
    assert reply_to.startswith("/remote-temp-topic/")
    responder.send(reply_to, "pong")
    reply = requester.listener.next()
    assert reply.body == "pong"
    assert reply.headers["destination"] == "/temp-topic/events"


def test_temp_queue_names_are_private_to_each_connection(connect) -> None:
    """Two connections using the same /temp-queue/ name get two different queues."""
    a = connect()
    b = connect()
    subscribe(a, "/temp-queue/inbox", "a")
    subscribe(b, "/temp-queue/inbox", "b")
    a.send("/temp-queue/inbox", "for a")
    assert a.listener.next().body == "for a"
    assert quiet(b)


def temp_reply_to(connect, name: str) -> tuple[Client, Client, str]:
    """A requester owning /temp-queue/<name> and a responder holding its reply-to."""
    responder = connect()
    subscribe(responder, "/queue/requests-" + name, "work")
    requester = connect()
    subscribe(requester, "/temp-queue/" + name, "replies")
    requester.send("/queue/requests-" + name, "ping", headers={"reply-to": "/temp-queue/" + name})
    reply_to = responder.listener.next().headers["reply-to"]
    assert reply_to.startswith("/remote-temp-queue/")
    return requester, responder, reply_to


def test_temp_queue_deleted_when_owner_disconnects(broker, connect) -> None:
    requester, _responder, reply_to = temp_reply_to(connect, "bye")
    core_name = reply_to[len("/remote-temp-queue/") :]
    assert broker.stats(core_name, "temp-queue") is not None
    disconnect(requester)
    assert broker.stats(core_name, "temp-queue") is None


def test_send_to_deleted_temp_queue_gets_error(connect) -> None:
    requester, responder, reply_to = temp_reply_to(connect, "gone")
    disconnect(requester)

    responder.send(reply_to, "too late", receipt="late")
    err = responder.listener.error(timeout=2)
    assert err.headers.get("message")
    assert err.headers.get("receipt-id") == "late"
    # The connection stays usable after the ERROR.
    responder.sync()


# -- expiry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_already_expired_message_is_never_delivered(connect, version: str) -> None:
    c = connect(version)
    subscribe(c, "/queue/exp-past", "s1")
    c.send("/queue/exp-past", "stale", headers={"expires": str(now_ms() - 1000)})
    c.send("/queue/exp-past", "fresh", headers={"expires": str(now_ms() + 60_000)})
    assert c.listener.next().body == "fresh"
    assert quiet(c)


def test_already_expired_message_with_no_consumer_is_never_delivered(connect) -> None:
    producer = connect()
    producer.send("/queue/exp-past2", "stale", headers={"expires": str(now_ms() - 1000)})
    producer.send("/queue/exp-past2", "fresh")
    producer.sync()
    c = connect()
    subscribe(c, "/queue/exp-past2", "s1")
    assert c.listener.next().body == "fresh"
    assert quiet(c)


def test_expired_persistent_goes_to_dlq_non_persistent_dropped(broker, connect) -> None:
    dlq = connect()
    subscribe(dlq, "/queue/ActiveMQ.DLQ", "dlq")
    c = connect()
    subscribe(c, "/queue/exp-dlq", "s1")
    past = str(now_ms() - 1000)
    c.send("/queue/exp-dlq", "gone", headers={"expires": past})
    c.send("/queue/exp-dlq", "kept", headers={"expires": past, "persistent": "true"})
    c.sync()

    dead = dlq.listener.next()
    assert dead.body == "kept"
    assert dead.headers["original-destination"] == "/queue/exp-dlq"
    assert dead.headers["persistent"] == "true"
    assert dead.headers["expires"] == "0"  # a dead-lettered copy does not expire again
    assert dead.headers["originalExpiration"] == past
    assert f"Expiration:{past}" in dead.headers["dlqDeliveryFailureCause"]
    assert quiet(dlq)
    assert quiet(c)
    stats = broker.stats("exp-dlq")
    assert stats is not None
    assert stats.expired == 2


def test_message_expiring_while_queued_is_not_delivered(broker, connect) -> None:
    producer = connect()
    expires = now_ms() + 300
    producer.send("/queue/exp-wait", "short-lived", headers={"expires": str(expires)})
    producer.send("/queue/exp-wait", "long-lived")
    producer.sync()
    # Nobody consumes; let the expiry time pass (an Event that is never set is a timer).
    threading.Event().wait(max(0.0, (expires - now_ms()) / 1000) + 0.1)
    assert now_ms() > expires

    c = connect()
    subscribe(c, "/queue/exp-wait", "s1")
    assert c.listener.next().body == "long-lived"
    assert quiet(c)
    stats = broker.stats("exp-wait")
    assert stats is not None
    assert stats.expired == 1


def test_message_expiring_in_flight_is_not_redelivered(broker, connect) -> None:
    dlq = connect()
    subscribe(dlq, "/queue/ActiveMQ.DLQ", "dlq")
    c = connect()
    subscribe(c, "/queue/exp-inflight", "s1", ack="client-individual")
    expires = now_ms() + 400
    c.send("/queue/exp-inflight", "short", headers={"expires": str(expires), "persistent": "true"})
    assert c.listener.next().body == "short"
    threading.Event().wait(max(0.0, (expires - now_ms()) / 1000) + 0.1)
    disconnect(c)  # returned unacknowledged, but it has expired meanwhile

    again = connect()
    subscribe(again, "/queue/exp-inflight", "s1")
    assert quiet(again)
    dead = dlq.listener.next()
    assert dead.body == "short"
    assert dead.headers["original-destination"] == "/queue/exp-inflight"


def test_expired_message_on_topic_is_not_delivered(connect) -> None:
    c = connect()
    subscribe(c, "/topic/exp-topic", "s1")
    c.send("/topic/exp-topic", "stale", headers={"expires": str(now_ms() - 1000)})
    c.send("/topic/exp-topic", "fresh")
    assert c.listener.next().body == "fresh"
    assert quiet(c)
