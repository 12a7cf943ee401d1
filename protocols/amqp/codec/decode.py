"""The fast inbound path: the usual message shapes decoded by hand (sans-IO).

proton's Message.decode plus a getter call per field cost more than everything else on
the receiving side, so `decode_sections` reads the sections itself and gives what
protocols.amqp.mapping.message_from_amqp would take from proton's decoding; mapping
builds the core Message from it. It returns None for anything it does not take on
(descriptors other than small ulongs, several data sections, sequence or structured
value bodies, decimal/array/list/map values, uuid values outside application-properties,
scheduled delivery annotations, ids proton would turn into other types) and the caller
goes through proton. Application-property values keep their AMQP type (the core's
typed values for all but string, long, double, boolean, binary and null).
"""

from __future__ import annotations

import struct
from typing import Any

from protocols.amqp.codec.names import (
    DELAYS,
    ENC_BINARY,
    ENC_NULL,
    MSG_TEXT,
    P_ANNOTATION,
    P_CONTENT_ENCODING,
    P_ENCODING,
    P_GROUP_SEQ,
    P_MESSAGE_ID,
    P_USER_ID,
    kind_of,
)

# What a transfer's sections say, in the order the core's Message takes them: body,
# properties (application-properties, kept annotations and the reserved P_* ones), text,
# durable, priority, expiration (ms since the epoch, 0: none), creation time, and the
# `to` address text, the x-opt-jms-dest kind (both for the anonymous relay), reply-to
# text and its x-opt-jms-reply-to kind, correlation-id, content-type, group-id, subject.
Decoded = tuple[Any, ...]


_NONE6 = (None,) * 6


class _Unusual(Exception):
    """A shape outside the fast path's: use proton's decoder instead."""


_unpack_u32 = struct.Struct(">I").unpack_from
_unpack_u32x2 = struct.Struct(">II").unpack_from
_unpack_i64 = struct.Struct(">q").unpack_from
_unpack_u64 = struct.Struct(">Q").unpack_from
_unpack_i32 = struct.Struct(">i").unpack_from
_unpack_f64 = struct.Struct(">d").unpack_from
_unpack_f32 = struct.Struct(">f").unpack_from
_unpack_u16 = struct.Struct(">H").unpack_from
_unpack_i16 = struct.Struct(">h").unpack_from
# Codes whose values are kept as the Python types proton's get_object gives (ints, str,
# bytes for binary, float, bool); `_SYMBOL` and `_BINARY` mark the types some fields treat
# differently (message-annotation keys must be symbols, binary values are memoryviews in
# proton and so are dropped where message_from_amqp only keeps str/int/float/bytes).
# The meaning of a message-annotations section: (annotations kept as properties, reply-to
# kind, destination kind, x-opt-jms-msg-type).
_Annotations = tuple[tuple[tuple[str, Any], ...], str | None, str | None, Any]
_NO_ANNOTATIONS: _Annotations = ((), None, None, None)
_DEFAULT_HEADER = (False, 4, 0)
# Parsed header and message-annotations sections by their bytes (bounded).
_header_cache: dict[bytes, tuple[bool, int, int]] = {}
_annotation_cache: dict[bytes, _Annotations] = {}
_SYMBOL = object()
_UUID_MARK = object()  # a uuid annotation: proton's path does not keep it either
_BINARY = object()
_STRING = object()
_TIMESTAMP = object()
# What each properties field must be for the fast path (anything else: proton's path).
_FIELD_KINDS: tuple[tuple[Any, ...], ...] = (
    (_STRING,),  # message-id (ulong, uuid and binary ids become other types in proton)
    (_BINARY,),  # user-id
    (_STRING,),  # to
    (_STRING,),  # subject
    (_STRING,),  # reply-to
    (_STRING, _BINARY),  # correlation-id
    (_SYMBOL,),  # content-type
    (_SYMBOL,),  # content-encoding
    (_TIMESTAMP,),  # absolute-expiry-time
    (_TIMESTAMP,),  # creation-time
    (_STRING,),  # group-id
    (None,),  # group-sequence
    (_STRING,),  # reply-to-group-id
)


def _read(buf: bytes, pos: int) -> tuple[Any, Any, int]:
    """One primitive value at `pos`: (value, kind, next position); kind is _STRING,
    _SYMBOL, _BINARY, _TIMESTAMP, or None for the rest (null, booleans, numbers). Raises
    _Unusual for compound or rarer types."""
    code = buf[pos]
    pos += 1
    if code == 0xA1 or code == 0xA3 or code == 0xA0:
        end = pos + 1 + buf[pos]
        raw = buf[pos + 1 : end]
    elif code == 0xB1 or code == 0xB3 or code == 0xB0:
        end = pos + 4 + _unpack_u32(buf, pos)[0]
        raw = buf[pos + 4 : end]
    elif code == 0x40:
        return None, None, pos
    elif code == 0x41:
        return True, None, pos
    elif code == 0x42:
        return False, None, pos
    elif code == 0x56:
        return buf[pos] != 0, None, pos + 1
    elif code == 0x43 or code == 0x44:
        return 0, None, pos
    elif code == 0x50 or code == 0x52 or code == 0x53:
        return buf[pos], None, pos + 1
    elif code == 0x51 or code == 0x54 or code == 0x55:
        v = buf[pos]
        return (v - 256 if v > 127 else v), None, pos + 1
    elif code == 0x70:
        return _unpack_u32(buf, pos)[0], None, pos + 4
    elif code == 0x71:
        return _unpack_i32(buf, pos)[0], None, pos + 4
    elif code == 0x80:
        return _unpack_u64(buf, pos)[0], None, pos + 8
    elif code == 0x81:
        return _unpack_i64(buf, pos)[0], None, pos + 8
    elif code == 0x83:
        return _unpack_i64(buf, pos)[0], _TIMESTAMP, pos + 8
    elif code == 0x82:
        return _unpack_f64(buf, pos)[0], None, pos + 8
    elif code == 0x72:
        return _unpack_f32(buf, pos)[0], None, pos + 4
    else:
        raise _Unusual(code)
    if end > len(buf):
        raise _Unusual("truncated")
    if code & 0x0F == 0x00:  # vbin8 / vbin32
        return bytes(raw), _BINARY, end
    text = raw.decode()  # invalid UTF-8: proton's path reports it
    return text, (_SYMBOL if code & 0x0F == 0x03 else _STRING), end


def _compound(buf: bytes, pos: int, list_code: int) -> tuple[int, int, int]:
    """A list (list_code 0xC0) or map (0xC1) header at `pos`: (element count, position of
    the first element, end position)."""
    code = buf[pos]
    if list_code == 0xC0 and code == 0x45:
        return 0, pos + 1, pos + 1
    if code == list_code:
        return buf[pos + 2], pos + 3, pos + 2 + buf[pos + 1]
    if code == list_code + 0x10:
        size, count = _unpack_u32x2(buf, pos + 1)
        return count, pos + 9, pos + 5 + size
    raise _Unusual(code)


def _fields(buf: bytes, pos: int) -> tuple[list[Any], list[Any], int]:
    count, pos, end = _compound(buf, pos, 0xC0)
    values: list[Any] = []
    kinds: list[Any] = []
    for _ in range(count):
        value, kind, pos = _read(buf, pos)
        values.append(value)
        kinds.append(kind)
    if pos != end:
        raise _Unusual("list size")
    return values, kinds, end


# Codes of numeric values that are not AMQP's long or double: the core's typed-value name
# (broker.core.values) for what `_read` reads of them.
_TYPED_CODES = {
    0x43: "uint",
    0x52: "uint",
    0x70: "uint",
    0x44: "ulong",
    0x53: "ulong",
    0x80: "ulong",
    0x50: "ubyte",
    0x51: "byte",
    0x54: "int",
    0x71: "int",
    0x72: "float",
}


def _property(buf: bytes, pos: int) -> tuple[Any, int]:
    """An application-property value at `pos` as the core keeps it, its AMQP type
    included (what protocols.amqp.mapping.property_value makes of proton's value), and
    its end. Decimals and compound values raise _Unusual: proton's path."""
    code = buf[pos]
    if code == 0x60:
        return ("ushort", _unpack_u16(buf, pos + 1)[0]), pos + 3
    if code == 0x61:
        return ("short", _unpack_i16(buf, pos + 1)[0]), pos + 3
    if code == 0x73:
        return ("char", chr(_unpack_u32(buf, pos + 1)[0])), pos + 5
    if code == 0x98:
        end = pos + 17
        if end > len(buf):
            raise _Unusual("truncated")
        return ("uuid", buf[pos + 1 : end]), end
    value, kind, end = _read(buf, pos)
    name = _TYPED_CODES.get(code)
    if name is not None:
        return (name, value), end
    if kind is _SYMBOL:
        return ("symbol", value), end
    if kind is _TIMESTAMP:
        return ("timestamp", value), end
    return value, end


def _application_properties(buf: bytes, pos: int) -> tuple[dict[str, Any], int]:
    count, pos, end = _compound(buf, pos, 0xC1)
    if count & 1:
        raise _Unusual("odd map")
    props: dict[str, Any] = {}
    size = len(buf)
    for _ in range(count // 2):
        if buf[pos] == 0xA1:  # str8 keys and values, the usual case, read inline
            after = pos + 2 + buf[pos + 1]
            if after > size:
                raise _Unusual("truncated")
            key = buf[pos + 2 : after].decode()
            pos = after
        else:
            key, key_kind, pos = _read(buf, pos)
            if key_kind is not _STRING:
                raise _Unusual("application property key")
        if buf[pos] == 0xA1:
            after = pos + 2 + buf[pos + 1]
            if after > size:
                raise _Unusual("truncated")
            props[key] = buf[pos + 2 : after].decode()
            pos = after
        else:
            props[key], pos = _property(buf, pos)
    if pos != end:
        raise _Unusual("map size")
    return props, end


def _skip(buf: bytes, pos: int) -> int:
    """Past a map section body (delivery-annotations, footer) without reading it."""
    code = buf[pos]
    if code == 0xC1:
        return pos + 2 + buf[pos + 1]
    if code == 0xD1:
        return pos + 5 + _unpack_u32(buf, pos + 1)[0]
    if code == 0x40:
        return pos + 1
    raise _Unusual(code)


def decode_sections(data: bytes | bytearray, now_ms: int) -> Decoded | None:
    """The meaning of a received transfer's sections (see `Decoded`), exactly as
    protocols.amqp.mapping.message_from_amqp reads it from proton's decoding; None: the
    message is not one of the usual shapes, use that path. `now_ms` turns a ttl into an
    expiration."""
    try:
        return _decode(bytes(data), now_ms)
    except (_Unusual, IndexError, struct.error, UnicodeDecodeError, ValueError):
        return None  # ValueError: a char beyond Unicode; proton's path reports it


def _decode(buf: bytes, now_ms: int) -> Decoded | None:
    header: tuple[bool, int, int] = _DEFAULT_HEADER
    annotations: _Annotations = _NO_ANNOTATIONS
    fields: list[Any] = []
    field_kinds: list[Any] = []
    props: dict[str, Any] = {}
    body: Any = None
    body_kind = 0
    sections = 0  # bit per section code seen: each at most once
    pos, size = 0, len(buf)
    while pos < size:
        if buf[pos] != 0 or buf[pos + 1] != 0x53:
            raise _Unusual("descriptor")
        code = buf[pos + 2]
        pos += 3
        bit = 1 << (code - 0x70) if 0x70 <= code <= 0x78 else 0
        if not bit or sections & bit:
            raise _Unusual(code)
        sections |= bit
        if code == 0x75:
            if sections & 0x80:
                raise _Unusual("data and value")
            body, kind, pos = _read(buf, pos)
            if kind is not _BINARY:
                raise _Unusual("data")
            body_kind = 0x75
        elif code == 0x73:
            fields, field_kinds, pos = _fields(buf, pos)
        elif code == 0x70:
            header, pos = _header_of(buf, pos)
        elif code == 0x72:
            annotations, pos = _annotations_of(buf, pos)
        elif code == 0x74:
            props, pos = _application_properties(buf, pos)
        elif code == 0x77:
            if sections & 0x20:
                raise _Unusual("data and value")
            if buf[pos] not in (0x40, 0xA1, 0xB1, 0xA0, 0xB0):
                raise _Unusual("value")  # structured values: proton's path
            body, _, pos = _read(buf, pos)
            body_kind = 0x77
        elif code == 0x71 or code == 0x78:
            pos = _skip(buf, pos)
        else:
            raise _Unusual(code)  # amqp-sequence
    if pos != size:
        raise _Unusual("trailing")

    kept, reply_hint, dest_hint, msg_type = annotations
    if kept:
        props.update(kept)
    text = False
    if body_kind == 0x75:
        data = body
    elif body is None:
        data = b""
        if msg_type == MSG_TEXT:
            text = True
        else:
            props[P_ENCODING] = ENC_NULL
    elif type(body) is str:
        data = body.encode()
        text = True
    else:
        data = body
        props[P_ENCODING] = ENC_BINARY

    durable, priority, ttl = header
    expiration = ttl and now_ms + ttl
    if not fields:
        return (data, props, text, durable, priority, expiration, 0, None, dest_hint, *_NONE6)
    if len(fields) > 13:
        raise _Unusual("properties")
    for value, kind, allowed in zip(fields, field_kinds, _FIELD_KINDS, strict=False):
        if value is not None and kind not in allowed:
            raise _Unusual("property type")
    fields += [None] * (13 - len(fields))
    mid, user, to, subject, reply, corr, ctype, cenc, expiry, created, group, seq = fields[:12]
    if mid is not None:
        props[P_MESSAGE_ID] = mid
    if seq:
        if seq >= 2**31:
            raise _Unusual("group-sequence")  # proton's getter reads a signed int
        props[P_GROUP_SEQ] = seq
    if user:
        props[P_USER_ID] = user.decode("utf-8", "replace")
    if cenc:
        props[P_CONTENT_ENCODING] = cenc
    if corr is not None and field_kinds[5] is _BINARY:
        corr = corr.decode("utf-8", "replace")
    return (
        data,
        props,
        text,
        durable,
        priority,
        expiry or expiration,
        created or 0,
        to,
        dest_hint,
        reply,
        reply_hint,
        corr,
        ctype or None,
        group or None,
        subject or None,
    )


def _header_of(buf: bytes, pos: int) -> tuple[tuple[bool, int, int], int]:
    """(durable, priority clamped to 9, ttl ms) of the header section at `pos`, and its
    end. A producer sends the same header bytes every time, so they are parsed once."""
    _, _, end = _compound(buf, pos, 0xC0)
    raw = buf[pos:end]
    header = _header_cache.get(raw)
    if header is None:
        values, _, _ = _fields(buf, pos)
        if len(values) > 5 or any(type(v) is str or type(v) is bytes for v in values):
            raise _Unusual("header")
        values += [None] * (3 - len(values))
        durable, priority, ttl = values[:3]
        header = (bool(durable), 4 if priority is None else min(priority, 9), ttl or 0)
        if len(_header_cache) >= 1024:
            _header_cache.clear()
        _header_cache[raw] = header
    return header, end


def _annotations_of(buf: bytes, pos: int) -> tuple[_Annotations, int]:
    """What the message-annotations section at `pos` means for the core message (the
    annotations kept as properties, the reply-to and destination kinds, the JMS message
    type), and its end. Parsed once per distinct encoding: producers repeat theirs."""
    code = buf[pos]
    if code == 0xC1:
        end = pos + 2 + buf[pos + 1]
    elif code == 0xD1:
        end = pos + 5 + _unpack_u32(buf, pos + 1)[0]
    else:
        raise _Unusual(code)
    raw = buf[pos:end]
    meaning = _annotation_cache.get(raw)
    if meaning is None:
        count, at, _ = _compound(buf, pos, 0xC1)
        if count & 1:
            raise _Unusual("odd map")
        kept: list[tuple[str, Any]] = []
        reply_hint: str | None = None
        dest_hint: str | None = None
        msg_type: Any = None
        for _ in range(count // 2):
            key, key_kind, at = _read(buf, at)
            if key_kind is not _SYMBOL:
                raise _Unusual("annotation key")
            if key in DELAYS:
                raise _Unusual("delay")  # refused (or not) by proton's path
            # Typed as application-properties are (kept ones keep their AMQP type).
            value, at = _property(buf, at)
            plain = (
                value
                if type(value) is not tuple
                else (_UUID_MARK if value[0] == "uuid" else value[1])
            )
            if key == "x-opt-jms-reply-to":
                reply_hint = kind_of(plain)
            elif key == "x-opt-jms-msg-type":
                msg_type = plain
            elif key == "x-opt-jms-dest":
                dest_hint = kind_of(plain)
            elif value is not None and type(value) is not bytes and plain is not _UUID_MARK:
                kept.append((P_ANNOTATION + key, value))
        if at != end:
            raise _Unusual("map size")
        meaning = (tuple(kept), reply_hint, dest_hint, msg_type)
        if len(_annotation_cache) >= 1024:
            _annotation_cache.clear()
        _annotation_cache[raw] = meaning
    return meaning, end
