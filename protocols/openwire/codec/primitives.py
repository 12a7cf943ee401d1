"""OpenWire's typed values (ActiveMQ's MarshallingSupport): message properties, the
body of a MapMessage and of a StreamMessage, and WireFormatInfo's options.

Each value is a type byte and its big-endian encoding. Java's types map onto the
typed-value convention of ``broker.core.values`` (plain tuples, so this module needs
nothing of the broker): long → int, double → float, boolean → bool, String → str,
byte[] → bytes, null → None, and ``("byte" | "short" | "int", n)``, ``("float", x)``,
``("char", c)`` for the others; a nested map or list (bodies only) → dict / list.
Writing goes the other way; a plain int is a long, as a JMS ``setLongProperty`` is.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any

from protocols.openwire.codec import utf
from protocols.openwire.codec.reader import CodecError, Reader

NULL = 0
BOOLEAN = 1
BYTE = 2
CHAR = 3
SHORT = 4
INTEGER = 5
LONG = 6
DOUBLE = 7
FLOAT = 8
STRING = 9
BYTE_ARRAY = 10
MAP = 11
LIST = 12
BIG_STRING = 13

# Maps and lists nest only in bodies; a peer nesting them deeper than this is refused
# rather than recursed into (ActiveMQ bounds its depth too).
MAX_DEPTH = 16

_B = struct.Struct(">b")
_H = struct.Struct(">H")
_h = struct.Struct(">h")
_i = struct.Struct(">i")
_q = struct.Struct(">q")
_d = struct.Struct(">d")
_f = struct.Struct(">f")

_TYPED = {"byte": (BYTE, _B), "short": (SHORT, _h), "int": (INTEGER, _i)}


def read_value(r: Reader, depth: int = 0) -> Any:
    """One typed value at the reader's position."""
    kind = r.i8()
    if kind == STRING:
        return utf.decode(r.take(r.u16()))
    if kind == NULL:
        return None
    if kind == BOOLEAN:
        return r.i8() != 0
    if kind == LONG:
        return r.i64()
    if kind == INTEGER:
        return ("int", r.i32())
    if kind == DOUBLE:
        return _d.unpack(r.take(8))[0]
    if kind == BYTE:
        return ("byte", r.i8())
    if kind == SHORT:
        return ("short", r.i16())
    if kind == FLOAT:
        return ("float", _f.unpack(r.take(4))[0])
    if kind == CHAR:
        return ("char", chr(r.u16()))
    if kind == BYTE_ARRAY:
        return r.take(r.length())
    if kind == BIG_STRING:
        return utf.decode(r.take(r.length()))
    if kind in (MAP, LIST):
        if depth >= MAX_DEPTH:
            raise CodecError(f"typed values nested deeper than {MAX_DEPTH}")
        return read_map(r, depth + 1) if kind == MAP else read_list(r, depth + 1)
    raise CodecError(f"unknown primitive type {kind}")


def read_map(r: Reader, depth: int = 0) -> dict[str, Any] | None:
    """A primitive map: an int count (-1 for null), then name (writeUTF) and value pairs."""
    count = r.i32()
    if count < 0:
        return None
    r.need(count * 3)  # each entry takes at least 3 bytes: no huge count on a short frame
    out: dict[str, Any] = {}
    for _ in range(count):
        name = utf.decode(r.take(r.u16()))
        out[name] = read_value(r, depth)
    return out


def read_list(r: Reader, depth: int = 0) -> list[Any]:
    count = r.i32()
    if count < 0:
        raise CodecError("negative list length")
    r.need(count)
    return [read_value(r, depth) for _ in range(count)]


def write_value(out: bytearray, value: Any) -> None:
    """Appends one typed value."""
    t = type(value)
    if t is str:
        data = utf.encode(value)
        if len(data) < 0x10000 and len(value) < 0x7FFF // 4:
            out += b"\x09" + _H.pack(len(data)) + data
        else:
            out += b"\x0d" + _i.pack(len(data)) + data
    elif value is None:
        out.append(NULL)
    elif t is bool:
        out += b"\x01\x01" if value else b"\x01\x00"
    elif t is int:
        out.append(LONG)
        out += _q.pack(value)
    elif t is float:
        out.append(DOUBLE)
        out += _d.pack(value)
    elif t is bytes or t is bytearray or t is memoryview:
        out.append(BYTE_ARRAY)
        out += _i.pack(len(value))
        out += value
    elif t is tuple:
        _write_typed(out, value)
    elif t is dict:
        out.append(MAP)
        write_map(out, value)
    elif t is list:
        out.append(LIST)
        out += _i.pack(len(value))
        for item in value:
            write_value(out, item)
    else:
        raise CodecError(f"not an OpenWire primitive: {value!r}")


def _write_typed(out: bytearray, value: tuple[Any, ...]) -> None:
    name = value[0]
    typed = _TYPED.get(name)
    if typed is not None:
        out.append(typed[0])
        out += typed[1].pack(value[1])
    elif name == "float":
        out.append(FLOAT)
        out += _f.pack(value[1])
    elif name == "char":
        out.append(CHAR)
        out += _H.pack(ord(value[1]))
    elif name in ("ubyte", "ushort", "uint", "ulong", "timestamp"):
        # Java has no unsigned types: the wider signed type that holds the value, as
        # ActiveMQ's AMQP transformer stores them (a ulong keeps its 64 bits).
        n = value[1]
        if name == "ubyte":
            out.append(SHORT)
            out += _h.pack(n)
        elif name == "ushort":
            out.append(INTEGER)
            out += _i.pack(n)
        else:
            out.append(LONG)
            out += _q.pack(n - (1 << 64) if n >= 1 << 63 else n)
    elif name == "symbol":
        write_value(out, value[1])
    elif name == "uuid":
        write_value(out, str(uuid.UUID(bytes=value[1])))
    elif name == "amqp":
        write_value(out, str(value[2]))
    else:
        raise CodecError(f"not an OpenWire primitive: {value!r}")


def write_map(out: bytearray, values: dict[str, Any] | None) -> None:
    """Appends a primitive map (None as the null map)."""
    if values is None:
        out += _i.pack(-1)
        return
    out += _i.pack(len(values))
    for name, value in values.items():
        data = utf.encode(name)
        out += _H.pack(len(data)) + data
        write_value(out, value)


def encode_map(values: dict[str, Any] | None) -> bytes:
    out = bytearray()
    write_map(out, values)
    return bytes(out)


def decode_map(data: bytes) -> dict[str, Any] | None:
    r = Reader(data)
    values = read_map(r)
    return values
