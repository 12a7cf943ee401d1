"""The replication wire format: a sans-IO codec (bytes in, events out; no sockets).

Every frame is ``length u32 | kind u8 | body`` (little-endian; `length` counts the body).
Strings are ``length u16 | UTF-8``. Kinds:

- HELLO, standby -> active, first and once: ``magic b"ZMQR" | version u16 | epoch u64 |
  last_epoch u64 | segment u64 | offset u64 | node str | az str``: the highest epoch the
  standby has seen, the epoch that wrote its last byte (from its lineage), the position
  its mirror ends at (0/0 when it holds nothing), and who it is;
- WELCOME, active -> standby, once, the answer to HELLO: ``epoch u64 | segment u64 |
  offset u64 | first u64 | count u32 | (epoch u64 | segment u64 | offset u64) * count``:
  where the stream starts (below the standby's position means: truncate to it, the
  rest was never replicated from this history), the active's oldest live segment
  (delete everything older), and the active's lineage (which epoch wrote from where);
- RECORDS, active -> standby: ``epoch u64 | segment u64 | offset u64 | frames``: journal
  record frames exactly as the active's journal holds them (header, CRC and payload),
  back to back, starting at that position of one segment of the active's journal;
- FORGET, active -> standby: ``segment u64``: the active deleted every segment below it;
- ACK, standby -> active: ``epoch u64 | segment u64 | offset u64``: everything before
  this position is durable (fsynced) on the standby;
- ERROR, either way: a UTF-8 reason; the sender closes the connection after it.

A position is (segment id, byte offset) in the journal. A standby's journal directory is
a byte-for-byte mirror of the active's (segment ids, offsets and contents), so a
position names the same bytes on every node, and a promoted standby opens its mirror as
an ordinary journal. Every frame inside RECORDS is CRC-checked on decode, so a damaged
payload is refused before it reaches the standby's disk.

Invariants: the buffer never holds more than one frame of `max_frame` bytes plus a
header; a frame whose declared length is above the limit is refused as soon as its
header arrives; after an error the decoder accepts nothing more.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from broker.store.format import RECORD_HEADER_SIZE, check_record

MAGIC = b"ZMQR"
VERSION = 2

HELLO, RECORDS, ACK, ERROR, WELCOME, FORGET = 1, 2, 3, 4, 5, 6
_KINDS = {
    HELLO: "HELLO",
    RECORDS: "RECORDS",
    ACK: "ACK",
    ERROR: "ERROR",
    WELCOME: "WELCOME",
    FORGET: "FORGET",
}

_HEADER = struct.Struct("<IB")
HEADER_SIZE = _HEADER.size
_HELLO = struct.Struct("<4sHQQQQ")
_POS = struct.Struct("<QQQ")  # epoch, segment, offset
_WELCOME = struct.Struct("<QQQQI")
_U64 = struct.Struct("<Q")
_STR = struct.Struct("<H")
MAX_ERROR = 1024
MAX_NAME = 255
MAX_LINEAGE = 4096
DEFAULT_MAX_FRAME = 16 * 1024 * 1024


class Position(NamedTuple):
    """A place in the journal: segment id and byte offset (tuples compare in stream
    order). ZERO is "before everything" (a standby with nothing yet)."""

    segment: int
    offset: int


ZERO = Position(0, 0)


class Epoch(NamedTuple):
    """A lineage entry: records from `start` on were written by the active of `epoch`."""

    epoch: int
    start: Position


class ProtocolError(Exception):
    """A frame broke the protocol; `remote` is True when the peer sent it."""

    def __init__(self, reason: str, *, remote: bool = True) -> None:
        super().__init__(reason)
        self.remote = remote


class Hello(NamedTuple):
    """The standby's greeting: epochs it knows, where its mirror ends, who it is."""

    epoch: int
    last_epoch: int
    position: Position
    node: str
    az: str


class Welcome(NamedTuple):
    """The active's answer: where the stream starts, its oldest segment, its lineage."""

    epoch: int
    start: Position
    first_segment: int
    lineage: list[Epoch]


class Records(NamedTuple):
    """`count` record frames from `start` to `end` (one segment), as raw bytes."""

    epoch: int
    start: Position
    end: Position
    frames: bytes
    count: int


class Forget(NamedTuple):
    """The active deleted every segment below `segment`."""

    segment: int


class Ack(NamedTuple):
    """Everything before `position` is durable on the standby."""

    epoch: int
    position: Position


class Error(NamedTuple):
    """The peer's reason for closing."""

    reason: str


Event = Hello | Welcome | Records | Forget | Ack | Error


def _str(value: str) -> bytes:
    data = value.encode("utf-8")[:MAX_NAME]
    return _STR.pack(len(data)) + data


def encode_hello(
    epoch: int, last_epoch: int, position: Position, node: str = "", az: str = ""
) -> bytes:
    body = _HELLO.pack(MAGIC, VERSION, epoch, last_epoch, *position) + _str(node) + _str(az)
    return _HEADER.pack(len(body), HELLO) + body


def encode_welcome(epoch: int, start: Position, first_segment: int, lineage: list[Epoch]) -> bytes:
    parts = [_WELCOME.pack(epoch, *start, first_segment, len(lineage))]
    parts += [_POS.pack(e.epoch, *e.start) for e in lineage]
    body = b"".join(parts)
    return _HEADER.pack(len(body), WELCOME) + body


def encode_records(epoch: int, start: Position, frames: bytes | memoryview) -> list[bytes]:
    """The RECORDS frame as pieces for `writelines`."""
    head = _POS.pack(epoch, start.segment, start.offset)
    return [_HEADER.pack(len(head) + len(frames), RECORDS) + head, bytes(frames)]


def encode_forget(segment: int) -> bytes:
    return _HEADER.pack(_U64.size, FORGET) + _U64.pack(segment)


def encode_ack(epoch: int, position: Position) -> bytes:
    return _HEADER.pack(_POS.size, ACK) + _POS.pack(epoch, position.segment, position.offset)


def encode_error(reason: str) -> bytes:
    body = reason.encode("utf-8", "replace")[:MAX_ERROR]
    return _HEADER.pack(len(body), ERROR) + body


def _snippet(data: bytes | memoryview) -> str:
    return bytes(data[:16]).hex()


def check_frames(view: memoryview, at: int = 0) -> int | None:
    """The number of whole, CRC-valid record frames filling `view` from `at`, or None
    if they do not fill it exactly (a damaged, torn or trailing partial frame)."""
    count = 0
    end = len(view)
    while at < end:
        found = check_record(view, at)
        if found is None:
            return None
        at += RECORD_HEADER_SIZE + found[1]
        count += 1
    return count


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
        except (ProtocolError, struct.error, UnicodeDecodeError) as exc:
            self._broken = True
            if isinstance(exc, ProtocolError):
                raise
            raise ProtocolError(f"malformed {_KINDS[kind]} frame: {exc}") from None

    def _fail(self, reason: str) -> None:
        self._broken = True
        raise ProtocolError(reason)

    def _decode(self, kind: int, body: bytes) -> Event:
        if kind == RECORDS:
            return _decode_records(body)
        if kind == ERROR:
            return Error(body.decode("utf-8", "replace"))
        if kind == HELLO:
            return _decode_hello(body)
        if kind == WELCOME:
            return _decode_welcome(body)
        if kind == FORGET:
            if len(body) != _U64.size:
                raise ProtocolError(f"FORGET of {len(body)} bytes, not {_U64.size}")
            return Forget(_U64.unpack(body)[0])
        if len(body) != _POS.size:
            raise ProtocolError(f"ACK of {len(body)} bytes, not {_POS.size}")
        epoch, seg, off = _POS.unpack(body)
        return Ack(epoch, Position(seg, off))


def _read_str(body: bytes, at: int) -> tuple[str, int]:
    (n,) = _STR.unpack_from(body, at)
    at += _STR.size
    if at + n > len(body):
        raise ProtocolError("string runs past the end of its frame")
    return body[at : at + n].decode("utf-8"), at + n


def _decode_hello(body: bytes) -> Hello:
    if len(body) < _HELLO.size + 2 * _STR.size:
        raise ProtocolError(f"HELLO of {len(body)} bytes is too short")
    magic, version, epoch, last, seg, off = _HELLO.unpack_from(body, 0)
    if magic != MAGIC or version != VERSION:
        raise ProtocolError(f"HELLO is not ZoneMQ replication v{VERSION}: {_snippet(body)}")
    node, at = _read_str(body, _HELLO.size)
    az, at = _read_str(body, at)
    if at != len(body):
        raise ProtocolError(f"HELLO has {len(body) - at} bytes after its fields")
    return Hello(epoch, last, Position(seg, off), node, az)


def _decode_welcome(body: bytes) -> Welcome:
    if len(body) < _WELCOME.size:
        raise ProtocolError(f"WELCOME of {len(body)} bytes is too short")
    epoch, seg, off, first, count = _WELCOME.unpack_from(body, 0)
    if count > MAX_LINEAGE or len(body) != _WELCOME.size + count * _POS.size:
        raise ProtocolError(f"WELCOME of {len(body)} bytes does not hold {count} epochs")
    lineage = []
    at = _WELCOME.size
    for _ in range(count):
        e, s, o = _POS.unpack_from(body, at)
        lineage.append(Epoch(e, Position(s, o)))
        at += _POS.size
    return Welcome(epoch, Position(seg, off), first, lineage)


def _decode_records(body: bytes) -> Records:
    if len(body) < _POS.size:
        raise ProtocolError(f"RECORDS of {len(body)} bytes is shorter than its header")
    epoch, seg, off = _POS.unpack_from(body, 0)
    view = memoryview(body)
    # check_record validates length and CRC, linear in the bytes (no per-byte loop).
    count = check_frames(view, _POS.size)
    if count is None:
        at = _POS.size
        while (found := check_record(view, at)) is not None:
            at += RECORD_HEADER_SIZE + found[1]
        raise ProtocolError(
            f"RECORDS holds a damaged journal record at byte {at - _POS.size} "
            f"(bytes {_snippet(view[at:])})"
        )
    if not count:
        raise ProtocolError("RECORDS frame with no record")
    frames = body[_POS.size :]
    return Records(epoch, Position(seg, off), Position(seg, off + len(frames)), frames, count)
