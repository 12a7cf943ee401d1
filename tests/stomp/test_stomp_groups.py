"""Message groups (JMSXGroupID, JMSXGroupSeq), exclusive consumers (`activemq.exclusive`)
and consumer priority (`activemq.priority`) over STOMP, with stomp.py clients.

Each scenario was run against ActiveMQ 5.17.2 over STOMP (the same SUBSCRIBE headers,
prefetch 1 or as below, client-individual acks) and gave the same deliveries:

| scenario                                   | ActiveMQ 5.17.2 and ZoneMQ                  |
| ------------------------------------------ | ------------------------------------------- |
| g1, g2, g3 interleaved x3 to A, B          | A: g1, g3; B: g2 (every message of a group) |
| A closes with its messages unacked         | B gets them redelivered, and g1's next ones |
| m1, m2 (JMSXGroupSeq -1), m3 of one group  | m1, m2 to A, m3 to B (without -1: all to A) |
| exclusive A, exclusive B, plain C          | all to A; A gone: B; B gone: C              |
| exclusive A (prio 0), later exclusive B (5)| all to B                                    |
| prefetch 1, LO prio 1, HI prio 5, 4 msgs   | HI p0, LO p1; LO acks: p2 to LO; HI: p3     |
| group owner's selector rejects a message   | it waits for the owner to leave             |
| 1025 groups (auto acks) to A, B; g0 again  | g0 evicted (1024 kept, LRU): g0 to B        |
| A full with m1; m2 with JMSXGroupSeq 1, m3 | m2 to B (a new start), m3 waits for B       |

ActiveMQ's MESSAGE frames carry neither JMSXGroupID nor JMSXGroupSeq (message fields
its STOMP translator does not copy) nor JMSXGroupFirstForConsumer, and by default
neither do ZoneMQ's (`listeners.stomp.group_headers = true` adds the first two).
Where ZoneMQ differs: ActiveMQ ignores an `activemq.priority` or `activemq.exclusive`
it cannot convert (it logs it) and closes the connection, with no ERROR, on a
JMSXGroupSeq that is not an int; ZoneMQ answers both with an ERROR.
"""

from __future__ import annotations

import stomp

from tests.conftest import Client, Collector, bodies, quiet, subscribe

ONE = {"activemq.prefetchSize": "1"}


def test_each_group_goes_to_one_consumer_and_moves_when_it_leaves(connect) -> None:
    a, b, p = connect(), connect(), connect()
    q = "/queue/grp.pin"
    subscribe(a, q, "a", ack="client-individual", **{"activemq.prefetchSize": "10"})
    subscribe(b, q, "b", ack="client-individual", **{"activemq.prefetchSize": "10"})
    for i in range(3):
        for g in ("g1", "g2", "g3"):
            p.send(q, f"{g}-{i}", headers={"JMSXGroupID": g})
    got_a = a.listener.take(6)
    assert bodies(got_a) == ["g1-0", "g3-0", "g1-1", "g3-1", "g1-2", "g3-2"]
    assert bodies(b.listener.take(3)) == ["g2-0", "g2-1", "g2-2"]
    for name in ("JMSXGroupID", "JMSXGroupSeq", "JMSXGroupFirstForConsumer"):
        assert name not in got_a[0].headers  # nor on ActiveMQ's
    a.close()  # unacknowledged: A's groups and messages go to B
    back = b.listener.take(6)
    assert bodies(back) == bodies(got_a)
    assert all(f.headers["redelivered"] == "true" for f in back)
    p.send(q, "g1-late", headers={"JMSXGroupID": "g1"})
    assert bodies(b.listener.take(1)) == ["g1-late"]


def test_a_negative_sequence_closes_the_group(connect) -> None:
    for close in (False, True):
        a, b, p = connect(), connect(), connect()
        q = f"/queue/grp.close.{close}"
        subscribe(a, q, "a", ack="client-individual", **ONE)
        subscribe(b, q, "b", ack="client-individual", **ONE)
        p.send(q, "m1", headers={"JMSXGroupID": "g"})
        m1 = a.listener.next()
        a.ack_frame(m1)
        headers = {"JMSXGroupID": "g"}
        if close:
            headers["JMSXGroupSeq"] = "-1"
        p.send(q, "m2", headers=headers)
        m2 = a.listener.next()
        assert m2.body == "m2"
        a.ack_frame(m2)
        a.sync()
        p.send(q, "m3", headers={"JMSXGroupID": "g"})
        # Closed: m3 picks a consumer anew, B (next in turn); else it stays with A.
        taker, other = (b, a) if close else (a, b)
        assert taker.listener.next().body == "m3"
        assert quiet(other)


def test_exclusive_consumers_first_wins_then_the_next_then_anyone(connect) -> None:
    a, b, c, p = connect(), connect(), connect(), connect()
    q = "/queue/grp.exclusive"
    many = {"activemq.prefetchSize": "100"}
    subscribe(a, q, "a", ack="client-individual", **{"activemq.exclusive": "true"}, **many)
    subscribe(b, q, "b", ack="client-individual", **{"activemq.exclusive": "TRUE"}, **many)
    subscribe(c, q, "c", ack="client-individual", **many)
    for i in range(4):
        p.send(q, f"e{i}")
    assert bodies(a.listener.take(4)) == ["e0", "e1", "e2", "e3"]
    p.sync()
    assert quiet(b) and quiet(c)
    a.close()
    assert bodies(b.listener.take(4)) == ["e0", "e1", "e2", "e3"]
    p.send(q, "e4")
    assert b.listener.next().body == "e4"
    assert quiet(c)
    b.close()
    back = c.listener.take(5)
    assert bodies(back) == ["e0", "e1", "e2", "e3", "e4"]


def test_a_higher_priority_exclusive_consumer_takes_over(connect) -> None:
    a, b, p = connect(), connect(), connect()
    q = "/queue/grp.exclusive.prio"
    subscribe(a, q, "a", **{"activemq.exclusive": "true"})
    subscribe(b, q, "b", **{"activemq.exclusive": "true", "activemq.priority": "5"})
    for i in range(3):
        p.send(q, f"x{i}")
    assert bodies(b.listener.take(3)) == ["x0", "x1", "x2"]
    assert quiet(a)


def test_consumer_priority_with_prefetch_one(connect) -> None:
    lo, hi, p = connect(), connect(), connect()
    q = "/queue/grp.priority"
    subscribe(lo, q, "lo", ack="client-individual", **{"activemq.priority": "1"}, **ONE)
    subscribe(hi, q, "hi", ack="client-individual", **{"activemq.priority": "5"}, **ONE)
    p.send(q, "p0")
    p0 = hi.listener.next()
    assert p0.body == "p0"
    for i in range(1, 4):
        p.send(q, f"p{i}")
    p1 = lo.listener.next()
    assert p1.body == "p1"
    assert quiet(hi)
    lo.ack_frame(p1)  # HI is still full: the next goes to LO
    assert lo.listener.next().body == "p2"
    hi.ack_frame(p0)
    assert hi.listener.next().body == "p3"


def test_groups_compose_with_selectors(connect) -> None:
    a, b, p = connect(), connect(), connect()
    q = "/queue/grp.selector"
    subscribe(a, q, "a", ack="client-individual", selector="color = 'red'")
    subscribe(b, q, "b", ack="client-individual")
    for body, color in [("g-red", "red"), ("g-blue", "blue"), ("g-red2", "red")]:
        p.send(q, body, headers={"JMSXGroupID": "g", "color": color})
    assert bodies(a.listener.take(2)) == ["g-red", "g-red2"]
    p.sync()
    assert quiet(b)  # g-blue is A's group's, and A does not match it: it waits
    a.close()
    back = b.listener.take(3)
    assert [(f.body, f.headers.get("redelivered")) for f in back] == [
        ("g-red", "true"),
        ("g-red2", "true"),
        ("g-blue", None),
    ]


def test_a_queue_keeps_owners_for_1024_groups_least_recently_used_first(connect) -> None:
    a, b, p = connect(), connect(), connect()
    q = "/queue/grp.evict"
    subscribe(a, q, "a")
    subscribe(b, q, "b")
    for i in range(1025):  # alternately to A and B; the 1025th pushes g0 out
        p.send(q, "", headers={"JMSXGroupID": f"g{i}"})
    p.sync()
    assert len(a.listener.take(513)) == 513 and len(b.listener.take(512)) == 512
    p.send(q, "g0-again", headers={"JMSXGroupID": "g0"})  # picks anew: B
    p.send(q, "g1024-again", headers={"JMSXGroupID": "g1024"})  # still A's
    assert b.listener.next().body == "g0-again"
    assert a.listener.next().body == "g1024-again"


def test_sequence_one_starts_a_group_afresh(connect) -> None:
    a, b, p = connect(), connect(), connect()
    q = "/queue/grp.seq1"
    subscribe(a, q, "a", ack="client-individual", **ONE)
    subscribe(b, q, "b", ack="client-individual", **ONE)
    p.send(q, "m1", headers={"JMSXGroupID": "g"})
    m1 = a.listener.next()
    p.send(q, "m2", headers={"JMSXGroupID": "g", "JMSXGroupSeq": "1"})
    p.send(q, "m3", headers={"JMSXGroupID": "g"})
    m2 = b.listener.next()
    assert (m1.body, m2.body) == ("m1", "m2")
    a.ack_frame(m1)
    assert quiet(a)  # m3 is B's now
    b.ack_frame(m2)
    assert b.listener.next().body == "m3"


def _refused(c: Client, q: str, headers: dict[str, str], text: str) -> None:
    c.subscribe(q, id="bad", headers=headers, receipt="bad")
    error = c.listener.error()
    assert text in error.headers["message"]
    assert error.headers.get("receipt-id") == "bad"


def test_unreadable_priority_or_exclusive_is_an_error_and_subscribes_nothing(
    broker, connect
) -> None:
    c, other, p = connect(), connect(), connect()
    q = "/queue/grp.bad"
    subscribe(other, q, "ok")
    _refused(c, q, {"activemq.priority": "abc"}, "Invalid activemq.priority: abc")
    _refused(c, q, {"activemq.priority": "128"}, "must be -128 to 127")
    _refused(c, q, {"activemq.exclusive": "yes"}, "Invalid activemq.exclusive: yes")
    assert c.is_connected()
    assert broker.stats("grp.bad").consumers == 1
    p.send(q, "still")
    assert other.listener.next().body == "still"
    c.sync()  # the connection still works


def test_unreadable_group_sequence_is_an_error_and_sends_nothing(broker, connect) -> None:
    c, consumer = connect(), connect()
    q = "/queue/grp.badseq"
    subscribe(consumer, q, "c")
    for seq in ("abc", "1.5", "2147483648", ""):
        c.send(q, "x", headers={"JMSXGroupID": "g", "JMSXGroupSeq": seq}, receipt="r")
        assert "Invalid JMSXGroupSeq header" in c.listener.error().headers["message"]
    c.send(q, "ok", headers={"JMSXGroupID": "g", "JMSXGroupSeq": "+2"})
    assert consumer.listener.next().body == "ok"
    assert quiet(consumer)
    assert broker.stats("grp.badseq").enqueued == 1


def test_group_headers_on_messages_when_configured(broker_factory) -> None:
    """`listeners.stomp.group_headers`: JMSXGroupID and JMSXGroupSeq as headers (the
    sequence as the int it was read as), also on a browser's messages; a selector reads
    the sequence as an int either way."""
    b = broker_factory(**{"listeners.stomp.group_headers": True})
    c = stomp.Connection12([("127.0.0.1", b.stomp_port)], heartbeats=(0, 0))
    listener = Collector()
    c.set_listener("c", listener)
    c.connect(wait=True)
    try:
        q = "/queue/grp.headers"
        for seq in ("+7", "-1"):
            c.send(q, seq, headers={"JMSXGroupID": "g", "JMSXGroupSeq": seq})
        c.subscribe(q, id="browse", headers={"browser": "true"})
        c.subscribe(q, id="sel", headers={"selector": "JMSXGroupSeq = 7"})
        got = {f.headers["subscription"] + ":" + f.body: f.headers for f in listener.take(4)}
        assert sorted(got) == ["browse:", "browse:+7", "browse:-1", "sel:+7"]  # and the end marker
        assert got["sel:+7"]["JMSXGroupID"] == "g" and got["sel:+7"]["JMSXGroupSeq"] == "7"
        assert got["browse:-1"]["JMSXGroupSeq"] == "-1"
    finally:
        c.disconnect()
