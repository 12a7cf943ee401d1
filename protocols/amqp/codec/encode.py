"""The fast outbound path: the usual message shapes encoded by hand (sans-IO).

Building a proton Message per delivery was the largest single cost of an AMQP delivery,
so the common shapes are written here directly in AMQP's type system (part 1 of the
spec) as proton itself writes them (header and properties as lists with trailing nulls
left out and default fields null, annotation and application-property maps as map32).
Anything else (non-string message ids, bodies kept in their AMQP encoding, values out of
range, symbols that are not ASCII) returns None and goes through proton's path
(protocols.amqp.mapping.encode_message); tests/codec/test_amqp_encoding.py checks that both
give the same bytes.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

from protocols.amqp.codec.names import (
    ENC_BINARY,
    ENC_NULL,
    KIND_CODES,
    MSG_BYTES,
    MSG_MAP,
    MSG_PLAIN,
    MSG_STREAM,
    MSG_TEXT,
    P_ANNOTATION,
    P_CONTENT_ENCODING,
    P_ENCODING,
    P_GROUP_SEQ,
    P_MESSAGE_ID,
    P_USER_ID,
    RESERVED,
    TTL_MAX,
    AddressLike,
    format_address,
)


class OutMessage(Protocol):
    """What the encoder reads of a message (the core's Message is one)."""

    id: str
    body: bytes
    destination: AddressLike | None
    properties: dict[str, Any]
    persistent: bool
    priority: int
    timestamp: int
    expiration: int
    text: bool
    correlation_id: str | None
    reply_to: AddressLike | None
    content_type: str | None
    group_id: str | None
    type: str | None
    delivery_count: int
    redelivered: bool


# Building a proton Message per delivery was the largest single cost of an AMQP delivery,
# so the common shapes are written here directly in AMQP's type system (part 1 of the
# spec) as proton itself writes them (header and properties as lists with trailing nulls
# left out and default fields null, annotation and application-property maps as map32).
# Anything else (non-string message ids, bodies kept in their AMQP encoding, values out of
# range, symbols that are not ASCII) returns None and goes through `encode_message`.

_pack_i64 = struct.Struct(">q").pack
_pack_u32 = struct.Struct(">I").pack
_pack_u32x2 = struct.Struct(">II").pack
_pack_f64 = struct.Struct(">d").pack
_pack_f32 = struct.Struct(">f").pack
_pack_i8 = struct.Struct(">b").pack
_pack_i16 = struct.Struct(">h").pack
_pack_u16 = struct.Struct(">H").pack
_pack_i32 = struct.Struct(">i").pack
_pack_u64 = struct.Struct(">Q").pack
_NULL, _TRUE, _FALSE, _LIST0 = b"\x40", b"\x41", b"\x42", b"\x45"
_HEADER = b"\x00\x53\x70"
_MSG_ANNOTATIONS = b"\x00\x53\x72\xd1"
_PROPERTIES = b"\x00\x53\x73"
_APP_PROPERTIES = b"\x00\x53\x74\xd1"
_DATA = b"\x00\x53\x75"
_VALUE = b"\x00\x53\x77"
_INT64 = range(-(2**63), 2**63)
_UINT32 = range(2**32)
# A header without ttl depends on these four fields only: built once per combination.
_headers: dict[tuple[bool, int, bool, int], bytes] = {}
# Per destination / reply-to address: its kind annotation and its encoded name.
_addresses: dict[AddressLike, tuple[bytes, bytes]] = {}


_K_DEST = b"\xa3\x0ex-opt-jms-dest"
_K_REPLY_TO = b"\xa3\x12x-opt-jms-reply-to"
_K_MSG_TYPE = b"\xa3\x12x-opt-jms-msg-type"
_TYPE_CODES = {
    t: b"\x51" + bytes((t,)) for t in (MSG_PLAIN, MSG_MAP, MSG_BYTES, MSG_STREAM, MSG_TEXT)
}


class _Unusual(Exception):
    """A value outside the fast path's shapes: use proton's encoder instead."""


def _str(text: str) -> bytes:
    data = text.encode()  # a lone surrogate raises: proton's path decides what to do
    n = len(data)
    return (b"\xa1" + bytes((n,)) if n < 256 else b"\xb1" + _pack_u32(n)) + data


def _sym(text: str) -> bytes:
    if not text.isascii():
        raise _Unusual(text)
    data = text.encode()
    n = len(data)
    return (b"\xa3" + bytes((n,)) if n < 256 else b"\xb3" + _pack_u32(n)) + data


def _bin(data: bytes) -> bytes:
    n = len(data)
    return (b"\xa0" + bytes((n,)) if n < 256 else b"\xb0" + _pack_u32(n)) + data


def _uint(value: int) -> bytes:
    if value == 0:
        return b"\x43"
    if value < 256:
        return b"\x52" + bytes((value,))
    return b"\x70" + _pack_u32(value)


def _value(value: Any) -> bytes:
    """A property or annotation value the core holds, as proton's put_object writes it."""
    t = type(value)
    if t is str:
        return _str(value)
    if t is int:
        if -128 <= value < 128:
            return b"\x55" + (value & 0xFF).to_bytes(1, "big")
        if value not in _INT64:
            raise _Unusual(value)
        return b"\x81" + _pack_i64(value)
    if t is bool:
        return _TRUE if value else _FALSE
    if t is float:
        return b"\x82" + _pack_f64(value)
    if t is bytes:
        return _bin(value)
    if value is None:
        return _NULL
    if t is tuple:
        return _typed(value)
    raise _Unusual(value)


def _typed(value: tuple[Any, ...]) -> bytes:
    """A core typed value (broker.core.values) in the encoding proton writes for its type."""
    name, raw = value[0], value[1]
    if name == "int":
        return b"\x54" + _pack_i8(raw) if -128 <= raw < 128 else b"\x71" + _pack_i32(raw)
    if name == "uint":
        return _uint(raw)
    if name == "ulong":
        if raw == 0:
            return b"\x44"
        return b"\x53" + bytes((raw,)) if raw < 256 else b"\x80" + _pack_u64(raw)
    if name == "symbol":
        return _sym(raw)
    if name == "timestamp":
        return b"\x83" + _pack_i64(raw)
    if name == "ubyte":
        return b"\x50" + bytes((raw,))
    if name == "byte":
        return b"\x51" + _pack_i8(raw)
    if name == "short":
        return b"\x61" + _pack_i16(raw)
    if name == "ushort":
        return b"\x60" + _pack_u16(raw)
    if name == "float":
        return b"\x72" + _pack_f32(raw)
    if name == "char":
        return b"\x73" + _pack_u32(ord(raw))
    if name == "uuid":
        if len(raw) != 16:
            raise _Unusual(value)
        return b"\x98" + raw
    raise _Unusual(value)  # ("amqp", ...): proton's path re-encodes it


def _list(fields: list[bytes]) -> bytes:
    """A list of encoded fields, trailing nulls left out, in its smallest encoding."""
    n = len(fields)
    while n and fields[n - 1] is _NULL:
        n -= 1
    if not n:
        return _LIST0
    body = b"".join(fields[:n])
    size = len(body) + 1
    if size < 256:
        return b"\xc0" + bytes((size, n)) + body
    return b"\xd0" + _pack_u32x2(size + 3, n) + body


def _map32(entries: list[bytes]) -> bytes:
    """The encoded key/value items (two per entry) as a map32 after its section prefix."""
    body = b"".join(entries)
    return _pack_u32x2(len(body) + 4, len(entries)) + body


def encode_header(msg: OutMessage, now_ms: int) -> bytes | None:
    """The header section for one delivery of `msg` (durable, priority, ttl,
    first-acquirer, delivery-count), or None for values proton's path must handle."""
    priority = msg.priority
    count = msg.delivery_count
    if type(priority) is not int or priority not in range(256) or count not in _UINT32:
        return None
    if not msg.expiration:
        key = (msg.persistent, priority, not msg.redelivered, count)
        header = _headers.get(key)
        if header is None:
            header = _header(key, 0)
            if len(_headers) < 4096:
                _headers[key] = header
        return header
    ttl = min(max(msg.expiration - now_ms, 1), TTL_MAX)
    return _header((msg.persistent, priority, not msg.redelivered, count), ttl)


def _header(key: tuple[bool, int, bool, int], ttl: int) -> bytes:
    durable, priority, first, count = key
    return _HEADER + _list(
        [
            _TRUE if durable else _NULL,
            _NULL if priority == 4 else b"\x50" + bytes((priority,)),
            _uint(ttl) if ttl else _NULL,
            _TRUE if first else _NULL,
            _uint(count) if count else _NULL,
        ]
    )


def encode_sections(msg: OutMessage) -> bytes | None:
    """Every section after the header (message-annotations, properties,
    application-properties, body): the same for every delivery of `msg`, so it is encoded
    once and shared. None when `msg` needs proton's general path."""
    try:
        return _sections(msg)
    except (_Unusual, UnicodeEncodeError, struct.error, ValueError, TypeError):
        return None  # e.g. a typed value out of its type's range: proton's path decides


def _address_parts(address: AddressLike) -> tuple[bytes, bytes]:
    """(the x-opt-jms-dest / x-opt-jms-reply-to value, the encoded address string) of an
    address: the same for every message to it, so kept (a bounded cache)."""
    parts = _addresses.get(address)
    if parts is None:
        parts = (
            b"\x51" + bytes((KIND_CODES.get(address.kind, 0),)),
            _str(format_address(address)),
        )
        if len(_addresses) >= 4096:
            _addresses.clear()
        _addresses[address] = parts
    return parts


def _sections(msg: OutMessage) -> bytes | None:
    props = msg.properties
    extra: dict[str, bytes] | None = None  # annotations kept as JMS_AMQP_MA_* properties
    app: list[bytes] = []
    encoding: Any = None
    if props:
        for key, value in props.items():
            if key in RESERVED:
                if key == P_ENCODING:
                    encoding = value
                continue
            if key.startswith(P_ANNOTATION):
                if extra is None:
                    extra = {}
                extra[key[len(P_ANNOTATION) :]] = _value(value)
            else:
                app.append(_str(key))
                app.append(_value(value))
        mid = props.get(P_MESSAGE_ID, msg.id)
        if type(mid) is not str:
            return None
    else:
        mid = msg.id
    # Only text, bytes, null and binary-value bodies are written by hand.
    body = msg.body
    if type(body) is not bytes:
        body = bytes(body)
    if encoding is None:
        n = len(body)
        size = b"\xa0" + bytes((n,)) if n < 256 else b"\xb0" + _pack_u32(n)
        msg_type, section = MSG_BYTES, _DATA
        if msg.text:
            try:
                body.decode()
            except UnicodeDecodeError:
                pass
            else:  # valid UTF-8 is exactly what proton writes for the decoded str
                msg_type = MSG_TEXT
                section = _VALUE
                size = b"\xa1" + size[1:] if n < 256 else b"\xb1" + size[1:]
        section += size + body
    elif encoding == ENC_NULL:
        msg_type, section = MSG_PLAIN, b""
    elif encoding == ENC_BINARY:
        msg_type, section = MSG_BYTES, _VALUE + _bin(body)
    else:
        return None
    dest = msg.destination
    reply = msg.reply_to
    dest_code, dest_text = _address_parts(dest) if dest is not None else (b"", _NULL)
    reply_code, reply_text = _address_parts(reply) if reply is not None else (b"", _NULL)
    if extra is None:  # the usual case: only the annotations written here, in this order
        ann = []
        if dest is not None:
            ann += (_K_DEST, dest_code)
        if reply is not None:
            ann += (_K_REPLY_TO, reply_code)
        ann += (_K_MSG_TYPE, _TYPE_CODES[msg_type])
    else:  # a kept annotation of the same name keeps its place, as in a dict
        if dest is not None:
            extra["x-opt-jms-dest"] = dest_code
        if reply is not None:
            extra["x-opt-jms-reply-to"] = reply_code
        extra["x-opt-jms-msg-type"] = _TYPE_CODES[msg_type]
        ann = []
        for name, encoded in extra.items():
            ann.append(_sym(name))
            ann.append(encoded)
    seq: Any = 0
    user: Any = None
    cenc: Any = None
    if props:
        seq = props.get(P_GROUP_SEQ)
        if isinstance(seq, int) and not isinstance(seq, bool):
            if seq not in range(2**31):
                return None
        else:
            seq = 0
        user = props.get(P_USER_ID)
        cenc = props.get(P_CONTENT_ENCODING)
    group = msg.group_id
    properties = _list(
        [
            _str(mid),
            _bin(user.encode()) if isinstance(user, str) else _NULL,
            dest_text,
            _str(msg.type) if msg.type is not None else _NULL,
            reply_text,
            _str(msg.correlation_id) if msg.correlation_id is not None else _NULL,
            _sym(msg.content_type) if msg.content_type is not None else _NULL,
            _sym(cenc) if isinstance(cenc, str) else _NULL,
            b"\x83" + _pack_i64(msg.expiration) if msg.expiration else _NULL,
            b"\x83" + _pack_i64(msg.timestamp) if msg.timestamp else _NULL,
            _str(group) if group is not None else _NULL,
            # proton writes the sequence whenever a group id is set, even when it is 0
            _uint(seq) if seq or group is not None else _NULL,
        ]
    )
    parts = [_MSG_ANNOTATIONS, _map32(ann), _PROPERTIES, properties]
    if app:
        parts.append(_APP_PROPERTIES)
        parts.append(_map32(app))
    parts.append(section)
    return b"".join(parts)
