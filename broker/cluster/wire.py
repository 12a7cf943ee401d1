"""The replication wire format: a sans-IO codec (bytes in, events out; no sockets).

Every frame is ``length u32 | kind u8 | body`` (little-endian; `length` counts the body).
Kinds:

- HELLO, standby -> active, first and once: ``magic b"ZMQR" | version u16 | epoch u64 |
  segment u64 | offset u64``: the highest epoch the standby has seen and the position it
  wants the stream from (its durable position; 0/0 for a standby with an empty journal);
- RECORDS, active -> standby: ``epoch u64 | segment u64 | offset u64 | frames``: journal
  record frames exactly as the active's journal holds them (header, CRC and payload),
  back to back, starting at that position of one segment of the active's journal;
- ACK, standby -> active: ``epoch u64 | segment u64 | offset u64``: everything before
  this position is durable (fsynced) on the standby;
- ERROR, either way: a UTF-8 reason; the sender closes the connection after it.

A position is (segment id, byte offset) in the *active's* journal: it only grows, as the
journal only appends at its head and segment ids ascend, and it survives the active's
restarts because it names bytes on its disk. Every frame inside RECORDS is CRC-checked
on decode, so a damaged payload is refused before it reaches the standby's disk.

Invariants: the buffer never holds more than one frame of `max_frame` bytes plus a
header; a frame whose declared length is above the limit is refused as soon as its
header arrives; after an error the decoder accepts nothing more.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from broker.store.format import RECORD_HEADER_SIZE, check_record

MAGIC = b"ZMQR"
VERSION = 1

HELLO, RECORDS, ACK, ERROR = 1, 2, 3, 4
_KINDS = {HELLO: "HELLO", RECORDS: "RECORDS", ACK: "ACK", ERROR: "ERROR"}

_HEADER = struct.Struct("<IB")
HEADER_SIZE = _HEADER.size
_HELLO = struct.Struct("<4sHQQQ")
_POS = struct.Struct("<QQQ")  # epoch, segment, offset
MAX_ERROR = 1024
DEFAULT_MAX_FRAME = 16 * 1024 * 1024


class Position(NamedTuple):
    """A place in the active's journal: segment id and byte offset (tuples compare in
    stream order). ZERO is "before everything" (a standby with nothing yet)."""

    segment: int
    offset: int


ZERO = Position(0, 0)


class ProtocolError(Exception):
    """A frame broke the protocol; `remote` is True when the peer sent it."""

    def __init__(self, reason: str, *, remote: bool = True) -> None:
        super().__init__(reason)
        self.remote = remote


class Hello(NamedTuple):
    """The standby's greeting: the highest epoch it has seen, where it wants to resume."""

    epoch: int
    position: Position


class Records(NamedTuple):
    """Record frames from `start` to `end` (one segment), each (type, payload)."""

    epoch: int
    start: Position
    end: Position
    records: list[tuple[int, bytes]]


class Ack(NamedTuple):
    """Everything before `position` is durable on the standby."""

    epoch: int
    position: Position


class Error(NamedTuple):
    """The peer's reason for closing."""

    reason: str


Event = Hello | Records | Ack | Error


def encode_hello(epoch: int, position: Position) -> bytes:
    body = _HELLO.pack(MAGIC, VERSION, epoch, position.segment, position.offset)
    return _HEADER.pack(len(body), HELLO) + body


def encode_records(epoch: int, start: Position, frames: bytes | memoryview) -> list[bytes]:
    """The RECORDS frame as pieces for `writelines` (the frames are not copied)."""
    head = _POS.pack(epoch, start.segment, start.offset)
    return [_HEADER.pack(len(head) + len(frames), RECORDS) + head, bytes(frames)]


def encode_ack(epoch: int, position: Position) -> bytes:
    return _HEADER.pack(_POS.size, ACK) + _POS.pack(epoch, position.segment, position.offset)


def encode_error(reason: str) -> bytes:
    body = reason.encode("utf-8", "replace")[:MAX_ERROR]
    return _HEADER.pack(len(body), ERROR) + body


def _snippet(data: bytes | memoryview) -> str:
    return bytes(data[:16]).hex()


class Decoder:
    """Turns received bytes into events. `receive_data` buffers (bounded by the frame
    limit); `next_event` returns one event or None when a whole frame has not arrived.
    `accept` names the kinds this side may receive, so a standby sending RECORDS is an
    error like a bad length is."""

    def __init__(self, accept: frozenset[int], *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._accept = accept
        self._max_frame = max_frame
        self._buf = bytearray()
        self._broken = False

    def receive_data(self, data: bytes) -> None:
        if self._broken:
            raise ProtocolError("the connection already broke the protocol", remote=False)
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet decoded (the caller stops reading on a large one)."""
        return len(self._buf)

    def next_event(self) -> Event | None:
        buf = self._buf
        if len(buf) < HEADER_SIZE:
            return None
        length, kind = _HEADER.unpack_from(buf, 0)
        if kind not in self._accept:
            name = _KINDS.get(kind, f"unknown kind {kind}")
            self._fail(f"unexpected frame {name} (header {_snippet(buf)})")
        if length > self._max_frame:
            self._fail(f"{_KINDS[kind]} frame of {length} bytes is above {self._max_frame}")
        end = HEADER_SIZE + length
        if len(buf) < end:
            return None
        body = bytes(buf[HEADER_SIZE:end])
        del buf[:end]
        try:
            return self._decode(kind, body)
        except ProtocolError:
            self._broken = True
            raise

    def _fail(self, reason: str) -> None:
        self._broken = True
        raise ProtocolError(reason)

    def _decode(self, kind: int, body: bytes) -> Event:
        if kind == RECORDS:
            return _decode_records(body)
        if kind == ERROR:
            return Error(body.decode("utf-8", "replace"))
        if kind == HELLO:
            if len(body) != _HELLO.size:
                raise ProtocolError(f"HELLO of {len(body)} bytes, not {_HELLO.size}")
            magic, version, epoch, seg, off = _HELLO.unpack(body)
            if magic != MAGIC or version != VERSION:
                raise ProtocolError(f"HELLO is not ZoneMQ replication v{VERSION}: {_snippet(body)}")
            return Hello(epoch, Position(seg, off))
        if len(body) != _POS.size:
            raise ProtocolError(f"ACK of {len(body)} bytes, not {_POS.size}")
        epoch, seg, off = _POS.unpack(body)
        return Ack(epoch, Position(seg, off))


def _decode_records(body: bytes) -> Records:
    if len(body) < _POS.size:
        raise ProtocolError(f"RECORDS of {len(body)} bytes is shorter than its header")
    epoch, seg, off = _POS.unpack_from(body, 0)
    view = memoryview(body)
    at = _POS.size
    records: list[tuple[int, bytes]] = []
    # check_record validates length and CRC, linear in the bytes (no per-byte loop).
    while at < len(body):
        found = check_record(view, at)
        if found is None:
            raise ProtocolError(
                f"RECORDS holds a damaged journal record at byte {at - _POS.size} "
                f"(bytes {_snippet(view[at:])})"
            )
        rtype, length = found
        start = at + RECORD_HEADER_SIZE
        records.append((rtype, body[start : start + length]))
        at = start + length
    if not records:
        raise ProtocolError("RECORDS frame with no record")
    return Records(epoch, Position(seg, off), Position(seg, off + len(body) - _POS.size), records)
