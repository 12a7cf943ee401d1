"""The active's side of replication: observe the journal, stream it to each standby.

`ReplicationSource` registers as the journal's observer and keeps the frames of each
batch, in order, in one backlog shared by every standby (a run: frames contiguous in one
segment, at most one wire frame). Each connected standby is a `StandbyLink` with a
cursor: the position it needs next. A link sends from the backlog when the backlog still
holds that position, and otherwise reads the bytes from the journal's own segment files
(catch-up: a new standby copies every live segment, a returning one what it lacks),
so a standby that fell behind is slowed down, never cut off. Acks go to `InSync`.

A standby joins with HELLO (its mirror's end and the epoch of its last byte); the active
answers WELCOME: the position to continue from, which is lower when the standby holds a
tail this history never had (see lineage.py; the standby truncates it), the oldest
segment still live here, and the lineage. FORGET follows when the journal deletes old
segments.

Flow control, and why memory stays bounded:
- a link sends while its unacked bytes are below `window_bytes`, then waits for acks
  (pipelined: many batches in flight, no round trip per batch); writes await drain;
- the backlog holds at most `backlog_bytes` (the oldest runs go first); a link behind
  it reads from disk, one frame at a time within its window.

Epochs: frames carry this active's epoch; a HELLO or ACK with a newer one means this
node was deposed: the fence learns it and the link is closed.

Ownership: all state is on the event loop; the observer and the ack handler never await
between reading and changing state. Disk reads run on the source's own reader thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from broker.cluster.epoch import Fence, StaleEpoch
from broker.cluster.insync import InSync
from broker.cluster.lineage import Lineage
from broker.cluster.wire import (
    ACK,
    DEFAULT_MAX_FRAME,
    ERROR,
    HELLO,
    ZERO,
    Ack,
    Decoder,
    Error,
    Hello,
    Position,
    ProtocolError,
    encode_error,
    encode_forget,
    encode_records,
    encode_welcome,
)
from broker.store import Journal
from broker.store.format import RECORD_HEADER_SIZE, SEGMENT_HEADER_SIZE, check_record
from broker.store.segment import SegmentInfo

log = logging.getLogger("zonemq.cluster")

_RECORDS_HEAD = 24  # epoch, segment, offset in front of the frames


class _Run(NamedTuple):
    start: Position
    data: bytes
    records: int  # records observed since the source started, up to this run's end
    count: int  # records in this run

    @property
    def end(self) -> Position:
        return Position(self.start.segment, self.start.offset + len(self.data))


class StandbyLink:
    """One connected standby: its cursor, unacked window and acknowledged position."""

    def __init__(self, peer: str, node: str, az: str, start: Position) -> None:
        self.peer = peer
        self.node = node
        self.az = az
        self.next = start
        self.acked = start
        self.sent_bytes = 0
        self.unacked_bytes = 0
        self.forgotten = 0  # the oldest segment this standby was told to keep
        self.acked_records = -1  # the source's record count at `acked`, when known
        # (end, bytes, the source's record count at end or -1): frames sent, not acked.
        self.inflight: deque[tuple[Position, int, int]] = deque()
        self.wake = asyncio.Event()
        # Set while the window is full: tests and metrics see the sender paused.
        self.paused = asyncio.Event()
        self.closed = False


class ReplicationSource:
    """Streams `journal`'s records to standbys that connect to `start`'s port."""

    def __init__(
        self,
        journal: Journal,
        epoch: int,
        lineage: Lineage,
        insync: InSync,
        *,
        fence: Fence | None = None,
        window_bytes: int = 1024 * 1024,
        backlog_bytes: int = 64 * 1024 * 1024,
        max_frame: int = DEFAULT_MAX_FRAME,
        on_link: Callable[[StandbyLink, str], None] | None = None,
    ) -> None:
        self._journal = journal
        self.epoch = epoch
        self.lineage = lineage
        self.insync = insync
        self.fence = fence if fence is not None else Fence()
        self.fence.observe(epoch)
        self._window = window_bytes
        self._backlog_limit = backlog_bytes
        self._max_run = max_frame - _RECORDS_HEAD
        self._backlog: deque[_Run] = deque()
        self.backlog_bytes = 0
        self.records = 0  # records observed since start (the lag in records counts these)
        head = journal.segments()[-1]
        self._end = Position(head.id, head.size)
        self._links: set[StandbyLink] = set()
        self._on_link = on_link
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zonemq-repl-read")
        journal.observe(self._observe)

    # -- the journal's stream ----------------------------------------------------------------

    def _observe(self, segment: int, offset: int, chunks: list[bytes]) -> None:
        run: list[bytes] = []
        size = 0
        start = offset
        for i in range(0, len(chunks), 2):
            frame = len(chunks[i]) + len(chunks[i + 1])
            if run and size + frame > self._max_run:
                self._push(Position(segment, start), b"".join(run), len(run) // 2)
                start += size
                run, size = [], 0
            run += (chunks[i], chunks[i + 1])
            size += frame
        self._push(Position(segment, start), b"".join(run), len(run) // 2)
        for link in self._links:
            link.wake.set()

    def _push(self, start: Position, data: bytes, count: int) -> None:
        self.records += count
        self._backlog.append(_Run(start, data, self.records, count))
        self.backlog_bytes += len(data)
        self._end = Position(start.segment, start.offset + len(data))
        while self.backlog_bytes > self._backlog_limit and len(self._backlog) > 1:
            self.backlog_bytes -= len(self._backlog.popleft().data)

    @property
    def end(self) -> Position:
        """The position after the last record handed to the I/O thread."""
        return self._end

    @property
    def standbys(self) -> list[StandbyLink]:
        return list(self._links)

    def lag_records(self, link: StandbyLink) -> int:
        """Records observed since start that `link` has not acknowledged (records it
        still copies from disk, older than that, are not counted)."""
        if link.acked >= self._end:
            return 0
        if link.acked_records >= 0:
            return self.records - link.acked_records
        lag = 0
        for run in reversed(self._backlog):
            if run.end <= link.acked:
                break
            lag += run.count
        return lag

    # -- serving ------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen for standbys; returns the bound port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        self._journal.observe(None)
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._reader.shutdown(wait=False)

    def _start_for(self, hello: Hello) -> Position:
        """Where a standby whose mirror ends at `hello.position` continues from."""
        first = self._journal.segments()[0].id
        want = hello.position
        cut = self.lineage.truncate_point(hello.last_epoch, want)
        if cut is not None:
            want = cut
        if want == ZERO or want.segment < first:
            return Position(first, SEGMENT_HEADER_SIZE)
        if want > self._end:
            raise ProtocolError(
                f"standby {hello.node} holds {tuple(want)} of epoch {hello.last_epoch}, past"
                f" this journal's end {tuple(self._end)}",
                remote=False,
            )
        return want

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        host, port = writer.get_extra_info("peername")[:2]
        peer = f"{host}:{port}"
        decoder = Decoder(frozenset({HELLO, ACK, ERROR}))
        link: StandbyLink | None = None
        sender: asyncio.Task[None] | None = None
        try:
            hello = await _next(reader, decoder)
            if not isinstance(hello, Hello):
                raise ProtocolError(f"expected HELLO, got {type(hello).__name__}")
            # A standby behind our epoch is only behind; one ahead of it deposed us.
            self.fence.observe(hello.epoch)
            if self.fence.current > self.epoch:
                raise StaleEpoch(self.epoch, self.fence.current)
            start = self._start_for(hello)
            first = self._journal.segments()[0].id
            writer.write(encode_welcome(self.epoch, start, first, self.lineage.entries))
            link = StandbyLink(peer, hello.node or peer, hello.az, start)
            link.forgotten = first
            self._links.add(link)
            log.info(
                "replication: standby %s (%s) from %s joins at %s (it had %s)",
                link.node,
                link.az,
                peer,
                tuple(start),
                tuple(hello.position),
            )
            sender = asyncio.create_task(self._send(link, writer))
            self.insync.ack(link.node, link.acked)
            self._report(link, "connected")
            if link.acked == self._end:
                self._report(link, "caught_up")  # its mirror already holds everything
            while not link.closed:
                event = await _next(reader, decoder)
                if isinstance(event, Error):
                    log.warning("replication: standby %s closed: %s", link.node, event.reason)
                    return
                if isinstance(event, Ack):
                    self._acked(link, event)
                else:
                    raise ProtocolError("HELLO sent twice")
        except (ProtocolError, StaleEpoch) as exc:
            log.error("replication: closing the stream to %s: %s", peer, exc)
            with contextlib.suppress(OSError):
                writer.write(encode_error(str(exc)))
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        except asyncio.CancelledError:
            # close(): end normally, or asyncio's server callback logs the cancellation
            # of every connection's task as an error.
            pass
        finally:
            if link is not None:
                link.closed = True
                link.wake.set()
                self._links.discard(link)
                self._report(link, "lost")
            if sender is not None:
                sender.cancel()
                # RuntimeError: uvloop's "handler is closed" for a write racing the close.
                with contextlib.suppress(
                    asyncio.CancelledError, ConnectionError, OSError, RuntimeError
                ):
                    await sender
            writer.close()
            self._tasks.discard(task)

    def _report(self, link: StandbyLink, what: str) -> None:
        if self._on_link is not None:
            self._on_link(link, what)

    def _acked(self, link: StandbyLink, ack: Ack) -> None:
        if ack.epoch != self.epoch:
            self.fence.observe(ack.epoch)
            raise ProtocolError(f"ACK for epoch {ack.epoch}, this stream is epoch {self.epoch}")
        if ack.position < link.acked:
            raise ProtocolError(f"ACK at {tuple(ack.position)} behind {tuple(link.acked)}")
        if ack.position > link.acked:
            # An ack must end a frame we sent, or a standby could release receipts for
            # records it never had.
            if not any(entry[0] == ack.position for entry in link.inflight):
                raise ProtocolError(f"ACK at {tuple(ack.position)} is not the end of a frame sent")
            while link.inflight and link.inflight[0][0] <= ack.position:
                _, size, count = link.inflight.popleft()
                link.unacked_bytes -= size
                if count >= 0:
                    link.acked_records = count
        link.acked = ack.position
        link.wake.set()
        self.insync.ack(link.node, ack.position)
        if ack.position == self._end:
            link.acked_records = self.records
        if link.acked == self._end:
            self._report(link, "caught_up")

    def _from_backlog(self, want: Position) -> tuple[Position, bytes | memoryview] | None:
        backlog = self._backlog
        if not backlog or want < backlog[0].start:
            return None
        # Usually the run right after the last one sent: search backward from the end
        # (a link is near the front only right after it read from disk).
        for i in range(len(backlog) - 1, -1, -1):
            run = backlog[i]
            if run.start == want:
                return want, run.data
            if run.start < want:
                if run.end == want:
                    # The next run: the same segment, or the first records of the next one.
                    return (
                        (backlog[i + 1].start, backlog[i + 1].data)
                        if i + 1 < len(backlog)
                        else None
                    )
                if run.start.segment != want.segment or want.offset > run.end.offset:
                    return None
                view = memoryview(run.data)[want.offset - run.start.offset :]
                if check_record(view, 0) is None:
                    raise ProtocolError(f"{tuple(want)} is not a record boundary", remote=False)
                return want, view
        return None

    def _count_at(self, end: Position) -> int:
        """The record count at `end` if a backlog run ends there (the usual case), else -1."""
        backlog = self._backlog
        for i in range(len(backlog) - 1, max(-1, len(backlog) - 64), -1):
            if backlog[i].end == end:
                return backlog[i].records
        return -1

    def _read_disk(
        self, want: Position, segs: list[SegmentInfo], limit: int
    ) -> tuple[Position, bytes]:
        """On the reader thread: up to one frame of whole records from `want` (moved to
        the next segment when `want` is the end of a sealed one), or b"" if nothing is
        written there yet. `segs` is the loop's snapshot of the journal's segments."""
        segments = {s.id: s for s in segs}
        seg = segments.get(want.segment)
        if seg is None:
            return want, b""
        if want.offset >= seg.written and want.segment < segs[-1].id:
            if want.offset > seg.written or seg.written < seg.size:
                return want, b""
            want = Position(want.segment + 1, SEGMENT_HEADER_SIZE)
            seg = segments[want.segment]
        available = seg.written - want.offset
        length = min(available, self._max_run, limit)
        if length <= 0:
            return want, b""
        try:
            fd = os.open(seg.path, os.O_RDONLY)
        except FileNotFoundError:
            return want, b""  # deleted meanwhile: the caller moves past it
        try:
            data = os.pread(fd, length, want.offset)
            if check_record(memoryview(data), 0) is None and len(data) >= RECORD_HEADER_SIZE:
                # One record larger than the window's room: send it whole, alone.
                whole = RECORD_HEADER_SIZE + int.from_bytes(data[:4], "little")
                if length < whole <= min(available, self._max_run):
                    data = os.pread(fd, whole, want.offset)
        finally:
            os.close(fd)
        view = memoryview(data)
        at = 0
        while (found := check_record(view, at)) is not None:
            at += RECORD_HEADER_SIZE + found[1]
        if at == 0 and data:
            raise ProtocolError(f"no whole record at {tuple(want)}", remote=False)
        return want, data[:at]

    async def _chunk(self, link: StandbyLink) -> tuple[Position, bytes | memoryview] | None:
        while True:
            want = link.next
            if want >= self._end or link.closed:
                return None
            segs = self._journal.segments()
            if want.segment < segs[0].id:
                want = link.next = Position(segs[0].id, SEGMENT_HEADER_SIZE)
            found = self._from_backlog(want)
            if found is not None:
                return found
            loop = asyncio.get_running_loop()
            room = max(self._window - link.unacked_bytes, 1)
            read = self._read_disk
            start, raw = await loop.run_in_executor(self._reader, read, want, segs, room)
            if raw:
                return start, raw
            if start == want:
                # Not written yet (the backlog dropped it before the I/O thread wrote
                # it: only with a backlog smaller than a few batches). Rare; poll.
                await asyncio.sleep(0.005)
            link.next = start

    async def _send(self, link: StandbyLink, writer: asyncio.StreamWriter) -> None:
        while not link.closed:
            first = self._journal.segments()[0].id
            if first > link.forgotten:
                link.forgotten = first
                writer.write(encode_forget(first))
            while link.unacked_bytes < self._window and not link.closed:
                chunk = await self._chunk(link)
                if chunk is None:
                    break
                start, data = chunk
                end = Position(start.segment, start.offset + len(data))
                writer.writelines(encode_records(self.epoch, start, data))
                link.next = end
                link.inflight.append((end, len(data), self._count_at(end)))
                link.unacked_bytes += len(data)
                link.sent_bytes += len(data)
            if link.unacked_bytes >= self._window:
                link.paused.set()
            else:
                link.paused.clear()
            await writer.drain()
            if link.next < self._end and link.unacked_bytes < self._window:
                continue
            link.wake.clear()
            if link.next < self._end and link.unacked_bytes < self._window:
                continue
            await link.wake.wait()


async def _next(reader: asyncio.StreamReader, decoder: Decoder) -> object:
    while True:
        event = decoder.next_event()
        if event is not None:
            return event
        data = await reader.read(64 * 1024)
        if not data:
            raise ConnectionError("standby closed the connection")
        decoder.receive_data(data)
