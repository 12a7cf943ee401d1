"""A standby's copy of the active's journal directory, byte for byte.

The standby writes each RECORDS frame's bytes at the same segment and offset as on the
active, creates each new segment file with the same header, and deletes old segments
when the active says it deleted them (FORGET), so its directory is always a prefix of
the active's journal (plus, at most, old segments the active already deleted). Promotion
needs no conversion: the broker opens the mirror as its own journal and replays it.

The segment writer's invariants hold here too, since recovery relies on them: a segment
is fsynced before the next segment's file is created, a new file's directory entry is
fsynced before records are written to it, and a torn tail can only be in the last
segment (`open` truncates it, as the journal's recovery would).

Writes run on one I/O thread, in order: frames queued while a batch is on the disk go
as the next batch (one pwrite per frame, one fdatasync per batch and segment), and
`on_durable(end)` runs on the loop after each batch's fsync: the standby's ACK.

Ownership: `apply`, `truncate` and `forget` are called on the event loop and never
block; the I/O thread owns the file descriptors.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from broker.cluster.wire import ZERO, Position, Records
from broker.store.format import (
    SEGMENT_HEADER_SIZE,
    BadHeader,
    Damage,
    decode_segment_header,
    scan_records,
    zero_tail,
)
from broker.store.recovery import list_segment_ids
from broker.store.segment import (
    create_segment_file,
    datasync,
    fsync_directory,
    pwrite_all,
    segment_path,
)

log = logging.getLogger("zonemq.cluster")

_Job = tuple[str, int, int, bytes]  # ("write"|"truncate"|"forget", segment, offset, data)


class MirrorError(Exception):
    """A frame does not continue the mirror, or the mirror's disk failed."""


def scan_end(directory: Path) -> Position:
    """Where the mirror in `directory` ends (ZERO when it holds no segment), after
    truncating a torn tail of its last segment. Blocking; reads only the last file."""
    if not directory.exists():
        directory.mkdir(parents=True)
        fsync_directory(directory.parent)
    ids = list_segment_ids(directory)
    if not ids:
        return ZERO
    last = ids[-1]
    path = segment_path(directory, last)
    data = path.read_bytes()
    try:
        if decode_segment_header(data) != last:
            raise BadHeader("header names another segment")
    except BadHeader:
        if len(data) >= SEGMENT_HEADER_SIZE:
            raise
        # Torn while being created: its bytes never counted; write it again.
        os.close(create_segment_file(directory, last, replace=True))
        fsync_directory(directory)
        return Position(last, SEGMENT_HEADER_SIZE)
    end = SEGMENT_HEADER_SIZE
    for item in scan_records(memoryview(data), SEGMENT_HEADER_SIZE):
        if isinstance(item, Damage):
            break
        offset, _rtype, length = item
        end = offset + 9 + length
    if end < len(data):
        # A former active's head segment ends in its preallocated zeros: the end of its
        # log, not damage (the store's recovery says the same of them).
        if not zero_tail(memoryview(data), end):
            log.warning("%s: torn tail at %d; truncating %d bytes", path, end, len(data) - end)
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, end)
            datasync(fd)
        finally:
            os.close(fd)
    return Position(last, end)


class Mirror:
    """Writes the active's journal bytes into `directory` at their own positions."""

    def __init__(
        self, directory: Path, position: Position, on_durable: Callable[[Position], None]
    ) -> None:
        self.directory = directory
        self.position = position  # the end of what was handed to `apply`
        self.durable = position  # the end of what is fsynced
        self._on_durable = on_durable
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zonemq-mirror")
        self._pending: list[_Job] = []
        self._pending_end = position
        self._pending_bytes = 0
        self._inflight = False
        self._fd: int | None = None
        self._fd_segment = 0
        self.unsynced_bytes = 0
        self.failed: BaseException | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    # -- the loop's side -----------------------------------------------------------------

    def apply(self, records: Records) -> None:
        """Queue a RECORDS frame's bytes; MirrorError if it does not continue the mirror."""
        self._check()
        start, pos = records.start, self.position
        new_segment = start.offset == SEGMENT_HEADER_SIZE and start.segment > pos.segment
        if start != pos and not new_segment:
            raise MirrorError(f"RECORDS start at {tuple(start)}, the mirror ends at {tuple(pos)}")
        if new_segment and pos != ZERO and start.segment != pos.segment + 1:
            # The active deleted the segments in between, so everything before them is
            # dead too: segment ids on disk must stay contiguous for recovery.
            self._queue(("forget", start.segment, 0, b""), self.position)
        # Position first: a batch submitted now acknowledges up to its own end.
        self.position = records.end
        self.unsynced_bytes += len(records.frames)
        self._queue(("write", start.segment, start.offset, records.frames), records.end)

    def truncate(self, position: Position) -> None:
        """Cut the mirror back to `position` (a tail the active does not have)."""
        self._check()
        if position >= self.position:
            return
        log.warning(
            "replication: discarding the mirror's tail after %s (up to %s): never replicated"
            " from the current history",
            tuple(position),
            tuple(self.position),
        )
        self.position = self.durable = position
        self._queue(("truncate", position.segment, position.offset, b""), position)

    def forget(self, segment: int) -> None:
        """The active deleted every segment below `segment`: delete ours too."""
        self._check()
        if segment > self.position.segment:
            self.position = self.durable = ZERO
        self._queue(("forget", segment, 0, b""), self.position)

    async def idle(self) -> None:
        """Wait until everything queued is on the disk (or the mirror failed)."""
        while not self._idle.is_set():
            await self._idle.wait()
        self._check()

    async def close(self) -> None:
        await asyncio.shield(self._wait_close())

    async def _wait_close(self) -> None:
        while not self._idle.is_set():
            await self._idle.wait()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._io, self._close_fd)
        self._io.shutdown(wait=True)

    def _check(self) -> None:
        if self.failed is not None:
            raise MirrorError(f"the mirror's disk failed: {self.failed}") from self.failed

    def _queue(self, job: _Job, end: Position) -> None:
        self._pending.append(job)
        self._pending_end = end
        self._pending_bytes += len(job[3])
        self._idle.clear()
        if not self._inflight:
            self._submit()

    def _submit(self) -> None:
        jobs, self._pending = self._pending, []
        end, size = self._pending_end, self._pending_bytes
        self._pending_bytes = 0
        self._inflight = True
        fut = asyncio.get_running_loop().run_in_executor(self._io, self._run, jobs)
        fut.add_done_callback(lambda f: self._done(f, end, size))

    def _done(self, fut: asyncio.Future[None], end: Position, size: int) -> None:
        self._inflight = False
        self.unsynced_bytes -= size
        exc = fut.exception()
        if exc is not None:
            # Never retried (as the journal's own writer): a failed fsync may have lost data.
            log.error("replication: the mirror's disk failed: %s", exc)
            self.failed = exc
            self._pending.clear()
            self._idle.set()
            return
        self.durable = end
        self._on_durable(end)
        if self._pending:
            self._submit()
        else:
            self._idle.set()

    # -- the I/O thread's side -------------------------------------------------------------

    def _run(self, jobs: list[_Job]) -> None:
        dirty: set[int] = set()
        for kind, segment, offset, data in jobs:
            if kind == "write":
                fd = self._open(segment, create=offset == SEGMENT_HEADER_SIZE)
                pwrite_all(fd, data, offset)
                dirty.add(segment)
            elif kind == "truncate":
                self._truncate(segment, offset)
                dirty.discard(segment)
            else:
                self._forget(segment)
        if self._fd is not None and self._fd_segment in dirty:
            datasync(self._fd)

    def _open(self, segment: int, *, create: bool) -> int:
        if self._fd is not None and self._fd_segment == segment:
            return self._fd
        path = segment_path(self.directory, segment)
        if create and not path.exists():
            # The previous segment is complete: make it durable before the next exists.
            if self._fd is not None:
                datasync(self._fd)
            self._close_fd()
            fd = create_segment_file(self.directory, segment)
            datasync(fd)
            fsync_directory(self.directory)
        else:
            self._close_fd()
            fd = os.open(path, os.O_WRONLY)
        self._fd, self._fd_segment = fd, segment
        return fd

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _truncate(self, segment: int, offset: int) -> None:
        self._close_fd()
        for sid in reversed(list_segment_ids(self.directory)):
            if sid > segment:
                segment_path(self.directory, sid).unlink()
                fsync_directory(self.directory)
        path = segment_path(self.directory, segment)
        if path.exists():
            fd = os.open(path, os.O_WRONLY)
            try:
                os.ftruncate(fd, offset)
                datasync(fd)
            finally:
                os.close(fd)

    def _forget(self, segment: int) -> None:
        for sid in list_segment_ids(self.directory):
            if sid >= segment:
                break
            if self._fd is not None and self._fd_segment == sid:
                self._close_fd()
            # Oldest first, each unlink durable before the next: a crash leaves a
            # contiguous range of ids, as the journal's own deletions do.
            segment_path(self.directory, sid).unlink()
            fsync_directory(self.directory)
