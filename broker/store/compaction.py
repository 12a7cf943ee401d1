"""Compaction policy: which old segments are worth emptying by copying their live records.

Segments are deleted strictly oldest first (see journal.py for why), so one live record
in the oldest segment pins every segment after it. Compaction copies the live records
of the oldest segments to the head, which makes them deletable. Copying is paid in
writes, so a run of old segments is chosen only when what it costs (live bytes to copy)
is at most `max_live_ratio` of what it frees (the bytes of every segment in the run,
including the dead ones that were pinned behind it). A deep, mostly-live backlog is
therefore left alone instead of being copied round and round.

Pure function over the loop's bookkeeping; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from broker.store.segment import Segment


def pick_victims(
    segments: Iterable[Segment], *, movable_before: int, max_live_ratio: float, max_bytes: int
) -> list[Segment]:
    """The segments whose live records to copy forward, oldest first (maybe none).

    Walks the oldest run of segments with id < `movable_before` (sealed and fully
    written). Among its prefixes, takes the longest one whose copy cost is within
    `max_live_ratio` of the bytes it frees; the segments to read from it (those with live
    records) may total at most `max_bytes`, but the first one is always allowed.
    """
    run: list[Segment] = []
    best = 0
    cost = freed = scanned = 0
    for seg in segments:
        if seg.id >= movable_before or seg.compacting:
            break
        if seg.live:
            if scanned and scanned + seg.size > max_bytes:
                break
            scanned += seg.size
            cost += seg.live_bytes
        freed += seg.size
        run.append(seg)
        if cost and cost <= max_live_ratio * freed:
            best = len(run)
    return [seg for seg in run[:best] if seg.live]
