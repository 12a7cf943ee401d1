"""JMS selectors over STOMP (the SUBSCRIBE `selector` header), with stomp.py clients:
queues, competing selective consumers, topics, browsers and syntax errors."""

from __future__ import annotations

from tests.conftest import bodies, quiet, subscribe


def test_selective_consumer_on_a_queue(connect) -> None:
    c = connect()
    subscribe(c, "/queue/sel.q1", "red", selector="color = 'red'")
    for i, color in enumerate(["red", "blue", "red", "green"]):
        c.send("/queue/sel.q1", f"{color}{i}", headers={"color": color})
    assert bodies(c.listener.take(2)) == ["red0", "red2"]
    assert quiet(c)
    other = connect()
    subscribe(other, "/queue/sel.q1", "rest")
    assert bodies(other.listener.take(2)) == ["blue1", "green3"]


def test_numbers_compare_with_string_headers_as_activemq(connect) -> None:
    """ActiveMQ converts a STOMP header for a numeric comparison: Integer.valueOf for an
    integer literal (so 20.5 is not > 10), Double.valueOf for a decimal one."""
    c = connect()
    subscribe(c, "/queue/sel.num", "int", selector="price > 10")
    subscribe(c, "/topic/sel.num", "dec", selector="price > 10.0")
    for price in ["20", "5", "20.5", "x"]:
        c.send("/queue/sel.num", price, headers={"price": price})
        c.send("/topic/sel.num", price, headers={"price": price})
    got = c.listener.take(3)
    assert sorted((f.headers["subscription"], f.body) for f in got) == [
        ("dec", "20"),
        ("dec", "20.5"),
        ("int", "20"),
    ]
    assert quiet(c)


def test_disjoint_selectors_share_a_queue_without_starving(connect) -> None:
    """Prefetch 1, client acks: each consumer gets its next message while the other's
    are waiting in front of it, and each ends with exactly its share, in order."""
    a, b = connect(), connect()
    subscribe(
        a,
        "/queue/sel.share",
        "a",
        ack="client-individual",
        selector="n IN ('0', '2', '4', '6', '8')",
        **{"activemq.prefetchSize": "1"},
    )
    subscribe(
        b,
        "/queue/sel.share",
        "b",
        ack="client-individual",
        selector="n IN ('1', '3', '5', '7', '9')",
        **{"activemq.prefetchSize": "1"},
    )
    producer = connect()
    for i in range(10):
        producer.send("/queue/sel.share", str(i), headers={"n": str(i)})
    got = {"a": [], "b": []}
    for client, name in ((b, "b"), (a, "a")):  # b first: a has not acked anything
        for _ in range(5):
            frame = client.listener.next()
            got[name].append(frame.body)
            client.ack_frame(frame)
    assert got == {"a": ["0", "2", "4", "6", "8"], "b": ["1", "3", "5", "7", "9"]}
    assert quiet(a) and quiet(b)


def test_a_backlog_nobody_matches_does_not_block_later_messages(connect) -> None:
    c = connect()
    for i in range(50):
        c.send("/queue/sel.backlog", f"old{i}", headers={"kind": "nobody"})
    subscribe(
        c,
        "/queue/sel.backlog",
        "k",
        ack="client",
        selector="kind = 'k'",
        **{"activemq.prefetchSize": "1"},
    )
    for i in range(3):
        c.send("/queue/sel.backlog", f"k{i}", headers={"kind": "k"})
    for i in range(3):
        frame = c.listener.next()
        assert frame.body == f"k{i}"
        c.ack_frame(frame)
    assert quiet(c)


def test_topic_subscribers_each_filter(connect) -> None:
    c = connect()
    subscribe(c, "/topic/sel.t", "cars", selector="JMSType = 'car' AND JMSPriority > 4")
    subscribe(c, "/topic/sel.t", "all")
    c.send("/topic/sel.t", "fast car", headers={"type": "car", "priority": "7"})
    c.send("/topic/sel.t", "slow car", headers={"type": "car", "priority": "1"})
    c.send("/topic/sel.t", "bike", headers={"type": "bike", "priority": "9"})
    got = c.listener.take(4)
    by_sub: dict[str, list[str]] = {}
    for f in got:
        by_sub.setdefault(f.headers["subscription"], []).append(f.body)
    assert by_sub == {"cars": ["fast car"], "all": ["fast car", "slow car", "bike"]}
    assert quiet(c)


def test_browser_honours_its_selector(connect) -> None:
    c = connect()
    for color in ["red", "blue", "red"]:
        c.send("/queue/sel.browse", color, headers={"color": color})
    c.sync()
    subscribe(c, "/queue/sel.browse", "b", browser="true", selector="color = 'red'")
    got = c.listener.take(3)
    assert bodies(got[:2]) == ["red", "red"]
    assert got[2].headers.get("browser") == "end"


def test_syntax_error_is_an_error_frame_naming_the_column(connect) -> None:
    """As ActiveMQ 5.17: an ERROR (with the SUBSCRIBE's receipt-id), the connection stays
    open, and no subscription was made."""
    c = connect()
    c.subscribe("/queue/sel.bad", id="bad", headers={"selector": "price >> 10"}, receipt="r1")
    error = c.listener.error()
    assert error.headers["receipt-id"] == "r1"
    assert "column 8" in error.headers["message"]
    assert "expected an expression" in error.headers["message"]
    c.send("/queue/sel.bad", "after", headers={"price": "20"})
    subscribe(c, "/queue/sel.bad", "bad")  # the id is free: nothing was registered
    assert c.listener.next().body == "after"
    assert c.is_connected()


def test_empty_selector_is_an_error_as_in_activemq(connect) -> None:
    c = connect()
    c.subscribe("/queue/sel.empty", id="e", headers={"selector": ""}, receipt="r")
    assert "column 1" in c.listener.error().headers["message"]
