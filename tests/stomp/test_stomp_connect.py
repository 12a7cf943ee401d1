"""CONNECT: version negotiation, CONNECTED headers, heart-beats, authentication and the
connection limits (connect_timeout, max_connections), against ActiveMQ 5.17's behaviour
(see /work/notes/activemq-stomp.md sections a and b)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import stomp

from tests.conftest import WAIT, BrokerThread, Client, Collector, RawClient, headers_of


@pytest.fixture
def raw_at() -> Iterator[Callable[[int], RawClient]]:
    """Raw clients for a broker of the test's own making (closed at teardown)."""
    socks: list[RawClient] = []

    def make(port: int) -> RawClient:
        c = RawClient(port)
        socks.append(c)
        return c

    yield make
    for s in socks:
        s.close()


def connected(frame: bytes) -> dict[str, str]:
    command, headers = headers_of(frame)
    assert command == "CONNECTED", frame
    return headers


def expect_error(frame: bytes) -> dict[str, str]:
    command, headers = headers_of(frame)
    assert command == "ERROR", frame
    assert headers.get("message"), frame
    return headers


def round_trip(c: RawClient, tag: str = "ok") -> None:
    c.send(f"SEND\ndestination:/queue/connect.rt\nreceipt:{tag}\n\nx\x00".encode())
    command, headers = headers_of(c.frame())
    assert (command, headers.get("receipt-id")) == ("RECEIPT", tag)


def wait_until(broker: BrokerThread, predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Evaluate `predicate` on the broker's loop until it holds; each try is a round trip
    through that loop, so this waits on the broker rather than on the clock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker.call(predicate):
            return True
    return False


def stomp_connections(broker: BrokerThread) -> int:
    return len(broker.broker.listeners["stomp"].connections)  # type: ignore[attr-defined]


# -- version negotiation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "1.0"),
        ("1.0", "1.0"),
        ("1.1", "1.1"),
        ("1.2", "1.2"),
        ("1.0,1.1,1.2", "1.2"),
        ("1.0,1.1", "1.1"),
        ("1.2,3.0", "1.2"),
        ("2.0,1.0", "1.0"),
    ],
    ids=lambda v: str(v),
)
def test_version_negotiation(raw, accept: str | None, expected: str) -> None:
    c: RawClient = raw()
    head = "" if accept is None else f"accept-version:{accept}\n"
    c.send(f"CONNECT\n{head}host:localhost\n\n\x00".encode())
    headers = connected(c.frame())
    assert headers["version"] == expected
    round_trip(c)


def test_negotiated_version_governs_the_connection(raw) -> None:
    """SUBSCRIBE without an id is fine in 1.0 but an error from 1.1 on: the negotiated
    version, not the highest one the broker knows, is in force."""
    old: RawClient = raw()
    old.send(b"CONNECT\nhost:localhost\n\n\x00")
    assert connected(old.frame())["version"] == "1.0"
    old.send(b"SUBSCRIBE\ndestination:/queue/connect.v\nreceipt:s\n\n\x00")
    command, headers = headers_of(old.frame())
    assert (command, headers.get("receipt-id")) == ("RECEIPT", "s")
    new: RawClient = raw()
    new.connect("1.0,1.1,1.2")
    new.send(b"SUBSCRIBE\ndestination:/queue/connect.v\nreceipt:s\n\n\x00")
    expect_error(new.frame())


@pytest.mark.parametrize("accept", ["3.0", "2.0,4.5", "1.3"])
def test_unsupported_version_is_refused_and_closed(raw, accept: str) -> None:
    c: RawClient = raw()
    c.send(f"CONNECT\naccept-version:{accept}\nhost:localhost\n\n\x00".encode())
    expect_error(c.frame())
    assert c.closed(), "the broker must close after refusing the version"


def test_stomp_command_works_like_connect(raw) -> None:
    c: RawClient = raw()
    c.send(b"STOMP\naccept-version:1.2\nhost:localhost\n\n\x00")
    headers = connected(c.frame())
    assert headers["version"] == "1.2"
    round_trip(c)


def test_stomp_py_connects_in_every_version(connect) -> None:
    for version in ("1.0", "1.1", "1.2"):
        c: Client = connect(version)
        assert c.is_connected()
        c.sync()


def test_second_connect_is_an_error_but_keeps_the_connection(raw) -> None:
    """ActiveMQ: ERROR 'Already connected.', connection still usable."""
    c: RawClient = raw()
    c.connect("1.2")
    c.send(b"CONNECT\naccept-version:1.2\nhost:localhost\nreceipt:again\n\n\x00")
    expect_error(c.frame())
    round_trip(c)


# -- CONNECTED headers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "answered"),
    [("0,0", "0,0"), ("1000,1000", "1000,1000"), ("500,2000", "2000,500"), ("0,300", "300,0")],
)
def test_connected_headers(raw, sent: str, answered: str) -> None:
    c: RawClient = raw()
    headers = connected(c.connect("1.2", f"heart-beat:{sent}\n"))
    assert headers["version"] == "1.2"
    assert headers["heart-beat"] == answered
    assert headers["session"]
    assert headers["server"]


def test_connected_without_heart_beat_header_is_0_0(raw) -> None:
    c: RawClient = raw()
    assert connected(c.connect("1.1"))["heart-beat"] == "0,0"


def test_sessions_are_unique(raw) -> None:
    sessions = {connected(raw().connect("1.2"))["session"] for _ in range(5)}
    assert len(sessions) == 5


@pytest.mark.parametrize("value", ["abc", "1,2,3", "100", "1000,", ",1000"])
def test_bad_heart_beat_header_is_refused_and_closed(raw, value: str) -> None:
    """ActiveMQ: ERROR 'Invalid heart-beat header:...' and the connection is closed."""
    c: RawClient = raw()
    c.send(f"CONNECT\naccept-version:1.2\nheart-beat:{value}\n\n\x00".encode())
    expect_error(c.frame())
    assert c.closed()


def test_negative_heart_beat_is_accepted_like_activemq(raw) -> None:
    c: RawClient = raw()
    c.send(b"CONNECT\naccept-version:1.2\nheart-beat:-1,-1\n\n\x00")
    connected(c.frame())
    round_trip(c)


# -- heart-beats -------------------------------------------------------------------------------


def test_broker_sends_heart_beats_at_the_asked_interval(raw) -> None:
    c: RawClient = raw()
    c.connect("1.2", "heart-beat:0,200\n")
    newlines = c.buf.count(b"\n")
    c.buf = b""
    deadline = time.monotonic() + 1.0
    while (left := deadline - time.monotonic()) > 0:
        c.sock.settimeout(left)
        try:
            chunk = c.sock.recv(4096)
        except TimeoutError:
            break
        assert chunk, "connection closed"
        assert chunk.strip(b"\r\n") == b"", f"only heart-beats expected, got {chunk!r}"
        newlines += chunk.count(b"\n")
    # Every 200 ms for a second: about 5; never a flood.
    assert 2 <= newlines <= 7, newlines


def test_no_heart_beats_when_not_asked(raw) -> None:
    c: RawClient = raw()
    c.connect("1.2", "heart-beat:0,0\n")
    assert not c.closed(0.5)
    assert c.buf == b"", c.buf


def test_silent_client_is_dropped(raw) -> None:
    """A client that promised a heart-beat every 200 ms and then says nothing is dropped
    after 200 ms x heartbeat_grace (1.5), not before and not much later."""
    c: RawClient = raw()
    c.connect("1.2", "heart-beat:200,0\n")
    started = time.monotonic()
    assert c.closed(5.0), "a silent client must be dropped"
    elapsed = time.monotonic() - started
    assert 0.3 * 0.9 <= elapsed < 2.0, elapsed


def test_heart_beats_keep_a_client_alive(raw) -> None:
    """Newlines every 100 ms keep a client that promised 200 ms alive past the limit; the
    schedule is driven by another client's drop time, not by sleeping."""
    beating: RawClient = raw()
    beating.connect("1.2", "heart-beat:200,0\n")
    silent: RawClient = raw()
    silent.connect("1.2", "heart-beat:200,0\n")
    silent.sock.settimeout(0.1)
    dropped = False
    deadline = time.monotonic() + 5.0
    while not dropped and time.monotonic() < deadline:
        beating.send(b"\n")
        with contextlib.suppress(TimeoutError):
            dropped = silent.sock.recv(4096) == b""
    assert dropped
    # The silent one is gone (>= 300 ms after CONNECT); the beating one is still served.
    round_trip(beating)


def test_heart_beats_on_a_1_0_connection_like_activemq(raw) -> None:
    c: RawClient = raw()
    c.send(b"CONNECT\nhost:localhost\nheart-beat:200,0\n\n\x00")
    headers = connected(c.frame())
    assert (headers["version"], headers["heart-beat"]) == ("1.0", "0,200")
    assert c.closed(2.0), "a silent 1.0 client that promised heart-beats must be dropped"


def test_stomp_py_with_heart_beats_stays_connected(connect) -> None:
    c: Client = connect("1.2", heartbeats=(200, 200))
    never = threading.Event()
    assert not never.wait(1.5)  # a bounded wait while heart-beats flow both ways
    assert not c.listener.disconnected.is_set()
    assert c.listener.heartbeat_timeouts == 0
    assert c.is_connected()
    c.subscribe("/queue/connect.hb", id="1")
    c.send("/queue/connect.hb", "alive")
    assert c.listener.next().body == "alive"


# -- authentication -----------------------------------------------------------------------------


@pytest.fixture
def secured(broker_factory) -> BrokerThread:
    return broker_factory(**{"auth.users": {"admin": "secret", "guest": "guest"}})


@pytest.mark.parametrize(
    "credentials",
    [
        "login:admin\npasscode:wrong\n",
        "login:admin\n",
        "login:nobody\npasscode:secret\n",
        "passcode:secret\n",
        "",
        "login:admin\npasscode:guest\n",
    ],
    ids=["wrong-password", "no-passcode", "unknown-user", "no-login", "nothing", "other-pw"],
)
def test_bad_credentials_are_refused(secured: BrokerThread, raw_at, credentials: str) -> None:
    c: RawClient = raw_at(secured.stomp_port)
    c.send(f"CONNECT\naccept-version:1.2\nhost:localhost\n{credentials}\n\x00".encode())
    expect_error(c.frame())
    assert c.closed()


@pytest.mark.parametrize("command", ["CONNECT", "STOMP"])
def test_right_credentials_connect(secured: BrokerThread, raw_at, command: str) -> None:
    c: RawClient = raw_at(secured.stomp_port)
    c.send(f"{command}\naccept-version:1.2\nlogin:admin\npasscode:secret\n\n\x00".encode())
    connected(c.frame())
    round_trip(c)


def test_stomp_py_login(secured: BrokerThread) -> None:
    conn = stomp.Connection12([("127.0.0.1", secured.stomp_port)])
    listener = Collector()
    conn.set_listener("c", listener)
    conn.connect("guest", "guest", wait=True)
    try:
        conn.subscribe("/queue/connect.auth", id="1")
        conn.send("/queue/connect.auth", "authenticated")
        assert listener.next().body == "authenticated"
    finally:
        conn.disconnect()


def test_refused_login_leaves_others_alone(secured: BrokerThread, raw_at) -> None:
    good: RawClient = raw_at(secured.stomp_port)
    good.connect("1.2", "login:admin\npasscode:secret\n")
    bad: RawClient = raw_at(secured.stomp_port)
    bad.send(b"CONNECT\naccept-version:1.2\nlogin:admin\npasscode:nope\n\n\x00")
    expect_error(bad.frame())
    assert bad.closed()
    round_trip(good)


def test_no_users_means_any_login_is_accepted(raw) -> None:
    c: RawClient = raw()
    connected(c.connect("1.2", "login:foo\npasscode:bar\n"))


# -- connection limits ----------------------------------------------------------------------------


def test_client_that_never_connects_is_dropped(broker_factory, raw_at) -> None:
    b = broker_factory(**{"listeners.stomp.connect_timeout": 0.3})
    quick: RawClient = raw_at(b.stomp_port)
    idle: RawClient = raw_at(b.stomp_port)
    started = time.monotonic()
    quick.connect("1.2")
    assert idle.closed(5.0), "a connection without CONNECT must be dropped"
    elapsed = time.monotonic() - started
    assert 0.3 * 0.9 <= elapsed < 2.0, elapsed
    # The client that did CONNECT in time outlives the timeout.
    round_trip(quick)


def test_connect_timeout_does_not_hit_a_slow_but_complete_connect(broker_factory, raw_at) -> None:
    """CONNECT arriving in pieces within the timeout is fine."""
    b = broker_factory(**{"listeners.stomp.connect_timeout": 1.0})
    c: RawClient = raw_at(b.stomp_port)
    c.send(b"CONN")
    c.send(b"ECT\naccept-version:1.2\n")
    c.send(b"\n\x00")
    connected(c.frame())
    round_trip(c)


def test_max_connections_refuses_the_extra_one(broker_factory, raw_at) -> None:
    b = broker_factory(**{"listeners.stomp.max_connections": 2})
    first: RawClient = raw_at(b.stomp_port)
    first.connect("1.2")
    second: RawClient = raw_at(b.stomp_port)
    second.connect("1.2")

    extra: RawClient = raw_at(b.stomp_port)
    expect_error(extra.frame())
    assert extra.closed()
    # The refused connection did not cost anybody else theirs.
    round_trip(first)
    round_trip(second)

    # A slot frees up when a client leaves.
    first.send(b"DISCONNECT\nreceipt:bye\n\n\x00")
    assert first.closed()
    assert wait_until(b, lambda: stomp_connections(b) == 1)
    again: RawClient = raw_at(b.stomp_port)
    connected(again.connect("1.2"))
    round_trip(again)


def test_max_connections_counts_open_sockets_not_connected_sessions(broker_factory, raw_at) -> None:
    b = broker_factory(**{"listeners.stomp.max_connections": 1})
    holder = socket.create_connection(("127.0.0.1", b.stomp_port), timeout=WAIT)
    try:
        assert wait_until(b, lambda: stomp_connections(b) == 1)
        extra: RawClient = raw_at(b.stomp_port)
        expect_error(extra.frame())
        assert extra.closed()
    finally:
        holder.close()
