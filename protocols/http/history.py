"""Recent counters of each destination for the console's charts (sans-IO).

The console samples `Core.stats()` every few seconds (`listeners.console.
sample_interval`) into a bounded ring per destination (the last `samples` samples),
never per message, so the message path pays nothing. Memory is bounded twice: a ring
is four 64-bit integers per sample in one preallocated array (the sample times are
shared by all rings), and at most `destinations` destinations have one (those first
seen; a destination past the bound is not sampled until a ring frees), so 120 samples
of 1,000 destinations hold under 4 MB. A destination gone from the stats loses its
ring at the next sample.

Rates are deltas of the enqueued / dequeued counters between two samples, per second;
a counter that went down (the destination was deleted and made again) gives no rate for
that step rather than a negative one.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Protocol

# (kind, name) of the broker-wide totals: the queues and topics summed.
TOTAL = ("broker", "")
_FIELDS = 4  # depth, consumers, enqueued, dequeued


class _Stats(Protocol):
    kind: str
    name: str
    depth: int
    consumers: int
    enqueued: int
    acked: int


class _Ring:
    """One destination's samples: slot `n % size` holds sample number n."""

    __slots__ = ("first", "values")

    def __init__(self, size: int, first: int) -> None:
        self.first = first  # the number of its first sample
        self.values = array("q", bytes(8 * _FIELDS * size))


class History:
    """Rings of samples by (kind, name); TOTAL sums the queues and topics."""

    def __init__(self, samples: int, destinations: int = 1000) -> None:
        if samples < 2:
            raise ValueError("a history needs at least 2 samples to give a rate")
        self.size = samples
        self.limit = destinations
        self.taken = 0  # samples taken so far
        self.times = array("d", bytes(8 * samples))
        self.rings: dict[tuple[str, str], _Ring] = {TOTAL: _Ring(samples, 0)}

    def take(self, at: float, stats: Iterable[_Stats]) -> None:
        """Record one sample, at time `at` (seconds), of every destination in `stats`."""
        n = self.taken
        slot = (n % self.size) * _FIELDS
        self.times[n % self.size] = at
        seen: set[tuple[str, str]] = {TOTAL}
        depth = consumers = enqueued = dequeued = 0
        rings = self.rings
        for s in stats:
            # Durable subscriptions are also counted in their topic: not twice.
            if s.kind in ("queue", "topic"):
                depth += s.depth
                consumers += s.consumers
                enqueued += s.enqueued
                dequeued += s.acked
            key = (s.kind, s.name)
            seen.add(key)
            ring = rings.get(key)
            if ring is None:
                if len(rings) > self.limit:  # TOTAL's ring is not one of them
                    continue
                ring = rings[key] = _Ring(self.size, n)
            v = ring.values
            v[slot] = s.depth
            v[slot + 1] = s.consumers
            v[slot + 2] = s.enqueued
            v[slot + 3] = s.acked
        rings[TOTAL].values[slot : slot + _FIELDS] = array(
            "q", (depth, consumers, enqueued, dequeued)
        )
        for key in [k for k in rings if k not in seen]:
            del rings[key]
        self.taken = n + 1

    def sampled(self, kind: str, name: str) -> bool:
        """Whether (kind, name) has a ring (False past the bound on destinations)."""
        return (kind, name) in self.rings

    def series(self, kind: str, name: str) -> list[dict[str, float | int | None]] | None:
        """The samples of one destination, oldest first, with the rates since the
        sample before (None for the first); None if it has no ring."""
        ring = self.rings.get((kind, name))
        if ring is None:
            return None
        out: list[dict[str, float | int | None]] = []
        start = max(ring.first, self.taken - self.size)
        before: tuple[float, int, int] | None = None
        for n in range(start, self.taken):
            i = n % self.size
            at = self.times[i]
            depth, consumers, enq, deq = ring.values[i * _FIELDS : (i + 1) * _FIELDS]
            in_rate = out_rate = None
            if before is not None and at > before[0]:
                span = at - before[0]
                if enq >= before[1]:
                    in_rate = round((enq - before[1]) / span, 3)
                if deq >= before[2]:
                    out_rate = round((deq - before[2]) / span, 3)
            out.append(
                {
                    "at": at,
                    "depth": depth,
                    "consumers": consumers,
                    "enqueued": enq,
                    "dequeued": deq,
                    "enqueue_rate": in_rate,
                    "dequeue_rate": out_rate,
                }
            )
            before = (at, enq, deq)
        return out
