"""The standby's side of replication: mirror the active's journal, acknowledge positions
only after the mirror's fsync.

The standby greets with HELLO (where its mirror ends, the epoch that wrote its last
byte, its node id and zone), applies WELCOME (truncate a tail this history never had,
delete segments the active no longer has, adopt the active's lineage, in that order and
durably before any new record is written), then writes each RECORDS frame into the
mirror (mirror.py) and acknowledges its end once fsynced.

Bounded: the replica stops reading the socket while more than `max_unsynced` bytes wait
for its disk, so a lagging disk pushes back on the active over TCP.

Ownership: one coroutine (`run`) owns the connection; the mirror's durability callback
runs on the same loop and only writes acks, never awaiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from broker.cluster.epoch import Fence, StaleEpoch
from broker.cluster.lineage import Lineage
from broker.cluster.mirror import Mirror, MirrorError
from broker.cluster.wire import (
    DEFAULT_MAX_FRAME,
    ERROR,
    FORGET,
    RECORDS,
    WELCOME,
    ZERO,
    Decoder,
    Error,
    Forget,
    Position,
    ProtocolError,
    Records,
    Welcome,
    encode_ack,
    encode_error,
    encode_hello,
)

log = logging.getLogger("zonemq.cluster")

READ_SIZE = 256 * 1024  # one socket read; what a stalled replica may hold beyond its limit


class ReplicationRefused(Exception):
    """The active closed the stream with an ERROR frame; the reason is its text."""


class Replica:
    """Mirrors the active's journal into `directory` (whose end is `position`, from
    mirror.scan_end) and acknowledges what is durable.

    `run` returns only by raising: ConnectionError when the link closes, StaleEpoch for
    a frame older than the fence, ProtocolError for a malformed frame (after sending
    ERROR), ReplicationRefused when the active refused us, MirrorError when the disk
    failed or a frame does not continue the mirror. Call it again to reconnect; it
    resumes from what the mirror holds.
    """

    def __init__(
        self,
        directory: Path,
        position: Position,
        lineage: Lineage,
        fence: Fence,
        *,
        node: str = "",
        az: str = "",
        max_unsynced: int = 4 * 1024 * 1024,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self.lineage = lineage
        self._fence = fence
        self.node = node
        self.az = az
        self.mirror = Mirror(directory, position, self._durable)
        self._max_unsynced = max_unsynced
        self._max_frame = max_frame
        self._synced = asyncio.Event()
        # Set while reading is stopped because the disk lags (tests and metrics see it).
        self.stalled = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._epoch = 0
        self.acked = position
        # Set while connected with a WELCOME applied (the mirror follows the active).
        self.welcomed = asyncio.Event()

    @property
    def position(self) -> Position:
        """Everything before this is written to the mirror (durable at `acked`)."""
        return self.mirror.position

    @property
    def unsynced_bytes(self) -> int:
        return self.mirror.unsynced_bytes

    async def run(self, host: str, port: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            position = self.mirror.position
            last = self.lineage.last_epoch(position)
            writer.write(encode_hello(self._fence.current, last, position, self.node, self.az))
            decoder = Decoder(
                frozenset({WELCOME, RECORDS, FORGET, ERROR}), max_frame=self._max_frame
            )
            welcomed = False
            while True:
                # Stop reading while the disk lags: TCP then pushes back on the active.
                while self.mirror.unsynced_bytes > self._max_unsynced:
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
                    if isinstance(event, Welcome):
                        if welcomed:
                            raise ProtocolError("WELCOME sent twice")
                        welcomed = True
                        await self._welcome(event)
                        self._writer = writer
                        self.welcomed.set()
                    elif not welcomed:
                        raise ProtocolError(f"{type(event).__name__} before WELCOME")
                    elif isinstance(event, Records):
                        self._fence.check(event.epoch)  # StaleEpoch for a deposed active
                        self.mirror.apply(event)
                    else:
                        assert isinstance(event, Forget)
                        self.mirror.forget(event.segment)
        except (ProtocolError, StaleEpoch, MirrorError) as exc:
            log.error("replication: closing the stream from %s:%d: %s", host, port, exc)
            with contextlib.suppress(OSError):
                writer.write(encode_error(str(exc)))
            raise
        finally:
            self._writer = None
            self.welcomed.clear()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _welcome(self, welcome: Welcome) -> None:
        self._fence.check(welcome.epoch)
        self._epoch = welcome.epoch
        mirror = self.mirror
        if mirror.position != ZERO and welcome.start < mirror.position:
            mirror.truncate(welcome.start)
        if welcome.first_segment > 0:
            mirror.forget(welcome.first_segment)
        if welcome.start.segment > mirror.position.segment:
            mirror.forget(welcome.start.segment)
        # The truncation is on the disk before the lineage says it happened, and both
        # before the first record of the new history.
        await mirror.idle()
        self.lineage.adopt(welcome.lineage)
        self.acked = mirror.position

    def _durable(self, end: Position) -> None:
        self._synced.set()
        if end <= self.acked or self._writer is None or self._writer.is_closing():
            if end < self.acked:
                self.acked = end
            return
        self.acked = end
        self._writer.write(encode_ack(self._epoch, end))

    async def close(self) -> None:
        await self.mirror.close()
