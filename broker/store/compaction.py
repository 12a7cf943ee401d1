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

Pure functions over the loop's bookkeeping and bytes already read; no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from broker.store.errors import JournalCorrupt
from broker.store.format import (
    RECORD_HEADER_SIZE,
    SEGMENT_HEADER_SIZE,
    Damage,
    Record,
    RecordRef,
    describe_damage,
    scan_records,
)
from broker.store.segment import Segment

log = logging.getLogger("zonemq.store")


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


def live_records(
    victims: list[Segment],
    blobs: list[bytes],
    live: Callable[[Record], bool | bytes],
    *,
    skip_corrupt: bool,
) -> list[Record]:
    """The records of `victims` (their file contents in `blobs`) that `live` keeps, each
    with the payload to copy: the record's own, or the caller's current version of it.
    Damage raises JournalCorrupt unless `skip_corrupt` (then it is logged and skipped)."""
    keep: list[Record] = []
    for seg, blob in zip(victims, blobs, strict=True):
        view = memoryview(blob)
        for item in scan_records(view, SEGMENT_HEADER_SIZE):
            if isinstance(item, Damage):
                reason = describe_damage(view, item.offset)
                if not skip_corrupt:
                    raise JournalCorrupt(seg.path, item.offset, reason)
                log.warning(
                    "%s: compaction skips corrupt bytes at %d (%s)", seg.path, item.offset, reason
                )
                continue
            offset, rtype, length = item
            start = offset + RECORD_HEADER_SIZE
            record = Record(
                RecordRef(seg.id, offset, length), rtype, bytes(view[start : start + length])
            )
            verdict = live(record)
            if verdict is True:
                keep.append(record)
            elif verdict:
                keep.append(Record(record.ref, rtype, bytes(verdict)))
    return keep
