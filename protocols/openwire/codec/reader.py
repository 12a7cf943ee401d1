"""A cursor over one OpenWire frame's bytes, big-endian as Java's DataInput."""

from __future__ import annotations

import struct

_h = struct.Struct(">h")
_H = struct.Struct(">H")
_i = struct.Struct(">i")
_q = struct.Struct(">q")


class CodecError(ValueError):
    """A frame that does not decode: truncated, an unknown type, a bad length."""


class Reader:
    """Reads Java's DataInput primitives from `data`, refusing to run past its end."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.end:
            raise CodecError(f"frame truncated: {n} bytes wanted at {self.pos} of {self.end}")

    def take(self, n: int) -> bytes:
        self.need(n)
        start = self.pos
        self.pos = start + n
        return self.data[start : self.pos]

    def i8(self) -> int:
        if self.pos >= self.end:
            self.need(1)
        b = self.data[self.pos]
        self.pos += 1
        return b - 256 if b > 127 else b

    def flag(self) -> bool:
        if self.pos >= self.end:
            self.need(1)
        b = self.data[self.pos]
        self.pos += 1
        return b != 0

    def i16(self) -> int:
        self.need(2)
        v: int = _h.unpack_from(self.data, self.pos)[0]
        self.pos += 2
        return v

    def u16(self) -> int:
        self.need(2)
        v: int = _H.unpack_from(self.data, self.pos)[0]
        self.pos += 2
        return v

    def i32(self) -> int:
        self.need(4)
        v: int = _i.unpack_from(self.data, self.pos)[0]
        self.pos += 4
        return v

    def i64(self) -> int:
        self.need(8)
        v: int = _q.unpack_from(self.data, self.pos)[0]
        self.pos += 8
        return v

    def length(self) -> int:
        """An int length that must fit in what is left of the frame."""
        n = self.i32()
        self.need(n)
        return n

    @property
    def remaining(self) -> int:
        return self.end - self.pos
