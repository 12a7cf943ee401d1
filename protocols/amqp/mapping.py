"""AMQP 1.0 messages and addresses to and from the core's model (ActiveMQ's conventions).

Addresses: ``queue://x`` is queue x, ``topic://x`` topic x, ``temp-queue://x`` and
``temp-topic://x`` temporary ones; a bare name is a queue unless the terminus carries the
``topic`` capability (or ``temporary-queue`` / ``temporary-topic``), or, for a message's
``to`` on the anonymous relay, unless its ``x-opt-jms-dest`` annotation says otherwise
(0 queue, 1 topic, 2 temporary queue, 3 temporary topic). On the way out every address is
written with its prefix (``str(Address)``), so STOMP's ``/queue/x`` is AMQP's
``queue://x`` and a temporary queue keeps its one name on both protocols. A link's
address (and a relay message's ``to``) holding commas is a composite, as ActiveMQ's AMQP
reads it (``queue://a,topic://b,c``): each part with its own prefix, a bare part of the
first part's kind (`parse_composite`).

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
  properties.group-sequence ↔ property JMSXGroupSeq (an int: 2**31 and up are negative)
  properties.user-id        ↔ property JMSXUserID
  properties.content-encoding ↔ property JMS_AMQP_ContentEncoding
  header.delivery-count     ← delivery_count; first-acquirer ← not redelivered
  application-properties    ↔ properties, every value with its AMQP type: string, long,
                              double, boolean, binary and null as str, int, float, bool,
                              bytes and None; byte, short, int, ubyte, ushort, uint,
                              ulong, float, char, timestamp, uuid and symbol as the
                              core's typed values (("uint", 7)...; broker.core.values),
                              which the journal keeps as they are; anything else
                              (decimals, and the lists, maps and arrays the spec does
                              not allow there) as ("amqp", its encoding, its text), sent
                              on re-encoded from that encoding. A STOMP consumer sees
                              each as ActiveMQ's STOMP transport shows the value
                              ActiveMQ's AMQP transformer stores (Java's toString:
                              ``7``, ``1.5``, ``true``, ``null``; a ulong as Java's
                              long; binary as proton-j's Binary.toString, bytes escaped)
                              and a uuid or timestamp, which ActiveMQ cannot take, as
                              its canonical text or its ms; a STOMP header arrives as
                              a string (as in ActiveMQ). Selectors compare numeric
                              types as numbers, a symbol as a string.
  message-annotations: x-opt-jms-dest / x-opt-jms-reply-to (address kinds) and
    x-opt-jms-msg-type (5 text, 3 bytes, 2 map, 4 stream, 0 plain) are written on the
    way out; x-opt-delivery-delay / -time / -period / -repeat / -cron set the
    AMQ_SCHEDULED_* property ActiveMQ's transformer sets (scheduled delivery:
    broker/core/scheduler.py); they and any other scalar annotation (not null, binary
    or uuid) are kept as property JMS_AMQP_MA_<name>, typed as application-properties
    are, and restored as an annotation of its type.
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
whose JMS_AMQP_ORIGINAL_ENCODING header says how to read it (ActiveMQ 5.17.2's STOMP
transport sends a Map or Stream message no body at all: compared live in
tests/openwire/test_jms_bodies.py); a JMS Map or Stream message is kept in this same
form (protocols/openwire/bodies.py). A STOMP text body that is not
valid UTF-8 goes out as a data section.

Both directions have a hand-written codec for the usual shapes, the sans-IO package
protocols.amqp.codec (`encode_header` + `encode_sections` out; `decode_sections` in, made
a core Message by `decode_message` here), that gives exactly what the proton Message path
(`encode_message`, `message_from_amqp`) gives, which stays the fallback for the rest.
"""

from __future__ import annotations

import math
from typing import Any
from uuid import UUID

from cproton import pn_message_get_content_encoding, pn_message_get_content_type
from proton import (
    Data,
    Described,
    byte,
    char,
    float32,
    int32,
    short,
    symbol,
    timestamp,
    ubyte,
    uint,
    ulong,
    ushort,
)
from proton import Message as AmqpMessage

from broker.core import QUEUE, TEMP_QUEUE, TEMP_TOPIC, TOPIC, Address, Message, PropertyValue
from broker.core.errors import DELETED, INVALID, NOT_FOUND, STORE_FULL
from broker.core.scheduler import CRON, DELAY, PERIOD, REPEAT
from protocols.amqp.codec import decode_sections, encode_header, encode_sections
from protocols.amqp.codec.names import (
    DELAYS,
    ENC_BINARY,
    ENC_LIST,
    ENC_MAP,
    ENC_NULL,
    ENC_OTHER,
    ENC_SEQUENCE,
    ENCODING_TYPE,
    KIND_CODES,
    MSG_BYTES,
    MSG_PLAIN,
    MSG_TEXT,
    P_ANNOTATION,
    P_CONTENT_ENCODING,
    P_ENCODING,
    P_GROUP_SEQ,
    P_MESSAGE_ID,
    P_USER_ID,
    RESERVED,
    TTL_MAX,
    format_address,
    kind_of,
)

__all__ = [
    "CAPABILITY_KINDS",
    "CORE_CONDITIONS",
    "ENC_BINARY",
    "ENC_LIST",
    "ENC_NULL",
    "P_ANNOTATION",
    "P_CONTENT_ENCODING",
    "P_ENCODING",
    "P_GROUP_SEQ",
    "P_MESSAGE_ID",
    "P_USER_ID",
    "MappingError",
    "decode_message",
    "destination_of",
    "encode_header",
    "encode_message",
    "encode_sections",
    "format_address",
    "message_from_amqp",
    "parse_address",
    "property_value",
    "proton_value",
]

# The codec knows destination kinds by the core's names.
assert set(KIND_CODES) == {QUEUE, TOPIC, TEMP_QUEUE, TEMP_TOPIC}
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

# CoreError code → the AMQP error condition a refused attach or transfer carries (the
# description is the core's message); a code not here is amqp:internal-error.
CORE_CONDITIONS = {
    NOT_FOUND: "amqp:not-found",
    DELETED: "amqp:resource-deleted",
    INVALID: "amqp:invalid-field",
    STORE_FULL: "amqp:resource-limit-exceeded",  # store_full_policy "fail"
}

JMS_DEST = symbol("x-opt-jms-dest")
JMS_REPLY_TO = symbol("x-opt-jms-reply-to")
JMS_MSG_TYPE = symbol("x-opt-jms-msg-type")


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


def parse_composite(text: str, kind_hint: str | None = None) -> Address | tuple[Address, ...]:
    """An address that may be a composite: its parts (one part: that Address)."""
    if "," not in text:
        return parse_address(text, kind_hint)
    texts = text.split(",")
    if any(not t for t in texts):
        raise MappingError("amqp:invalid-field", f"invalid address {text!r} (an empty part)")
    first = parse_address(texts[0], kind_hint)
    return (first, *(parse_address(t, first.kind) for t in texts[1:]))


def _plain(value: Any) -> str | int | float | bool | bytes:
    """A message-id as JMS_AMQP_MessageId keeps it (untyped, unlike application
    properties: a ulong id as an int, a uuid id as its text; issue 12 left ids as they
    were): proton's ulong, symbol and friends as their base type, anything else as text."""
    if type(value) in (str, int, float, bool, bytes):
        return value  # type: ignore[no-any-return]
    if isinstance(value, memoryview):  # proton hands binary values out as memoryviews
        return bytes(value)
    for base in (bool, int, float, bytes, str):
        if isinstance(value, base):
            return base(value)  # type: ignore[no-any-return]
    return str(value)


# proton's Python classes of AMQP's simple types that Python's own do not name, and the
# core's typed-value names for them (broker.core.values); _FROM_TYPED the way back.
_TYPED = {
    byte: "byte",
    short: "short",
    int32: "int",
    ubyte: "ubyte",
    ushort: "ushort",
    uint: "uint",
    ulong: "ulong",
    float32: "float",
    char: "char",
    timestamp: "timestamp",
    symbol: "symbol",
}
_BASE = {"float": float, "char": str, "symbol": str}
_FROM_TYPED: dict[str, Any] = {name: cls for cls, name in _TYPED.items()}
_FROM_TYPED["uuid"] = lambda raw: UUID(bytes=raw)


def property_value(value: Any) -> PropertyValue:
    """An application-property value as the core keeps it, its AMQP type included: str,
    long, double, boolean, binary and null as Python's own types, the other simple types
    as typed values, anything else (decimals; lists, maps and arrays, which the spec
    does not allow there) as its AMQP encoding and text (broker.core.values)."""
    t = type(value)
    if t is str or t is int or t is float or t is bool or t is bytes or value is None:
        return value  # type: ignore[no-any-return]
    if t is memoryview:  # proton hands binary values out as memoryviews
        return bytes(value)
    name = _TYPED.get(t)
    if name is not None:
        return (name, _BASE.get(name, int)(value))
    if t is UUID:
        return ("uuid", value.bytes)
    enc = Data()
    enc.put_object(value)
    return ("amqp", enc.encode(), str(value))


def proton_value(value: Any) -> Any:
    """A core property value as the proton object that encodes it with its AMQP type."""
    if type(value) is not tuple:
        return value
    name = value[0]
    if name == "amqp":
        dec = Data()
        dec.decode(value[1])
        return dec.get_object()
    return _FROM_TYPED[name](value[1])


def _id_text(value: Any) -> str:
    if isinstance(value, bytes | memoryview):
        value = bytes(value)
        return value.decode("utf-8", "replace")
    return str(value)


# Scheduling annotation -> (the AMQ_SCHEDULED_* property it sets, an integer value?).
_SCHEDULE_ANNOTATIONS = {
    "x-opt-delivery-delay": (DELAY, True),
    "x-opt-delivery-time": (DELAY, True),
    "x-opt-delivery-period": (PERIOD, True),
    "x-opt-delivery-repeat": (REPEAT, True),
    "x-opt-delivery-cron": (CRON, False),
}


def _schedule_annotation(
    name: str, value: Any, props: dict[str, str | int | float | bool | bytes], now_ms: int
) -> None:
    """A scheduling annotation as the AMQ_SCHEDULED_* property ActiveMQ's AMQP
    transformer sets for it: numbers at or below zero (a delivery time not in the
    future) ask for nothing; an application property of the same name wins, since
    ActiveMQ sets the application properties after the annotations."""
    if value is None:
        return
    key, numeric = _SCHEDULE_ANNOTATIONS[name]
    if numeric:
        if not isinstance(value, int) or isinstance(value, bool):
            raise MappingError("amqp:invalid-field", f"{name} must be an integer, got {value!r}")
        number = int(value) - now_ms if name == "x-opt-delivery-time" else int(value)
        if number > 0:
            props.setdefault(key, number)
    elif isinstance(value, str):
        props.setdefault(key, str(value))
    else:
        raise MappingError("amqp:invalid-field", f"{name} must be a string, got {value!r}")


def message_from_amqp(
    pm: AmqpMessage,
    destination: Address,
    *,
    now_ms: int,
    origin: object,
) -> Message:
    """Build the core Message for a received AMQP message (see module docstring)."""
    props: dict[str, PropertyValue] = {}
    app = pm.properties
    if app:
        for key, value in app.items():
            props[str(key)] = property_value(value)
    annotations = pm.annotations
    reply_hint: str | None = None
    msg_type: Any = None
    if annotations:
        for key, value in annotations.items():
            name = str(key)
            if name in DELAYS:
                _schedule_annotation(name, value, props, now_ms)
            if name == "x-opt-jms-reply-to":
                reply_hint = kind_of(value)
            elif name == "x-opt-jms-msg-type":
                msg_type = value
            elif name != "x-opt-jms-dest" and isinstance(value, str | int | float | bytes):
                props[P_ANNOTATION + name] = property_value(value)
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
        # A uint on the wire, a Java int in ActiveMQ (UnsignedInteger.intValue): past
        # 2**31 - 1 it is negative, so 4294967295 is -1, the end of the group.
        seq = int(pm.group_sequence)
        props[P_GROUP_SEQ] = seq - 2**32 if seq >= 2**31 else seq
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
    hint = kind_of((pm.annotations or {}).get(JMS_DEST))
    return parse_address(pm.address, hint)


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
        if key in RESERVED:
            if key == P_ENCODING:
                encoding = value
            continue
        if key.startswith(P_ANNOTATION):
            annotations[symbol(key[len(P_ANNOTATION) :])] = proton_value(value)
        else:
            app[key] = proton_value(value)
    pm.id = props.get(P_MESSAGE_ID, msg.id)
    pm.durable = msg.persistent
    pm.priority = msg.priority
    if msg.timestamp:
        pm.creation_time = _secs(msg.timestamp)
    if msg.expiration:
        pm.expiry_time = _secs(msg.expiration)
        left = msg.expiration - now_ms
        pm.ttl = _secs(min(max(left, 1), TTL_MAX))
    if msg.delivery_count:
        pm.delivery_count = msg.delivery_count
    pm.first_acquirer = not msg.redelivered
    dest = msg.destination
    if dest is not None:
        pm.address = format_address(dest)
        annotations[JMS_DEST] = byte(KIND_CODES.get(dest.kind, 0))
    if msg.reply_to is not None:
        pm.reply_to = format_address(msg.reply_to)
        annotations[JMS_REPLY_TO] = byte(KIND_CODES.get(msg.reply_to.kind, 0))
    if msg.correlation_id is not None:
        pm.correlation_id = msg.correlation_id
    if msg.content_type is not None:
        pm.content_type = msg.content_type
    if msg.group_id is not None:
        pm.group_id = msg.group_id
    if msg.type is not None:
        pm.subject = msg.type
    seq = props.get(P_GROUP_SEQ)
    if isinstance(seq, int) and not isinstance(seq, bool) and -(2**31) <= seq < 2**32:
        pm.group_sequence = seq & 0xFFFFFFFF  # a negative int as the uint it came as
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
        msg_type = ENCODING_TYPE.get(encoding, MSG_PLAIN)
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


def decode_message(
    data: bytes | bytearray, destination: Address | None, *, now_ms: int, origin: object
) -> Message | None:
    """The core Message for a received transfer, as message_from_amqp would build it from
    proton's decoding (None: use that path), through the hand decoder. `destination`
    None means the anonymous relay (the message's `to` and x-opt-jms-dest say where)."""
    d = decode_sections(data, now_ms)
    if d is None:
        return None
    (
        body, props, text, durable, priority, expiration, created, to, to_kind,
        reply, reply_kind, corr, content_type, group, subject,
    ) = d  # fmt: skip
    if destination is None:
        if not to:
            return None  # proton's path refuses it
        destination = parse_address(to, to_kind)
    return Message(
        body,
        destination=destination,
        properties=props,
        persistent=durable,
        priority=priority,
        timestamp=created,
        expiration=expiration,
        text=text,
        correlation_id=corr,
        reply_to=parse_address(reply, reply_kind) if reply else None,
        content_type=content_type,
        group_id=group,
        type=subject,
        origin=origin,
    )
