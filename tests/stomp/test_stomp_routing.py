"""Wildcards, composite destinations and virtual topics over STOMP (issue 12).

What ActiveMQ 5.17.2 does was read off the shared instance with stomp.py (the report
has the scripts' output); the expectations below are that behaviour unless a comment
says "differs", and README "Differences from ActiveMQ 5.17" lists those.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import stomp

from tests.conftest import ChildBroker, Collector, bodies, quiet, subscribe

PERSISTENT = {"persistent": "true"}


def test_wildcard_topic_subscriptions(connect) -> None:
    c = connect()
    subscribe(c, "/topic/route.t.*", "one")
    subscribe(c, "/topic/route.t.>", "rest")
    p = connect()
    p.send("/topic/route.t.x", "x")
    p.send("/topic/route.t.new", "a topic created after the subscriptions")
    p.send("/topic/route.t.x.y", "deep")
    p.send("/topic/route.t", "base: '>' matches zero segments too")
    p.send("/topic/route.other", "no")
    p.sync()
    got = c.listener.take(6)
    seen = sorted((f.headers["subscription"], f.headers["destination"]) for f in got)
    assert seen == [
        ("one", "/topic/route.t.new"),
        ("one", "/topic/route.t.x"),
        ("rest", "/topic/route.t"),
        ("rest", "/topic/route.t.new"),
        ("rest", "/topic/route.t.x"),
        ("rest", "/topic/route.t.x.y"),
    ]
    assert quiet(c)


def test_wildcard_topic_destinations_and_unsubscribe(connect) -> None:
    c = connect()
    subscribe(c, "/topic/route.u.*", "w")
    p = connect()
    p.send("/topic/route.u.a", "1")
    p.send("/topic/route.u.b", "2")
    got = c.listener.take(2)
    assert [(f.headers["destination"], f.body) for f in got] == [
        ("/topic/route.u.a", "1"),
        ("/topic/route.u.b", "2"),
    ]
    c.unsubscribe("w", receipt="gone")
    assert c.listener.receipt() == "gone"
    p.send("/topic/route.u.a", "3")
    p.send("/topic/route.u.c", "4")
    p.sync()
    assert quiet(c)


def test_wildcard_queue_consumes_existing_and_new_queues(connect) -> None:
    p = connect()
    p.send("/queue/route.q.a", "before", receipt="r")
    assert p.listener.receipt() == "r"
    c = connect()
    subscribe(c, "/queue/route.q.*", "w", ack="client-individual")
    first = c.listener.next()
    assert (first.headers["destination"], first.body) == ("/queue/route.q.a", "before")
    p.send("/queue/route.q.b", "a queue created later")
    second = c.listener.next()
    assert second.headers["destination"] == "/queue/route.q.b"
    c.ack_frame(first)
    c.ack_frame(second)
    assert quiet(c)
    c.unsubscribe("w", receipt="gone")
    assert c.listener.receipt() == "gone"
    p.send("/queue/route.q.a", "after")
    p.sync()
    assert quiet(c)


def test_wildcard_queue_prefetch_is_shared_as_activemq(connect) -> None:
    """ActiveMQ: prefetch 1 on /queue/p.* gives one message in flight over all queues."""
    p = connect()
    for i in range(3):
        p.send("/queue/route.p.a", f"a{i}")
        p.send("/queue/route.p.b", f"b{i}")
    p.sync()
    c = connect()
    subscribe(c, "/queue/route.p.*", "w", ack="client-individual", **{"activemq.prefetchSize": 1})
    got = []
    for _ in range(6):
        frame = c.listener.next()
        assert c.listener.none_within(0.1)
        got.append(frame.body)
        c.ack_frame(frame)
    assert sorted(got) == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert got.index("a0") < got.index("a1") < got.index("a2")


def test_wildcard_queue_unacked_messages_come_back_redelivered(connect) -> None:
    p = connect()
    p.send("/queue/route.r.a", "1")
    p.send("/queue/route.r.b", "2")
    p.sync()
    c = connect()
    subscribe(c, "/queue/route.r.*", "w", ack="client")
    assert sorted(bodies(c.listener.take(2))) == ["1", "2"]
    c.close()
    d = connect()
    subscribe(d, "/queue/route.r.>", "w", ack="auto")
    again = d.listener.take(2)
    assert sorted(bodies(again)) == ["1", "2"]
    assert {f.headers.get("redelivered") for f in again} == {"true"}


def test_client_ack_on_a_wildcard_queue_is_cumulative(connect) -> None:
    p = connect()
    p.send("/queue/route.ca.a", "1")
    p.send("/queue/route.ca.b", "2")
    p.send("/queue/route.ca.a", "3")
    p.sync()
    c = connect()
    subscribe(c, "/queue/route.ca.*", "w", ack="client")
    got = c.listener.take(3)
    c.ack_frame(got[1])
    c.sync()
    c.close()
    d = connect()
    subscribe(d, "/queue/route.ca.*", "w")
    assert bodies([d.listener.next()]) == [got[2].body]
    assert quiet(d)


def test_send_to_a_wildcard_is_refused_and_the_connection_stays(connect, broker) -> None:
    """Differs: ActiveMQ creates a queue literally named `a.*` (its consumers are those
    whose name it matches); ZoneMQ refuses the SEND with an ERROR, the connection open."""
    c = connect()
    for dest in ("/queue/route.s.*", "/topic/route.s.>"):
        c.send(dest, "x", receipt="r")
        err = c.listener.error()
        assert "wildcard" in err.headers["message"]
    other = connect()
    subscribe(other, "/queue/route.s.ok", "ok")
    c.send("/queue/route.s.ok", "still connected")
    assert other.listener.next().body == "still connected"
    assert broker.stats("route.s.*") is None


def test_browsing_a_wildcard_is_refused(connect) -> None:
    c = connect()
    c.subscribe("/queue/route.b.*", id="b", headers={"browser": "true"}, receipt="r")
    assert "cannot browse" in c.listener.error().headers["message"]
    c.sync()


def test_composite_send(connect) -> None:
    c = connect()
    subscribe(c, "/queue/route.c1", "q1")
    subscribe(c, "/topic/route.c2", "t2")
    subscribe(c, "/queue/route.c3", "q3")
    subscribe(c, "/topic/route.c3", "t3")
    p = connect()
    # A part without a prefix is a queue, whatever the first part is (as ActiveMQ).
    p.send("/topic/route.c2,/queue/route.c1,route.c3", "all", receipt="r")
    assert p.listener.receipt() == "r"
    got = c.listener.take(3)
    assert sorted((f.headers["subscription"], f.headers["destination"]) for f in got) == [
        ("q1", "/queue/route.c1"),
        ("q3", "/queue/route.c3"),
        ("t2", "/topic/route.c2"),
    ]
    assert len({f.headers["message-id"] for f in got}) == 1  # one id, as ActiveMQ
    assert quiet(c)


def test_composite_send_trailing_comma_and_bad_parts(connect) -> None:
    c = connect()
    subscribe(c, "/queue/route.g1", "g")
    c.send("/queue/route.g1,", "trailing comma ignored", receipt="r")
    assert c.listener.next().body == "trailing comma ignored"
    for dest in (",/queue/route.g1", "/queue/route.g1,,/queue/route.g2", "/queue/route.g1,/queue/"):
        c.send(dest, "bad")
        assert "Invalid destination" in c.listener.error().headers["message"]
    c.sync()  # differs: ActiveMQ drops the connection without an ERROR
    assert quiet(c)


def test_composite_subscribe_consumes_the_first_parts_kind(connect) -> None:
    """ActiveMQ 5.17: /topic/f1,/queue/f2 gets topic f1 only (a composite is one kind)."""
    c = connect()
    subscribe(c, "/queue/route.d1,/queue/route.d2", "qq")
    subscribe(c, "/topic/route.e1,/topic/route.e2.*", "tt")
    subscribe(c, "/topic/route.f1,/queue/route.f2", "tq")
    p = connect()
    for dest in (
        "/queue/route.d1",
        "/queue/route.d2",
        "/topic/route.e1",
        "/topic/route.e2.x",
        "/topic/route.f1",
        "/queue/route.f2",
    ):
        p.send(dest, dest)
    p.sync()
    got = c.listener.take(5)
    assert sorted((f.headers["subscription"], f.body) for f in got) == [
        ("qq", "/queue/route.d1"),
        ("qq", "/queue/route.d2"),
        ("tq", "/topic/route.f1"),
        ("tt", "/topic/route.e1"),
        ("tt", "/topic/route.e2.x"),
    ]
    assert quiet(c)


def test_virtual_topic(connect) -> None:
    c = connect()
    subscribe(c, "/queue/Consumer.A.VirtualTopic.route", "a", ack="client-individual")
    subscribe(c, "/topic/VirtualTopic.route", "t")
    p = connect()
    p.send("/topic/VirtualTopic.route", "one", receipt="r1", **PERSISTENT)
    assert p.listener.receipt() == "r1"
    got = c.listener.take(2)
    by_sub = {f.headers["subscription"]: f for f in got}
    assert by_sub["a"].headers["destination"] == "/queue/Consumer.A.VirtualTopic.route"
    assert by_sub["a"].headers["persistent"] == "true"
    assert by_sub["t"].headers["destination"] == "/topic/VirtualTopic.route"
    assert by_sub["a"].headers["message-id"] == by_sub["t"].headers["message-id"]
    c.ack_frame(by_sub["a"])
    # A consumer queue made after a send does not get that send (as ActiveMQ).
    late = connect()
    subscribe(late, "/queue/Consumer.B.VirtualTopic.route", "b")
    assert quiet(late)
    p.send("/topic/VirtualTopic.route", "two")
    assert late.listener.next().body == "two"
    assert sorted(bodies(c.listener.take(2))) == ["two", "two"]


def test_virtual_topic_consumers_compete_per_queue(connect) -> None:
    one, two, other = connect(), connect(), connect()
    subscribe(one, "/queue/Consumer.svc.VirtualTopic.jobs", "s")
    subscribe(two, "/queue/Consumer.svc.VirtualTopic.jobs", "s")
    subscribe(other, "/queue/Consumer.audit.VirtualTopic.jobs", "s")
    p = connect()
    for i in range(6):
        p.send("/topic/VirtualTopic.jobs", f"{i}")
    p.sync()
    assert len(other.listener.take(6)) == 6
    shared = one.listener.take(3) + two.listener.take(3)
    assert sorted(bodies(shared)) == [str(i) for i in range(6)]


def test_virtual_topic_settings(broker_factory, connect) -> None:
    b = broker_factory(**{"virtual_topics.name": "VT.>", "virtual_topics.prefix": "Q.*."})
    c = connect(port=b.stomp_port)
    subscribe(c, "/queue/Q.x.VT.orders", "q")
    subscribe(c, "/queue/Consumer.A.VirtualTopic.orders", "old")
    c.send("/topic/VT.orders", "1")
    c.send("/topic/VirtualTopic.orders", "2")
    assert c.listener.next().headers["subscription"] == "q"
    assert quiet(c)
    off = broker_factory(**{"virtual_topics.enabled": False})
    d = connect(port=off.stomp_port)
    subscribe(d, "/queue/Consumer.A.VirtualTopic.orders", "q")
    d.send("/topic/VirtualTopic.orders", "3")
    d.sync()
    assert quiet(d)


def test_virtual_topic_persistent_copies_survive_a_crash(tmp_path: Path) -> None:
    """SIGKILL after the receipt: each consumer queue has its copy after restart."""
    argv = [sys.executable, "-m", "broker", "run", "--data-dir", str(tmp_path / "data")]
    argv += ["--stomp-port", "0", "--console-port", "0"]
    listening = re.compile(r"stomp listener on (\S+):(\d+)")

    def start() -> tuple[ChildBroker, int]:
        child = ChildBroker(argv, tmp_path)
        return child, int(child.wait_for(listening).group(2))

    def client(port: int) -> tuple[stomp.Connection12, Collector]:
        conn = stomp.Connection12([("127.0.0.1", port)])
        listener = Collector()
        conn.set_listener("c", listener)
        conn.connect(wait=True)
        return conn, listener

    first, port = start()
    try:
        conn, listener = client(port)
        for name in ("A", "B"):
            conn.subscribe(f"/queue/Consumer.{name}.VirtualTopic.crash", id=name, receipt=name)
            assert listener.receipt() == name
            conn.unsubscribe(name)  # the queues exist; nobody consumes
        for i in range(5):
            conn.send("/topic/VirtualTopic.crash", f"m{i}", receipt=f"r{i}", **PERSISTENT)
        conn.send("/topic/VirtualTopic.crash", "not persistent", receipt="np")
        assert [listener.receipt() for _ in range(6)] == [f"r{i}" for i in range(5)] + ["np"]
        first.kill()
        second, port = start()
        try:
            conn, listener = client(port)
            for name in ("A", "B"):
                conn.subscribe(f"/queue/Consumer.{name}.VirtualTopic.crash", id=name)
                got = [listener.next() for _ in range(5)]
                assert [f.body for f in got] == [f"m{i}" for i in range(5)]
                assert {f.headers["destination"] for f in got} == {
                    f"/queue/Consumer.{name}.VirtualTopic.crash"
                }
            assert listener.none_within(0.3)
            conn.disconnect()
        finally:
            second.cleanup()
    finally:
        first.cleanup()


def test_nack_on_a_wildcard_queue_dead_letters_from_its_queue(connect) -> None:
    p = connect()
    p.send("/queue/route.n.a", "poison", **PERSISTENT)
    p.sync()
    c = connect()
    subscribe(c, "/queue/route.n.*", "w", ack="client-individual")
    c.nack_frame(c.listener.next())
    c.sync()
    dlq = connect()
    subscribe(dlq, "/queue/ActiveMQ.DLQ", "d")
    dead = dlq.listener.next()
    assert dead.body == "poison"
    assert dead.headers["original-destination"] == "/queue/route.n.a"


def test_stomp_1_1_ack_names_the_wildcard_subscription(connect) -> None:
    p = connect()
    p.send("/queue/route.v11.a", "1")
    p.send("/queue/route.v11.b", "2")
    p.sync()
    c = connect("1.1")
    subscribe(c, "/queue/route.v11.*", "w", ack="client-individual")
    for frame in c.listener.take(2):
        c.ack_frame(frame)
    c.sync()
    c.close()
    d = connect()
    subscribe(d, "/queue/route.v11.*", "w")
    assert quiet(d)


def test_wildcard_subscription_needs_read_not_admin(broker_factory) -> None:
    """A wildcard creates nothing: bob may read shared.> but not create in it."""
    from tests.authmap import BOB_PASSWORD, overrides

    b = broker_factory(**overrides())
    conn = stomp.Connection12([("127.0.0.1", b.stomp_port)], heartbeats=(0, 0))
    listener = Collector()
    conn.set_listener("c", listener)
    conn.connect("bob", BOB_PASSWORD, wait=True)
    try:
        conn.subscribe("/queue/shared.*", id="ok", receipt="r1")
        assert listener.receipt() == "r1"
        conn.subscribe("/queue/alice.*", id="no", receipt="r2")
        err = listener.error()
        assert err.headers["message"] == "User bob is not authorized to read from: queue://alice.*"
        conn.subscribe("/queue/zonemq.x,/queue/alice.inbox", id="mixed", receipt="r3")
        assert "alice.inbox" in listener.error().headers["message"]
    finally:
        conn.disconnect()
