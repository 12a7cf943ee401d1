"""Compaction policy: which old segments are worth emptying by copying their live records.

Segments are deleted strictly oldest first (see journal.py for why), so one live record
in the oldest segment pins every segment after it. Compaction copies the live records
of the oldest segments to the head, which makes them deletable. The head itself is
never read here; the journal seals it first when it would be chosen (`head_worth_rolling`),
so a journal smaller than one segment is compacted too. Copying is paid in
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
    """The segments whose live records to copy forward, oldest first (maybe none)."""
    return [
        seg
        for seg in _best_run(
            segments,
            movable_before=movable_before,
            max_live_ratio=max_live_ratio,
            max_bytes=max_bytes,
        )
        if seg.live
    ]


def _best_run(
    segments: Iterable[Segment], *, movable_before: int, max_live_ratio: float, max_bytes: int
) -> list[Segment]:
    """The oldest segments that copying the live records of would free (dead ones too).

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
    return run[:best]


def head_worth_rolling(
    segments: Iterable[Segment],
    head: Segment,
    *,
    min_size: int,
    max_live_ratio: float,
    max_bytes: int,
) -> bool:
    """Would sealing the head now let it go? True when it holds at least `min_size`
    bytes and either nothing in it is live (and nothing older is left: it is deleted as
    soon as it is sealed) or the policy above would copy it forward if it were sealed.

    Without this, dead records in the head stay until it fills a whole segment, and a
    broker whose live data is small but churns (produce, consume, crash, restart) would
    replay up to a segment of history at every start."""
    if head.size < min_size or head.compacting:
        return False
    if not head.live and next(iter(segments)) is head:
        return True
    run = _best_run(
        segments, movable_before=head.id + 1, max_live_ratio=max_live_ratio, max_bytes=max_bytes
    )
    return bool(run) and run[-1] is head
