"""OpenWire messages and destinations ↔ the core's model (broker/core/message.py).

ActiveMQTextMessage        ↔ a text message (text=True; the body is the text in UTF-8,
                             as a STOMP frame without content-length carries it)
ActiveMQBytesMessage       ↔ a bytes message (STOMP content-length, AMQP data section)
Map and Stream messages    ↔ their AMQP encoding (a map, a list) with property
                             JMS_AMQP_ORIGINAL_ENCODING 7 / 3, the AMQP mapping's form
                             (bodies.py), so AMQP consumers get a map amqp-value or an
                             amqp-sequence as ActiveMQ's AMQP transport gives them, and
                             an AMQP map / list (7, 3 or 8) comes to JMS as a Map /
                             Stream message; STOMP consumers get that encoding
                             (ActiveMQ's STOMP sends them no body)
Object, and ActiveMQMessage without a body
                           ↔ their marshalled content as the body, and property
                             JMS_OPENWIRE_MSG_TYPE (1, 0: AMQP's x-opt-jms-msg-type
                             codes), so an OpenWire consumer gets the same kind back; an
                             ObjectMessage has content type
                             application/x-java-serialized-object (ActiveMQ's mark for
                             AMQP), and a bytes message with that content type comes
                             to JMS as an ObjectMessage. A Map or Stream message stored
                             by an earlier version (JMS_OPENWIRE_MSG_TYPE 2 / 4, its
                             marshalled content) still goes out as what it was.
compressed (useCompression)  inflated on the way in, bounded by the frame size limit
destination ↔ queue://, topic://, temp-queue://, temp-topic:// by the structure's
              type; a physical name with commas is a composite (each part may say
              queue:// or topic://, else the first part's kind)
messageId  → kept as property JMS_AMQP_MessageId (the key the AMQP mapping keeps a
             producer's own id under, so AMQP consumers see it as message-id too);
             the core keeps its own id, which keys the journal and in-flight tables,
             so a client never chooses it. A consumer's JMSMessageID is that property
             when it is text, else the core id (what STOMP shows as message-id).
persistent, priority, expiration, timestamp, correlationId, replyTo, type (JMSType)
           ↔ the core fields of the same meaning; groupID ↔ group_id,
             groupSequence ↔ property JMSXGroupSeq (only when a group is set)
properties ↔ properties with their Java types (codec/primitives.py: an int property
             stays ("int", n) through the journal, a long is a Python int), so a
             STOMP consumer sees their text and selectors compare them as numbers
redeliveryCounter ← delivery_count
"""

from __future__ import annotations

import zlib
from typing import Any

from broker.core import QUEUE, TEMP_QUEUE, TEMP_TOPIC, TOPIC, Address, Message
from protocols.openwire import bodies
from protocols.openwire.codec import commands as c
from protocols.openwire.codec import primitives, utf
from protocols.openwire.codec.reader import CodecError

ORIGINAL_ID = "JMS_AMQP_MessageId"
SERIALIZED = "application/x-java-serialized-object"
GROUP_SEQ = "JMSXGroupSeq"

_KINDS: dict[type[c.Destination], str] = {
    c.Queue: QUEUE,
    c.Topic: TOPIC,
    c.TempQueue: TEMP_QUEUE,
    c.TempTopic: TEMP_TOPIC,
}
_CLASSES = {kind: cls for cls, kind in _KINDS.items()}
_PREFIXES = (
    ("queue://", QUEUE),
    ("topic://", TOPIC),
    ("temp-queue://", TEMP_QUEUE),
    ("temp-topic://", TEMP_TOPIC),
)


# The JMS body kind of a Map, Stream, Object or bodyless message, as property
# JMS_OPENWIRE_MSG_TYPE (a byte: the codes of AMQP's x-opt-jms-msg-type).
BODY_KIND = "JMS_OPENWIRE_MSG_TYPE"
_KIND_CODES: dict[type[c.Message], int] = {
    c.Message: 0,
    c.ObjectMessage: 1,
    c.MapMessage: 2,
    c.StreamMessage: 4,
}
_KIND_CLASSES = {code: cls for cls, code in _KIND_CODES.items()}
# JMS_AMQP_ORIGINAL_ENCODING values whose body becomes a Map or Stream message.
_CONVERTED = (bodies.ENC_MAP, bodies.ENC_SEQUENCE, bodies.ENC_LIST)


def address_of(dest: c.Destination) -> Address | tuple[Address, ...]:
    """The core address (or composite) of an OpenWire destination."""
    kind = _KINDS.get(type(dest))
    name = dest.physical_name
    if kind is None or not name:
        raise CodecError(f"invalid destination {dest!r}")
    if "," not in name:
        return Address(kind, name)
    parts: list[Address] = []
    for part in name.split(","):
        part_kind = kind
        for prefix, k in _PREFIXES:
            if part.startswith(prefix):
                part_kind, part = k, part[len(prefix) :]
                break
        if not part:
            raise CodecError(f"invalid destination {name!r} (an empty part of a composite)")
        parts.append(Address(part_kind, part))
    return tuple(parts)


# Every dispatch names its destination and its producer: the same few structures, kept
# (bounded: emptied when full, and only for names of at most _MEMO_NAME characters)
# rather than built per message. Nobody mutates them.
_MEMO_SIZE = 4096
_MEMO_NAME = 256
_DESTINATIONS: dict[Address, c.Destination] = {}
_PRODUCERS: dict[str, c.ProducerId] = {}


def destination_of(address: Address) -> c.Destination:
    dest = _DESTINATIONS.get(address)
    if dest is None:
        dest = _CLASSES[address.kind](physical_name=address.name)
        if len(address.name) <= _MEMO_NAME:
            if len(_DESTINATIONS) >= _MEMO_SIZE:
                _DESTINATIONS.clear()
            _DESTINATIONS[address] = dest
    return dest


def _inflate(data: bytes, limit: int) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise CodecError(f"a compressed body that does not inflate: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise CodecError(f"a compressed body inflates past {limit} bytes")
    return out


def text_of(content: bytes | None, compressed: bool, limit: int) -> str | None:
    """A TextMessage's text: an int length (-1: null) and modified UTF-8."""
    if content is None:
        return None
    if compressed:
        content = _inflate(content, limit)
    if len(content) < 4:
        raise CodecError("a text body shorter than its length")
    n = int.from_bytes(content[:4], "big", signed=True)
    if n < 0:
        return None
    if n > len(content) - 4:
        raise CodecError("a text body shorter than its length")
    return utf.decode(content[4 : 4 + n])


def bytes_of(content: bytes | None, compressed: bool, limit: int) -> bytes:
    """A BytesMessage's body. Compressed, it is the body's length (an int) and a zlib
    stream, of which only that many bytes count: ActiveMQ's client deflates its whole
    output buffer, slack included, and reads back just the length it wrote."""
    if not content:
        return b""
    if not compressed:
        return content
    if len(content) < 4:
        raise CodecError("a compressed body shorter than its length")
    length = int.from_bytes(content[:4], "big", signed=True)
    if not 0 <= length <= limit:
        raise CodecError(f"a compressed body of {length} bytes (the limit is {limit})")
    try:
        body = zlib.decompressobj().decompress(content[4:], length)
    except zlib.error as exc:
        raise CodecError(f"a compressed body that does not inflate: {exc}") from None
    if len(body) != length:
        raise CodecError("a compressed body shorter than its length")
    return body


def message_from(m: c.Message, address: Address, origin: object, *, limit: int) -> Message:
    """The core Message for an OpenWire message sent to `address`."""
    t = type(m)
    if t is c.TextMessage:
        text = text_of(m.content, m.compressed, limit)
        body = (text or "").encode("utf-8", "surrogatepass")
        is_text = True
    elif t is c.BytesMessage:
        body = bytes_of(m.content, m.compressed, limit)
        is_text = False
    else:
        # Object and a bodyless Message keep their marshalled content (as the client
        # wrote it, inflated) and their kind, for OpenWire consumers; Map and Stream
        # bodies are kept as AMQP's map and list (bodies.py).
        body = (_inflate(m.content, limit) if m.compressed else m.content) if m.content else b""
        is_text = False
        if t is c.MapMessage or t is c.StreamMessage:
            conv = bodies.map_to_amqp if t is c.MapMessage else bodies.stream_to_amqp
            body = conv(body)
    props: dict[str, Any] = {}
    if m.properties:
        decoded = primitives.decode_map(m.properties)
        if decoded:
            for key, value in decoded.items():
                if type(value) in (dict, list):
                    raise CodecError(f"property {key!r} is a {type(value).__name__}")
                props[key] = value
    content_type = None
    if t is c.MapMessage:
        props[bodies.ENCODING] = bodies.ENC_MAP
    elif t is c.StreamMessage:
        props[bodies.ENCODING] = bodies.ENC_SEQUENCE
    else:
        kind = _KIND_CODES.get(t)
        if kind is not None:
            props[BODY_KIND] = ("byte", kind)
            if t is c.ObjectMessage:
                # As ActiveMQ's AMQP transformer marks a serialized object.
                content_type = SERIALIZED
    if m.message_id is not None:
        text = m.message_id.text()
        # As Java's MessageId.toString: an id is always shown with its "ID:".
        props[ORIGINAL_ID] = text if text.startswith("ID:") else "ID:" + text
    if m.group_id is not None:
        props[GROUP_SEQ] = m.group_sequence
    reply = m.reply_to
    reply_to = None
    if reply is not None:
        r = address_of(reply)
        if type(r) is tuple:
            raise CodecError("a composite reply-to")
        reply_to = r  # type: ignore[assignment]
    priority = m.priority if 0 <= m.priority <= 9 else 4
    return Message(
        body,
        destination=address,
        properties=props,
        persistent=m.persistent,
        priority=priority,
        timestamp=m.timestamp,
        expiration=max(m.expiration, 0),
        text=is_text,
        correlation_id=m.correlation_id,
        reply_to=reply_to,
        group_id=m.group_id,
        type=m.type,
        origin=origin,
        content_type=content_type,
    )


def message_id_of(msg: Message) -> c.MessageId:
    """The MessageId a consumer sees: its text is the producer's id (JMS_AMQP_MessageId)
    or the core id; its producer and sequence (what the JMS client's duplicate audit
    and equality compare) come from that text as ActiveMQ's MessageId parses it, or
    stand for the core id when the text does not parse."""
    original = msg.properties.get(ORIGINAL_ID)
    text = original if type(original) is str else msg.id
    # <connection id>:<session>:<producer>:<sequence>, the connection id itself
    # holding colons.
    producer, _, seq = text.rpartition(":")
    pid = _PRODUCERS.get(producer)
    if pid is not None and seq.isdigit():
        return c.MessageId(text_view=text, producer_id=pid, producer_sequence_id=int(seq))
    session, _, producer_num = producer.rpartition(":")
    connection, _, session_num = session.rpartition(":")
    if seq.isdigit() and producer_num.isdigit() and session_num.isdigit() and connection:
        pid = c.ProducerId(
            connection_id=connection, session_id=int(session_num), value=int(producer_num)
        )
        if len(producer) <= _MEMO_NAME:
            if len(_PRODUCERS) >= _MEMO_SIZE:
                _PRODUCERS.clear()
            _PRODUCERS[producer] = pid
        return c.MessageId(text_view=text, producer_id=pid, producer_sequence_id=int(seq))
    # The core's ids are <prefix>-<n>: n numbers them within one broker start.
    prefix, _, n = text.rpartition("-")
    pid = c.ProducerId(connection_id=prefix or text, session_id=0, value=0)
    return c.MessageId(
        text_view=text, producer_id=pid, producer_sequence_id=int(n) if n.isdigit() else 0
    )


def openwire_message(msg: Message) -> c.Message:
    """The OpenWire message for a core Message (see the module docstring)."""
    assert msg.destination is not None
    props: dict[str, Any] = {}
    group_seq = 0
    kind_class: type[c.Message] | None = None
    encoding = None
    for key, value in msg.properties.items():
        if key == ORIGINAL_ID:
            continue
        if key == bodies.ENCODING and value in _CONVERTED:
            encoding = value
            continue
        if key == BODY_KIND:
            kind_class = _KIND_CLASSES.get(value[1] if type(value) is tuple else value)
            if kind_class is not None:
                continue
        if key == GROUP_SEQ and msg.group_id is not None:
            if type(value) is int:
                group_seq = value
            continue
        props[key] = value
    out: c.Message
    if encoding is not None:
        try:
            if encoding == bodies.ENC_MAP:
                out = c.MapMessage(content=bodies.amqp_to_map(msg.body))
            else:
                out = c.StreamMessage(content=bodies.amqp_to_stream(msg.body))
        except CodecError:
            # A body JMS cannot hold (nested past primitives.MAX_DEPTH): its AMQP
            # encoding as bytes, the property saying what it is.
            props[bodies.ENCODING] = encoding
            out = c.BytesMessage(content=msg.body)
    elif kind_class is not None:
        out = kind_class(content=msg.body or None)
    elif msg.content_type == SERIALIZED and not msg.text:
        out = c.ObjectMessage(content=msg.body or None)
    elif msg.text:
        data = utf.encode(msg.body.decode("utf-8", "replace"))
        out = c.TextMessage(content=len(data).to_bytes(4, "big") + data)
    else:
        out = c.BytesMessage(content=msg.body)
    out.destination = destination_of(msg.destination)
    out.message_id = message_id_of(msg)
    out.producer_id = out.message_id.producer_id
    out.persistent = msg.persistent
    out.priority = msg.priority
    out.timestamp = msg.timestamp
    out.expiration = msg.expiration
    out.correlation_id = msg.correlation_id
    if msg.reply_to is not None:
        out.reply_to = destination_of(msg.reply_to)
    out.type = msg.type
    out.group_id = msg.group_id
    out.group_sequence = group_seq
    out.redelivery_counter = msg.delivery_count
    if props:
        out.properties = primitives.encode_map(props)
    return out
