"""Recent counters of each destination for the console's charts (sans-IO).

The console samples `Core.stats()` every few seconds (`listeners.console.
sample_interval`) into a bounded ring per destination (`samples` entries), never per
message, so the message path pays nothing. A destination gone from the stats is
dropped at the next sample. Rates are deltas of the enqueued / dequeued counters
between two samples, per second; a counter that went down (the destination was deleted
and made again) gives no rate for that step rather than a negative one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


class _Stats(Protocol):
    kind: str
    name: str
    depth: int
    consumers: int
    enqueued: int
    acked: int


@dataclass(frozen=True, slots=True)
class Sample:
    """One destination's counters at one time (seconds, any monotonic clock)."""

    at: float
    depth: int
    consumers: int
    enqueued: int
    dequeued: int


TOTAL = ("broker", "")


class History:
    """Rings of samples by (kind, name); TOTAL sums the queues and topics."""

    def __init__(self, samples: int) -> None:
        if samples < 2:
            raise ValueError("a history needs at least 2 samples to give a rate")
        self.size = samples
        self.rings: dict[tuple[str, str], deque[Sample]] = {}

    def take(self, at: float, stats: Iterable[_Stats]) -> None:
        """Record one sample of every destination in `stats`."""
        seen: set[tuple[str, str]] = set()
        depth = consumers = enqueued = dequeued = 0
        for s in stats:
            key = (s.kind, s.name)
            seen.add(key)
            self._ring(key).append(Sample(at, s.depth, s.consumers, s.enqueued, s.acked))
            # Durable subscriptions are also counted in their topic: not twice.
            if s.kind in ("queue", "topic"):
                depth += s.depth
                consumers += s.consumers
                enqueued += s.enqueued
                dequeued += s.acked
        seen.add(TOTAL)
        self._ring(TOTAL).append(Sample(at, depth, consumers, enqueued, dequeued))
        for key in [k for k in self.rings if k not in seen]:
            del self.rings[key]

    def _ring(self, key: tuple[str, str]) -> deque[Sample]:
        ring = self.rings.get(key)
        if ring is None:
            ring = self.rings[key] = deque(maxlen=self.size)
        return ring

    def series(self, kind: str, name: str) -> list[dict[str, float | int | None]] | None:
        """The samples of one destination, oldest first, with the rates since the
        sample before (None for the first); None if the destination has none."""
        ring = self.rings.get((kind, name))
        if ring is None:
            return None
        out: list[dict[str, float | int | None]] = []
        before: Sample | None = None
        for s in ring:
            in_rate = out_rate = None
            if before is not None and s.at > before.at:
                span = s.at - before.at
                if s.enqueued >= before.enqueued:
                    in_rate = round((s.enqueued - before.enqueued) / span, 3)
                if s.dequeued >= before.dequeued:
                    out_rate = round((s.dequeued - before.dequeued) / span, 3)
            out.append(
                {
                    "at": s.at,
                    "depth": s.depth,
                    "consumers": s.consumers,
                    "enqueued": s.enqueued,
                    "dequeued": s.dequeued,
                    "enqueue_rate": in_rate,
                    "dequeue_rate": out_rate,
                }
            )
            before = s
        return out
