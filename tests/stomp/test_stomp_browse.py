"""Queue browsing over STOMP (`browser:true`), as ActiveMQ 5.17 does it
(activemq-stomp StompQueueBrowserSubscription, ProtocolConverter.onStompSubscribe): the
pending messages without consuming them, then the end marker; see
protocols/stomp/browser.py."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import stomp

from tests.authmap import ALICE_PASSWORD, BOB_PASSWORD, overrides
from tests.conftest import (
    WAIT,
    BrokerThread,
    Client,
    Collector,
    RawClient,
    bodies,
    headers_of,
    quiet,
    subscribe,
)

BROWSE = {"browser": "true"}


def is_marker(frame: Any) -> bool:
    return frame.headers.get("browser") == "end"


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Poll broker state on a short event wait (bounded), for a condition with no event."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        pause.wait(0.01)
    return predicate()


def depth(b: BrokerThread, name: str) -> int:
    return b.stats(name).depth  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_browse_shows_pending_in_order_and_consumes_nothing(
    broker: BrokerThread, connect: Callable[..., Client], version: str
) -> None:
    producer = connect()
    for i in range(5):
        headers = {"n": str(i), "persistent": "true" if i % 2 else "false"}
        producer.send("/queue/browse.a", f"m{i}", headers=headers)
    producer.sync()

    browser = connect(version)
    subscribe(browser, "/queue/browse.a", "b1", **BROWSE)
    frames = browser.listener.take(6)
    got, marker = frames[:5], frames[5]
    assert bodies(got) == [f"m{i}" for i in range(5)]
    for i, f in enumerate(got):
        assert not is_marker(f)
        assert f.headers["subscription"] == "b1"
        assert f.headers["destination"] == "/queue/browse.a"
        assert f.headers["n"] == str(i)
        assert f.headers.get("persistent") == ("true" if i % 2 else None)
        assert f.headers["message-id"].startswith("ID:")
    assert is_marker(marker)
    assert quiet(browser)
    assert depth(broker, "browse.a") == 5

    # Browsing twice shows the same; a consumer then gets every message.
    subscribe(browser, "/queue/browse.a", "b2", **BROWSE)
    assert bodies(browser.listener.take(6)[:5]) == [f"m{i}" for i in range(5)]
    consumer = connect()
    subscribe(consumer, "/queue/browse.a", "c", ack="client-individual")
    taken = consumer.listener.take(5)
    assert bodies(taken) == [f"m{i}" for i in range(5)]
    assert all(f.headers.get("redelivered", "false") == "false" for f in taken)


def test_end_marker_is_activemqs_and_empty_queue_gets_only_it(raw: Callable[[], RawClient]) -> None:
    c = raw()
    c.connect("1.2")
    c.send(b"SUBSCRIBE\nid:b\\c1\ndestination:/queue/browse.empty\nbrowser:true\nreceipt:r\n\n\x00")
    assert c.frame() == b"RECEIPT\nreceipt-id:r\n\n"
    # ActiveMQ's headers in its order (a Java HashMap's), no content-length, empty body;
    # the subscription id escaped like any 1.2 header.
    assert c.frame() == (
        b"MESSAGE\nbrowser:end\ndestination:/queue/browse.empty\nmessage-id:0\n"
        b"subscription:b\\c1\n\n"
    )
    c.send(b"DISCONNECT\nreceipt:bye\n\n\x00")
    assert c.frame() == b"RECEIPT\nreceipt-id:bye\n\n"


def test_messages_after_the_subscription_are_not_browsed(
    broker: BrokerThread, connect: Callable[..., Client]
) -> None:
    browser = connect()
    subscribe(browser, "/queue/browse.later", "b", **BROWSE)
    assert is_marker(browser.listener.next())
    producer = connect()
    producer.send("/queue/browse.later", "late")
    producer.sync()
    assert quiet(browser, 0.2)
    assert depth(broker, "browse.later") == 1
    # UNSUBSCRIBE of a browser works like any other.
    browser.unsubscribe("b", headers={"receipt": "u"})
    assert browser.listener.receipt() == "u"


def test_browsing_a_deep_paged_queue_gets_every_body_in_chunks(
    broker_factory: Callable[..., BrokerThread], connect: Callable[..., Client]
) -> None:
    b = broker_factory(
        **{
            "destinations.queue_memory_limit": 64 * 1024,
            "listeners.stomp.write_buffer_high": 32 * 1024,
            "listeners.stomp.write_buffer_low": 8 * 1024,
        }
    )
    total = 1500
    producer = connect(port=b.stomp_port)
    for i in range(total):
        body = f"{i:05d}:" + "x" * 1000
        producer.send("/queue/browse.deep", body, headers={"persistent": "true", "n": str(i)})
    producer.sync()

    def stubs() -> int:
        for address, q in b.broker.core.queues.items():
            if address.name == "browse.deep":
                return sum(type(e) is int for e in q.entries())
        return 0

    assert b.call(stubs) > total // 2  # most of the queue is paged out to the journal

    # A client that does not read: the broker writes only what its buffers allow.
    lazy = RawClient(b.stomp_port, rcvbuf=16 * 1024)
    lazy.connect("1.2")
    lazy.send(b"SUBSCRIBE\nid:lazy\ndestination:/queue/browse.deep\nbrowser:true\n\n\x00")

    def held_back() -> tuple[int, int] | None:
        """(bytes queued, messages left) of the lazy browser, once its output is paused."""
        for c in b.broker.listeners["stomp"].connections:
            ssub = c.subs.get("lazy")
            if ssub is not None and c._consumers_paused:
                return c._out_bytes, len(ssub.browser._entries)
        return None

    assert wait_until(lambda: b.call(held_back) is not None)
    out_bytes, left = b.call(held_back)
    # Paused for the full socket: a bounded amount queued, most of the browse not encoded.
    assert out_bytes <= 32 * 1024 + 2 * 1024
    assert left > total // 2
    seen = []
    while True:
        command, headers = headers_of(lazy.frame())
        assert command == "MESSAGE"
        if headers.get("browser") == "end":
            break
        seen.append(int(headers["n"]))
    assert seen == list(range(total))
    lazy.close()

    browser = connect(port=b.stomp_port)
    subscribe(browser, "/queue/browse.deep", "b", **BROWSE)
    frames = browser.listener.take(total + 1, timeout=30)
    assert [f.body for f in frames[:total]] == [f"{i:05d}:" + "x" * 1000 for i in range(total)]
    assert is_marker(frames[total])
    assert depth(b, "browse.deep") == total


def test_client_ack_browser_stops_at_its_prefetch_until_acked(
    broker: BrokerThread, connect: Callable[..., Client]
) -> None:
    producer = connect()
    for i in range(3):
        producer.send("/queue/browse.win", f"m{i}")
    producer.sync()
    browser = connect()
    subscribe(
        browser, "/queue/browse.win", "b", ack="client", **BROWSE, **{"activemq.prefetchSize": "2"}
    )
    first = browser.listener.take(2)
    assert bodies(first) == ["m0", "m1"]
    assert "ack" in first[1].headers
    assert quiet(browser)  # no third message and no marker: the window is full

    # A NACK is refused, as ActiveMQ's browser refuses it.
    browser.nack_frame(first[0])
    assert browser.listener.error().headers["message"] == (
        "Cannot Nack a message on a Queue Browser Subscription."
    )
    browser.ack_frame(first[1])  # cumulative: frees both
    rest = browser.listener.take(2)
    assert rest[0].body == "m2"
    assert is_marker(rest[1])
    assert depth(broker, "browse.win") == 3


def test_client_individual_browser_marker_waits_for_room_too(
    broker: BrokerThread, connect: Callable[..., Client]
) -> None:
    producer = connect()
    for i in range(2):
        producer.send("/queue/browse.ind", f"m{i}")
    producer.sync()
    browser = connect("1.1")
    subscribe(
        browser,
        "/queue/browse.ind",
        "b",
        ack="client-individual",
        **BROWSE,
        **{"activemq.prefetchSize": "1"},
    )
    m0 = browser.listener.next()
    assert m0.body == "m0"
    assert quiet(browser)
    browser.ack(m0.headers["message-id"], "b")
    m1 = browser.listener.next()
    assert m1.body == "m1"
    # ActiveMQ dispatches its end marker through the same full prefetch window.
    assert quiet(browser)
    browser.ack(m1.headers["message-id"], "b")
    assert is_marker(browser.listener.next())
    assert depth(broker, "browse.ind") == 2


def test_auto_browser_messages_take_no_ack(connect: Callable[..., Client]) -> None:
    producer = connect()
    producer.send("/queue/browse.auto", "m")
    producer.sync()
    browser = connect("1.1")
    subscribe(browser, "/queue/browse.auto", "b", **BROWSE)
    frames = browser.listener.take(2)
    browser.ack(frames[0].headers["message-id"], "b", receipt="a")
    err = browser.listener.error()
    assert err.headers["message"].startswith("Unexpected ACK received for message-id")


def test_browser_on_a_topic_or_over_stomp_10_is_an_error(connect: Callable[..., Client]) -> None:
    c = connect()
    c.subscribe("/topic/browse.t", id="t", headers=BROWSE, receipt="r")
    err = c.listener.error()
    assert err.headers["message"] == "Invalid Subscription: cannot browse a Topic destination!"
    assert err.headers["receipt-id"] == "r"
    producer = connect()
    producer.send("/topic/browse.t", "news")
    producer.sync()
    assert quiet(c, 0.2)  # nothing is delivered to it, and the connection stays open

    old = connect("1.0")
    old.subscribe("/queue/browse.old", id="o", headers=BROWSE, receipt="r")
    err = old.listener.error()
    assert err.headers["message"] == "Queue Browser feature only valid for Stomp v1.1+ clients!"
    assert quiet(old)


def test_browse_is_a_read_and_a_denied_user_gets_the_error(
    broker_factory: Callable[..., BrokerThread],
) -> None:
    b = broker_factory(**overrides())
    clients = []
    try:
        for user, pw in (("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)):
            conn = stomp.Connection12([("127.0.0.1", b.stomp_port)], heartbeats=(0, 0))
            listener = Collector()
            conn.set_listener("collector", listener)
            conn.connect(user, pw, wait=True)
            clients.append(Client(conn, listener, "1.2"))
        alice, bob = clients
        alice.send("/queue/alice.box", "private", headers={"persistent": "true"})
        alice.sync()
        bob.subscribe("/queue/alice.box", id="b", headers=BROWSE, receipt="r")
        err = bob.listener.error()
        assert (
            err.headers["message"] == "User bob is not authorized to read from: queue://alice.box"
        )
        assert bob.listener.none_within(0.2)
        subscribe(alice, "/queue/alice.box", "a", **BROWSE)
        assert bodies(alice.listener.take(2)[:1]) == ["private"]
    finally:
        for c in clients:
            if c.conn.is_connected():
                c.conn.disconnect()
