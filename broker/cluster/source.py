"""The active's side of replication: observe the journal, stream it to each standby.

`ReplicationSource` registers as the journal's observer and keeps the frames of each
batch, in order, in one backlog shared by every standby (a run: frames contiguous in one
segment, at most one wire frame). Each connected standby is a `StandbyLink` with a send
cursor in the backlog; the active learns the standby's durable position from its acks
and completes `durable(position)` futures.

Flow control, and why memory stays bounded:
- a link sends while its unacked bytes are below `window_bytes`, then waits for acks
  (pipelined: many batches in flight, no round trip per batch); writes await drain;
- the backlog holds at most `backlog_bytes`: past it the oldest runs are dropped, and a
  link whose cursor was in them is cut (it fell behind; it must reconnect and catch up).
  What remains after every link has sent it is the history a reconnecting standby may
  resume from. A standby that stops reading therefore costs at most `backlog_bytes`
  plus its socket's buffers.

Epochs: frames carry this active's epoch; a HELLO or ACK with a newer one means this
node was deposed: the fence learns it and the link is closed.

Ownership: all state is on the event loop; the observer and the ack handler never await
between reading and changing state.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import deque
from typing import NamedTuple

from broker.cluster.epoch import Fence, StaleEpoch
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
    encode_records,
)
from broker.store import Journal
from broker.store.format import RecordRef, check_record

log = logging.getLogger("zonemq.cluster")

_RECORDS_HEAD = 24  # epoch, segment, offset in front of the frames


def after(ref: RecordRef) -> Position:
    """The position just past a record: what `durable` is asked for to cover it."""
    return Position(ref.segment, ref.offset + ref.frame_size)


class ReplicationClosed(Exception):
    """The source was closed before a standby acknowledged the position."""


class _Run(NamedTuple):
    seq: int
    start: Position
    data: bytes

    @property
    def end(self) -> Position:
        return Position(self.start.segment, self.start.offset + len(self.data))


class StandbyLink:
    """One connected standby: its send cursor, unacked window and durable position."""

    def __init__(self, peer: str, next_seq: int, skip: int) -> None:
        self.peer = peer
        self.next_seq = next_seq
        self.skip = skip  # bytes of the first run the standby already has
        self.acked = ZERO
        self.sent_bytes = 0
        self.unacked_bytes = 0
        self.inflight: deque[tuple[Position, int]] = deque()
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
        *,
        fence: Fence | None = None,
        window_bytes: int = 1024 * 1024,
        backlog_bytes: int = 64 * 1024 * 1024,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self._journal = journal
        self.epoch = epoch
        self.fence = fence if fence is not None else Fence()
        self.fence.observe(epoch)
        self._window = window_bytes
        self._backlog_limit = backlog_bytes
        self._max_run = max_frame - _RECORDS_HEAD
        self._backlog: deque[_Run] = deque()
        self.backlog_bytes = 0
        self._next_seq = 0
        segs = journal.segments()
        head = segs[-1]
        self._end = Position(head.id, head.size)
        # A standby with nothing may start from ZERO only if we have everything.
        self._complete = all(s.records == 0 for s in segs)
        self._links: set[StandbyLink] = set()
        self._waiters: list[tuple[Position, int, asyncio.Future[None]]] = []
        self._tie = itertools.count()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        journal.observe(self._observe)

    # -- the journal's stream ----------------------------------------------------------------

    def _observe(self, segment: int, offset: int, chunks: list[bytes]) -> None:
        run: list[bytes] = []
        size = 0
        start = offset
        for i in range(0, len(chunks), 2):
            frame = len(chunks[i]) + len(chunks[i + 1])
            if run and size + frame > self._max_run:
                self._push(Position(segment, start), b"".join(run))
                start += size
                run, size = [], 0
            run += (chunks[i], chunks[i + 1])
            size += frame
        self._push(Position(segment, start), b"".join(run))
        for link in self._links:
            link.wake.set()

    def _push(self, start: Position, data: bytes) -> None:
        run = _Run(self._next_seq, start, data)
        self._next_seq += 1
        self._backlog.append(run)
        self.backlog_bytes += len(data)
        self._end = run.end
        while self.backlog_bytes > self._backlog_limit and len(self._backlog) > 1:
            old = self._backlog.popleft()
            self.backlog_bytes -= len(old.data)
            self._complete = False
            for link in list(self._links):
                if link.next_seq <= old.seq:
                    link.closed = True
                    link.wake.set()

    @property
    def end(self) -> Position:
        """The position after the last record handed to the I/O thread."""
        return self._end

    @property
    def standbys(self) -> list[StandbyLink]:
        return list(self._links)

    def durable(self, position: Position) -> asyncio.Future[None]:
        """Completes when a standby has acknowledged everything before `position`."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if any(link.acked >= position for link in self._links):
            fut.set_result(None)
        else:
            heapq.heappush(self._waiters, (position, next(self._tie), fut))
        return fut

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
        for _, _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(ReplicationClosed("replication source closed"))
        self._waiters.clear()

    def _locate(self, want: Position) -> tuple[int, int] | None:
        """(run seq, bytes of it to skip) to send from `want`, or None if not retained."""
        if want == ZERO:
            if not self._complete:
                return None
            return (self._backlog[0].seq if self._backlog else self._next_seq), 0
        for run in self._backlog:
            if run.end == want:
                return run.seq + 1, 0
            inside = run.start.offset <= want.offset < run.end.offset
            if run.start.segment == want.segment and inside:
                skip = want.offset - run.start.offset
                if check_record(memoryview(run.data), skip) is None:
                    return None  # not a record boundary: not a position of ours
                return run.seq, skip
        if want == self._end:
            return self._next_seq, 0
        return None

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
            found = self._locate(hello.position)
            if found is None:
                raise ProtocolError(
                    f"position {tuple(hello.position)} is not retained here; "
                    "full catch-up (copying live records) is not built yet",
                    remote=False,
                )
            link = StandbyLink(peer, *found)
            self._links.add(link)
            link.acked = hello.position
            sender = asyncio.create_task(self._send(link, writer))
            while not link.closed:
                event = await _next(reader, decoder)
                if isinstance(event, Error):
                    log.warning("replication: standby %s closed: %s", peer, event.reason)
                    return
                if isinstance(event, Ack):
                    self._acked(link, event)
                else:
                    raise ProtocolError("HELLO sent twice")
        except (ProtocolError, StaleEpoch) as exc:
            log.error("replication: closing the stream to %s: %s", peer, exc)
            with contextlib.suppress(OSError):
                writer.write(encode_error(str(exc)))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if link is not None:
                link.closed = True
                link.wake.set()
                self._links.discard(link)
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await sender
            writer.close()
            self._tasks.discard(task)

    def _acked(self, link: StandbyLink, ack: Ack) -> None:
        if ack.epoch != self.epoch:
            self.fence.observe(ack.epoch)
            raise ProtocolError(f"ACK for epoch {ack.epoch}, this stream is epoch {self.epoch}")
        if ack.position < link.acked:
            raise ProtocolError(f"ACK at {tuple(ack.position)} behind {tuple(link.acked)}")
        if ack.position > link.acked:
            # An ack must end a frame we sent, or a standby could release receipts for
            # records it never had.
            if not any(end == ack.position for end, _ in link.inflight):
                raise ProtocolError(f"ACK at {tuple(ack.position)} is not the end of a frame sent")
            while link.inflight and link.inflight[0][0] <= ack.position:
                link.unacked_bytes -= link.inflight.popleft()[1]
        link.acked = ack.position
        link.wake.set()
        waiters = self._waiters
        while waiters and waiters[0][0] <= ack.position:
            fut = heapq.heappop(waiters)[2]
            if not fut.done():
                fut.set_result(None)

    async def _send(self, link: StandbyLink, writer: asyncio.StreamWriter) -> None:
        while not link.closed:
            base = self._backlog[0].seq if self._backlog else self._next_seq
            while link.next_seq < self._next_seq and link.unacked_bytes < self._window:
                run = self._backlog[link.next_seq - base]
                data = memoryview(run.data)[link.skip :]
                start = Position(run.start.segment, run.start.offset + link.skip)
                link.skip = 0
                writer.writelines(encode_records(self.epoch, start, data))
                link.next_seq += 1
                link.inflight.append((run.end, len(data)))
                link.unacked_bytes += len(data)
                link.sent_bytes += len(data)
            if link.unacked_bytes >= self._window:
                link.paused.set()
            else:
                link.paused.clear()
            await writer.drain()
            link.wake.clear()
            if link.closed:
                break
            if link.next_seq < self._next_seq and link.unacked_bytes < self._window:
                continue
            await link.wake.wait()
        if link in self._links:
            # Cut by the backlog bound. Abort, not close: a standby that stopped reading
            # would never let a close flush, and its buffers are what we are freeing.
            log.error("replication: standby %s fell behind the backlog; cut off", link.peer)
            writer.transport.abort()


async def _next(reader: asyncio.StreamReader, decoder: Decoder) -> object:
    while True:
        event = decoder.next_event()
        if event is not None:
            return event
        data = await reader.read(64 * 1024)
        if not data:
            raise ConnectionError("standby closed the connection")
        decoder.receive_data(data)
