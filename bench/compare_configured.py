"""Compare configured policies of ActiveMQ 5.17 and ZoneMQ over STOMP (issue 12), the
sibling of bench.compare_policies for what needs more than a default configuration:
pending-message limits of slow topic subscribers, advisoryForSlowConsumers, garbage
collection of inactive destinations, schedulerSupport's management topic, and the
advisory frames as ActiveMQ's STOMP transport shows them.

    python -m bench.compare_configured [--only SUBSTRING]

Each group of rows starts a private ActiveMQ (bench.amq_private: its own directory,
ports and pid, XStream/Jettison linked in as the upstream tarball ships them) with the
group's policyEntries, and a ZoneMQ in this process with the matching settings; every row
is one stomp.py scenario asked of both. The table is bench/README.md "Policies".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import stomp

from bench.amq_private import private_activemq
from bench.compare_policies import _client, _sync

ADV = "/topic/ActiveMQ.Advisory."
# Headers whose values differ by nature (ids, times, ports): shown by name only.
VOLATILE = {
    "message-id",
    "timestamp",
    "originBrokerId",
    "originBrokerURL",
    "originBrokerName",
    "subscription",
    "scheduledJobId",
    "consumerId",
    "orignalMessageId",
    "ack",
    "destination",
    "original-destination",
}

Addr = tuple[str, int]


def _shape(frame: Any) -> str:
    """A frame's headers (values of the stable ones) and its body's outer JSON key."""
    parts = []
    for k in sorted(frame.headers):
        v = frame.headers[k]
        parts.append(k if k in VOLATILE else f"{k}={v}")
    body = frame.body or ""
    try:
        doc = json.loads(body) if body else {}
    except ValueError:
        return " ".join(parts) + " | body text"
    if not isinstance(doc, dict) or not doc:
        return " ".join(parts) + " | body empty"
    ((outer, fields),) = doc.items()
    keys = ",".join(fields) if isinstance(fields, dict) else "-"
    return " ".join(parts) + f" | body {outer} {{{keys}}}"


def _body(frame: Any) -> dict[str, Any]:
    try:
        doc = json.loads(frame.body or "{}")
    except ValueError:
        return {}
    return next(iter(doc.values()), {}) if isinstance(doc, dict) and doc else {}


class _Acker(stomp.ConnectionListener):
    """A topic subscriber that acks (ack:client) only once told to."""

    def __init__(self, conn: stomp.Connection12) -> None:
        self.conn = conn
        self.seqs: list[int] = []
        self.last_ack = ""
        self.acking = threading.Event()
        self.lock = threading.Lock()
        self.receipts: queue.Queue[str] = queue.Queue()

    def on_receipt(self, frame: Any) -> None:
        self.receipts.put(frame.headers["receipt-id"])

    def on_message(self, frame: Any) -> None:
        with self.lock:
            self.seqs.append(int(frame.headers["seq"]))
            self.last_ack = frame.headers["ack"]
        if self.acking.is_set():
            self.conn.ack(frame.headers["ack"])

    def drain(self, quiet: float = 2.0) -> list[int]:
        last, n = time.monotonic(), -1
        while time.monotonic() - last < quiet:
            time.sleep(0.1)
            with self.lock:
                if len(self.seqs) != n:
                    n, last = len(self.seqs), time.monotonic()
        return list(self.seqs)


def _ranges(seqs: list[int]) -> str:
    out: list[str] = []
    start = prev = None
    for s in seqs:
        if prev is not None and s == prev + 1:
            prev = s
            continue
        if start is not None:
            out.append(f"{start}-{prev}" if start != prev else str(start))
        start = prev = s
    if start is not None:
        out.append(f"{start}-{prev}" if start != prev else str(start))
    return ",".join(out) if len(out) <= 4 else ",".join(out[:2]) + f",...({len(out)} runs)"


def _slow_topic(addr: Addr, run: str, n: int) -> str:
    """A topic subscriber (ack:client, prefetch 10) that does not ack while `n`
    non-persistent messages are sent, then acks each: which does it get?"""
    dest = f"/topic/pfcz.cfg.{run}.slow{n}"
    conn = stomp.Connection12([addr])
    acker = _Acker(conn)
    conn.set_listener("a", acker)
    conn.connect(wait=True)
    try:
        conn.subscribe(dest, id="s", ack="client", headers={"activemq.prefetchSize": "10"})
        _sync(conn, acker)  # type: ignore[arg-type]
        with _client(addr) as (pconn, pl):
            _sync(pconn, pl)
            for i in range(n):
                pconn.send(dest, "x" * 100, headers={"seq": str(i)})
            _sync(pconn, pl)
        before = acker.drain(1.0)
        acker.acking.set()
        if before:
            # ack:client is cumulative: acking the last one acks those before it.
            conn.ack(acker.last_ack)
        got = acker.drain(3.0)
        return f"got {len(got)}: {_ranges(got)}"
    finally:
        with contextlib.suppress(Exception):
            conn.disconnect()


def _watch(conn: stomp.Connection12, listener: Any, dest: str, sid: str) -> None:
    conn.subscribe(dest, id=sid, ack="auto")
    _sync(conn, listener)


def _frames(listener: Any, quiet: float) -> list[Any]:
    out = []
    with contextlib.suppress(queue.Empty):
        while True:
            out.append(listener.frames.get(timeout=quiet))
    return out


def _slow_advisory(addr: Addr, run: str) -> str:
    """advisoryForSlowConsumers: when (after how many sends) and how often the
    SlowConsumer advisory comes for a subscriber of prefetch 10 that never acks."""
    name = f"pfcz.cfg.{run}.slowadv"
    with _client(addr) as (wconn, wl), _client(addr) as (sconn, sl), _client(addr) as (p, pl):
        _watch(wconn, wl, ADV + "SlowConsumer.Topic." + name, "w")
        sconn.subscribe(
            "/topic/" + name, id="s", ack="client", headers={"activemq.prefetchSize": "10"}
        )
        _sync(sconn, sl)
        first = None
        for i in range(60):
            p.send("/topic/" + name, "m", headers={"seq": str(i)})
            _sync(p, pl)
            if first is None:
                # Paced: ActiveMQ dispatches to topic subscriptions asynchronously, so
                # back to back sends would count past the one that tipped it.
                with contextlib.suppress(queue.Empty):
                    frame = wl.frames.get(timeout=0.15)
                    first = (i + 1, frame)
        rest = _frames(wl, 1.0)
        if first is None:
            return "none in 60 sends"
        return f"after send {first[0]}, {1 + len(rest)} in 60 sends; {_shape(first[1])}"


def _advisory_events(addr: Addr, run: str, kind: str) -> str:
    """The advisory frames of one consumer's life on a new destination of `kind`:
    the destination's creation and the consumer's arrival and departure."""
    name = f"pfcz.cfg.{run}.adv{kind}"
    word = kind.capitalize()
    with _client(addr) as (wconn, wl):
        _watch(wconn, wl, ADV + word, "d")
        _frames(wl, 0.5)  # the replay of what exists
        _watch(wconn, wl, f"{ADV}Consumer.{word}.{name}", "c")
        with _client(addr) as (cconn, cl):
            cconn.subscribe(f"/{kind}/{name}", id="x", ack="auto")
            _sync(cconn, cl)
            time.sleep(0.3)
            cconn.unsubscribe(id="x")
            _sync(cconn, cl)
        got = _frames(wl, 1.0)
    rows = []
    for f in got:
        body = _body(f)
        extra = f" op={body['operationType']}" if "operationType" in body else ""
        rows.append(f.headers["destination"].removeprefix(ADV) + extra)
    return "; ".join(rows) + (f" || {_shape(got[0])}" if got else "")


def _connection_advisory(addr: Addr, run: str) -> str:
    with _client(addr) as (wconn, wl):
        _watch(wconn, wl, ADV + "Connection", "c")
        _frames(wl, 0.5)
        with _client(addr):
            pass
        got = _frames(wl, 1.0)
    return f"{len(got)} (connect, disconnect)" + (f" || {_shape(got[0])}" if got else "")


def _expired_advisory(addr: Addr, run: str) -> str:
    name = f"pfcz.cfg.{run}.exp"
    with _client(addr) as (wconn, wl), _client(addr) as (conn, listener):
        _watch(wconn, wl, ADV + "Expired.Queue." + name, "e")
        expires = int(time.time() * 1000) + 200
        conn.send("/queue/" + name, "m", headers={"persistent": "true", "expires": str(expires)})
        _sync(conn, listener)
        time.sleep(0.5)
        conn.subscribe("/queue/" + name, id="s", ack="auto")
        got = _frames(wl, 2.0)
    return f"{len(got)}" + (f" || {_shape(got[0])}" if got else "")


def _dlqd_advisory(addr: Addr, run: str) -> str:
    name = f"pfcz.cfg.{run}.dlqd"
    with _client(addr) as (wconn, wl), _client(addr) as (conn, listener):
        _watch(wconn, wl, ADV + "MessageDLQd.Queue." + name, "e")
        conn.subscribe("/queue/" + name, id="s", ack="client-individual")
        _sync(conn, listener)
        conn.send("/queue/" + name, "m", headers={"persistent": "true"})
        frame = listener.frames.get(timeout=10)
        conn.nack(frame.headers["ack"])
        got = _frames(wl, 2.0)
    return f"{len(got)}" + (f" || {_shape(got[0])}" if got else "")


def _gc(addr: Addr, run: str, kind: str, leave: str, window: tuple[float, float]) -> str:
    """A destination used once, then left `leave` ("empty", "a message", "a consumer"):
    is it removed (seen by its Queue / Topic advisory's DestinationInfo, operationType 1),
    and was that within `window` seconds of being left (the timeout, and the timeout
    plus two purge periods: the first look starts the clock, a later one deletes)?"""
    name = f"pfcz.cfg.{run}.gc{kind}.{leave.replace(' ', '')}"
    word = kind.capitalize()
    with _client(addr) as (wconn, wl), _client(addr) as (conn, listener):
        _watch(wconn, wl, ADV + word, "d")
        _frames(wl, 0.5)
        conn.subscribe(f"/{kind}/{name}", id="s", ack="auto")
        _sync(conn, listener)
        conn.send(f"/{kind}/{name}", "m")
        listener.frames.get(timeout=10)
        if leave != "a consumer":
            conn.unsubscribe(id="s")
        if leave == "a message":
            conn.send(f"/{kind}/{name}", "m")
        _sync(conn, listener)
        left = time.monotonic()
        deadline = left + 20
        while True:
            try:
                frame = wl.frames.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return "kept (20 s)"
            body = _body(frame)
            # Other destinations come and go (the round trips' queue): this one's removal.
            if body.get("destination", {}).get("string") == name and body.get("operationType"):
                took = time.monotonic() - left
                lo, hi = window
                if lo - 0.5 <= took <= hi + 0.5:
                    return f"removed within {lo:g}-{hi:g} s"
                return f"removed after {took:.1f} s"


def _scheduler(addr: Addr, run: str) -> str:
    """ActiveMQ.Scheduler.Management: BROWSE, REMOVE by scheduledJobId, REMOVEALL in a
    time window, as the table's shape of a browsed job and the counts left."""
    target = f"/queue/pfcz.cfg.{run}.sched"
    reply = f"/queue/pfcz.cfg.{run}.schedreply"
    manage = "/topic/ActiveMQ.Scheduler.Management"
    with _client(addr) as (conn, listener):
        conn.subscribe(reply, id="r", ack="auto")
        _sync(conn, listener)
        now = int(time.time() * 1000)
        for i, delay in enumerate((60_000, 120_000, 180_000)):
            conn.send(
                target,
                f"job{i}",
                headers={"AMQ_SCHEDULED_DELAY": str(delay), "persistent": "true", "n": str(i)},
            )
        _sync(conn, listener)

        def browse(**headers: str) -> list[Any]:
            conn.send(
                manage, "", headers={"AMQ_SCHEDULER_ACTION": "BROWSE", "reply-to": reply, **headers}
            )
            _sync(conn, listener)
            return _frames(listener, 1.0)

        jobs = browse()
        shape = _shape(jobs[0]) if jobs else "-"
        order = ",".join(str(f.body) for f in jobs)
        if jobs:
            conn.send(
                manage,
                "",
                headers={
                    "AMQ_SCHEDULER_ACTION": "REMOVE",
                    "scheduledJobId": jobs[0].headers["scheduledJobId"],
                },
            )
            _sync(conn, listener)
        after_remove = len(browse())
        window = {"ACTION_START_TIME": str(now + 90_000), "ACTION_END_TIME": str(now + 150_000)}
        conn.send(manage, "", headers={"AMQ_SCHEDULER_ACTION": "REMOVEALL", **window})
        _sync(conn, listener)
        after_window = ",".join(str(f.body) for f in browse())
        windowed = len(browse(**window))
        conn.send(manage, "", headers={"AMQ_SCHEDULER_ACTION": "REMOVEALL"})
        _sync(conn, listener)
        left = len(browse())
    return (
        f"browse {order}; after REMOVE {after_remove}; after REMOVEALL(window) "
        f"{after_window}; browse(window) {windowed}; after REMOVEALL {left} || {shape}"
    )


@dataclass
class Group:
    """Rows asked of one private ActiveMQ configuration and a ZoneMQ configured alike."""

    title: str
    amq_policy: str
    amq_attrs: str
    zonemq: dict[str, Any]
    rows: list[tuple[str, Callable[[Addr, str], str]]] = field(default_factory=list)


GC_POLICY = [{"pattern": ">", "gc_inactive_destinations": True, "inactive_timeout_before_gc": 2.0}]
GROUPS = [
    Group(
        "defaults (no policyEntry)",
        "",
        "",
        {},
        [
            ("slow topic sub, 15000 sent", lambda a, r: _slow_topic(a, r, 15000)),
            ("advisory: Connection", _connection_advisory),
            ("advisory: queue consumer", lambda a, r: _advisory_events(a, r, "queue")),
            ("advisory: topic consumer", lambda a, r: _advisory_events(a, r, "topic")),
            ("advisory: Expired.Queue", _expired_advisory),
            ("advisory: MessageDLQd.Queue", _dlqd_advisory),
        ],
    ),
    Group(
        "pending limit 1000",
        '<policyEntry topic=">"><pendingMessageLimitStrategy>'
        '<constantPendingMessageLimitStrategy limit="1000"/>'
        "</pendingMessageLimitStrategy></policyEntry>",
        "",
        {"destinations.topic_pending_limit": 1000},
        [("slow topic sub, limit 1000, 3000 sent", lambda a, r: _slow_topic(a, r, 3000))],
    ),
    Group(
        "advisoryForSlowConsumers",
        '<policyEntry topic=">" advisoryForSlowConsumers="true"/>',
        "",
        {"destinations.policies": [{"pattern": ">", "advisory_for_slow_consumers": True}]},
        [("SlowConsumer advisory, prefetch 10", _slow_advisory)],
    ),
    Group(
        "gc inactive, 2 s, purge every 1 s",
        '<policyEntry queue=">" gcInactiveDestinations="true" inactiveTimoutBeforeGC="2000"/>'
        '<policyEntry topic=">" gcInactiveDestinations="true" inactiveTimoutBeforeGC="2000"/>',
        'schedulePeriodForDestinationPurge="1000"',
        {"destinations.policies": GC_POLICY, "destinations.inactive_purge_period": 1.0},
        [
            (f"gc {kind} left {leave}", lambda a, r, k=kind, lv=leave: _gc(a, r, k, lv, (2, 4)))
            for kind in ("queue", "topic")
            for leave in ("empty", "a message", "a consumer")
            if not (kind == "topic" and leave == "a message")
        ],
    ),
    Group(
        "gc inactive, 2 s, no purge period",
        '<policyEntry queue=">" gcInactiveDestinations="true" inactiveTimoutBeforeGC="2000"/>',
        "",
        {"destinations.policies": GC_POLICY},
        [("gc queue left empty, no period", lambda a, r: _gc(a, r, "queue", "empty", (2, 4)))],
    ),
    Group(
        "schedulerSupport",
        "",
        'schedulerSupport="true"',
        {"broker.scheduler_support": True},
        [("Scheduler.Management", _scheduler)],
    ),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run the groups whose title has this")
    args = ap.parse_args(argv)
    from tests.conftest import BrokerThread

    run = uuid.uuid4().hex[:8]
    for group in GROUPS:
        if args.only not in group.title:
            continue
        print(f"## {group.title}", flush=True)
        policy = group.amq_policy or '<policyEntry queue=">"/>'
        with private_activemq(policy, group.amq_attrs) as amq:
            local = BrokerThread(Path(tempfile.mkdtemp(prefix="cmp-")), **group.zonemq).start()
            try:
                for name, fn in group.rows:
                    results = []
                    for addr in (amq.stomp, ("127.0.0.1", local.stomp_port)):
                        try:
                            results.append(fn(addr, run))
                        except Exception as exc:  # a row, not the run, fails
                            results.append(f"error: {type(exc).__name__} {exc}")
                    same = "yes" if results[0] == results[1] else "NO"
                    print(f"- {name} [{same}]\n    ActiveMQ: {results[0]}", flush=True)
                    print(f"    ZoneMQ:   {results[1]}", flush=True)
            finally:
                local.stop()
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "compare"
    raise SystemExit(main())
