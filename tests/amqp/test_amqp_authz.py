"""AMQP against the authorization map (tests/authmap.py): a denied attach is refused
with amqp:unauthorized-access, a denied anonymous-relay transfer is rejected with it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from proton import Delivery, Message
from proton.utils import BlockingConnection, LinkDetached, SendException

from tests.authmap import ALICE_PASSWORD, BOB_PASSWORD, overrides
from tests.conftest import WAIT, BrokerThread


@pytest.fixture
def secured(broker_factory: Callable[..., BrokerThread]) -> BrokerThread:
    return broker_factory(**overrides())


def conn(b: BrokerThread, user: str, password: str) -> BlockingConnection:
    return BlockingConnection(
        f"127.0.0.1:{b.broker.port('amqp')}",
        timeout=WAIT,
        user=user,
        password=password,
        allow_insecure_mechs=True,
    )


def test_bob_cannot_attach_to_alices_queue(secured: BrokerThread) -> None:
    alice = conn(secured, "alice", ALICE_PASSWORD)
    alice.create_sender("queue://alice.inbox").send(Message(body="for alice only"))
    bob = conn(secured, "bob", BOB_PASSWORD)
    with pytest.raises(LinkDetached) as info:
        bob.create_receiver("queue://alice.inbox")
    assert info.value.condition == "amqp:unauthorized-access"
    assert "User bob is not authorized to read from: queue://alice.inbox" in str(info.value)
    with pytest.raises(LinkDetached) as info:
        bob.create_sender("queue://alice.inbox")
    assert info.value.condition == "amqp:unauthorized-access"
    assert "not authorized to write to: queue://alice.inbox" in str(info.value)
    got = alice.create_receiver("queue://alice.inbox").receive(timeout=WAIT)
    assert got.body == "for alice only"
    bob.close()
    alice.close()


def test_creating_needs_admin_and_dynamic_nodes_follow_the_temp_entry(
    secured: BrokerThread,
) -> None:
    bob = conn(secured, "bob", BOB_PASSWORD)
    with pytest.raises(LinkDetached) as info:
        bob.create_sender("queue://shared.fresh")
    assert "User bob is not authorized to create: queue://shared.fresh" in str(info.value)
    with pytest.raises(LinkDetached) as info:
        bob.create_receiver(None, dynamic=True)
    assert info.value.condition == "amqp:unauthorized-access"
    assert "not authorized to create: temp-queue://" in str(info.value)
    bob.close()
    alice = conn(secured, "alice", ALICE_PASSWORD)
    reply = alice.create_receiver(None, dynamic=True)
    assert reply.link.remote_source.address
    alice.close()


def test_anonymous_relay_transfers_are_checked_per_message(
    secured: BrokerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="zonemq.auth")
    alice = conn(secured, "alice", ALICE_PASSWORD)
    rx = alice.create_receiver("queue://alice.inbox")
    bob = conn(secured, "bob", BOB_PASSWORD)
    relay = bob.create_sender(None)
    relay.send(Message(address="queue://zonemq.open", body="allowed"))
    with pytest.raises(SendException) as info:
        relay.send(Message(address="queue://alice.inbox", body="forged"))
    assert info.value.state == Delivery.REJECTED
    assert "AMQP: user 'bob' denied write on queue://alice.inbox" in caplog.text
    got = bob.create_receiver("queue://zonemq.open").receive(timeout=WAIT)
    assert got.body == "allowed"
    bob.close()
    with pytest.raises(Exception):  # noqa: B017 - proton's Timeout: nothing forged arrived
        rx.receive(timeout=0.3)
    alice.close()
