"""Compare destination-policy defaults of ActiveMQ 5.17 and ZoneMQ over STOMP (issue 12).

Each behaviour is a stomp.py scenario on destinations unique to the run, asked of both
brokers with their default configuration; the table says what each did.

    python -m bench.compare_policies --activemq 127.0.0.1:61623 [--zonemq HOST:PORT]

Without `--zonemq` a ZoneMQ with its defaults is started in this process (ephemeral
ports, a temporary data directory). The behaviours that need a policy (memory limits,
producer flow control, sendFailIfNoSpace) were compared with a private ActiveMQ
configured for them; bench/README.md "Policies" has those results.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import stomp


class _Listener(stomp.ConnectionListener):
    def __init__(self) -> None:
        self.frames: queue.Queue[Any] = queue.Queue()
        self.errors: queue.Queue[Any] = queue.Queue()
        self.receipts: queue.Queue[str] = queue.Queue()

    def on_message(self, frame: Any) -> None:
        self.frames.put(frame)

    def on_error(self, frame: Any) -> None:
        self.errors.put(frame)

    def on_receipt(self, frame: Any) -> None:
        self.receipts.put(frame.headers["receipt-id"])


@contextlib.contextmanager
def _client(addr: tuple[str, int]) -> Iterator[tuple[stomp.Connection12, _Listener]]:
    conn = stomp.Connection12([addr])
    listener = _Listener()
    conn.set_listener("l", listener)
    conn.connect(wait=True)
    try:
        yield conn, listener
    finally:
        with contextlib.suppress(Exception):
            conn.disconnect()


def _sync(conn: stomp.Connection12, listener: _Listener) -> None:
    rid = uuid.uuid4().hex
    conn.send("/queue/pfcz.cmp.sync", "s", headers={"receipt": rid})
    while listener.receipts.get(timeout=10) != rid:
        pass


def _count(listener: _Listener, quiet: float = 1.0) -> int:
    n = 0
    with contextlib.suppress(queue.Empty):
        while True:
            listener.frames.get(timeout=quiet)
            n += 1
    return n


def _dead_letter(addr: tuple[str, int], run: str, persistent: bool) -> str:
    """NACK one message: where does it go?"""
    q = f"/queue/pfcz.cmp.{run}.nack{int(persistent)}"
    with _client(addr) as (conn, listener), _client(addr) as (dconn, dl):
        tag = uuid.uuid4().hex
        dconn.subscribe(
            "/queue/ActiveMQ.DLQ", id="d", ack="auto", headers={"selector": f"tag = '{tag}'"}
        )
        dconn.subscribe(f"/queue/DLQ.pfcz.cmp.{run}.nack{int(persistent)}", id="i", ack="auto")
        _sync(dconn, dl)
        conn.subscribe(q, id="s", ack="client-individual")
        conn.send(q, "m", headers={"persistent": str(persistent).lower(), "tag": tag})
        frame = listener.frames.get(timeout=10)
        conn.nack(frame.headers["ack"])
        try:
            dead = dl.frames.get(timeout=2)
        except queue.Empty:
            return "dropped"
        return dead.headers["destination"]


def _expired(addr: tuple[str, int], run: str) -> str:
    """A persistent message expiring unconsumed: where does it go?"""
    q = f"/queue/pfcz.cmp.{run}.ttl"
    with _client(addr) as (conn, listener), _client(addr) as (dconn, dl):
        tag = uuid.uuid4().hex
        dconn.subscribe(
            "/queue/ActiveMQ.DLQ", id="d", ack="auto", headers={"selector": f"tag = '{tag}'"}
        )
        _sync(dconn, dl)
        expires = int(time.time() * 1000) + 200
        conn.send(q, "m", headers={"persistent": "true", "expires": str(expires), "tag": tag})
        _sync(conn, listener)
        time.sleep(0.5)  # past its expiration (the scenario is about time)
        conn.subscribe(q, id="s", ack="auto")
        got = _count(listener, 1.0)
        try:
            dead = dl.frames.get(timeout=3)
        except queue.Empty:
            return f"consumer got {got}, DLQ nothing"
        return f"consumer got {got}, {dead.headers['destination']}"


def _prefetch(addr: tuple[str, int], run: str, ack: str, kind: str = "queue") -> str:
    """Messages a consumer that never acks gets (its default prefetch)."""
    dest = f"/{kind}/pfcz.cmp.{run}.pf.{ack}"
    total = 1200
    with _client(addr) as (conn, listener), _client(addr) as (pconn, pl):
        conn.subscribe(dest, id="s", ack=ack)
        _sync(conn, listener)
        for i in range(total):
            pconn.send(dest, "p", headers={"n": str(i)})
        _sync(pconn, pl)
        n = _count(listener, 1.0)
        return str(n) if n < total else f">= {total} (all)"


def _browse_empty(addr: tuple[str, int], run: str) -> str:
    """A destination used once and left: is it still there after 3 s (gc off)?"""
    q = f"/queue/pfcz.cmp.{run}.gc"
    with _client(addr) as (conn, listener):
        conn.send(q, "m")
        conn.subscribe(q, id="s", ack="auto")
        listener.frames.get(timeout=10)
        conn.unsubscribe(id="s")
        time.sleep(3)
        conn.subscribe(q, id="b", ack="auto", headers={"browser": "true"})
        frame = listener.frames.get(timeout=10)
        return "kept" if frame.headers.get("browser") == "end" else "?"


BEHAVIOURS: list[tuple[str, Callable[[tuple[str, int], str], str]]] = [
    ("NACK of a persistent message goes to", lambda a, r: _dead_letter(a, r, True)),
    ("NACK of a non-persistent message goes to", lambda a, r: _dead_letter(a, r, False)),
    ("expired persistent message", _expired),
    ("queue prefetch, ack:client-individual", lambda a, r: _prefetch(a, r, "client-individual")),
    ("queue prefetch, ack:client", lambda a, r: _prefetch(a, r, "client")),
    ("queue prefetch, ack:auto", lambda a, r: _prefetch(a, r, "auto")),
    ("topic prefetch, ack:client", lambda a, r: _prefetch(a, r, "client", "topic")),
    ("inactive queue, gc off by default", _browse_empty),
]


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--activemq", required=True, help="HOST:PORT of ActiveMQ's STOMP")
    ap.add_argument("--zonemq", help="HOST:PORT of ZoneMQ's STOMP (default: start one)")
    args = ap.parse_args(argv)
    local = None
    if args.zonemq:
        zonemq = _addr(args.zonemq)
    else:
        from tests.conftest import BrokerThread

        local = BrokerThread(Path(tempfile.mkdtemp(prefix="cmp-"))).start()
        zonemq = ("127.0.0.1", local.stomp_port)
    run = uuid.uuid4().hex[:8]
    rows = []
    try:
        for name, fn in BEHAVIOURS:
            results = []
            for addr in (_addr(args.activemq), zonemq):
                try:
                    results.append(fn(addr, run))
                except Exception as exc:  # a row, not the run, fails
                    results.append(f"error: {type(exc).__name__} {exc}")
            rows.append((name, results[0], results[1], "yes" if results[0] == results[1] else "NO"))
    finally:
        if local is not None:
            local.stop()
    head = ("behaviour", "ActiveMQ", "ZoneMQ", "same?")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    line = " | ".join(f"{{:{w}}}" for w in widths)
    print(line.format(*head))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(line.format(*r))
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "compare"
    raise SystemExit(main())
