"""Fuzz cases over real sockets, the bystander that checks the broker around them, and the
command line (`python -m bench.fuzz`)."""

from __future__ import annotations

import argparse
import collections
import contextlib
import queue
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.fuzz.mutate import mutate
from bench.fuzz.seeds import SESSIONS, record
from bench.procstat import proc_rss_mib

CLOSED, RESET, OPEN = "closed", "reset", "open"


def send_case(host: str, port: int, data: bytes, timeout: float = 2.0) -> tuple[str, int]:
    """Send `data` on a fresh connection, half-close, read until the broker closes.
    Returns how it ended (closed / reset / still open after `timeout`) and the bytes read.
    """
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            # Closed or reset before we finished (EPIPE, ECONNRESET, ENOTCONN): it stopped
            # reading us, a refusal, not a failure.
            return RESET, 0
        got = 0
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    return CLOSED, got
                got += len(chunk)
        except ConnectionResetError:
            return RESET, got
        except TimeoutError:
            pass
        return OPEN, got


class Bystander:
    """A well-behaved STOMP client beside the fuzz cases: it stores `count` persistent
    messages before, checks the broker still answers while they run, and takes them all
    back after."""

    def __init__(self, host: str, port: int, queue_name: str, count: int = 20) -> None:
        import stomp

        self.dest = f"/queue/{queue_name}"
        self.count = count
        self.receipts: queue.Queue[str] = queue.Queue()
        self.messages: queue.Queue[Any] = queue.Queue()
        self.conn = stomp.Connection12([(host, port)], heartbeats=(0, 0))
        owner = self

        class Listener(stomp.ConnectionListener):
            def on_receipt(self, frame: Any) -> None:
                owner.receipts.put(frame.headers["receipt-id"])

            def on_message(self, frame: Any) -> None:
                owner.messages.put(frame)

        self.conn.set_listener("bystander", Listener())
        self.conn.connect(wait=True)
        self._rounds = 0

    def _round_trip(self, timeout: float) -> bool:
        self._rounds += 1
        rid = f"ping-{self._rounds}"
        self.conn.begin(transaction=rid, receipt=rid)
        try:
            while self.receipts.get(timeout=timeout) != rid:
                pass
        except queue.Empty:
            return False
        self.conn.abort(rid)
        return True

    def store(self) -> None:
        for i in range(self.count):
            self.conn.send(self.dest, f"bystander-{i}", headers={"persistent": "true"})
        assert self._round_trip(10), "the broker did not answer the bystander before fuzzing"

    def alive(self, timeout: float = 10.0) -> bool:
        """A receipt round trip: the broker still serves a well-behaved client."""
        return self._round_trip(timeout)

    def take_back(self, timeout: float = 10.0) -> list[str]:
        """Every stored message, once each (a sorted list of bodies); acknowledged."""
        self.conn.subscribe(self.dest, id="by", ack="client-individual")
        bodies = []
        with contextlib.suppress(queue.Empty):
            for _ in range(self.count):
                frame = self.messages.get(timeout=timeout)
                bodies.append(frame.body)
                self.conn.ack(frame.headers["ack"])
        self._round_trip(timeout)
        while not self.messages.empty():
            bodies.append(self.messages.get().body)
        self.conn.unsubscribe("by")
        return sorted(bodies)

    def expected(self) -> list[str]:
        return sorted(f"bystander-{i}" for i in range(self.count))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.disconnect()


@dataclass
class Report:
    """What a fuzz run saw."""

    protocol: str
    seeds: int
    cases: int = 0
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    stalled: list[int] = field(default_factory=list)  # cases after which the broker was slow
    bystander_ok: bool = False
    rss_before_mib: float | None = None
    rss_after_mib: float | None = None
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [
            f"{self.protocol}: {self.cases} cases from {self.seeds} recorded seeds in "
            f"{self.seconds:.1f} s ({self.cases / max(self.seconds, 1e-9):.0f}/s)",
            "  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())),
            "  bystander: "
            + ("all messages back, broker answering" if self.bystander_ok else "FAILED"),
        ]
        if self.stalled:
            out.append(f"  broker did not answer the bystander after cases {self.stalled[:10]}")
        if self.rss_before_mib is not None and self.rss_after_mib is not None:
            out.append(f"  broker RSS {self.rss_before_mib:.1f} → {self.rss_after_mib:.1f} MiB")
        return out


def fuzz(
    protocol: str,
    target: tuple[str, int],
    bystander_port: int,
    *,
    cases: int,
    seed: int = 0,
    pid: int | None = None,
    check_every: int = 100,
    progress: Callable[[Report], None] | None = None,
) -> Report:
    """Record seeds for `protocol` against `target`, then run `cases` mutated cases with a
    bystander on the broker's STOMP port (see the package docstring)."""
    host, port = target
    seeds = record(host, port, SESSIONS[protocol])
    assert seeds, f"no seed recorded for {protocol}"
    report = Report(protocol, len(seeds))
    bystander = Bystander(host, bystander_port, f"fuzz-bystander-{protocol}-{seed}")
    try:
        bystander.store()
        report.rss_before_mib = proc_rss_mib(pid) if pid else None
        started = time.monotonic()
        for case in range(cases):
            outcome, _ = send_case(host, port, mutate(seeds, seed, case))
            report.outcomes[outcome] += 1
            report.cases += 1
            if case % check_every == check_every - 1:
                if not bystander.alive():
                    report.stalled.append(case)
                if progress is not None:
                    report.seconds = time.monotonic() - started
                    progress(report)
        report.seconds = time.monotonic() - started
        report.rss_after_mib = proc_rss_mib(pid) if pid else None
        alive = bystander.alive()
        report.bystander_ok = alive and bystander.take_back() == bystander.expected()
    finally:
        bystander.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fuzz", description="Mutation fuzzing of a running broker."
    )
    parser.add_argument("protocol", choices=sorted(SESSIONS))
    parser.add_argument("--target", required=True, help="HOST:PORT of that protocol")
    parser.add_argument("--bystander", help="HOST:PORT of the broker's STOMP (default :61613)")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pid", type=int, help="broker pid, to sample its RSS")
    parser.add_argument("--every", type=int, default=1000, help="bystander check interval")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    _, _, by_port = (args.bystander or f"{host}:61613").rpartition(":")

    def show(r: Report) -> None:
        rss = f", RSS {proc_rss_mib(args.pid):.1f} MiB" if args.pid else ""
        print(f"  {r.cases} cases, {r.cases / max(r.seconds, 1e-9):.0f}/s{rss}", flush=True)

    report = fuzz(
        args.protocol,
        (host, int(port)),
        int(by_port),
        cases=args.cases,
        seed=args.seed,
        pid=args.pid,
        check_every=args.every,
        progress=show,
    )
    print("\n".join(report.lines()))
    return 0 if report.bystander_ok and not report.stalled else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
