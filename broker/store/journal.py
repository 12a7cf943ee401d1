"""The journal: an append-only log of opaque typed records in segment files.

It knows nothing about messages (Artemis' Journal is the model): the layer above maps
messages, acks and destinations to records, tells the journal when a record is dead
(`release`), and answers "is this record still live?" during compaction.

Life cycle: `open()` replays every valid record (and repairs a torn tail); then
`append` buffers records, `commit()` returns a future that completes when everything
appended so far is written (and fsynced, with policy "always"); `close()` flushes.

Invariants:
- group commit: records appended during one event-loop turn go out as one batch, i.e.
  one pwrite per segment touched and, with "always", one fdatasync, run on a single I/O
  thread (iothread.py) so the loop never blocks on the disk. While a batch is in flight,
  appends collect into the next one, so batches grow with concurrency;
- a commit future completes only after the batch holding every record appended before
  it is written (and synced per the policy); a failed write, sync or delete fails those
  futures and every later call (JournalFailed), and is never retried (a retried fsync
  can report success for data the kernel already dropped);
- a RecordRef is fixed at append time: the loop computes each record's segment and
  offset, and the I/O thread writes exactly there;
- segments are deleted oldest first only: a sealed segment goes when it and all older
  ones hold no live record, are fully written, and (after compaction) the copies of
  their records are durable. Deleting only a prefix keeps the log on disk a suffix of
  everything ever appended, so a record that cancels an older one (an ack) can never
  vanish while the record it cancels survives. Compaction is what keeps one old live
  record from pinning the rest: it re-appends the live records of the oldest segments
  at the head and hands back old ref -> new ref;
- the head is compacted too: when its dead share is high (and it holds at least
  1/ROLL_FRACTION of a segment), compaction seals it first (`_seal_head`: the next record
  goes to a new segment, created by an empty batch if nothing else is appended), waits
  until it is fully written, and then treats it like any old segment. So the journal's
  size, and the restart's replay, track the live data rather than up to a segment of
  history (issue 10: a journal smaller than one segment was never compacted, and replay
  grew from 0.28 s to 14.4 s over 20 crash cycles). Sealing changes no record and no
  order: the log is still every record ever appended minus a deleted prefix, so the
  rules above (keyed replay, removed keys never return, COUNT/REMOVE dead on arrival)
  hold as they did.

Ownership: everything here runs on the event loop thread, and no method awaits between
checking state and changing it. The I/O thread owns the SegmentWriter; a batch belongs
to the loop until it is submitted and is only read (by `read`) afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from prometheus_client import CollectorRegistry

from broker.store.compaction import head_worth_rolling, live_records, pick_victims
from broker.store.errors import JournalCorrupt, JournalError, JournalFailed
from broker.store.format import (
    MAX_PAYLOAD,
    MAX_TYPE,
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    SEGMENT_HEADER_SIZE,
    TYPE_CRC,
    Record,
    RecordRef,
    check_record,
    describe_damage,
)
from broker.store.gating import Gate, observed, settle
from broker.store.iothread import IoThread
from broker.store.metrics import JournalMetrics
from broker.store.recovery import recover
from broker.store.segment import (
    FSYNC_POLICIES,
    FsyncPolicy,
    Segment,
    SegmentInfo,
    SegmentWriter,
    WriteGroup,
    fsync_directory,
    segment_path,
    write_empty_segment,
)

log = logging.getLogger("zonemq.store")

# The head is sealed for compaction only once it holds 1/ROLL_FRACTION of a segment, so
# a quiet journal is not rolled into a file per compaction pass.
ROLL_FRACTION = 8

_NEW, _RECOVERING, _OPEN, _CLOSING, _CLOSED, _FAILED = (
    "new",
    "recovering",
    "open",
    "closing",
    "closed",
    "failed",
)


class JournalStats(NamedTuple):
    """Counters since open: completed group commits, pwrites, fsyncs, bytes written."""

    batches: int
    writes: int
    fsyncs: int
    bytes_written: int


class _Batch:
    """Records of one group commit and the futures waiting for it."""

    __slots__ = ("groups", "records", "seq", "waiters")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.groups: list[WriteGroup] = []
        self.records = 0
        self.waiters: list[asyncio.Future[None]] = []


class Journal:
    """Segmented append-only record log with group commit, recovery and compaction.

    Single-threaded: every method must be called from the event loop thread that
    first appends (open() may run before any loop exists). The caller is expected to
    hold the data directory's DataDirLock; the journal assumes it is the only writer.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        segment_size: int = 64 * 1024 * 1024,
        fsync: FsyncPolicy = "always",
        fsync_interval_ms: int = 100,
        skip_corrupt: bool = False,
        registry: CollectorRegistry | None = None,
        on_failure: Callable[[JournalFailed], None] | None = None,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, not {fsync!r}")
        if segment_size <= SEGMENT_HEADER_SIZE + RECORD_HEADER_SIZE:
            raise ValueError(f"segment_size {segment_size} is too small")
        if fsync_interval_ms <= 0:
            raise ValueError(f"fsync_interval_ms must be positive, not {fsync_interval_ms}")
        self._directory = Path(directory)
        self._segment_size = segment_size
        self._fsync: FsyncPolicy = fsync
        self._interval = fsync_interval_ms / 1000
        self._skip_corrupt = skip_corrupt
        self._metrics = JournalMetrics(registry) if registry is not None else None
        self._on_failure = on_failure
        self._state = _NEW
        self._failure: BaseException | None = None
        # Oldest first (ids ascend, and dicts keep insertion order).
        self._segments: dict[int, Segment] = {}
        self._head: Segment | None = None
        self._group: WriteGroup | None = None  # the pending batch's group for the head
        self._pending = _Batch(1)
        self._inflight: _Batch | None = None
        self._durable_seq = 0  # seq of the last batch written (and synced per policy)
        self._flush_scheduled = False
        self._interval_timer: asyncio.TimerHandle | None = None
        self._compacting = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._io: IoThread | None = None
        self._writer: SegmentWriter | None = None
        self._batches = 0
        self._observer: Callable[[int, int, list[bytes]], None] | None = None
        self._gate: Gate | None = None
        # The newest batch written here whose gate has not opened yet (commit waits on it).
        self._gated: asyncio.Future[None] | None = None
        # What open() replayed: (segment files, bytes); the broker logs it.
        self.replayed = (0, 0)

    # -- opening ---------------------------------------------------------------------------

    def open(self) -> Iterator[Record]:
        """Replay every valid record, oldest first; consume it fully before appending.

        Blocking file I/O: call it before serving (or in a thread). Records yielded
        count as live; release the dead ones as you go or afterwards. A torn tail of
        the last segment is truncated with one warning; other damage raises
        JournalCorrupt unless skip_corrupt.
        """
        if self._state is not _NEW:
            raise JournalError("open() can be called once per Journal")
        self._state = _RECOVERING
        return self._replay()

    def _replay(self) -> Iterator[Record]:
        sync = self._fsync != "never"
        if not self._directory.exists():
            self._directory.mkdir(parents=True)
            if sync:
                fsync_directory(self._directory.parent)
        result = yield from recover(
            self._directory, self._segments, skip_corrupt=self._skip_corrupt, sync=sync
        )
        self.replayed = (result.segments, result.bytes)
        if result.create_head:
            write_empty_segment(self._directory, result.head_id, sync=sync)
            path = segment_path(self._directory, result.head_id)
            size = SEGMENT_HEADER_SIZE
            self._segments[result.head_id] = Segment(result.head_id, path, size, size)
        self._head = self._segments[result.head_id]
        self._writer = SegmentWriter(
            self._directory,
            self._fsync,
            self._head.id,
            self._metrics,
            segment_size=self._segment_size,
        )
        self._io = IoThread("zonemq-journal")
        self._state = _OPEN
        self._set_segments_gauge()
        self._collect()  # segments whose records were all released during replay

    # -- appending and group commit ----------------------------------------------------------

    def append(self, rtype: int, payload: bytes, *, live: bool = True) -> RecordRef:
        """Buffer a record (no I/O) and return where it will be. `live=False` appends a
        record that is dead on arrival (e.g. an ack: it matters only until the records
        it cancels are gone, and prefix deletion guarantees they go first)."""
        if self._state is not _OPEN:
            self._refuse()
        if not 0 <= rtype <= MAX_TYPE:
            raise ValueError(f"record type {rtype} is not in 0..{MAX_TYPE}")
        if type(payload) is not bytes:
            payload = bytes(payload)  # the caller may reuse a bytearray before the write
        length = len(payload)
        if length > MAX_PAYLOAD:
            raise ValueError(f"record payload of {length} bytes is too large")
        size = RECORD_HEADER_SIZE + length
        head = self._head
        assert head is not None
        offset = head.size
        # A record larger than a segment gets a segment of its own rather than an error.
        if offset + size > self._segment_size and offset > SEGMENT_HEADER_SIZE:
            head = self._roll()
            offset = head.size
        group = self._group
        if group is None:
            group = self._group = WriteGroup(head.id, offset, create=False)
            self._pending.groups.append(group)
        group.chunks.append(RECORD_HEADER.pack(length, rtype, zlib.crc32(payload, TYPE_CRC[rtype])))
        group.chunks.append(payload)
        head.size = group.end = offset + size
        head.records += 1
        if live:
            head.live += 1
            head.live_bytes += size
        self._pending.records += 1
        if not self._flush_scheduled and self._inflight is None:
            self._schedule_flush()
        return RecordRef(head.id, offset, length)

    def commit(self) -> asyncio.Future[None]:
        """A future that completes when every record appended so far is written (and,
        with fsync "always", fsynced). Each call gets its own future, so cancelling one
        waiter never cancels the batch for the others."""
        if self._state is not _OPEN and self._state is not _CLOSING:
            self._refuse()
        fut: asyncio.Future[None] = self._get_loop().create_future()
        batch = self._pending if self._pending.groups else self._inflight
        if batch is not None:
            batch.waiters.append(fut)
        elif self._gated is not None and not self._gated.done():
            self._gated.add_done_callback(functools.partial(settle, fut))
        else:
            fut.set_result(None)
        return fut

    def observe(self, observer: Callable[[int, int, list[bytes]], None] | None) -> None:
        """Call `observer(segment, offset, chunks)` for each run of record frames as its
        batch goes to the I/O thread (None stops it): the frames at `offset` of `segment`,
        `chunks` alternating headers and payloads, in append order, exactly once each.
        Called before the write, so a replica's fsync can overlap ours; it must not keep
        the list beyond its own use nor raise. Checked once per batch, not per append."""
        self._observer = observer

    def gate(self, gate: Gate | None) -> None:
        """Make commit futures also wait for `gate(segment, end)`: called with the end of
        each batch once it is written here, it returns None (nothing more to wait for) or
        a future; the batch's waiters get its result or its exception (a refusal such as
        "not enough standbys": the records stay in this journal, the writers are told).
        Gate futures must complete in position order. The journal's own rules (deletion,
        compaction) keep to local durability; replication is the gate's business."""
        self._gate = gate

    def _roll(self) -> Segment:
        """Start the next segment; the I/O thread creates its file with this batch."""
        old = self._head
        assert old is not None
        new_id = old.id + 1
        size = SEGMENT_HEADER_SIZE
        head = Segment(new_id, segment_path(self._directory, new_id), size, written=0)
        self._segments[new_id] = self._head = head
        self._group = WriteGroup(new_id, size, create=True, end=size)
        self._pending.groups.append(self._group)
        self._set_segments_gauge()
        return head

    def _schedule_flush(self) -> None:
        # call_soon runs after every callback already queued for this turn, so all the
        # tasks woken in this turn append before the batch is cut.
        loop = self._get_loop()
        self._flush_scheduled = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._inflight is not None or not self._pending.groups:
            return
        if self._state is not _OPEN and self._state is not _CLOSING:
            return
        batch = self._pending
        self._pending = _Batch(batch.seq + 1)
        self._group = None
        self._inflight = batch
        if self._observer is not None:
            for group in batch.groups:
                if group.chunks:  # a sealed head's new segment may have none yet
                    self._observer(group.segment, group.start, group.chunks)
        assert self._writer is not None and self._io is not None
        done = functools.partial(self._written, batch)
        self._io.submit(self._get_loop(), done, self._writer.write, batch.groups)

    def _written(self, batch: _Batch, _result: object, exc: BaseException | None) -> None:
        # Runs in the first loop turn after the I/O thread's fdatasync returned.
        self._inflight = None
        if exc is not None:
            self._fail(exc)
        if self._state is _FAILED:
            self._fail_waiters(batch)
            return
        for group in batch.groups:
            seg = self._segments.get(group.segment)
            if seg is not None:
                seg.written = group.end
        self._durable_seq = batch.seq
        self._batches += 1
        if self._metrics is not None:
            self._metrics.group_records.observe(batch.records)
        gated = None
        if self._gate is not None:
            last = batch.groups[-1]
            gated = self._gate(last.segment, last.end)
        if gated is None:
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_result(None)
        else:
            self._gated = gated
            gated.add_done_callback(observed)  # a refusal nobody waited for is not an error
            for waiter in batch.waiters:
                gated.add_done_callback(functools.partial(settle, waiter))
        if self._fsync == "interval" and self._interval_timer is None:
            self._interval_timer = self._get_loop().call_later(self._interval, self._sync_tick)
        self._collect()
        # Appends that arrived while this batch was in flight form the next batch now.
        if self._pending.groups and not self._flush_scheduled:
            self._flush()

    def _sync_tick(self) -> None:
        self._interval_timer = None
        if self._state is _OPEN or self._state is _CLOSING:
            assert self._writer is not None
            self._run_io(self._writer.sync)

    # -- liveness, deletion and compaction --------------------------------------------------

    def release(self, ref: RecordRef) -> None:
        """The layer above no longer needs this record (e.g. its message was acked).

        Accounting only: the journal keeps a live count per segment, not per record, so
        releasing a ref twice, or releasing the old ref of a record compaction moved,
        corrupts the count; both are caught when they would take a count below zero.
        """
        seg = self._segments.get(ref.segment)
        if seg is None:
            raise JournalError(f"release of {ref}: segment {ref.segment} no longer exists")
        if seg.live <= 0:
            raise JournalError(f"release of {ref}: segment {ref.segment} has no live records")
        seg.live -= 1
        seg.live_bytes -= RECORD_HEADER_SIZE + ref.length
        if not seg.live and self._state is _OPEN:
            self._collect()

    def segments(self) -> list[SegmentInfo]:
        """A snapshot of the segments, oldest first (the head last)."""
        return [seg.info() for seg in self._segments.values()]

    async def compact(
        self,
        live: Callable[[Record], bool | bytes],
        *,
        max_live_ratio: float = 0.5,
        max_bytes: int | None = None,
    ) -> dict[RecordRef, RecordRef]:
        """Copy the live records of the oldest segments to the head; return old -> new.

        `live(record)` is asked about every record of the chosen segments (see
        compaction.pick_victims; at most about `max_bytes`, default one segment, is read)
        and must answer from the caller's own index; True copies the record, bytes copy
        it with that payload instead (the caller's current version of it), False drops it.
        The copies and the mapping are made in one synchronous step after the last await, so when
        the caller awaits compact() directly, no other coroutine runs between the move
        and the caller seeing the mapping: switch your pointers before you next await.
        The emptied segments are deleted once the copies are durable.

        A copy lands after records appended since the original, so replay must not
        depend on a record preceding later updates of the same thing (key by id).
        """
        if self._state is not _OPEN:
            self._refuse()
        if self._compacting:
            raise JournalError("a compaction is already running")
        limit = self._segment_size if max_bytes is None else max_bytes
        victims = pick_victims(
            self._segments.values(),
            movable_before=self._first_unwritten(),
            max_live_ratio=max_live_ratio,
            max_bytes=limit,
        )
        head = self._head
        assert head is not None
        if not victims and head_worth_rolling(
            self._segments.values(),
            head,
            min_size=self._segment_size // ROLL_FRACTION,
            max_live_ratio=max_live_ratio,
            max_bytes=limit,
        ):
            self._compacting = True
            try:
                await self._seal_head()
            finally:
                self._compacting = False
            if self._state is not _OPEN:
                self._refuse()
            victims = pick_victims(
                self._segments.values(),
                movable_before=self._first_unwritten(),
                max_live_ratio=max_live_ratio,
                max_bytes=limit,
            )
        if not victims:
            return {}
        self._compacting = True
        for seg in victims:
            seg.compacting = True
        try:
            paths = [seg.path for seg in victims]
            assert self._io is not None
            blobs = await self._io.run(self._get_loop(), _read_files, paths)
            if self._state is not _OPEN:
                self._refuse()
            # No await from here on (see the docstring).
            return self._move(victims, blobs, live)
        finally:
            for seg in victims:
                seg.compacting = False
            self._compacting = False
            self._collect()

    def _move(
        self,
        victims: list[Segment],
        blobs: list[bytes],
        live: Callable[[Record], bool | bytes],
    ) -> dict[RecordRef, RecordRef]:
        # Decide everything first: if the data is damaged or `live` raises, nothing has
        # been appended and the victims keep their records and counts.
        keep = live_records(victims, blobs, live, skip_corrupt=self._skip_corrupt)
        mapping = {rec.ref: self.append(rec.rtype, rec.payload) for rec in keep}
        for seg in victims:
            seg.live = 0
            seg.live_bytes = 0
            if mapping:
                seg.delete_after = self._pending.seq  # the batch holding the copies
        return mapping

    async def _seal_head(self) -> None:
        """Start a new head now, and wait until the old one is fully written (and synced:
        the writer syncs a segment before creating the next), so compaction may read it.
        The new segment's file is created by this batch even if nothing else is in it."""
        self._roll()
        if not self._flush_scheduled and self._inflight is None:
            self._schedule_flush()
        await self.commit()
        # An all-dead old head can go now (it is sealed and written).
        self._collect()

    def _first_unwritten(self) -> int:
        """Lowest segment id with bytes not yet written (the head's id when idle)."""
        for batch in (self._inflight, self._pending):
            if batch is not None and batch.groups:
                return batch.groups[0].segment
        assert self._head is not None
        return self._head.id

    def _collect(self) -> None:
        """Delete the oldest segments while they are dead, sealed and fully written."""
        if self._state is not _OPEN:
            return
        first_unwritten = self._first_unwritten()
        deleted = False
        while True:
            seg = next(iter(self._segments.values()))
            if (
                seg is self._head
                or seg.live
                or seg.compacting
                or seg.id >= first_unwritten
                or seg.delete_after > self._durable_seq
            ):
                break
            del self._segments[seg.id]
            _close_reader(seg)
            assert self._writer is not None
            self._run_io(self._writer.delete, seg.path)
            deleted = True
        if deleted:
            self._set_segments_gauge()

    # -- reading -------------------------------------------------------------------------------

    def read(self, ref: RecordRef) -> bytes:
        """The payload of a record (paging), CRC-checked. A blocking pread on the loop
        thread: cheap when the page cache has it, which it usually has for recent data.
        Records not yet written are served from the batch buffers."""
        seg = self._segments.get(ref.segment)
        if seg is None:
            raise JournalError(f"read of {ref}: segment {ref.segment} no longer exists")
        end = ref.offset + ref.frame_size
        if end > seg.size or ref.offset < SEGMENT_HEADER_SIZE:
            raise JournalError(f"read of {ref}: beyond the end of segment {ref.segment}")
        if end > seg.written:
            payload = self._unwritten(ref)
            if payload is not None:
                return payload
            # Otherwise the I/O thread has written it and its callback has not run yet.
        if seg.read_fd is None:
            seg.read_fd = os.open(seg.path, os.O_RDONLY)
        frame = os.pread(seg.read_fd, ref.frame_size, ref.offset)
        view = memoryview(frame)
        found = check_record(view, 0)
        if found is None or found[1] != ref.length:
            reason = describe_damage(view, 0) if found is None else "length differs from ref"
            raise JournalCorrupt(seg.path, ref.offset, reason)
        return frame[RECORD_HEADER_SIZE:]

    def _unwritten(self, ref: RecordRef) -> bytes | None:
        # Linear, but only for records younger than one or two batches.
        for batch in (self._inflight, self._pending):
            if batch is None:
                continue
            for group in batch.groups:
                if group.segment != ref.segment or not group.start <= ref.offset < group.end:
                    continue
                pos = group.start
                chunks = group.chunks
                for i in range(0, len(chunks), 2):
                    if pos == ref.offset:
                        return chunks[i + 1]
                    pos += len(chunks[i]) + len(chunks[i + 1])
        return None

    # -- closing and failure ---------------------------------------------------------------

    async def close(self) -> None:
        """Write and fsync everything pending, then close the files (idempotent).
        After a failure it only closes the files, without syncing."""
        if self._state is _NEW or self._state is _RECOVERING:
            self._state = _CLOSED
            return
        if self._io is None or self._state is _CLOSING:
            return  # already closed, or a close is under way
        if self._state is _OPEN:
            self._state = _CLOSING
            # Closing waits for our own disk only: the gate's owner settles its futures.
            self._gate = self._gated = None
            if self._pending.records or self._inflight is not None:
                with contextlib.suppress(JournalFailed):  # reported already; close anyway
                    await self.commit()
        if self._interval_timer is not None:
            self._interval_timer.cancel()
            self._interval_timer = None
        assert self._writer is not None
        io = self._io
        finish = self._writer.abandon if self._state is _FAILED else self._writer.close
        try:
            await io.run(self._get_loop(), finish)
        except OSError as exc:
            self._fail(exc)
            raise self._error() from exc
        finally:
            for seg in self._segments.values():
                _close_reader(seg)
            io.stop()  # idle by now: the close job was the last one
            self._io = None
            if self._state is not _FAILED:
                self._state = _CLOSED

    @property
    def failed(self) -> bool:
        """True once a write, fsync or delete has failed; the broker must stop."""
        return self._state is _FAILED

    @property
    def stats(self) -> JournalStats:
        w = self._writer
        if w is None:
            return JournalStats(self._batches, 0, 0, 0)
        return JournalStats(self._batches, w.writes, w.fsyncs, w.bytes_written)

    def _fail(self, exc: BaseException) -> None:
        if self._state is _FAILED:
            return
        self._state = _FAILED
        self._failure = exc
        log.error("journal %s failed; it accepts nothing more: %r", self._directory, exc)
        self._fail_waiters(self._pending)
        if self._interval_timer is not None:
            self._interval_timer.cancel()
            self._interval_timer = None
        if self._on_failure is not None:
            self._on_failure(self._error())

    def _fail_waiters(self, batch: _Batch) -> None:
        for waiter in batch.waiters:
            if not waiter.done():
                waiter.set_exception(self._error())
        batch.waiters.clear()

    def _error(self) -> JournalFailed:
        # A fresh exception per raise: one shared instance would pile up tracebacks.
        err = JournalFailed(f"journal {self._directory} failed: {self._failure!r}")
        err.__cause__ = self._failure
        return err

    def _refuse(self) -> NoReturn:
        if self._state is _FAILED:
            raise self._error()
        if self._state is _NEW or self._state is _RECOVERING:
            raise JournalError("journal is not open: consume open() fully first")
        raise JournalError("journal is closed")

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _run_io(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a background job on the I/O thread, after every write already queued."""
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                fn(*args)  # open() consumed outside any loop: blocking is harmless there
                return
        assert self._io is not None
        self._io.submit(self._loop, self._io_done, fn, *args)

    def _io_done(self, _result: object, exc: BaseException | None) -> None:
        if exc is not None:
            self._fail(exc)

    def _set_segments_gauge(self) -> None:
        if self._metrics is not None:
            self._metrics.segments.set(len(self._segments))


def _close_reader(seg: Segment) -> None:
    if seg.read_fd is not None:
        os.close(seg.read_fd)
        seg.read_fd = None


def _read_files(paths: list[Path]) -> list[bytes]:
    return [path.read_bytes() for path in paths]
