"""AMQP 1.0 messages and addresses to and from the core's model (ActiveMQ's conventions).

Addresses: ``queue://x`` is queue x, ``topic://x`` topic x, ``temp-queue://x`` and
``temp-topic://x`` temporary ones; a bare name is a queue unless the terminus carries the
``topic`` capability (or ``temporary-queue`` / ``temporary-topic``), or, for a message's
``to`` on the anonymous relay, unless its ``x-opt-jms-dest`` annotation says otherwise
(0 queue, 1 topic, 2 temporary queue, 3 temporary topic). On the way out every address is
written with its prefix (``str(Address)``), so STOMP's ``/queue/x`` is AMQP's
``queue://x`` and a temporary queue keeps its one name on both protocols.

Message mapping, AMQP → core (inbound) and core → AMQP (outbound):

  header.durable            ↔ persistent (STOMP persistent:true)
  header.priority           ↔ priority (clamped to 0–9 inbound)
  header.ttl                → expiration = arrival + ttl; outbound ttl = time left
  properties.absolute-expiry-time ↔ expiration (wins over ttl when both are set)
  properties.creation-time  ↔ timestamp
  properties.message-id     → kept in property JMS_AMQP_MessageId (see below);
                              outbound message-id = that property, else the core id
  properties.correlation-id ↔ correlation_id (non-string ids as their text)
  properties.reply-to       ↔ reply_to (an address, as above; x-opt-jms-reply-to hints)
  properties.to             ← destination (inbound only for the anonymous relay)
  properties.subject        ↔ type (JMSType; STOMP's ``type`` header)
  properties.content-type   ↔ content_type
  properties.group-id       ↔ group_id (STOMP JMSXGroupID)
  properties.group-sequence ↔ property JMSXGroupSeq
  properties.user-id        ↔ property JMSXUserID
  properties.content-encoding ↔ property JMS_AMQP_ContentEncoding
  header.delivery-count     ← delivery_count; first-acquirer ← not redelivered
  application-properties    ↔ properties (str/int/float/bool/bytes; other AMQP simple
                              types such as symbol, uuid, timestamp arrive as str/int)
  message-annotations: x-opt-jms-dest / x-opt-jms-reply-to (address kinds) and
    x-opt-jms-msg-type (5 text, 3 bytes, 2 map, 4 stream, 0 plain) are written on the
    way out; x-opt-delivery-delay / x-opt-delivery-time are refused (the core has no
    scheduled delivery yet); any other scalar annotation is kept as property
    JMS_AMQP_MA_<name> and restored as an annotation.
  delivery-annotations and footer are not kept.

The core keeps its own message id (it keys the journal and the in-flight tables, so a
client may not choose it); the id an AMQP producer gave is kept in JMS_AMQP_MessageId and
is what AMQP consumers see as message-id, so JMS-style request/reply correlation works.
STOMP consumers see the core id in ``message-id`` and the original in that header.

Bodies: amqp-value string ↔ text message (STOMP frame without content-length); one data
section ↔ bytes message (STOMP content-length). Every other body keeps its AMQP encoding
so an AMQP consumer gets exactly what was sent: the core body is the AMQP-encoded value
(amqp-value of binary, map, list or any other type, or the list of an amqp-sequence) and
property JMS_AMQP_ORIGINAL_ENCODING records the section (ActiveMQ's codes: 1 no body,
3 amqp-sequence, 6 binary value, 7 map value, 8 list value, 0 any other value). A STOMP
consumer receives such a message as a bytes message whose body is that AMQP encoding and
whose JMS_AMQP_ORIGINAL_ENCODING header says how to read it, much as ActiveMQ hands an
untransformed MapMessage to STOMP as its marshalled bytes. A STOMP text body that is not
valid UTF-8 goes out as a data section.

Both directions have a hand-written codec for the usual shapes (`encode_header` +
`encode_sections`, `decode_message`) that gives exactly what the proton Message path
(`encode_message`, `message_from_amqp`) gives, which stays the fallback for the rest.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from cproton import pn_message_get_content_encoding, pn_message_get_content_type
from proton import Data, Described, byte, symbol
from proton import Message as AmqpMessage

from broker.core import QUEUE, TEMP_QUEUE, TEMP_TOPIC, TOPIC, Address, Message

# x-opt-jms-dest / x-opt-jms-reply-to values (Qpid JMS, ActiveMQ).
_KIND_CODES = {QUEUE: 0, TOPIC: 1, TEMP_QUEUE: 2, TEMP_TOPIC: 3}
_CODE_KINDS = {v: k for k, v in _KIND_CODES.items()}
_PREFIXES = (
    ("queue://", QUEUE),
    ("topic://", TOPIC),
    ("temp-queue://", TEMP_QUEUE),
    ("temp-topic://", TEMP_TOPIC),
)
CAPABILITY_KINDS = {
    "queue": QUEUE,
    "topic": TOPIC,
    "temporary-queue": TEMP_QUEUE,
    "temporary-topic": TEMP_TOPIC,
}

JMS_DEST = symbol("x-opt-jms-dest")
JMS_REPLY_TO = symbol("x-opt-jms-reply-to")
JMS_MSG_TYPE = symbol("x-opt-jms-msg-type")
_DELAYS = ("x-opt-delivery-delay", "x-opt-delivery-time")
MSG_PLAIN, MSG_MAP, MSG_BYTES, MSG_STREAM, MSG_TEXT = 0, 2, 3, 4, 5

# Reserved properties carrying AMQP fields the core has no slot for.
P_MESSAGE_ID = "JMS_AMQP_MessageId"
P_ENCODING = "JMS_AMQP_ORIGINAL_ENCODING"
P_CONTENT_ENCODING = "JMS_AMQP_ContentEncoding"
P_GROUP_SEQ = "JMSXGroupSeq"
P_USER_ID = "JMSXUserID"
P_ANNOTATION = "JMS_AMQP_MA_"
# JMS_AMQP_ORIGINAL_ENCODING values (ActiveMQ's AmqpMessageSupport codes).
ENC_OTHER, ENC_NULL, ENC_SEQUENCE, ENC_BINARY, ENC_MAP, ENC_LIST = 0, 1, 3, 6, 7, 8
_ENCODING_TYPE = {
    ENC_NULL: MSG_PLAIN,
    ENC_SEQUENCE: MSG_STREAM,
    ENC_BINARY: MSG_BYTES,
    ENC_MAP: MSG_MAP,
    ENC_LIST: MSG_STREAM,
}
_RESERVED = frozenset({P_MESSAGE_ID, P_ENCODING, P_CONTENT_ENCODING, P_GROUP_SEQ, P_USER_ID})


class MappingError(ValueError):
    """A message or address the broker cannot take; `condition` is the AMQP error name."""

    def __init__(self, condition: str, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description


def parse_address(text: str, kind_hint: str | None = None) -> Address:
    """An AMQP address as the core's Address; `kind_hint` types a bare name."""
    kind, name = kind_hint or QUEUE, text
    for prefix, prefix_kind in _PREFIXES:
        if text.startswith(prefix):
            kind, name = prefix_kind, text[len(prefix) :]
            break
    if not name:
        raise MappingError("amqp:invalid-field", f"invalid address {text!r}")
    return Address(kind, name)


def format_address(address: Address) -> str:
    return f"{address.kind}://{address.name}"


def _kind_of(code: Any) -> str | None:
    return _CODE_KINDS.get(code) if isinstance(code, int) else None


def _plain(value: Any) -> str | int | float | bool | bytes:
    """An AMQP simple value as one the core's properties hold: proton's ulong, symbol,
    float32 and friends subclass the Python types and are stored as their base type;
    anything else (uuid, timestamp, decimal, char) as its text."""
    if type(value) in (str, int, float, bool, bytes):
        return value  # type: ignore[no-any-return]
    if isinstance(value, memoryview):  # proton hands binary values out as memoryviews
        return bytes(value)
    for base in (bool, int, float, bytes, str):
        if isinstance(value, base):
            return base(value)  # type: ignore[no-any-return]
    return str(value)


def _id_text(value: Any) -> str:
    if isinstance(value, bytes | memoryview):
        value = bytes(value)
        return value.decode("utf-8", "replace")
    return str(value)


def message_from_amqp(
    pm: AmqpMessage,
    destination: Address,
    *,
    now_ms: int,
    origin: object,
) -> Message:
    """Build the core Message for a received AMQP message (see module docstring)."""
    props: dict[str, str | int | float | bool | bytes] = {}
    app = pm.properties
    if app:
        for key, value in app.items():
            props[str(key)] = _plain(value)
    annotations = pm.annotations
    reply_hint: str | None = None
    msg_type: Any = None
    if annotations:
        for key, value in annotations.items():
            name = str(key)
            if name in _DELAYS:
                if value:
                    raise MappingError(
                        "amqp:not-implemented", "scheduled delivery is not supported yet"
                    )
            elif name == "x-opt-jms-reply-to":
                reply_hint = _kind_of(value)
            elif name == "x-opt-jms-msg-type":
                msg_type = value
            elif name != "x-opt-jms-dest" and isinstance(value, str | int | float | bytes):
                props[P_ANNOTATION + name] = _plain(value)
    body = pm.body
    text = False
    if isinstance(body, str):
        data = body.encode()
        text = True
    elif isinstance(body, bytes | memoryview):
        data = bytes(body)
        if not pm.inferred:
            props[P_ENCODING] = ENC_BINARY
    elif body is None:
        data = b""
        if msg_type == MSG_TEXT:
            text = True
        else:
            props[P_ENCODING] = ENC_NULL
    else:
        enc = Data()
        enc.put_object(body)
        data = enc.encode()
        if isinstance(body, dict):
            props[P_ENCODING] = ENC_MAP
        elif isinstance(body, list):
            props[P_ENCODING] = ENC_SEQUENCE if pm.inferred else ENC_LIST
        else:
            props[P_ENCODING] = ENC_OTHER
    if pm.id is not None:
        mid = pm.id
        props[P_MESSAGE_ID] = _plain(mid)
    if pm.group_sequence:
        props[P_GROUP_SEQ] = int(pm.group_sequence)
    if pm.user_id:
        props[P_USER_ID] = _id_text(pm.user_id)
    # Read through the C API: proton's getters make an absent symbol symbol("None").
    cenc = pn_message_get_content_encoding(pm._msg)
    if cenc:
        props[P_CONTENT_ENCODING] = cenc
    expiration = 0
    # proton gives seconds as ms / 1000: round() gets the exact ms back (int() may not)
    if pm.expiry_time:
        expiration = round(pm.expiry_time * 1000)
    elif pm.ttl:
        expiration = now_ms + round(pm.ttl * 1000)
    reply = pm.reply_to
    corr = pm.correlation_id
    return Message(
        data,
        destination=destination,
        properties=props,
        persistent=pm.durable,
        priority=min(pm.priority, 9),
        timestamp=round(pm.creation_time * 1000),
        expiration=expiration,
        text=text,
        correlation_id=_id_text(corr) if corr is not None else None,
        reply_to=parse_address(reply, reply_hint) if reply else None,
        content_type=pn_message_get_content_type(pm._msg) or None,
        group_id=pm.group_id or None,
        type=pm.subject or None,
        origin=origin,
    )


def destination_of(pm: AmqpMessage) -> Address:
    """Where a message sent on the anonymous relay goes: its `to` address."""
    if not pm.address:
        raise MappingError(
            "amqp:precondition-failed", "anonymous relay message without a 'to' address"
        )
    hint = _kind_of((pm.annotations or {}).get(JMS_DEST))
    return parse_address(pm.address, hint)


# ttl is a uint of milliseconds: an expiration over 49 days away is written as the most it
# can say (the absolute-expiry-time beside it is exact).
_TTL_MAX = 2**32 - 1


def _secs(ms: int) -> float:
    """`ms` as the seconds proton's setters take: they store int(secs * 1000), which for
    ms / 1000 is sometimes one below ms, so step up to the next float when it would be."""
    secs = ms / 1000
    if int(secs * 1000) != ms:
        secs = math.nextafter(secs, math.inf)
    return secs


def encode_message(pm: AmqpMessage, msg: Message, now_ms: int) -> bytes:
    """The wire form of `msg` for an AMQP consumer, built through proton's Message (the
    general path; `encode_header` + `encode_sections` are the fast one for the usual
    shapes); `pm` is a scratch Message to reuse."""
    pm.clear()
    props = msg.properties
    annotations: dict[symbol, Any] = {}
    app: dict[str, Any] = {}
    encoding: Any = None
    for key, value in props.items():
        if key in _RESERVED:
            if key == P_ENCODING:
                encoding = value
            continue
        if key.startswith(P_ANNOTATION):
            annotations[symbol(key[len(P_ANNOTATION) :])] = value
        else:
            app[key] = value
    pm.id = props.get(P_MESSAGE_ID, msg.id)
    pm.durable = msg.persistent
    pm.priority = msg.priority
    if msg.timestamp:
        pm.creation_time = _secs(msg.timestamp)
    if msg.expiration:
        pm.expiry_time = _secs(msg.expiration)
        left = msg.expiration - now_ms
        pm.ttl = _secs(min(max(left, 1), _TTL_MAX))
    if msg.delivery_count:
        pm.delivery_count = msg.delivery_count
    pm.first_acquirer = not msg.redelivered
    dest = msg.destination
    if dest is not None:
        pm.address = format_address(dest)
        annotations[JMS_DEST] = byte(_KIND_CODES.get(dest.kind, 0))
    if msg.reply_to is not None:
        pm.reply_to = format_address(msg.reply_to)
        annotations[JMS_REPLY_TO] = byte(_KIND_CODES.get(msg.reply_to.kind, 0))
    if msg.correlation_id is not None:
        pm.correlation_id = msg.correlation_id
    if msg.content_type is not None:
        pm.content_type = msg.content_type
    if msg.group_id is not None:
        pm.group_id = msg.group_id
    if msg.type is not None:
        pm.subject = msg.type
    seq = props.get(P_GROUP_SEQ)
    if isinstance(seq, int) and not isinstance(seq, bool):
        pm.group_sequence = seq
    user = props.get(P_USER_ID)
    if isinstance(user, str):
        pm.user_id = user.encode()
    cenc = props.get(P_CONTENT_ENCODING)
    if isinstance(cenc, str):
        pm.content_encoding = cenc
    body = msg.body
    if type(body) is not bytes:
        body = bytes(body)  # e.g. a memoryview slice of a STOMP frame
    if encoding is None:
        if msg.text:
            try:
                pm.body = body.decode()
                msg_type = MSG_TEXT
            except UnicodeDecodeError:
                pm.body, pm.inferred, msg_type = body, True, MSG_BYTES
        else:
            pm.body, pm.inferred, msg_type = body, True, MSG_BYTES
    else:
        msg_type = _ENCODING_TYPE.get(encoding, MSG_PLAIN)
        if encoding == ENC_NULL:
            pm.body = None
        elif encoding == ENC_BINARY:
            pm.body, pm.inferred = body, False
        else:
            dec = Data()
            dec.decode(body)
            value = dec.get_object()
            if isinstance(value, Described) or encoding != ENC_SEQUENCE:
                pm.body = value
            else:
                pm.body, pm.inferred = value, True
    annotations[JMS_MSG_TYPE] = byte(msg_type)
    pm.annotations = annotations
    pm.properties = app or None
    return pm.encode()


# -- the fast outbound path: the usual message shapes encoded by hand ---------------------
#
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
_addresses: dict[Address, tuple[bytes, bytes]] = {}


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
    raise _Unusual(value)


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


def encode_header(msg: Message, now_ms: int) -> bytes | None:
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
    ttl = min(max(msg.expiration - now_ms, 1), _TTL_MAX)
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


def encode_sections(msg: Message) -> bytes | None:
    """Every section after the header (message-annotations, properties,
    application-properties, body): the same for every delivery of `msg`, so it is encoded
    once and shared. None when `msg` needs proton's general path."""
    try:
        return _sections(msg)
    except (_Unusual, UnicodeEncodeError):
        return None


def _address_parts(address: Address) -> tuple[bytes, bytes]:
    """(the x-opt-jms-dest / x-opt-jms-reply-to value, the encoded address string) of an
    address: the same for every message to it, so kept (a bounded cache)."""
    parts = _addresses.get(address)
    if parts is None:
        parts = (
            b"\x51" + bytes((_KIND_CODES.get(address.kind, 0),)),
            _str(format_address(address)),
        )
        if len(_addresses) >= 4096:
            _addresses.clear()
        _addresses[address] = parts
    return parts


def _sections(msg: Message) -> bytes | None:
    props = msg.properties
    extra: dict[str, bytes] | None = None  # annotations kept as JMS_AMQP_MA_* properties
    app: list[bytes] = []
    encoding: Any = None
    if props:
        for key, value in props.items():
            if key in _RESERVED:
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


# -- the fast inbound path: the usual message shapes decoded by hand ----------------------
#
# proton's Message.decode plus a getter call per field cost more than everything else on
# the receiving side, so `decode_message` reads the sections itself and builds the core
# Message exactly as `message_from_amqp` would from proton's decoding. It returns None for
# anything it does not take on (descriptors other than small ulongs, several data
# sections, sequence or structured value bodies, uuid/decimal/array/list/map values,
# scheduled delivery annotations, a relay message without `to`, ids proton would turn into
# other types) and the caller goes through proton.

_unpack_u32 = struct.Struct(">I").unpack_from
_unpack_u32x2 = struct.Struct(">II").unpack_from
_unpack_i64 = struct.Struct(">q").unpack_from
_unpack_u64 = struct.Struct(">Q").unpack_from
_unpack_i32 = struct.Struct(">i").unpack_from
_unpack_f64 = struct.Struct(">d").unpack_from
_unpack_f32 = struct.Struct(">f").unpack_from
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


def _entries(buf: bytes, pos: int) -> tuple[list[tuple[Any, Any, Any, Any]], int]:
    count, pos, end = _compound(buf, pos, 0xC1)
    if count & 1:
        raise _Unusual("odd map")
    items = []
    for _ in range(count // 2):
        key, key_kind, pos = _read(buf, pos)
        value, kind, pos = _read(buf, pos)
        items.append((key, key_kind, value, kind))
    if pos != end:
        raise _Unusual("map size")
    return items, end


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


def decode_message(
    data: bytes | bytearray, destination: Address | None, *, now_ms: int, origin: object
) -> Message | None:
    """The core Message for a received transfer, as message_from_amqp would build it from
    proton's decoding (None: use that path). `destination` None means the anonymous relay
    (the message's `to` and x-opt-jms-dest say where it goes)."""
    try:
        return _decode(bytes(data), destination, now_ms, origin)
    except (_Unusual, IndexError, struct.error, UnicodeDecodeError):
        return None


def _decode(buf: bytes, destination: Address | None, now_ms: int, origin: object) -> Message | None:
    header: tuple[bool, int, int] = _DEFAULT_HEADER
    annotations: _Annotations = _NO_ANNOTATIONS
    fields: list[Any] = []
    field_kinds: list[Any] = []
    app: list[tuple[Any, Any, Any, Any]] = []
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
            app, pos = _entries(buf, pos)
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

    props: dict[str, str | int | float | bool | bytes] = {}
    for key, key_kind, value, _kind in app:
        if key_kind is not _STRING or value is None:
            raise _Unusual("application property")  # proton's path makes None "None"
        props[key] = value
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
        if destination is None:
            raise _Unusual("to")  # proton's path refuses it
        return Message(
            data,
            destination=destination,
            properties=props,
            persistent=durable,
            priority=priority,
            expiration=expiration,
            text=text,
            origin=origin,
        )
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
    if destination is None:
        if not to:
            raise _Unusual("to")  # proton's path refuses it
        destination = parse_address(to, dest_hint)
    return Message(
        data,
        destination=destination,
        properties=props,
        persistent=durable,
        priority=priority,
        timestamp=created or 0,
        expiration=expiry or expiration,
        text=text,
        correlation_id=corr,
        reply_to=parse_address(reply, reply_hint) if reply else None,
        content_type=ctype or None,
        group_id=group or None,
        type=subject or None,
        origin=origin,
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
        entries, _ = _entries(buf, pos)
        kept: list[tuple[str, Any]] = []
        reply_hint: str | None = None
        dest_hint: str | None = None
        msg_type: Any = None
        for key, key_kind, value, kind in entries:
            if key_kind is not _SYMBOL:
                raise _Unusual("annotation key")
            if key in _DELAYS:
                raise _Unusual("delay")  # refused (or not) by proton's path
            if key == "x-opt-jms-reply-to":
                reply_hint = _kind_of(value)
            elif key == "x-opt-jms-msg-type":
                msg_type = value
            elif key == "x-opt-jms-dest":
                dest_hint = _kind_of(value)
            elif value is not None and kind is not _BINARY:
                kept.append((P_ANNOTATION + key, value))
        meaning = (tuple(kept), reply_hint, dest_hint, msg_type)
        if len(_annotation_cache) >= 1024:
            _annotation_cache.clear()
        _annotation_cache[raw] = meaning
    return meaning, end
