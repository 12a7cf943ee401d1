"""Queue dispatch in the core alone, plain and picky (issue 12): ns per message.

    PYTHONPATH=<checkout> python -m bench.bench_dispatch [--repeats 30] [--messages 5000]

Measured in thread CPU time (the machine may be shared: waiting for a CPU does not
count), min over repeats. Run it once per checkout, alternating, to compare the plain
path before and after a change to broker/core/queue.py. Cases:

- put_4: sends to a queue with 4 auto-ack consumers (each goes straight to one);
- send_ack: a send and its ack on one client-individual consumer;
- backlog_4x1: a backlog drained by 4 client-individual consumers of prefetch 1 (every
  ack dispatches the next message);
- the same three picky: `groups` (100 message groups), `priority` (consumers of two
  priorities), `exclusive` (one exclusive consumer among them).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from broker.core import AUTO, INDIVIDUAL, QUEUE, Address, Core, Message, Subscription

BODY = b"x" * 256
Q = Address(QUEUE, "bench")


class _Counting:
    """The smallest Consumer."""

    def __init__(self) -> None:
        self.n = 0

    def deliver(self, sub: Subscription, msg: Message) -> None:
        self.n += 1

    def slow(self, sub: Subscription) -> None:
        raise AssertionError("never slow")


def _msgs(n: int, variant: str) -> list[Message]:
    if variant == "groups":
        return [Message(BODY, group_id=f"g{i % 100}") for i in range(n)]
    return [Message(BODY) for _ in range(n)]


def _options(variant: str, i: int) -> dict[str, object]:
    if variant == "priority":
        return {"priority": 5 if i % 2 else 0}
    if variant == "exclusive":
        return {"exclusive": i == 0}
    return {}


def put_4(n: int, variant: str) -> float:
    core = Core()
    for i in range(4):
        core.subscribe(Q, _Counting(), ack_mode=AUTO, **_options(variant, i))  # type: ignore[arg-type]
    msgs = _msgs(n, variant)
    start = time.thread_time_ns()
    for m in msgs:
        core.send(Q, m)
    return (time.thread_time_ns() - start) / n


def send_ack(n: int, variant: str) -> float:
    core = Core()
    sub = core.subscribe(
        Q,
        _Counting(),
        ack_mode=INDIVIDUAL,
        prefetch=1000,
        **_options(variant, 0),  # type: ignore[arg-type]
    )
    if variant == "priority":
        core.subscribe(Q, _Counting(), ack_mode=INDIVIDUAL, prefetch=1, priority=-1)
    msgs = _msgs(n, variant)
    start = time.thread_time_ns()
    for m in msgs:
        core.send(Q, m)
        sub.ack(m.id)
    return (time.thread_time_ns() - start) / n


def backlog_4x1(n: int, variant: str) -> float:
    core = Core()
    q = core.queue(Q)
    for m in _msgs(n, variant):
        core.send(Q, m)
    start = time.thread_time_ns()
    subs = [
        core.subscribe(Q, _Counting(), ack_mode=INDIVIDUAL, prefetch=1, **_options(variant, i))  # type: ignore[arg-type]
        for i in range(4)
    ]
    while q.count or any(s.inflight for s in subs):
        for s in subs:
            for mid in list(s.inflight):
                s.ack(mid)
    return (time.thread_time_ns() - start) / n


CASES: dict[str, Callable[[int, str], float]] = {
    "put_4": put_4,
    "send_ack": send_ack,
    "backlog_4x1": backlog_4x1,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--variants", default="plain,groups,priority,exclusive")
    args = parser.parse_args()
    for variant in args.variants.split(","):
        figures = []
        for name, case in CASES.items():
            best = min(case(args.messages, variant) for _ in range(args.repeats))
            figures.append(f"{name}={best:.0f}")
        print(variant, " ".join(figures))


if __name__ == "__main__":
    main()
