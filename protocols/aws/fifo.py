"""FIFO queue send-side state: deduplication within the 5-minute window and sequence
numbers. (Receive-side group ordering is the core's: PullPolicy.grouped in leases.py.)

A send whose deduplication key was seen in the last five minutes is accepted but not
enqueued, and answers with the first send's MessageId and SequenceNumber, as SQS does.
The key is the MessageDeduplicationId (or the SHA-256 of the body with
ContentBasedDeduplication), qualified by the group when DeduplicationScope is
messageGroup. The window lives in memory: a broker restart forgets it (documented).
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections import OrderedDict

WINDOW_MS = 5 * 60 * 1000

# Sequence numbers as AWS's look: 20 decimal digits with no leading zero, increasing (per
# group too, being one counter) across restarts: seeded from the clock in tenths of a
# nanosecond, 1.8e19 today, so a restart a second later starts 1e10 above any count the
# previous run could have reached, and the value stays below 1e20 until the year 2286.
_sequence = itertools.count(time.time_ns() * 10)


def next_sequence_number() -> str:
    return str(next(_sequence))


def content_dedup_id(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class Dedup:
    """Deduplication keys of one FIFO queue, oldest first, pruned as they expire."""

    def __init__(self) -> None:
        self._seen: OrderedDict[tuple[str | None, str], tuple[int, str, str]] = OrderedDict()

    def _prune(self, now: int) -> None:
        seen = self._seen
        while seen:
            key, (expires, _mid, _seq) = next(iter(seen.items()))
            if expires > now:
                break
            del seen[key]

    def seen(self, key: tuple[str | None, str], now: int) -> tuple[str, str] | None:
        """(MessageId, SequenceNumber) of a send with `key` in the window, else None."""
        self._prune(now)
        hit = self._seen.get(key)
        return (hit[1], hit[2]) if hit is not None else None

    def record(self, key: tuple[str | None, str], now: int, mid: str, seq: str) -> None:
        self._seen[key] = (now + WINDOW_MS, mid, seq)

    def clear(self) -> None:
        self._seen.clear()
