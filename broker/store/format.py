"""The journal's on-disk format: segment headers, record frames, and scanning.

Pure functions over bytes; no files, no asyncio. Everything is little-endian.

Segment file ``00000042.zjournal`` (the name is the segment id, zero-padded so the files
sort) starts with a 20-byte header::

    magic b"ZMQJ" | version u16 | flags u16 (0) | segment id u64 | crc32 of the 16 bytes before

followed by records, back to back, with no padding::

    length u32 (payload bytes) | type u8 | crc32 u32 (zlib.crc32 of type byte + payload) | payload

The type byte is the layer above's: broker/store/messages.py assigns 1..6 (ADD, REMOVE,
COUNT, TX, DEST, DEST_META); a number once used keeps its meaning on disk forever.

Invariants:
- a record is valid only if its whole frame lies inside the buffer and its CRC matches;
  a run of zero bytes is never a valid record (crc32(b"\\0") != 0), so a zero-filled tail
  left by a crash reads as garbage, not as empty records;
- the CRC covers the type byte, so a flipped type is caught like a flipped payload byte;
- `find_record` is the only resynchronisation: it tries every offset, so its cost is
  linear in the bytes it skips (used only on the recovery and corruption paths); it
  never tries an offset inside a zero-filled tail, where no record can start;
- the head segment is preallocated (broker/store/segment.py): its file runs on past the
  last record with zero bytes, which `zero_tail` recognises as the end of the log.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from typing import NamedTuple

MAGIC = b"ZMQJ"
VERSION = 1
SUFFIX = ".zjournal"

_SEGMENT_HEADER = struct.Struct("<4sHHQ")
_HEADER_CRC = struct.Struct("<I")
SEGMENT_HEADER_SIZE = _SEGMENT_HEADER.size + _HEADER_CRC.size  # 20

RECORD_HEADER = struct.Struct("<IBI")
RECORD_HEADER_SIZE = RECORD_HEADER.size  # 9
MAX_PAYLOAD = 0xFFFFFFFF
MAX_TYPE = 0xFF

# crc32 of each possible type byte: the running CRC a payload's CRC continues from.
TYPE_CRC: tuple[int, ...] = tuple(zlib.crc32(bytes([t])) for t in range(MAX_TYPE + 1))

_NAME = re.compile(r"^(\d{8,})" + re.escape(SUFFIX) + "$")


class RecordRef(NamedTuple):
    """Where a record lives: segment id, byte offset of its frame, payload length.

    A NamedTuple because one is made per append (cheap to build, hashable as a dict key).
    """

    segment: int
    offset: int
    length: int

    @property
    def frame_size(self) -> int:
        """Bytes the record occupies on disk, header included."""
        return RECORD_HEADER_SIZE + self.length


class Record(NamedTuple):
    """A record read back from the journal: where it is, its type and its payload."""

    ref: RecordRef
    rtype: int
    payload: bytes


class BadHeader(ValueError):
    """A segment header that is not ours, or is damaged; `unsupported` for a newer version."""

    def __init__(self, reason: str, *, unsupported: bool = False) -> None:
        super().__init__(reason)
        self.unsupported = unsupported


def segment_name(segment_id: int) -> str:
    """File name of a segment; ids are zero-padded to 8 digits so names sort as numbers."""
    return f"{segment_id:08d}{SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    """Segment id from a file name, or None when the file is not a segment."""
    m = _NAME.match(name)
    return int(m.group(1)) if m else None


def encode_segment_header(segment_id: int) -> bytes:
    head = _SEGMENT_HEADER.pack(MAGIC, VERSION, 0, segment_id)
    return head + _HEADER_CRC.pack(zlib.crc32(head))


def decode_segment_header(buf: bytes | memoryview) -> int:
    """The segment id in a header; raises BadHeader when it is short, foreign or damaged."""
    if len(buf) < SEGMENT_HEADER_SIZE:
        raise BadHeader(f"segment header is {len(buf)} bytes, expected {SEGMENT_HEADER_SIZE}")
    magic, version, _flags, segment_id = _SEGMENT_HEADER.unpack_from(buf, 0)
    (crc,) = _HEADER_CRC.unpack_from(buf, _SEGMENT_HEADER.size)
    if magic != MAGIC:
        raise BadHeader(f"bad magic {bytes(magic)!r}")
    if zlib.crc32(bytes(buf[: _SEGMENT_HEADER.size])) != crc:
        raise BadHeader("segment header CRC mismatch")
    if version != VERSION:
        # Checked after the CRC: a damaged header must not pass for a newer format.
        raise BadHeader(
            f"segment format version {version}, this build reads {VERSION}", unsupported=True
        )
    return int(segment_id)


def check_record(buf: memoryview, offset: int) -> tuple[int, int] | None:
    """(type, payload length) if a whole, CRC-valid record starts at `offset`, else None."""
    end_of_header = offset + RECORD_HEADER_SIZE
    if end_of_header > len(buf):
        return None
    length, rtype, crc = RECORD_HEADER.unpack_from(buf, offset)
    end = end_of_header + length
    if end > len(buf):
        return None
    if zlib.crc32(buf[end_of_header:end], TYPE_CRC[rtype]) != crc:
        return None
    return rtype, length


class Damage(NamedTuple):
    """An invalid stretch found by `scan_records`: where it starts, and the offset of the
    next valid record after it (None when nothing valid follows in the buffer)."""

    offset: int
    resume: int | None


def scan_records(buf: memoryview, start: int) -> Iterator[tuple[int, int, int] | Damage]:
    """Walk the records from `start`: yield (offset, type, payload length) for each valid
    record and a Damage for each invalid stretch, then carry on from the next valid
    record. Deciding what damage means (torn tail or corruption) is the caller's job."""
    offset = start
    n = len(buf)
    while offset < n:
        found = check_record(buf, offset)
        if found is not None:
            rtype, length = found
            yield offset, rtype, length
            offset += RECORD_HEADER_SIZE + length
            continue
        resume = find_record(buf, offset + 1)
        yield Damage(offset, resume)
        if resume is None:
            return
        offset = resume


def describe_damage(buf: memoryview, offset: int) -> str:
    """Why no valid record starts at `offset`, for log lines and JournalCorrupt."""
    n = len(buf)
    if offset + RECORD_HEADER_SIZE > n:
        return f"record header cut short ({n - offset} of {RECORD_HEADER_SIZE} bytes)"
    length, rtype, _crc = RECORD_HEADER.unpack_from(buf, offset)
    if offset + RECORD_HEADER_SIZE + length > n:
        return f"record of type {rtype} declares {length} payload bytes, past the end"
    return f"CRC mismatch in a record of type {rtype}, {length} payload bytes"


def nonzero_end(buf: memoryview) -> int:
    """The offset just past the last non-zero byte of `buf` (0 when all of it is zero).

    Read backwards in slices, so a long zero-filled (preallocated) tail costs a few
    C-level scans and the data before it is not copied."""
    end = len(buf)
    while end > 0:
        lo = max(0, end - _TAIL_STEP)
        kept = bytes(buf[lo:end]).rstrip(b"\0")
        if kept:
            return lo + len(kept)
        end = lo
    return 0


def zero_tail(buf: memoryview, offset: int) -> bool:
    """True if every byte from `offset` to the end of `buf` is zero: the unused,
    preallocated rest of a segment, not damage."""
    return nonzero_end(buf[offset:]) == 0


_TAIL_STEP = 64 * 1024


def find_record(buf: memoryview, start: int) -> int | None:
    """The first offset >= `start` where a valid record begins, or None.

    Used to tell a torn tail (nothing valid follows) from corruption in the middle
    (valid records follow). A random match needs a 32-bit CRC to agree, so a false
    find inside garbage has odds of about one in four billion per candidate that fits.
    Offsets from the last non-zero byte on are not tried: a frame made only of zero
    bytes is never valid, so a preallocated tail is skipped at C speed rather than
    walked one offset at a time.
    """
    n = len(buf)
    unpack = RECORD_HEADER.unpack_from
    stop = min(n - RECORD_HEADER_SIZE + 1, nonzero_end(buf))
    for offset in range(start, stop):
        length, _rtype, _crc = unpack(buf, offset)
        # Cheap filter first: most garbage declares a length that runs past the end.
        if offset + RECORD_HEADER_SIZE + length <= n and check_record(buf, offset) is not None:
            return offset
    return None
