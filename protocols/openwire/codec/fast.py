"""The loose encoding again, as one straight-line reader and writer per structure type,
generated at import from the same `commands.FIELDS` table the reference interpreter in
loose.py walks.

Why: a JMS message is some forty fields in five nested structures, and the interpreter
spends most of its time deciding, field by field, what kind the next field is (measured:
decoding was 42 % of the broker's CPU with 1→1 non-persistent traffic). Generated code
knows it already. The generated functions are plain Python (no compiler needed);
tests/openwire/test_codec.py proves them byte-identical with the interpreter, and with
ActiveMQ's own marshalling.

A reader is ``read(data, pos, depth, cache) -> (structure, pos)``; running off the end
of `data` raises IndexError or struct.error (or a short slice, checked), which `decode`
turns into CodecError. A writer is ``write(out, structure)``. Each comes twice: without
the marshalling cache (READERS, WRITERS) and with it (CACHED_*: a "C" field in the
cache's format, cache.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from protocols.openwire.codec import primitives, utf
from protocols.openwire.codec.cache import NEW_NOT_CACHED, Cache
from protocols.openwire.codec.commands import MAGIC, TYPES, Command, Structure
from protocols.openwire.codec.reader import CodecError

MAX_NESTING = 12

_H = struct.Struct(">H").unpack_from
_h = struct.Struct(">h").unpack_from
_i = struct.Struct(">i").unpack_from
_q = struct.Struct(">q").unpack_from
_b = struct.Struct(">b").unpack_from
_pH = struct.Struct(">H").pack
_ph = struct.Struct(">h").pack
_pi = struct.Struct(">i").pack
_pq = struct.Struct(">q").pack

Reader = Callable[[bytes, int, int, Any], tuple[Any, int]]
Writer = Callable[[bytearray, Any], None]
READERS: dict[int, Reader] = {}
WRITERS: dict[int, Writer] = {}
# The same with the marshalling cache negotiated (cache.py).
CACHED_READERS: dict[int, Reader] = {}
CACHED_WRITERS: dict[int, Writer] = {}


def _short(what: str) -> CodecError:
    return CodecError(f"frame truncated in {what}")


def _string(data: bytes, pos: int) -> tuple[str | None, int]:
    if not data[pos]:
        return None, pos + 1
    n = _H(data, pos + 1)[0]
    start = pos + 3
    raw = data[start : start + n]
    if len(raw) != n:
        raise _short("a string")
    return (raw.decode("ascii") if raw.isascii() else utf.decode(raw)), start + n


def _bytes(data: bytes, pos: int) -> tuple[bytes | None, int]:
    if not data[pos]:
        return None, pos + 1
    n = _i(data, pos + 1)[0]
    start = pos + 5
    raw = data[start : start + n]
    if n < 0 or len(raw) != n:
        raise _short("a byte array")
    return raw, start + n


def _nested(data: bytes, pos: int, depth: int, cache: Cache | None = None) -> tuple[Any, int]:
    if not data[pos]:
        return None, pos + 1
    if depth >= MAX_NESTING:
        raise CodecError("structures nested too deep")
    reader = (READERS if cache is None else CACHED_READERS).get(data[pos + 1])
    if reader is None:
        raise CodecError(f"unknown data type {data[pos + 1]}")
    return reader(data, pos + 2, depth + 1, cache)


def _array(data: bytes, pos: int, depth: int, cache: Cache | None) -> tuple[list[Any] | None, int]:
    if not data[pos]:
        return None, pos + 1
    count = _h(data, pos + 1)[0]
    if count < 0:
        raise CodecError("negative array length")
    pos += 3
    out = []
    for _ in range(count):
        value, pos = _nested(data, pos, depth, cache)
        out.append(value)
    return out, pos


def _throwable(data: bytes, pos: int) -> tuple[tuple[str, str | None] | None, int]:
    if not data[pos]:
        return None, pos + 1
    name, pos = _string(data, pos + 1)
    message, pos = _string(data, pos)
    return (name or "", message), pos


def _magic(data: bytes, pos: int) -> tuple[bytes, int]:
    if data[pos : pos + 8] != MAGIC:
        raise CodecError("not OpenWire: the magic is not ActiveMQ")
    return MAGIC, pos + 8


def _props(data: bytes, pos: int) -> tuple[dict[str, Any] | None, int]:
    raw, pos = _bytes(data, pos)
    return (primitives.decode_map(raw) if raw is not None else None), pos


# Field kind → the statement(s) reading it into `v<i>` (see commands.py for the kinds).
# An absent string, byte array, structure or array is tested inline: most of a JMS
# message's optional fields are absent, and a call per absent field was a third of the
# reader's time.
_OPTIONAL = "if data[pos]:\n    v{{i}}, pos = {call}\nelse:\n    v{{i}} = None\n    pos += 1"
_READ = {
    "Z": "v{i} = data[pos] != 0; pos += 1",
    "B": "v{i} = _b(data, pos)[0]; pos += 1",
    "I": "v{i} = _i(data, pos)[0]; pos += 4",
    "L": "v{i} = _q(data, pos)[0]; pos += 8",
    "S": _OPTIONAL.format(call="_string(data, pos)"),
    "Y": _OPTIONAL.format(call="_bytes(data, pos)"),
    # RD: the plain readers, or with the marshalling cache on the cached ones.
    "N": "if data[pos]:\n"
    "    r = RD.get(data[pos + 1]) if depth < MAX_NESTING else None\n"
    "    if r is None:\n"
    "        _nested(data, pos, depth, cache)  # raises: too deep, or an unknown type\n"
    "    v{i}, pos = r(data, pos + 2, depth + 1, cache)\n"
    "else:\n"
    "    v{i} = None\n"
    "    pos += 1",
    "A": _OPTIONAL.format(call="_array(data, pos, depth, cache)"),
    "T": "v{i}, pos = _throwable(data, pos)",
    "M": "v{i}, pos = _magic(data, pos)",
    "P": "v{i}, pos = _props(data, pos)",
}

# Kind → how far the field reaches, for the structures made of strings and numbers
# only (ids, destinations): their readers find the end first and look the bytes up.
_SKIP = {
    "Z": "end += 1",
    "B": "end += 1",
    "I": "end += 4",
    "L": "end += 8",
    "S": "end = end + 3 + _H(data, end + 1)[0] if data[end] else end + 1",
}

# Ids and destinations repeat in every message and ack of a connection (the same
# producer, consumer and queue): their decoded structures are kept by their encoded
# bytes, type byte included, so a repeat is a slice and a dict lookup instead of a
# string decode and a dataclass built. They are values nobody mutates (the mapping and
# the connection build new ones). Bounded: emptied when full, and only structures of at
# most MEMO_BYTES encoded are kept (real ids are well under it), so the memos hold at
# most a few MB whatever clients send.
MEMO_SIZE = 4096
MEMO_BYTES = 256
_MEMO: dict[bytes, Any] = {}
_ENCODED: dict[int, tuple[Any, bytes]] = {}
MEMOIZED = frozenset(
    kind
    for kind, cls in TYPES.items()
    if not issubclass(cls, Command) and cls.FIELDS and all(code in _SKIP for _n, code in cls.FIELDS)
)


def _write_string(out: bytearray, value: str | None) -> None:
    if value is None:
        out.append(0)
        return
    raw = value.encode("ascii") if value.isascii() and "\x00" not in value else utf.encode(value)
    if len(raw) > 0xFFFF:
        raise CodecError("a string longer than 65535 bytes in modified UTF-8")
    out.append(1)
    out += _pH(len(raw))
    out += raw


def _write_bytes(out: bytearray, value: bytes | None) -> None:
    if value is None:
        out.append(0)
        return
    out.append(1)
    out += _pi(len(value))
    out += value


def _write_nested(out: bytearray, value: Structure | None) -> None:
    if value is None:
        out.append(0)
        return
    kind = value.TYPE
    if kind in MEMOIZED:
        # An id or destination: its bytes are kept, by identity (hashing a dataclass by
        # value costs more than writing it); the same objects come back, since the
        # readers and the mapping keep theirs. The entry holds the object, so its id is
        # not reused while it is cached.
        hit = _ENCODED.get(id(value))
        if hit is not None and hit[0] is value:
            out += hit[1]
            return
        buf = bytearray((1, kind))
        WRITERS[kind](buf, value)
        if len(buf) <= MEMO_BYTES:
            if len(_ENCODED) >= MEMO_SIZE:
                _ENCODED.clear()
            _ENCODED[id(value)] = (value, bytes(buf))
        out += buf
        return
    out.append(1)
    out.append(kind)
    WRITERS[kind](out, value)


def _write_array(out: bytearray, value: list[Any] | None) -> None:
    if value is None:
        out.append(0)
        return
    out.append(1)
    out += _ph(len(value))
    for item in value:
        _write_nested(out, item)


def _write_nested_cached(out: bytearray, value: Structure | None) -> None:
    if value is None:
        out.append(0)
        return
    kind = value.TYPE
    if kind in MEMOIZED:
        _write_nested(out, value)  # no cached field inside an id or a destination
        return
    out.append(1)
    out.append(kind)
    CACHED_WRITERS[kind](out, value)


def _write_array_cached(out: bytearray, value: list[Any] | None) -> None:
    if value is None:
        out.append(0)
        return
    out.append(1)
    out += _ph(len(value))
    for item in value:
        _write_nested_cached(out, item)


def _write_throwable(out: bytearray, value: tuple[str, str | None] | None) -> None:
    if value is None:
        out.append(0)
        return
    out.append(1)
    _write_string(out, value[0])
    _write_string(out, value[1])


def _write_props(out: bytearray, value: dict[str, Any] | None) -> None:
    _write_bytes(out, None if value is None else primitives.encode_map(value))


_WRITE = {
    "Z": "out.append(1 if o.{n} else 0)",
    "B": "out.append(o.{n} & 0xFF)",
    "I": "out += _pi(o.{n})",
    "L": "out += _pq(o.{n})",
    "S": "v = o.{n}\nif v is None:\n    out.append(0)\nelse:\n    _write_string(out, v)",
    "Y": "v = o.{n}\nif v is None:\n    out.append(0)\nelse:\n    _write_bytes(out, v)",
    "N": "v = o.{n}\nif v is None:\n    out.append(0)\nelse:\n    _write_nested(out, v)",
    "A": "v = o.{n}\nif v is None:\n    out.append(0)\nelse:\n    _write_array(out, v)",
    "T": "_write_throwable(out, o.{n})",
    "M": "out += MAGIC",
    "P": "_write_props(out, o.{n})",
}


def _indent(line: str, n: int) -> str:
    return "".join(" " * n + part + "\n" for part in line.split("\n"))


# Fixed-size kinds as struct codes: a run of them is one unpack (or pack), not one per
# field. A byte is written as its low eight bits, as the interpreter does.
_FIXED = {"Z": "?", "B": "b", "I": "i", "L": "q"}
_FIXED_OUT = {"Z": "?", "B": "B", "I": "i", "L": "q"}
_FIXED_ARG = {"Z": "o.{n}", "B": "o.{n} & 0xFF", "I": "o.{n}", "L": "o.{n}"}


def _runs(fields: tuple[tuple[str, str], ...]) -> list[list[int]]:
    """Field indexes grouped: each run of two or more fixed-size fields together."""
    runs: list[list[int]] = []
    for i, (_name, code) in enumerate(fields):
        if code in _FIXED and runs and fields[runs[-1][-1]][1] in _FIXED:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


# A cached field with the cache on (cache.py): new or not, the index, then (if new)
# the nested structure as "N" reads it, stored at the index.
_CACHED_READ = (
    "new = data[pos]\n"
    "idx = _h(data, pos + 1)[0]\n"
    "pos += 3\n"
    "if new:\n"
    "    start = pos\n" + _indent(_READ["N"], 4) + "    cache.put(idx, v{i}, pos - start)\n"
    "elif 0 <= idx < cache.size:\n"
    "    v{i} = cache.entries[idx]\n"
    "else:\n"
    "    v{i} = cache.get(idx)  # raises: outside the cache"
)


def _generate(cls: type[Structure], cached: bool) -> tuple[Reader, Writer]:
    """The reader and writer of `cls`, with the marshalling cache on or off (off: a
    cached field is a nested one)."""
    fields = tuple((n, "N" if k == "C" and not cached else k) for n, k in cls.FIELDS)
    structs: dict[str, Any] = {}
    read_lines = []
    write_lines = []
    for run in _runs(fields):
        if len(run) == 1:
            name, code = fields[run[0]]
            if code == "C":
                read_lines.append(_CACHED_READ.format(i=run[0]))
                write_lines.append("out += NEW_NOT_CACHED\n" + _WRITE["N"].format(n=name))
                continue
            read_lines.append(_READ[code].format(i=run[0]))
            write_lines.append(_WRITE[code].format(n=name))
            continue
        codes = [fields[i][1] for i in run]
        fmt_in = ">" + "".join(_FIXED[k] for k in codes)
        fmt_out = ">" + "".join(_FIXED_OUT[k] for k in codes)
        unpack = f"_u{len(structs)}"
        structs[unpack] = struct.Struct(fmt_in).unpack_from
        pack = f"_p{len(structs)}"
        structs[pack] = struct.Struct(fmt_out).pack
        names = ", ".join(f"v{i}" for i in run)
        read_lines.append(f"{names} = {unpack}(data, pos); pos += {struct.calcsize(fmt_in)}")
        pack_args = ", ".join(_FIXED_ARG[fields[i][1]].format(n=fields[i][0]) for i in run)
        write_lines.append(f"out += {pack}({pack_args})")
    args = ", ".join(f"v{i}" for i in range(len(fields)))
    body = "".join(_indent(line, 4) for line in read_lines)
    if cls.TYPE in MEMOIZED:
        # The slice starts at the type byte (the caller has just read it: `pos - 1`);
        # a short slice means a truncated frame, left to the plain reader to report.
        skip = "".join(_indent(_SKIP[code], 4) for _name, code in fields)
        reader_src = (
            "def read(data, pos, depth, cache=None):\n"
            "    end = pos\n" + skip + "    key = data[pos - 1 : end]\n"
            "    hit = _MEMO.get(key)\n"
            "    if hit is not None and len(key) == end - pos + 1:\n"
            "        return hit, end\n" + body + f"    value = cls({args})\n"
            "    if len(_MEMO) >= MEMO_SIZE:\n"
            "        _MEMO.clear()\n"
            "    if pos == end and len(key) <= MEMO_BYTES:\n"
            "        _MEMO[key] = value\n"
            "    return value, pos\n"
        )
    else:
        reader_src = (
            "def read(data, pos, depth, cache=None):\n" + body + f"    return cls({args}), pos\n"
        )
    writer_src = "def write(out, o):\n" + "".join(
        _indent(line, 4) for line in write_lines or ["pass"]
    )
    namespace: dict[str, Any] = {
        **structs,
        "RD": CACHED_READERS if cached else READERS,
        "NEW_NOT_CACHED": NEW_NOT_CACHED,
        "_h": _h,
        "MAX_NESTING": MAX_NESTING,
        "cls": cls,
        "_b": _b,
        "_H": _H,
        "_MEMO": _MEMO,
        "MEMO_SIZE": MEMO_SIZE,
        "MEMO_BYTES": MEMO_BYTES,
        "_i": _i,
        "_q": _q,
        "_pi": _pi,
        "_pq": _pq,
        "MAGIC": MAGIC,
        "_string": _string,
        "_bytes": _bytes,
        "_nested": _nested,
        "_array": _array,
        "_throwable": _throwable,
        "_magic": _magic,
        "_props": _props,
        "_write_string": _write_string,
        "_write_bytes": _write_bytes,
        "_write_nested": _write_nested_cached if cached else _write_nested,
        "_write_array": _write_array_cached if cached else _write_array,
        "_write_throwable": _write_throwable,
        "_write_props": _write_props,
    }
    # The sources are built above from the field table alone, never from input.
    # Named after the type, so that a profile tells the readers apart.
    mode = "cached " if cached else ""
    exec(compile(reader_src, f"<openwire {mode}read {cls.__name__}>", "exec"), namespace)
    exec(compile(writer_src, f"<openwire {mode}write {cls.__name__}>", "exec"), namespace)
    return namespace["read"], namespace["write"]


for _kind, _cls in TYPES.items():
    READERS[_kind], WRITERS[_kind] = _generate(_cls, cached=False)
    if any(code in "CNA" for _name, code in _cls.FIELDS):
        CACHED_READERS[_kind], CACHED_WRITERS[_kind] = _generate(_cls, cached=True)
    else:
        # Nothing nested: the cache changes nothing (an id's memo included).
        CACHED_READERS[_kind], CACHED_WRITERS[_kind] = READERS[_kind], WRITERS[_kind]


def decode(body: bytes, cache: Cache | None = None) -> Any:
    """One frame's body (after its size prefix): the type byte and the structure; with
    the marshalling cache negotiated, `cache` is the connection's (cache.py)."""
    try:
        kind = body[0]
        if kind == 0:
            return None
        reader = (READERS if cache is None else CACHED_READERS).get(kind)
        if reader is None:
            raise CodecError(f"unknown data type {kind}")
        value, pos = reader(body, 1, 0, cache)
    except (IndexError, struct.error):
        raise CodecError("frame truncated") from None
    if pos != len(body):
        raise CodecError(f"{len(body) - pos} bytes after a {type(value).__name__}")
    return value


def encode(value: Structure, cached: bool = False) -> bytes:
    """A whole frame: size prefix, type byte, fields; `cached`: the marshalling cache is
    on (each cached field goes as new, not cached: cache.py)."""
    out = bytearray(b"\x00\x00\x00\x00")
    kind = value.TYPE
    out.append(kind)
    (CACHED_WRITERS if cached else WRITERS)[kind](out, value)
    size = len(out) - 4
    out[0:4] = _pi(size)
    return bytes(out)
