"""The standby's side of replication: receive RECORDS, append them to the local journal
in the same order, acknowledge each position only after the journal's commit (fsync).

Where to resume survives a restart inside the journal itself: before each RECORDS
frame's records the replica appends a MARK record ``epoch u64 | segment u64 | offset
u64`` (the frame's start in the active's journal). A frame's records are contiguous in
the active's journal, so on replay the position is the last MARK's start plus the frame
sizes of the records after it, exact even when a crash tore that frame's tail. The
latest MARK is kept live (the previous one is released once the next is durable), so
prefix deletion can never remove it while records after it remain.

Bounded: the replica stops reading the socket while more than `max_unsynced` bytes are
appended and not yet committed, so a lagging disk pushes back on the active over TCP.

Ownership: one coroutine (`run`) owns the connection; commit callbacks run on the same
loop and only write acks and release old MARKs, never awaiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import struct
from collections.abc import Iterator

from broker.cluster.epoch import Fence, StaleEpoch
from broker.cluster.wire import (
    DEFAULT_MAX_FRAME,
    ERROR,
    RECORDS,
    ZERO,
    Decoder,
    Error,
    Position,
    ProtocolError,
    Records,
    encode_ack,
    encode_error,
    encode_hello,
)
from broker.store import Journal
from broker.store.format import SEGMENT_HEADER_SIZE, Record, RecordRef

log = logging.getLogger("zonemq.cluster")

# The record type of a replication marker in a standby's journal. broker/store/messages.py
# uses 1..6, and a replica refuses type 0 from the wire, so a MARK is never confused
# with a replicated record.
MARK = 0
READ_SIZE = 256 * 1024  # one socket read; what a stalled replica may hold beyond its limit
_MARK = struct.Struct("<QQQ")


class ReplicationRefused(Exception):
    """The active closed the stream with an ERROR frame; the reason is its text."""


class ReplicaState:
    """Where this standby is in the active's journal, and the epoch it last applied."""

    def __init__(self) -> None:
        self.position = ZERO
        self.epoch = 0
        self.mark: RecordRef | None = None


def replay(journal: Journal, state: ReplicaState) -> Iterator[Record]:
    """Open a standby's journal: yield its replicated records (MARKs filtered out) and
    leave the resume position in `state` once fully consumed."""
    for rec in journal.open():
        if rec.rtype == MARK:
            if state.mark is not None:
                journal.release(state.mark)
            epoch, seg, off = _MARK.unpack(rec.payload)
            state.epoch = max(state.epoch, epoch)
            state.position = Position(seg, off)
            state.mark = rec.ref
            continue
        if state.mark is not None:
            pos = state.position
            state.position = Position(pos.segment, pos.offset + rec.ref.frame_size)
        yield rec


def _follows(position: Position, start: Position) -> bool:
    """Whether a frame at `start` continues a stream that is at `position`: right there, or
    at the first record of the next segment (the active rolled). A standby with nothing
    takes the stream wherever it starts: the active serves ZERO only when it has every
    record it ever held. Frames are not lost inside one TCP connection; this catches a
    resume at the wrong place."""
    if position == ZERO or start == position:
        return True
    return start.segment == position.segment + 1 and start.offset == SEGMENT_HEADER_SIZE


class Replica:
    """Connects to the active, replicates into `journal` from `state.position`.

    `run` returns only by raising: ConnectionError when the link closes, StaleEpoch for
    a frame older than the fence, ProtocolError for a malformed frame (after sending
    ERROR), ReplicationRefused when the active refused us. Call it again to reconnect;
    it resumes from the durable position (acked or not, the journal has it).
    """

    def __init__(
        self,
        journal: Journal,
        state: ReplicaState,
        fence: Fence,
        *,
        max_unsynced: int = 4 * 1024 * 1024,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self._journal = journal
        self._state = state
        self._fence = fence
        fence.observe(state.epoch)
        self._max_unsynced = max_unsynced
        self._max_frame = max_frame
        self._unsynced = 0
        self._synced = asyncio.Event()
        # Set while reading is stopped because the disk lags (tests and metrics see it).
        self.stalled = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self.acked = state.position

    @property
    def unsynced_bytes(self) -> int:
        """Payload bytes appended to the journal and not yet committed."""
        return self._unsynced

    @property
    def position(self) -> Position:
        """Everything before this is appended (durable once `acked` reaches it)."""
        return self._state.position

    async def run(self, host: str, port: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        self._writer = writer
        try:
            writer.write(encode_hello(self._fence.current, self._state.position))
            decoder = Decoder(frozenset({RECORDS, ERROR}), max_frame=self._max_frame)
            while True:
                # Stop reading while the disk lags: TCP then pushes back on the active.
                while self._unsynced > self._max_unsynced:
                    self.stalled.set()
                    self._synced.clear()
                    await self._synced.wait()
                self.stalled.clear()
                data = await reader.read(READ_SIZE)
                if not data:
                    raise ConnectionError("the active closed the replication stream")
                decoder.receive_data(data)
                while (event := decoder.next_event()) is not None:
                    if isinstance(event, Error):
                        raise ReplicationRefused(event.reason)
                    assert isinstance(event, Records)
                    self._apply(event)
        except (ProtocolError, StaleEpoch) as exc:
            log.error("replication: closing the stream from %s:%d: %s", host, port, exc)
            writer.write(encode_error(str(exc)))
            raise
        finally:
            self._writer = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _apply(self, event: Records) -> None:
        self._fence.check(event.epoch)  # StaleEpoch for a deposed active's frame
        if not _follows(self._state.position, event.start):
            raise ProtocolError(
                f"RECORDS start at {tuple(event.start)}, expected {tuple(self._state.position)}"
            )
        journal = self._journal
        mark = journal.append(MARK, _MARK.pack(event.epoch, *event.start))
        size = 0
        for rtype, payload in event.records:
            if rtype == MARK:
                raise ProtocolError("RECORDS holds a record of type 0 (reserved for MARK)")
            journal.append(rtype, payload)
            size += len(payload)
        self._state.position = event.end
        self._state.epoch = event.epoch
        self._unsynced += size
        journal.commit().add_done_callback(
            functools.partial(self._committed, event.epoch, event.end, mark, size)
        )

    def _committed(
        self, epoch: int, end: Position, mark: RecordRef, size: int, fut: asyncio.Future[None]
    ) -> None:
        self._unsynced -= size
        self._synced.set()
        if fut.cancelled() or fut.exception() is not None:
            # The journal failed: it refuses everything now; never ack what is not durable.
            if self._writer is not None:
                self._writer.close()
            return
        old = self._state.mark
        self._state.mark = mark
        if old is not None:
            self._journal.release(old)
        self.acked = end
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(encode_ack(epoch, end))
