"""Recovery: replay the segment files in order and repair a torn tail.

What counts as what (the decision the rest of the journal relies on):
- damage in the LAST segment with no valid record after it is a torn tail (a crash
  mid-write): the file is truncated to the last good record, with one warning, and the
  journal starts; a last segment shorter than its header (a crash while creating it)
  gets its header rewritten;
- damage followed by a valid record, damage in any other segment, a bad segment header,
  or a missing segment id in the range is corruption: JournalCorrupt(path, offset), or,
  with skip_corrupt, a warning per skipped stretch and replay goes on. Skipping never
  rewrites the damaged file; it is deleted like any other segment once nothing in it
  or before it is live.

The head is preallocated (segment.py), so after a crash or a SIGKILL the last segment
usually ends in zero bytes: that tail is the end of the log and is truncated without a
warning (a torn record before it still gets one). A clean close trims the file itself.

Earlier segments cannot have torn tails because the writer syncs a segment before it
creates the next one; that is what makes "damage before the last segment" corruption.
A known limit: a power cut can persist a later page of the final write but not an
earlier one; that hole looks like corruption and needs skip_corrupt (the records after
it were never acknowledged).

Progress: replay reads every segment whole, so a big journal takes a while before the
broker listens. A line is logged at most every PROGRESS_INTERVAL seconds (segment,
records, bytes, elapsed), and the totals are returned for the caller's final line.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Generator
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

from broker.store.errors import JournalCorrupt, JournalError
from broker.store.format import (
    RECORD_HEADER_SIZE,
    SEGMENT_HEADER_SIZE,
    BadHeader,
    Damage,
    Record,
    RecordRef,
    decode_segment_header,
    describe_damage,
    parse_segment_name,
    scan_records,
    zero_tail,
)
from broker.store.segment import (
    Segment,
    datasync,
    segment_path,
    write_empty_segment,
)

log = logging.getLogger("zonemq.store")

# Seconds between replay progress lines (a replay shorter than this logs none).
PROGRESS_INTERVAL = 5.0


class Recovered(NamedTuple):
    """Where appending resumes: the head segment id, and whether its file must be created;
    and what was replayed (segment files and their bytes)."""

    head_id: int
    create_head: bool
    segments: int = 0
    bytes: int = 0


def list_segment_ids(directory: Path) -> list[int]:
    """Ids of the segment files in `directory`, ascending; other files are ignored."""
    ids = [i for i in (parse_segment_name(p.name) for p in directory.iterdir()) if i is not None]
    return sorted(ids)


def recover(
    directory: Path, segments: dict[int, Segment], *, skip_corrupt: bool, sync: bool
) -> Generator[Record, None, Recovered]:
    """Yield every valid record in log order, registering each segment in `segments`
    (before its records are yielded, so the caller may release them during replay)."""
    ids = list_segment_ids(directory)
    if not ids:
        return Recovered(1, create_head=True)
    for prev, nxt in pairwise(ids):
        if nxt != prev + 1:
            missing = segment_path(directory, prev + 1)
            reason = f"segment files {prev + 1}..{nxt - 1} are missing"
            if not skip_corrupt:
                raise JournalCorrupt(missing, 0, reason)
            log.warning("%s: %s; replaying around the gap (skip_corrupt)", missing, reason)
    last_id = ids[-1]
    total = sum(segment_path(directory, i).stat().st_size for i in ids)
    started = next_report = time.monotonic()
    next_report += PROGRESS_INTERVAL
    done = records = 0
    for n, segment_id in enumerate(ids, 1):
        now = time.monotonic()
        if now >= next_report:
            next_report = now + PROGRESS_INTERVAL
            log.info(
                "journal replay: segment %d of %d, %d records, %.1f of %.1f MiB, %.1fs",
                n,
                len(ids),
                records,
                done / 2**20,
                total / 2**20,
                now - started,
            )
        last = segment_id == last_id
        path = segment_path(directory, segment_id)
        data = path.read_bytes()
        done += len(data)
        seg = Segment(segment_id, path, size=len(data), written=len(data))
        segments[segment_id] = seg
        try:
            header_id = decode_segment_header(data)
            if header_id != segment_id:
                raise BadHeader(f"header names segment {header_id}")
        except BadHeader as exc:
            if exc.unsupported:
                raise JournalError(f"{path}: {exc}") from None
            if last and len(data) < SEGMENT_HEADER_SIZE:
                log.warning(
                    "%s: segment header torn (%d bytes; crash while creating it), rewriting it",
                    path,
                    len(data),
                )
                _rewrite_header(directory, segment_id, sync=sync)
                seg.size = seg.written = SEGMENT_HEADER_SIZE
                continue
            if not skip_corrupt:
                raise JournalCorrupt(path, 0, str(exc)) from None
            log.warning("%s: skipping the whole segment, bad header: %s", path, exc)
            if last:
                # Never append after a header we cannot read; start a fresh segment.
                return Recovered(segment_id + 1, True, len(ids), total)
            continue
        yield from _replay_segment(seg, memoryview(data), last=last, skip_corrupt=skip_corrupt)
        records += seg.records
        if last and seg.size < len(data):
            _truncate(path, seg.size, sync=sync)
    return Recovered(last_id, False, len(ids), total)


def _replay_segment(
    seg: Segment, view: memoryview, *, last: bool, skip_corrupt: bool
) -> Generator[Record, None, None]:
    for item in scan_records(view, SEGMENT_HEADER_SIZE):
        if isinstance(item, Damage):
            reason = describe_damage(view, item.offset)
            if last and item.resume is None:
                seg.size = seg.written = item.offset
                if zero_tail(view, item.offset):
                    # The preallocated rest of the head (a crash or a kill left it; a
                    # clean close trims it): the end of the log, not damage.
                    return
                # Nothing valid after it: the tail of an interrupted write.
                log.warning(
                    "%s: torn tail at offset %d (%s); truncating %d bytes",
                    seg.path,
                    item.offset,
                    reason,
                    len(view) - item.offset,
                )
                return
            if not skip_corrupt:
                raise JournalCorrupt(seg.path, item.offset, reason)
            resume = len(view) if item.resume is None else item.resume
            log.warning(
                "%s: skipping corrupt bytes %d..%d (%s)", seg.path, item.offset, resume, reason
            )
            continue
        offset, rtype, length = item
        seg.records += 1
        seg.live += 1
        seg.live_bytes += RECORD_HEADER_SIZE + length
        start = offset + RECORD_HEADER_SIZE
        yield Record(RecordRef(seg.id, offset, length), rtype, bytes(view[start : start + length]))


def _truncate(path: Path, size: int, *, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        if sync:
            datasync(fd)
    finally:
        os.close(fd)


def _rewrite_header(directory: Path, segment_id: int, *, sync: bool) -> None:
    write_empty_segment(directory, segment_id, replace=True, sync=sync)
