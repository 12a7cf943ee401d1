"""A closed connection is freed, whatever it left behind in the core: messages it sent
and that still wait on a queue must not keep the connection (its parser, buffers and
tables) alive. A fuzz soak (bench/fuzz) found each stored message pinning its producer's
connection through the message's no-local origin, about 5 KB per connection."""

from __future__ import annotations

import gc
import time
import weakref
from typing import Any

import pytest
import stomp
from proton import Message
from proton.utils import BlockingConnection

from tests.conftest import WAIT, BrokerThread


def only_connection(broker: BrokerThread, listener: str) -> weakref.ref[Any]:
    def find() -> weakref.ref[Any]:
        (conn,) = broker.broker.listeners[listener].connections
        return weakref.ref(conn)

    return broker.call(find)


def freed(broker: BrokerThread, ref: weakref.ref[Any]) -> bool:
    """True once the broker no longer holds the connection (collected on its loop)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if broker.call(lambda: (gc.collect(), ref() is None)[1]):
            return True
        time.sleep(0.02)
    return False


def send_with_stomp(broker: BrokerThread) -> weakref.ref[Any]:
    conn = stomp.Connection12([("127.0.0.1", broker.stomp_port)], heartbeats=(0, 0))
    conn.connect(wait=True)
    ref = only_connection(broker, "stomp")
    conn.send("/queue/lifetime", "kept", headers={"persistent": "true"}, receipt="r")
    conn.subscribe("/topic/lifetime.t", id="t", headers={"activemq.noLocal": "true"})
    conn.disconnect(receipt="bye")
    return ref


def send_with_amqp(broker: BrokerThread) -> weakref.ref[Any]:
    conn = BlockingConnection(f"127.0.0.1:{broker.broker.port('amqp')}", timeout=WAIT)
    ref = only_connection(broker, "amqp")
    conn.create_sender("queue://lifetime").send(Message(body="kept", durable=True))
    conn.close()
    return ref


@pytest.mark.parametrize("send", [send_with_stomp, send_with_amqp], ids=["stomp", "amqp"])
def test_a_closed_producer_is_freed_while_its_message_waits(
    broker: BrokerThread, send: Any
) -> None:
    ref = send(broker)
    assert broker.stats("lifetime").depth == 1
    assert freed(broker, ref), "the closed connection is still referenced"
