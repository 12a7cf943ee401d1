"""Client worker processes for protocols whose client library costs more CPU than asyncio
STOMP framing: AMQP 1.0 through python-qpid-proton and SQS over aiohttp.

One process per producer and per consumer, so a single Python process (the GIL) is
never the client's bottleneck; every worker reports its own CPU, which the run adds up
as the client's CPU.

Protocol of a run (`run_workers`):

1. consumers start, attach and set `state = READY` in their shared counters;
2. producers start, attach, set READY and wait for the `go` event; the parent sets `go`
   once every worker is READY (process start-up is not timed);
3. workers update their counters (`count`, `first_ns`, `last_ns`) as they go; the parent
   polls them, and sets `stop` once the consumers' counts add up to the messages sent or
   the deadline passes;
4. every worker puts one result dict on the result queue and exits.

Consumers return `seen`: a bytearray with one saturating count per message index, which
the parent adds up across consumers, so `lost` and `duplicated` are exact across
competing consumers. Timestamps are `time.perf_counter_ns()` (CLOCK_MONOTONIC on Linux,
the same clock in every process).

Ownership: each counter array is written only by its worker and read by the parent;
`go` and `stop` are set only by the parent.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import queue
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import progress

# Slots of a worker's shared counter array.
COUNT, FIRST_NS, LAST_NS, STATE = range(4)
READY, DONE, FAILED = 1, 2, 3

_CTX = mp.get_context("spawn")
# Per-worker figures that are added up over the workers of a run.
SUMMED = ("send_retries", "receives", "empty_receives")


@dataclass
class Shared:
    """What a worker shares with the parent: its counters, the events, the result queue."""

    counters: Any
    go: Any
    stop: Any
    results: Any
    wid: int


@dataclass
class Job:
    """One worker: `func(job, shared)` runs in its own process and returns its result."""

    func: Callable[[Job, Shared], dict[str, Any]]
    role: str  # "producer" or "consumer"
    params: dict[str, Any] = field(default_factory=dict)


def cpu_seconds() -> float:
    """User + system CPU seconds of the calling process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _entry(job: Job, shared: Shared) -> None:
    try:
        result = job.func(job, shared)
    except BaseException as exc:  # reported to the parent, never lost in a child's stderr
        shared.counters[STATE] = FAILED
        result = {"errors": [f"{type(exc).__name__}: {exc}"]}
    else:
        shared.counters[STATE] = DONE
    result["wid"] = shared.wid
    result["role"] = job.role
    shared.results.put(result)


def merge_seen(total: bytearray, part: bytes) -> None:
    """Add a consumer's per-index counts into `total` (saturating at 255)."""
    if not any(total):
        total[:] = part
        return
    for i, c in enumerate(part):
        if c:
            total[i] = min(255, total[i] + c)


async def run_workers(
    jobs: list[Job], messages: int, deadline: float, *, poll: float = 0.02
) -> dict[str, Any]:
    """Run the jobs as processes (consumers first); return the merged figures.

    Figures: sent, delivered, lost, duplicated, timed_out, elapsed_s, msgs_per_s,
    send_per_s, workers_cpu_s, workers_cpu_max_pct, errors, and every consumer's and
    producer's `latencies_ns` concatenated as `latencies_ns`.
    """
    go = _CTX.Event()
    stop = _CTX.Event()
    results: Any = _CTX.Queue()
    procs: list[Any] = []
    shared: list[Shared] = []
    errors: list[str] = []
    timed_out = False
    loop = asyncio.get_running_loop()
    consumers = [j for j in jobs if j.role == "consumer"]
    producers = [j for j in jobs if j.role == "producer"]

    def start(job: Job) -> Shared:
        s = Shared(_CTX.RawArray("q", 4), go, stop, results, len(shared))
        p = _CTX.Process(target=_entry, args=(job, s), daemon=True)
        p.start()
        procs.append(p)
        shared.append(s)
        return s

    async def wait_state(group: list[Shared]) -> bool:
        while time.monotonic() < deadline:
            states = [s.counters[STATE] for s in group]
            if any(st == FAILED for st in states):
                return False
            if all(st >= READY for st in states):
                return True
            await asyncio.sleep(poll)
        return False

    collected: list[dict[str, Any]] = []
    ticker: asyncio.Task[None] | None = None
    wall0 = time.perf_counter()
    try:
        cons = [start(j) for j in consumers]
        ok = await wait_state(cons)
        prods = [start(j) for j in producers] if ok else []
        ok = ok and await wait_state(prods)
        go.set()
        if ok:
            ticker = progress.start(lambda: sum(s.counters[COUNT] for s in cons), messages)
            while True:
                got = sum(s.counters[COUNT] for s in cons)
                if got >= messages:
                    break
                if any(s.counters[STATE] == FAILED for s in shared):
                    break
                if time.monotonic() > deadline:
                    timed_out = True
                    break
                await asyncio.sleep(poll)
            # Late duplicates (redeliveries) still count; timing ends at the last new one.
            await asyncio.sleep(0.1)
        else:
            timed_out = time.monotonic() >= deadline
    finally:
        if ticker is not None:
            ticker.cancel()
        stop.set()
        go.set()
        end = time.monotonic() + 15
        while len(collected) < len(procs) and time.monotonic() < end:
            try:
                collected.append(await loop.run_in_executor(None, results.get, True, 0.5))
            except queue.Empty:
                if not any(p.is_alive() for p in procs) and results.empty():
                    break
        for p in procs:
            await loop.run_in_executor(None, p.join, 2)
            if p.is_alive():
                p.kill()
                errors.append("a worker did not exit and was killed")
    wall = time.perf_counter() - wall0
    if len(collected) < len(procs):
        errors.append(f"{len(procs) - len(collected)} worker(s) returned no result")
    return _merge(collected, shared, messages, timed_out, errors, wall)


def _merge(
    collected: list[dict[str, Any]],
    shared: list[Shared],
    messages: int,
    timed_out: bool,
    errors: list[str],
    wall: float,
) -> dict[str, Any]:
    seen = bytearray(messages)
    sent = 0
    first_send = 0
    last_send = 0
    last_recv = 0
    cpu = 0.0
    cpu_max = 0.0
    latencies: list[int] = []
    summed: dict[str, int] = {}
    for r in collected:
        errors.extend(r.get("errors", []))
        for key in SUMMED:
            if key in r:
                summed[key] = summed.get(key, 0) + r[key]
        cpu += r.get("cpu_s", 0.0)
        if r.get("busy_s"):
            cpu_max = max(cpu_max, r.get("cpu_s", 0.0) / r["busy_s"])
        latencies.extend(r.get("latencies_ns", []))
        if r["role"] == "consumer":
            if r.get("seen") is not None:
                merge_seen(seen, r["seen"])
            last_recv = max(last_recv, r.get("last_ns", 0))
        else:
            sent += r.get("sent", 0)
            if r.get("first_ns"):
                first_send = min(first_send or r["first_ns"], r["first_ns"])
            last_send = max(last_send, r.get("last_ns", 0))
    unique = messages - seen.count(0)
    dup = sum(seen) - unique
    elapsed = (last_recv - first_send) / 1e9 if last_recv > first_send > 0 else 0.0
    out: dict[str, Any] = {
        "sent": sent,
        "delivered": unique,
        # A message the producers never sent (a run that timed out) is unsent, not lost.
        "lost": max(0, min(sent, messages) - unique),
        "unsent": max(0, messages - sent),
        "duplicated": dup,
        "timed_out": timed_out,
        "elapsed_s": round(elapsed, 3),
        "workers": len(shared),
        "workers_cpu_s": round(cpu, 3),
        "workers_cpu_max_pct": round(100 * cpu_max, 1),
        "workers_wall_s": round(wall, 3),
        **summed,
    }
    if elapsed > 0:
        out["msgs_per_s"] = round(unique / elapsed)
    if last_send > first_send > 0:
        out["send_per_s"] = round(sent / ((last_send - first_send) / 1e9))
    if summed.get("receives"):
        out["msgs_per_receive"] = round(sum(seen) / summed["receives"], 2)
    if errors:
        out["errors"] = sorted(set(errors))[:5]
    if latencies:
        out["latencies_ns"] = latencies
    return out


def wait_go(shared: Shared) -> bool:
    """Producer side: mark READY, wait for `go`; False if the run was stopped meanwhile."""
    shared.counters[STATE] = READY
    while not shared.go.wait(0.05):
        pass
    return not shared.stop.is_set()


def mark(shared: Shared, count: int, now: int) -> None:
    """Publish progress: `count` so far, and the time of the latest one."""
    c = shared.counters
    if not c[FIRST_NS]:
        c[FIRST_NS] = now
    c[LAST_NS] = now
    c[COUNT] = count
