"""Run the selector table (tests/core/selector_cases.py, STOMP part) against brokers
over STOMP and report where they disagree with it and with each other.

For each case a fresh queue gets two subscriptions, one with the selector and one with
`NOT (selector)`, then one message with the case's headers: arriving on the first means
TRUE, on the second FALSE, on neither unknown; an ERROR for the SUBSCRIBE is a syntax
error. stomp.py over real sockets.

    python -m bench.selector_compare --broker activemq=127.0.0.1:61613 \
        [--broker zonemq=127.0.0.1:61614] [--wait 3]

Last run (2026-12-03, ActiveMQ 5.17.2 from Debian 12's package with a STOMP connector,
ZoneMQ at this commit): ActiveMQ 223 of 225 agree with the table, ZoneMQ 225 of 225,
the brokers 223 of 225. The two: `NOT color = 'blue'` (TRUE here; ActiveMQ parses
`(NOT color) = 'blue'`, whose evaluation throws: unknown) and `NOT price > 10` (FALSE
here; a syntax error in ActiveMQ, which binds NOT tighter than comparisons). ZoneMQ
follows the spec's precedence there (ARCHITECTURE.md, "Selectors").
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from typing import Any

import stomp

from tests.core.selector_cases import BASE, ERR, STOMP


class _Collector(stomp.ConnectionListener):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: dict[str, str] = {}  # subscription id -> what arrived
        self.errors: set[str] = set()  # receipt ids answered with ERROR
        self.receipts: set[str] = set()

    def on_message(self, frame: Any) -> None:
        with self.lock:
            self.messages[frame.headers["subscription"]] = frame.body

    def on_error(self, frame: Any) -> None:
        with self.lock:
            self.errors.add(frame.headers.get("receipt-id", "?"))

    def on_receipt(self, frame: Any) -> None:
        with self.lock:
            self.receipts.add(frame.headers["receipt-id"])


def run(host: str, port: int, wait: float) -> list[Any]:
    """The observed result of every STOMP case on one broker."""
    conn = stomp.Connection([(host, port)], heartbeats=(0, 0), auto_content_length=False)
    seen = _Collector()
    conn.set_listener("", seen)
    conn.connect("admin", "admin", wait=True)
    run_id = uuid.uuid4().hex[:8]
    for i, (text, _) in enumerate(STOMP):
        dest = f"/queue/selcmp.{run_id}.{i}"
        conn.subscribe(dest, id=f"t{i}", headers={"selector": text, "receipt": f"t{i}"})
        conn.subscribe(dest, id=f"f{i}", headers={"selector": f"NOT ({text})", "receipt": f"f{i}"})
    deadline = time.monotonic() + wait * 4
    while time.monotonic() < deadline:
        with seen.lock:
            if len(seen.receipts) + len(seen.errors) >= 2 * len(STOMP):
                break
        time.sleep(0.05)
    for i in range(len(STOMP)):
        conn.send(f"/queue/selcmp.{run_id}.{i}", f"case {i}", headers=dict(BASE))
    time.sleep(wait)
    out: list[Any] = []
    with seen.lock:
        for i in range(len(STOMP)):
            if f"t{i}" in seen.errors:
                out.append(ERR)
            elif f"t{i}" in seen.messages:
                out.append(True)
            elif f"f{i}" in seen.messages:
                out.append(False)
            else:
                out.append(None)
    conn.disconnect()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker", action="append", required=True, help="name=host:port")
    ap.add_argument("--wait", type=float, default=3.0)
    args = ap.parse_args()
    results: dict[str, list[Any]] = {}
    for spec in args.broker:
        name, _, address = spec.partition("=")
        host, _, port = address.rpartition(":")
        results[name] = run(host, int(port), args.wait)
    names = list(results)
    for name in names:
        agree = sum(1 for (_, want), got in zip(STOMP, results[name], strict=True) if got == want)
        print(f"{name}: {agree} of {len(STOMP)} agree with the table")
    if len(names) > 1:
        a, b = names[0], names[1]
        same = sum(1 for x, y in zip(results[a], results[b], strict=True) if x == y)
        print(f"{a} and {b}: {same} of {len(STOMP)} agree")
    for i, (text, want) in enumerate(STOMP):
        got = [results[n][i] for n in names]
        if any(g != want for g in got):
            shown = ", ".join(f"{n}={g}" for n, g in zip(names, got, strict=True))
            print(f"  {text!r}: table={want}, {shown}")


if __name__ == "__main__":
    main()
