"""Durable subscriptions on wildcard and composite topics over STOMP (issue 12): CONNECT
`client-id` + SUBSCRIBE `activemq.subscriptionName` on `/topic/a.*`, `/topic/a.>` or
`/topic/a,/topic/b`, as ActiveMQ 5.17 has them.

Compared with the shared ActiveMQ 5.17.2 over STOMP 1.2 (stomp.py, the same sequences on
both; ActiveMQ's answer, which ZoneMQ gives too):
- `a.*`, subscribed while `a.old` exists, away; persistent messages to `a.old`, to
  `a.new` (first used after the subscription), `a.b.c` and `a`: back, `a.old` and
  `a.new` in order, nothing else;
- `g.>`: gets `g` (zero more segments) and `g.x.y`;
- composite `k.x,k.*`, away, a message to `k.x` (matched twice) and one to `k.y`: each
  once;
- composite `m.x,m.y`, a composite send to `/topic/m.x,/topic/m.y`: once, online and
  offline (ActiveMQ keeps one copy of the message id; which topic's copy varied between
  runs there, ZoneMQ keeps the first); a plain subscriber of the same composite gets
  both copies;
- back with another pattern (`r.*` then `r.>`): replaced, the stored message dropped,
  the new pattern applies; a composite with its parts in another order: replaced too;
- a selector on `s.*`: only matching messages kept;
- `/topic/t,/queue/q`: durable on the topic alone; `/queue/q,/topic/t`: ERROR "Invalid
  Subscription: cannot durably subscribe to a Queue destination!", connection kept;
- a second consumer of a wildcard subscription: ERROR "Durable consumer is in use for
  client: c and subscriptionName: n"; UNSUBSCRIBE with the name while attached: ERROR
  "Durable consumer is in use".
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stomp

from tests.conftest import WAIT, BrokerThread, Client, bodies, quiet, subscribe, wait_until

_ids = itertools.count(1)
NAME = {"activemq.subscriptionName": "n"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerThread]:
    b = BrokerThread(tmp_path_factory.mktemp("durwild"))
    b.start()
    yield b
    b.stop()


def _run() -> str:
    """A prefix no other test of the shared broker uses."""
    return f"dwp{next(_ids)}"


def durable(c: Client, dest: str, sub_id: str = "d1", **h: Any) -> None:
    subscribe(c, dest, sub_id, **{**NAME, **h})


def leave(c: Client) -> None:
    """DISCONNECT with a receipt: the broker has let go of the client-id."""
    c.conn.disconnect(receipt="bye")
    assert c.listener.receipt() == "bye"


def publish(c: Client, dest: str, *texts: str, **h: str) -> None:
    for text in texts:
        c.send(dest, text, headers={"persistent": "true", **h})
    c.sync()


def back(connect: Any, cid: str, dest: str, n: int, **h: Any) -> tuple[Client, list[Any]]:
    """Reconnect as `cid`, subscribe again; the `n` messages that waited, and nothing
    more (checked after a round trip)."""
    c = connect(headers={"client-id": cid})
    durable(c, dest, **h)
    got = c.listener.take(n) if n else []
    assert quiet(c)
    return c, got


def test_a_wildcard_keeps_what_matching_topics_get_while_away(connect) -> None:
    r = _run()
    cid = f"{r}-c"
    p = connect()
    publish(p, f"/topic/{r}.a.old", "before")  # the topic exists before the subscription
    c = connect(headers={"client-id": cid})
    durable(c, f"/topic/{r}.a.*")
    publish(p, f"/topic/{r}.a.old", "online")
    assert c.listener.next().body == "online"
    leave(c)
    publish(p, f"/topic/{r}.a.old", "to-old")
    publish(p, f"/topic/{r}.a.new", "to-new")  # first used while the subscriber is away
    p.send(f"/topic/{r}.a.new", "non-persistent", headers={"persistent": "false"})
    publish(p, f"/topic/{r}.a.b.c", "too-deep")
    publish(p, f"/topic/{r}.a", "parent")
    c, got = back(connect, cid, f"/topic/{r}.a.*", 3)
    assert bodies(got) == ["to-old", "to-new", "non-persistent"]
    assert [f.headers["destination"] for f in got[:2]] == [
        f"/topic/{r}.a.old",
        f"/topic/{r}.a.new",
    ]


def test_a_final_gt_covers_the_topic_itself_and_every_depth(connect) -> None:
    r = _run()
    cid = f"{r}-c"
    c = connect(headers={"client-id": cid})
    durable(c, f"/topic/{r}.g.>")
    leave(c)
    p = connect()
    for name in ("g", "g.x.y", "h.x"):
        publish(p, f"/topic/{r}.{name}", name)
    _, got = back(connect, cid, f"/topic/{r}.g.>", 2)
    assert bodies(got) == ["g", "g.x.y"]


def test_a_composite_gets_a_message_once_however_many_parts_match(connect) -> None:
    r = _run()
    cid = f"{r}-c"
    dest = f"/topic/{r}.k.x,/topic/{r}.k.*"
    c = connect(headers={"client-id": cid})
    durable(c, dest)
    leave(c)
    p = connect()
    publish(p, f"/topic/{r}.k.x", "matched-twice")
    publish(p, f"/topic/{r}.k.y", "matched-once")
    _, got = back(connect, cid, dest, 2)
    assert bodies(got) == ["matched-twice", "matched-once"]


def test_a_composite_send_reaches_a_durable_composite_once(connect) -> None:
    r = _run()
    cid = f"{r}-c"
    dest = f"/topic/{r}.m.x,/topic/{r}.m.y"
    c = connect(headers={"client-id": cid})
    durable(c, dest)
    plain = connect()
    subscribe(plain, dest, "plain")
    p = connect()
    publish(p, dest, "online")
    (got,) = c.listener.take(1)
    assert got.headers["destination"] == f"/topic/{r}.m.x"
    assert quiet(c)
    copies = plain.listener.take(2)
    assert {f.headers["destination"] for f in copies} == {f"/topic/{r}.m.x", f"/topic/{r}.m.y"}
    assert len({f.headers["message-id"] for f in copies}) == 1
    leave(c)
    publish(p, dest, "offline")
    _, again = back(connect, cid, dest, 1)
    assert bodies(again) == ["offline"]


def test_another_pattern_replaces_the_subscription_and_drops_what_waited(connect) -> None:
    r = _run()
    cid = f"{r}-c"
    c = connect(headers={"client-id": cid})
    durable(c, f"/topic/{r}.r.*")
    leave(c)
    p = connect()
    publish(p, f"/topic/{r}.r.x", "stored")
    c, _ = back(connect, cid, f"/topic/{r}.r.>", 0)
    leave(c)
    publish(p, f"/topic/{r}.r.x", "after")
    publish(p, f"/topic/{r}.r.x.y", "deep-after")
    c, got = back(connect, cid, f"/topic/{r}.r.>", 2)
    assert bodies(got) == ["after", "deep-after"]
    leave(c)
    # The parts of a composite in another order: another subscription, as ActiveMQ.
    ab, ba = f"/topic/{r}.o.a,/topic/{r}.o.b", f"/topic/{r}.o.b,/topic/{r}.o.a"
    c = connect(headers={"client-id": cid})
    durable(c, ab)
    leave(c)
    publish(p, f"/topic/{r}.o.a", "dropped")
    back(connect, cid, ba, 0)


def test_selector_and_no_local_on_a_wildcard(connect) -> None:
    r = _run()
    cid = f"{r}-c"
    c = connect(headers={"client-id": cid})
    durable(c, f"/topic/{r}.s.*", selector="k = 'y'", **{"activemq.noLocal": "true"})
    c.send(f"/topic/{r}.s.own", "mine", headers={"k": "y"})
    leave(c)
    p = connect()
    publish(p, f"/topic/{r}.s.a", "nomatch", k="n")
    publish(p, f"/topic/{r}.s.b", "match", k="y")
    _, got = back(
        connect, cid, f"/topic/{r}.s.*", 1, selector="k = 'y'", **{"activemq.noLocal": "true"}
    )
    assert bodies(got) == ["match"]


def test_one_consumer_unsubscribe_and_refusals_keep_the_connection(connect) -> None:
    r = _run()
    cid = f"{r}-c"
    c = connect(headers={"client-id": cid})
    other = connect()
    subscribe(other, f"/topic/{r}.u.x", "plain")
    durable(c, f"/topic/{r}.u.*")
    c.subscribe(f"/topic/{r}.u.*", id="d2", headers=NAME, receipt="second")
    err = c.listener.error()
    assert err.headers["message"] == (
        f"Durable consumer is in use for client: {cid} and subscriptionName: n"
    )
    c.unsubscribe(id="d1", headers=NAME, receipt="while-active")
    assert c.listener.error().headers["message"] == "Durable consumer is in use"
    c.subscribe(f"/queue/{r}.q,/topic/{r}.u.t", id="d3", headers={**NAME}, receipt="queue-first")
    err = c.listener.error()
    assert err.headers["message"] == (
        "Invalid Subscription: cannot durably subscribe to a Queue destination!"
    )
    assert err.headers["receipt-id"] == "queue-first"
    c.subscribe(f"/topic/{r}.u.*,/temp-topic/tt", id="d4", headers=NAME, receipt="temp")
    assert c.listener.error().headers["message"] == (
        "A durable subscription cannot be created for a temporary topic."
    )
    # The connection and its subscription are still there, and so is the other client.
    p = connect()
    publish(p, f"/topic/{r}.u.x", "live")
    assert c.listener.next().body == "live"
    assert other.listener.next().body == "live"
    c.unsubscribe(id="d1", receipt="by-id")
    assert c.listener.receipt() == "by-id"
    publish(p, f"/topic/{r}.u.y", "waiting")
    c.unsubscribe(id="d1", headers=NAME, receipt="by-name")
    assert c.listener.receipt() == "by-name"
    publish(p, f"/topic/{r}.u.z", "after-removal")
    durable(c, f"/topic/{r}.u.*", sub_id="d5")
    assert quiet(c)  # a new subscription: what waited went with the old one


def test_a_topic_and_a_queue_composite_is_durable_on_the_topic(
    broker: BrokerThread, connect
) -> None:
    r = _run()
    cid = f"{r}-c"
    c = connect(headers={"client-id": cid})
    durable(c, f"/topic/{r}.q.t,/queue/{r}.q.q")
    leave(c)
    p = connect()
    publish(p, f"/topic/{r}.q.t", "t")
    publish(p, f"/queue/{r}.q.q", "q")
    _, got = back(connect, cid, f"/topic/{r}.q.t,/queue/{r}.q.q", 1)
    assert bodies(got) == ["t"]
    assert broker.stats(f"{r}.q.q").depth == 1  # the queue's message stays the queue's


def test_the_admin_api_and_metrics_list_it(broker: BrokerThread, connect) -> None:
    r = _run()
    cid = f"{r}-c"
    c = connect(headers={"client-id": cid})
    durable(c, f"/topic/{r}.l.*,/topic/{r}.other")
    leave(c)
    p = connect()
    publish(p, f"/topic/{r}.l.a", "1")
    publish(p, f"/topic/{r}.other", "2")
    base = f"http://127.0.0.1:{broker.console_port}"
    with urllib.request.urlopen(f"{base}/api/destinations", timeout=WAIT) as resp:
        listed = json.load(resp)["destinations"]
    (mine,) = [d for d in listed if d["kind"] == "durable" and d["name"] == f"{cid}:n"]
    assert mine["depth"] == 2 and mine["consumers"] == 0
    with urllib.request.urlopen(f"{base}/metrics", timeout=WAIT) as resp:
        text = resp.read().decode()
    assert f'zonemq_destination_depth{{destination="{cid}:n",kind="durable"}} 2.0' in text


# -- across restarts -------------------------------------------------------------------


def test_a_restart_keeps_patterns_and_what_waits_paged_out(tmp_path: Path, connect) -> None:
    """Graceful restarts with a small memory limit (most messages wait as stubs). Topics
    are not journaled: after the restart a topic first used then still feeds the
    wildcard subscription, so its pattern came back from the journal."""
    r = _run()
    data = tmp_path / "restart"
    settings = {"destinations.queue_memory_limit": 2048}
    b = BrokerThread(data, **settings).start()
    wild, comp = f"/topic/{r}.w.*", f"/topic/{r}.c.a,/topic/{r}.c.*"
    try:
        for cid, dest in ((f"{r}-w", wild), (f"{r}-c", comp)):
            c = connect(port=b.stomp_port, headers={"client-id": cid})
            durable(c, dest)
            leave(c)
        p = connect(port=b.stomp_port)
        for i in range(60):
            p.send(f"/topic/{r}.w.t{i % 3}", f"w{i}", headers={"persistent": "true"})
            p.send(f"/topic/{r}.c.a", f"c{i}", headers={"persistent": "true"})
        p.send(f"/topic/{r}.w.t0", "np", headers={"persistent": "false"})
        p.sync()
        p.close()
        b.stop()
        b = BrokerThread(data, **settings).start()
        assert b.stats(f"{r}-w:n", kind="durable").depth == 60
        assert b.stats(f"{r}-c:n", kind="durable").depth == 60
        p = connect(port=b.stomp_port)
        publish(p, f"/topic/{r}.w.fresh", "w-after")
        publish(p, f"/topic/{r}.c.fresh", "c-after")
        c = connect(port=b.stomp_port, headers={"client-id": f"{r}-w"})
        durable(c, wild)
        assert bodies(c.listener.take(61)) == [f"w{i}" for i in range(60)] + ["w-after"]
        assert quiet(c)
        c = connect(port=b.stomp_port, headers={"client-id": f"{r}-c"})
        durable(c, comp)
        assert bodies(c.listener.take(61)) == [f"c{i}" for i in range(60)] + ["c-after"]
        assert quiet(c)
        c.unsubscribe(id="d1", receipt="by-id")
        assert c.listener.receipt() == "by-id"
        c.unsubscribe(id="d1", headers=NAME, receipt="gone")
        assert c.listener.receipt() == "gone"
        leave(c)
        b.stop()
        b = BrokerThread(data, **settings).start()
        assert b.stats(f"{r}-c:n", kind="durable") is None
        assert b.stats(f"{r}-w:n", kind="durable").depth == 0
    finally:
        b.stop()


class _Producer(threading.Thread):
    """Persistent messages to the topics in turn, a receipt each, `window` unreceipted
    at a time, until the connection dies; `receipted` are those the broker confirmed."""

    def __init__(self, port: int, topics: list[str], tag: str, window: int = 8) -> None:
        super().__init__(name=f"producer-{tag}", daemon=True)
        self.conn = stomp.Connection12([("127.0.0.1", port)], heartbeats=(0, 0))
        self.receipts: queue.Queue[str | None] = queue.Queue()
        self.conn.set_listener("p", _ReceiptListener(self.receipts))
        self.conn.connect(wait=True)
        self.topics = topics
        self.tag = tag
        self.window = window
        self.receipted: list[tuple[str, str]] = []  # (topic, body)
        self.sent: dict[str, str] = {}

    def run(self) -> None:
        outstanding = 0
        i = 0
        while True:
            while outstanding < self.window:
                topic = self.topics[i % len(self.topics)]
                body = f"{self.tag}-{i}"
                self.sent[body] = topic
                try:
                    self.conn.send(topic, body, headers={"persistent": "true"}, receipt=body)
                except Exception:  # the broker is gone
                    return
                outstanding += 1
                i += 1
            try:
                rid = self.receipts.get(timeout=WAIT)
            except queue.Empty:
                return
            if rid is None:
                return
            outstanding -= 1
            self.receipted.append((self.sent[rid], rid))


class _ReceiptListener(stomp.ConnectionListener):
    def __init__(self, out: queue.Queue[str | None]) -> None:
        self.out = out

    def on_receipt(self, frame: Any) -> None:
        self.out.put(frame.headers["receipt-id"])

    def on_disconnected(self) -> None:
        self.out.put(None)


def test_sigkill_under_load_loses_no_receipted_message(tmp_path: Path, connect) -> None:
    """Two producers send persistent messages with receipts to three topics (all first
    used after the subscriptions) while the broker process is SIGKILLed; the next
    broker has every receipted one, once, in each subscription covering its topic."""
    from tests.daemon.test_crash import BrokerProcess

    r = _run()
    wild, comp = f"/topic/{r}.k.*", f"/topic/{r}.k.t0,/topic/{r}.k.t1"
    topics = [f"/topic/{r}.k.t{i}" for i in range(3)]
    first = BrokerProcess(tmp_path / "data", tmp_path, {})
    second: Any = None
    producers: list[_Producer] = []
    try:
        for cid, dest in ((f"{r}-w", wild), (f"{r}-c", comp)):
            c = connect(port=first.port, headers={"client-id": cid})
            durable(c, dest)
            leave(c)
        producers = [_Producer(first.port, topics, f"p{k}") for k in range(2)]
        for prod in producers:
            prod.start()
        assert wait_until(lambda: sum(len(p.receipted) for p in producers) >= 150, WAIT * 2)
        first.kill()
        for prod in producers:
            prod.join(WAIT)
        receipted = [x for prod in producers for x in prod.receipted]
        second = BrokerProcess(tmp_path / "data", tmp_path, {})
        for cid, dest, covered in (
            (f"{r}-w", wild, set(topics)),
            (f"{r}-c", comp, set(topics[:2])),
        ):
            c = connect(port=second.port, headers={"client-id": cid})
            durable(c, dest, ack="client-individual")
            want = {body for topic, body in receipted if topic in covered}
            got: list[str] = []
            deadline = time.monotonic() + WAIT * 2
            while not want <= set(got):
                assert time.monotonic() < deadline, sorted(want - set(got))[:10]
                with contextlib.suppress(queue.Empty):
                    frame = c.listener.next(timeout=0.2)
                    got.append(frame.body)
                    c.ack_frame(frame)
            # The rest: sent and perhaps journaled, but not receipted.
            c.sync()
            with contextlib.suppress(queue.Empty):
                while True:
                    got.append(c.listener.messages.get(timeout=0.2).body)
            assert len(got) == len(set(got)), "a message came twice"
            sent = {b for prod in producers for b, t in prod.sent.items() if t in covered}
            assert set(got) <= sent
            leave(c)
    finally:
        for prod in producers:
            with contextlib.suppress(Exception):
                prod.conn.disconnect()
        first.cleanup()
        if second is not None:
            second.cleanup()
        print(first.stderr_text(), file=sys.stderr)
