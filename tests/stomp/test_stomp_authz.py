"""STOMP against the authorization map (tests/authmap.py): denials are ActiveMQ's ERROR
frames, logged with user, address and operation; logins are throttled per address."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stomp

from tests.authmap import ALICE_PASSWORD, BOB_PASSWORD, overrides
from tests.conftest import BrokerThread, Client, Collector, RawClient


@pytest.fixture
def secured(broker_factory: Callable[..., BrokerThread]) -> BrokerThread:
    return broker_factory(**overrides())


@pytest.fixture
def login(secured: BrokerThread) -> Iterator[Callable[[str, str], Client]]:
    clients: list[Client] = []

    def make(user: str, password: str) -> Client:
        conn = stomp.Connection12([("127.0.0.1", secured.stomp_port)], heartbeats=(0, 0))
        listener = Collector()
        conn.set_listener("collector", listener)
        conn.connect(user, password, wait=True)
        client = Client(conn, listener, "1.2")
        clients.append(client)
        return client

    yield make
    for c in clients:
        if c.conn.is_connected():
            c.conn.disconnect()


def test_bob_cannot_read_or_write_alices_queue(
    login: Callable[[str, str], Client], caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="zonemq.auth")
    alice = login("alice", ALICE_PASSWORD)
    alice.send("/queue/alice.inbox", "for alice only", headers={"persistent": "true"})
    alice.sync()
    bob = login("bob", BOB_PASSWORD)
    bob.subscribe("/queue/alice.inbox", id="1", ack="auto", receipt="r1")
    err = bob.listener.error()
    assert err.headers["message"] == "User bob is not authorized to read from: queue://alice.inbox"
    assert err.headers["receipt-id"] == "r1"
    bob.send("/queue/alice.inbox", "forged", receipt="r2")
    err = bob.listener.error()
    assert err.headers["message"] == "User bob is not authorized to write to: queue://alice.inbox"
    assert bob.listener.none_within(0.2)
    # Bob's connection stays usable, as ActiveMQ's does after a SecurityException.
    bob.sync()
    alice.subscribe("/queue/alice.inbox", id="1", ack="auto")
    got = alice.listener.next()
    assert got.body == "for alice only"
    assert alice.listener.none_within(0.2)  # the forged one was never stored
    denied = [r.getMessage() for r in caplog.records if r.name == "zonemq.auth"]
    assert any("'bob'" in m and "read" in m and "queue://alice.inbox" in m for m in denied)
    assert any("'bob'" in m and "write" in m and "queue://alice.inbox" in m for m in denied)


def test_creating_a_destination_needs_admin(login: Callable[[str, str], Client]) -> None:
    bob = login("bob", BOB_PASSWORD)
    bob.send("/queue/shared.new", "x", receipt="r")
    err = bob.listener.error()
    assert err.headers["message"] == "User bob is not authorized to create: queue://shared.new"
    alice = login("alice", ALICE_PASSWORD)
    alice.send("/queue/shared.new", "made by alice")
    alice.sync()
    # Now it exists: write and read are enough.
    bob.send("/queue/shared.new", "from bob")
    bob.subscribe("/queue/shared.new", id="1", ack="auto")
    assert sorted(f.body for f in bob.listener.take(2)) == ["from bob", "made by alice"]


def test_temporary_destinations_follow_the_temp_entry(
    login: Callable[[str, str], Client],
) -> None:
    bob = login("bob", BOB_PASSWORD)
    bob.subscribe("/temp-queue/mine", id="1", ack="auto", receipt="r")
    err = bob.listener.error()
    assert err.headers["message"].startswith("User bob is not authorized to create: temp-queue://")
    # A reply-to naming a temporary queue of its own creates it: refused too.
    bob.send("/queue/zonemq.req", "q", headers={"reply-to": "/temp-queue/replies"})
    err = bob.listener.error()
    assert "not authorized to create: temp-queue://" in err.headers["message"]
    alice = login("alice", ALICE_PASSWORD)
    alice.subscribe("/temp-queue/replies", id="1", ack="auto", receipt="ok")
    assert alice.listener.receipt() == "ok"


def test_no_map_lets_every_user_do_everything(
    broker_factory: Callable[..., BrokerThread],
) -> None:
    b = broker_factory(**{"auth.users": {"alice": "a", "bob": "b"}})
    conns = []
    for user, password in (("alice", "a"), ("bob", "b")):
        conn = stomp.Connection12([("127.0.0.1", b.stomp_port)], heartbeats=(0, 0))
        listener = Collector()
        conn.set_listener("c", listener)
        conn.connect(user, password, wait=True)
        conns.append((conn, listener))
    (alice, _), (bob, bob_listener) = conns
    alice.send("/queue/alice.inbox", "hi")
    bob.subscribe("/queue/alice.inbox", id="1", ack="auto")
    assert bob_listener.next().body == "hi"
    for conn, _ in conns:
        conn.disconnect()


def _raw_connect(port: int, login: str, passcode: str) -> bytes:
    raw = RawClient(port)
    try:
        raw.send(
            f"CONNECT\naccept-version:1.2\nlogin:{login}\npasscode:{passcode}\n\n\x00".encode()
        )
        return raw.frame()
    finally:
        raw.sock.close()


def test_failed_logins_are_logged_and_throttled_per_address(
    broker_factory: Callable[..., BrokerThread], caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="zonemq.auth")
    b = broker_factory(**overrides(**{"auth.max_login_failures": 3}))
    for _ in range(3):
        reply = _raw_connect(b.stomp_port, "bob", "wrong")
        assert b"User name [bob] or password is invalid." in reply
    # The right password from the same address is refused while it is blocked.
    reply = _raw_connect(b.stomp_port, "bob", BOB_PASSWORD)
    assert reply.startswith(b"ERROR")
    assert b"Too many failed logins" in reply
    failed = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
    assert len(failed) == 3
    assert all("'bob'" in m and "127.0.0.1" in m for m in failed)


def test_hashed_and_plain_passwords_log_in_and_plain_ones_warn_once(
    broker_factory: Callable[..., BrokerThread], caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="zonemq.auth")
    b = broker_factory(**overrides())
    assert _raw_connect(b.stomp_port, "alice", ALICE_PASSWORD).startswith(b"CONNECTED")
    assert _raw_connect(b.stomp_port, "alice", ALICE_PASSWORD).startswith(b"CONNECTED")
    assert _raw_connect(b.stomp_port, "bob", BOB_PASSWORD).startswith(b"CONNECTED")
    assert _raw_connect(b.stomp_port, "alice", BOB_PASSWORD).startswith(b"ERROR")
    plain = [r.getMessage() for r in caplog.records if "plain-text" in r.getMessage()]
    assert len(plain) == 1 and "bob" in plain[0] and "alice" not in plain[0]


def test_a_wildcard_subscription_needs_an_entry_covering_the_wildcard(
    login: Callable[[str, str], Client],
) -> None:
    """ZoneMQ authorizes a wildcard as a name: an entry's pattern must match the
    wildcard itself. ActiveMQ 5.17's DefaultAuthorizationMap.get(`>`) unions every
    entry at or below it (shared.>, zonemq.> list bob), so it would let bob consume
    alice.> through `>`; here he is refused, and `shared.*`, inside his entry, is his."""
    alice = login("alice", ALICE_PASSWORD)
    alice.send("/queue/alice.inbox", "private", headers={"persistent": "true"})
    alice.sync()
    bob = login("bob", BOB_PASSWORD)
    bob.subscribe("/queue/>", id="1", ack="auto", receipt="r1")
    err = bob.listener.error()
    assert err.headers["message"] == "User bob is not authorized to read from: queue://>"
    bob.subscribe("/queue/shared.*", id="2", ack="auto", receipt="r2")
    assert bob.listener.receipt() == "r2"
    alice.send("/queue/shared.jobs", "for both")
    got = bob.listener.next()
    assert got.body == "for both"
    assert bob.listener.none_within(0.2)
