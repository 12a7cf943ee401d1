"""Durable topic subscriptions over STOMP (issue 12), as ActiveMQ 5.17 has them: CONNECT
`client-id` plus SUBSCRIBE `activemq.subscriptionName`.

What was compared with a real ActiveMQ 5.17.2 (raw STOMP 1.2 frames, the same
sequences on both; ActiveMQ's answer, which ZoneMQ gives too unless said):
- away, a persistent and a non-persistent message sent, back: both, in order;
- a second SUBSCRIBE of the name on the same connection: ERROR "Durable consumer is in
  use for client: c and subscriptionName: n", the connection stays open;
- UNSUBSCRIBE with the name while its consumer is attached: ERROR "Durable consumer is
  in use"; UNSUBSCRIBE by id, then with the name: RECEIPT, RECEIPT (removed); with the
  name again: ERROR "No durable subscription exists for clientID: c and
  subscriptionName: n";
- a durable SUBSCRIBE to a queue: ERROR "Invalid Subscription: cannot durably subscribe
  to a Queue destination!"; to a temporary topic: ERROR "A durable subscription cannot
  be created for a temporary topic."; with an empty name: a RECEIPT (durable, named "");
- `durable-subscription-name` instead of `activemq.subscriptionName`: not durable;
- back with another selector: replaced, the waiting messages gone; with the same
  selector: only matching messages were kept;
- client ack, gone without ACK, back: the message again (ActiveMQ sends it without
  `redelivered:true`; ZoneMQ flags it, as it does a queue's returned messages);
- `activemq.retroactive:true` with ActiveMQ's default policy: nothing replayed (ZoneMQ
  ignores the header);
- a second connection with the client-id of a connected one: its CONNECT refused
  ("Broker: localhost - Client: c already connected from tcp://127.0.0.1:port"; ZoneMQ
  names its broker), the connection closed.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WAIT, BrokerThread, bodies, headers_of, quiet, subscribe

T = "/topic/durable.prices"
_ids = itertools.count(1)


def _cid() -> str:
    return f"durable-client-{next(_ids)}"


def durable(c: Any, sub_id: str = "d1", name: str = "sub", dest: str = T, **h: Any) -> None:
    subscribe(c, dest, sub_id, **{"activemq.subscriptionName": name, **h})


def leave(c: Any) -> None:
    """DISCONNECT and wait for its receipt: the broker has let go of the client-id (a
    CONNECT with it from a new connection before that is refused, as in ActiveMQ)."""
    c.conn.disconnect(receipt="bye")
    assert c.listener.receipt() == "bye"


def unsubscribe(c: Any, receipt: str, **headers: str) -> None:
    c.unsubscribe(id=headers.pop("id", "d1"), headers=headers, receipt=receipt)


def test_messages_sent_while_away_wait_for_the_subscriber(connect) -> None:
    cid = _cid()
    c = connect(headers={"client-id": cid})
    durable(c)
    leave(c)
    p = connect()
    p.send(T, "p1", headers={"persistent": "true"})
    p.send(T, "np", headers={"persistent": "false"})
    p.send(T, "p2", headers={"persistent": "true"})
    p.sync()
    back = connect(headers={"client-id": cid})
    durable(back)
    assert bodies(back.listener.take(3)) == ["p1", "np", "p2"]
    assert quiet(back)
    # Live delivery goes on as for any subscriber.
    p.send(T, "live")
    assert back.listener.next().body == "live"


def test_other_names_and_clients_are_other_subscriptions(connect) -> None:
    a, b = _cid(), _cid()
    for cid, name in ((a, "x"), (a, "y"), (b, "x")):
        c = connect(headers={"client-id": cid})
        durable(c, name=name)
        leave(c)
    p = connect()
    p.send(T, "m")
    p.sync()
    for cid, name in ((a, "x"), (a, "y"), (b, "x")):
        c = connect(headers={"client-id": cid})
        durable(c, name=name)
        assert c.listener.next().body == "m"
        assert quiet(c)
        leave(c)


def test_unsubscribe_by_id_keeps_it_by_name_removes_it(connect) -> None:
    cid = _cid()
    c = connect(headers={"client-id": cid})
    durable(c)
    unsubscribe(c, "while-active", **{"activemq.subscriptionName": "sub"})
    err = c.listener.error()
    assert err.headers["message"] == "Durable consumer is in use"
    assert err.headers["receipt-id"] == "while-active"
    unsubscribe(c, "by-id")
    assert c.listener.receipt() == "by-id"
    p = connect()
    p.send(T, "kept", headers={"persistent": "true"})
    p.sync()
    unsubscribe(c, "by-name", **{"activemq.subscriptionName": "sub"})
    assert c.listener.receipt() == "by-name"
    unsubscribe(c, "again", **{"activemq.subscriptionName": "sub"})
    err = c.listener.error()
    assert err.headers["message"] == (
        f"No durable subscription exists for clientID: {cid} and subscriptionName: sub"
    )
    # The connection stays open, and a new subscription of that name starts empty.
    durable(c, sub_id="d2")
    assert quiet(c)
    p.send(T, "new")
    assert c.listener.next().body == "new"


def test_a_second_consumer_is_refused(connect) -> None:
    cid = _cid()
    c = connect(headers={"client-id": cid})
    durable(c)
    c.subscribe(T, id="d2", headers={"activemq.subscriptionName": "sub"}, receipt="r2")
    err = c.listener.error()
    assert err.headers["message"] == (
        f"Durable consumer is in use for client: {cid} and subscriptionName: sub"
    )
    assert err.headers["receipt-id"] == "r2"
    # The first one is unaffected: one copy per message, on its subscription d1.
    p = connect()
    p.send(T, "once")
    got = c.listener.next()
    assert (got.body, got.headers["subscription"]) == ("once", "d1")
    assert quiet(c)


def test_a_client_id_already_connected_is_refused_at_connect(broker: BrokerThread, raw) -> None:
    first = raw()
    first.connect(extra="client-id:taken\n")
    first.send(b"SEND\ndestination:/queue/durable.sync\nreceipt:r\n\nx\x00")
    assert first.frame().startswith(b"RECEIPT")
    where = broker.call(lambda: broker.broker.core.durables._clients["taken"][1])
    second = raw()
    second.send(b"CONNECT\naccept-version:1.2\nhost:localhost\nclient-id:taken\n\n\x00")
    command, headers = headers_of(second.frame())
    assert command == "ERROR"
    assert headers["message"] == (
        f"Broker: {broker.settings.broker.name} - Client: taken already connected from {where}"
    )
    assert where.startswith("tcp://127.0.0.1:")
    assert second.closed()
    # The first connection goes on; once it has gone the client id is free again.
    first.send(b"SEND\ndestination:/queue/durable.sync\nreceipt:r2\n\nx\x00")
    assert first.frame().startswith(b"RECEIPT")
    first.send(b"DISCONNECT\nreceipt:bye\n\n\x00")
    assert first.frame().startswith(b"RECEIPT")
    assert first.closed()
    third = raw()
    third.connect(extra="client-id:taken\n")


def test_durable_subscribe_to_a_queue_is_refused(connect) -> None:
    c = connect(headers={"client-id": _cid()})
    c.subscribe("/queue/durable.q", id="q", headers={"activemq.subscriptionName": "n"}, receipt="r")
    err = c.listener.error()
    assert err.headers["message"] == (
        "Invalid Subscription: cannot durably subscribe to a Queue destination!"
    )
    c.send("/queue/durable.q", "still open")
    c.sync()


def test_durable_subscribe_to_a_temporary_topic_is_refused(connect) -> None:
    c = connect(headers={"client-id": _cid()})
    c.subscribe("/temp-topic/tt", id="t", headers={"activemq.subscriptionName": "n"}, receipt="r")
    err = c.listener.error()
    assert err.headers["message"] == (
        "A durable subscription cannot be created for a temporary topic."
    )
    assert err.headers["receipt-id"] == "r"
    c.sync()


def test_durable_subscription_name_header_is_not_durable(connect) -> None:
    cid = _cid()
    c = connect(headers={"client-id": cid})
    subscribe(c, T, "d1", **{"durable-subscription-name": "sub"})
    leave(c)
    p = connect()
    p.send(T, "lost", headers={"persistent": "true"})
    p.sync()
    back = connect(headers={"client-id": cid})
    subscribe(back, T, "d1", **{"durable-subscription-name": "sub"})
    assert quiet(back)


def test_selector_filters_and_a_new_selector_replaces(connect) -> None:
    cid = _cid()
    c = connect(headers={"client-id": cid})
    durable(c, selector="color = 'red'")
    leave(c)
    p = connect()
    for color in ("red", "blue", "red"):
        p.send(T, color, headers={"color": color, "persistent": "true"})
    p.sync()
    c = connect(headers={"client-id": cid})
    durable(c, selector="color = 'red'")
    assert bodies(c.listener.take(2)) == ["red", "red"]
    assert quiet(c)
    leave(c)
    p.send(T, "red-again", headers={"color": "red"})
    p.sync()
    # Back with another selector: a new subscription, the waiting message gone with
    # the old one (ActiveMQ's TopicRegion.hasDurableSubChanged).
    c = connect(headers={"client-id": cid})
    durable(c, selector="color = 'blue'")
    assert quiet(c)
    p.send(T, "blue", headers={"color": "blue"})
    p.send(T, "red", headers={"color": "red"})
    assert c.listener.next().body == "blue"
    assert quiet(c)


def test_transacted_publishing_reaches_it_at_commit_only(connect) -> None:
    cid = _cid()
    c = connect(headers={"client-id": cid})
    durable(c)
    leave(c)
    p = connect()
    p.begin(transaction="t1")
    p.send(T, "aborted", headers={"persistent": "true"}, transaction="t1")
    p.abort(transaction="t1")
    p.begin(transaction="t2")
    p.send(T, "committed", headers={"persistent": "true"}, transaction="t2")
    p.commit(transaction="t2", receipt="c2")
    assert p.listener.receipt() == "c2"
    back = connect(headers={"client-id": cid})
    durable(back)
    assert back.listener.next().body == "committed"
    assert quiet(back)


def test_no_local(connect) -> None:
    cid = _cid()
    c = connect(headers={"client-id": cid})
    durable(c, **{"activemq.noLocal": "true"})
    c.send(T, "mine")
    other = connect()
    other.send(T, "theirs")
    assert c.listener.next().body == "theirs"
    assert quiet(c)


def test_unacknowledged_messages_come_back_redelivered(connect) -> None:
    cid = _cid()
    c = connect(headers={"client-id": cid})
    durable(c, ack="client-individual")
    p = connect()
    p.send(T, "a", headers={"persistent": "true"})
    p.send(T, "b", headers={"persistent": "true"})
    first = c.listener.take(2)
    c.ack_frame(first[0])
    c.sync()
    leave(c)
    back = connect(headers={"client-id": cid})
    durable(back, ack="client-individual")
    again = back.listener.next()
    assert again.body == "b"
    assert again.headers.get("redelivered") == "true"
    assert quiet(back)


def test_default_prefetch_is_activemqs_durable_prefetch(broker: BrokerThread, connect) -> None:
    c = connect(headers={"client-id": _cid()})
    durable(c, ack="client-individual")
    p = connect()
    for i in range(150):
        p.send(T, str(i))
    p.sync()
    got = c.listener.take(100)
    assert bodies(got) == [str(i) for i in range(100)]
    assert c.listener.none_within(0.2)
    c.ack_frame(got[-1])  # individual: one more may come
    assert c.listener.next().body == "100"


def test_stats_show_depth_and_consumers(broker: BrokerThread, connect) -> None:
    cid = _cid()
    c = connect(headers={"client-id": cid})
    durable(c)
    s = broker.stats(f"{cid}:sub", kind="durable")
    assert (s.consumers, s.depth) == (1, 0)
    leave(c)
    p = connect()
    for _ in range(3):
        p.send(T, "x")
    p.sync()
    s = broker.stats(f"{cid}:sub", kind="durable")
    assert (s.consumers, s.depth, s.enqueued) == (0, 3, 3)


def test_stomp_1_0_unsubscribe_names_the_client_by_the_subscription(connect) -> None:
    # ActiveMQ's ProtocolConverter sets the client id to the subscription name in 1.0.
    c = connect("1.0", headers={"client-id": "same"})
    c.subscribe(T, id="d1", headers={"activemq.subscriptionName": "same"}, receipt="r")
    assert c.listener.receipt() == "r"
    c.unsubscribe(id="d1", receipt="u")
    assert c.listener.receipt() == "u"
    c.unsubscribe(id="d1", headers={"activemq.subscriptionName": "same"}, receipt="u2")
    assert c.listener.receipt() == "u2"
    other = connect("1.0", headers={"client-id": "cid-10"})
    other.subscribe(T, id="d1", headers={"activemq.subscriptionName": "n"}, receipt="r")
    assert other.listener.receipt() == "r"
    other.unsubscribe(id="d1", receipt="u")
    assert other.listener.receipt() == "u"
    other.unsubscribe(id="d1", headers={"activemq.subscriptionName": "n"}, receipt="u2")
    assert "clientID: n and" in other.listener.error().headers["message"]


# -- across restarts -------------------------------------------------------------------


def _restart(old: BrokerThread, data: Path, **overrides: Any) -> BrokerThread:
    old.stop()
    return BrokerThread(data, **overrides).start()


@pytest.mark.parametrize("memory_limit", [64 * 1024 * 1024, 2048])
def test_a_restart_keeps_the_subscription_and_its_persistent_messages(
    tmp_path: Path, connect, memory_limit: int
) -> None:
    """Graceful restart; with a small memory limit most messages wait paged out (stubs),
    before and after it. Non-persistent ones are lost, as in ActiveMQ."""
    data = tmp_path / "restart"
    settings = {"destinations.queue_memory_limit": memory_limit}
    b = BrokerThread(data, **settings).start()
    try:
        cid = _cid()
        c = connect(port=b.stomp_port, headers={"client-id": cid})
        durable(c, selector="keep = 'yes'")
        leave(c)
        p = connect(port=b.stomp_port)
        for i in range(200):
            p.send(T, f"p{i}", headers={"persistent": "true", "keep": "yes"})
        p.send(T, "np", headers={"keep": "yes"})
        p.send(T, "filtered", headers={"persistent": "true", "keep": "no"})
        p.sync()
        p.close()
        b = _restart(b, data, **settings)
        s = b.stats(f"{cid}:sub", kind="durable")
        assert s is not None and s.depth == 200
        back = connect(port=b.stomp_port, headers={"client-id": cid})
        durable(back, selector="keep = 'yes'")
        assert bodies(back.listener.take(200)) == [f"p{i}" for i in range(200)]
        assert quiet(back)
        leave(back)
        # Consumed (auto ack) for good: nothing comes back after another restart.
        b = _restart(b, data, **settings)
        again = connect(port=b.stomp_port, headers={"client-id": cid})
        durable(again, selector="keep = 'yes'")
        assert quiet(again)
        unsubscribe(again, "by-id")
        assert again.listener.receipt() == "by-id"
        unsubscribe(again, "gone", **{"activemq.subscriptionName": "sub"})
        assert again.listener.receipt() == "gone"
        leave(again)
        b = _restart(b, data, **settings)
        assert b.stats(f"{cid}:sub", kind="durable") is None
    finally:
        b.stop()


def test_a_removed_subscription_stays_removed_after_restart(tmp_path: Path, connect) -> None:
    data = tmp_path / "removed"
    b = BrokerThread(data).start()
    try:
        cid = _cid()
        c = connect(port=b.stomp_port, headers={"client-id": cid})
        durable(c)
        unsubscribe(c, "by-id")
        assert c.listener.receipt() == "by-id"
        p = connect(port=b.stomp_port)
        p.send(T, "dropped", headers={"persistent": "true"})
        p.sync()
        unsubscribe(c, "gone", **{"activemq.subscriptionName": "sub"})
        assert c.listener.receipt() == "gone"
        leave(c)
        b = _restart(b, data)
        assert b.call(lambda: b.broker.core.durables.find(cid, "sub")) is None
        assert b.call(lambda: b.broker.store.stored_bytes) == 0
        back = connect(port=b.stomp_port, headers={"client-id": cid})
        durable(back)
        assert back.listener.none_within(WAIT / 10)
    finally:
        b.stop()


def test_metrics_show_durable_subscriptions(broker: BrokerThread, connect) -> None:
    import urllib.request

    cid = _cid()
    c = connect(headers={"client-id": cid})
    durable(c)
    leave(c)
    p = connect()
    p.send(T, "waiting")
    p.sync()
    url = f"http://127.0.0.1:{broker.console_port}/metrics"
    with urllib.request.urlopen(url, timeout=WAIT) as resp:
        text = resp.read().decode()
    labels = f'destination="{cid}:sub",kind="durable"'
    assert f"zonemq_destination_depth{{{labels}}} 1.0" in text
    assert f"zonemq_consumers{{{labels}}} 0.0" in text
