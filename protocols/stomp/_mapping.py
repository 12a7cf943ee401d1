"""The pure-Python implementation of `protocols.stomp.mapping` (its docstring says what it
does and guarantees). setup.py also compiles this same file with Cython into
`protocols.stomp._mapping_c`; `mapping.py` picks one at import (protocols/stomp/_ext.py).
"""

from __future__ import annotations

from broker.core import QUEUE, TEMP_QUEUE, TEMP_TOPIC, TOPIC, Address, Message, property_text
from protocols.stomp.codec import escaper


class BadHeader(ValueError):
    """A header value the broker cannot accept; the text goes into the ERROR frame."""


FRAME_HEADERS = frozenset(
    {
        "destination",
        "receipt",
        "transaction",
        "content-length",
        "message-id",
        "timestamp",
        "redelivered",
        "subscription",
        "ack",
        "persistent",
        "priority",
        "expires",
        "correlation-id",
        "reply-to",
        "type",
        "content-type",
        "JMSXGroupID",
    }
)

_PREFIXES = (
    ("/queue/", QUEUE),
    ("/topic/", TOPIC),
    ("/remote-temp-queue/", TEMP_QUEUE),
    ("/remote-temp-topic/", TEMP_TOPIC),
)
_ADDRESS_PREFIX = {QUEUE: "/queue/", TOPIC: "/topic/"}


def parse_destination(text: str, conn_id: str) -> Address:
    """A STOMP destination header as the core's Address (see module docstring)."""
    kind, name = QUEUE, text
    for prefix, prefix_kind in _PREFIXES:
        if text.startswith(prefix):
            kind, name = prefix_kind, text[len(prefix) :]
            break
    else:
        if text.startswith("/temp-queue/"):
            kind, name = TEMP_QUEUE, conn_id + ":" + text[len("/temp-queue/") :]
        elif text.startswith("/temp-topic/"):
            kind, name = TEMP_TOPIC, conn_id + ":" + text[len("/temp-topic/") :]
    if not name or (name.endswith(":") and kind in (TEMP_QUEUE, TEMP_TOPIC)):
        raise BadHeader(f"Invalid destination: {text!r}")
    return Address(kind, name)


def parse_composite(text: str, conn_id: str) -> Address | tuple[Address, ...]:
    """A destination header holding a comma as its parts (one part: that Address)."""
    parts = text.split(",")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if any(not part for part in parts):
        raise BadHeader(f"Invalid destination: {text!r} (an empty part of a composite)")
    out = tuple(parse_destination(part, conn_id) for part in parts)
    return out[0] if len(out) == 1 else out


def format_destination(address: Address, conn_id: str) -> str:
    """The Address as this connection names it on the wire."""
    prefix = _ADDRESS_PREFIX.get(address.kind)
    if prefix is not None:
        return prefix + address.name
    own = conn_id + ":"
    if address.name.startswith(own):
        return f"/{address.kind}/{address.name[len(own) :]}"
    return f"/remote-{address.kind}/{address.name}"


def _int_header(headers: dict[str, str], name: str, default: int) -> int:
    value = headers.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise BadHeader(f"Invalid {name} header: {value!r}") from None


def _group_seq(text: str) -> int:
    """JMSXGroupSeq as ActiveMQ reads it (Integer.valueOf: a Java int; ActiveMQ closes
    the connection on anything else, ZoneMQ answers with an ERROR)."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if digits.isascii() and digits.isdigit():
        seq = int(text)
        if -(2**31) <= seq < 2**31:
            return seq
    raise BadHeader(f"Invalid JMSXGroupSeq header: {text!r} (must be a 32-bit integer)")


def message_from_send(
    headers: dict[str, str], body: bytes, destination: Address, conn_id: str, origin: object
) -> Message:
    """Build the core Message for a SEND frame."""
    priority = _int_header(headers, "priority", 4)
    if not 0 <= priority <= 9:
        raise BadHeader(f"Invalid priority header: {priority} (must be 0-9)")
    expiration = _int_header(headers, "expires", 0)
    if expiration < 0:
        raise BadHeader(f"Invalid expires header: {expiration}")
    reply = headers.get("reply-to")
    properties: dict[str, str | int | float | bool | bytes] = {}
    # Most SENDs carry only frame-level headers: issuperset walks the 2-8 headers present,
    # where `headers.keys() - FRAME_HEADERS` built a set walking all 17 frame headers.
    if not FRAME_HEADERS.issuperset(headers):
        properties = {k: v for k, v in headers.items() if k not in FRAME_HEADERS}
        seq = properties.get("JMSXGroupSeq")
        if seq is not None:
            properties["JMSXGroupSeq"] = _group_seq(seq)  # type: ignore[arg-type]
    return Message(
        body,
        destination=destination,
        properties=properties,
        persistent=headers.get("persistent") == "true",
        priority=priority,
        expiration=expiration,
        text="content-length" not in headers,
        correlation_id=headers.get("correlation-id"),
        reply_to=parse_destination(reply, conn_id) if reply else None,
        content_type=headers.get("content-type"),
        group_id=headers.get("JMSXGroupID"),
        type=headers.get("type"),
        origin=origin,
    )


def message_headers(
    msg: Message, conn_id: str, *, group_headers: bool = False
) -> list[tuple[str, str]]:
    """Headers of a MESSAGE frame that are the same for every subscriber of `msg`
    (everything but subscription and ack); `conn_id` only matters for temp names;
    JMSXGroupID and JMSXGroupSeq only with `group_headers`."""
    assert msg.destination is not None
    h: list[tuple[str, str]] = [
        ("message-id", msg.id),
        ("destination", format_destination(msg.destination, conn_id)),
        ("timestamp", str(msg.timestamp)),
        ("expires", str(msg.expiration)),
        ("priority", str(msg.priority)),
    ]
    if msg.redelivered:
        h.append(("redelivered", "true"))
    if msg.persistent:
        h.append(("persistent", "true"))
    if msg.correlation_id is not None:
        h.append(("correlation-id", msg.correlation_id))
    if msg.reply_to is not None:
        h.append(("reply-to", format_destination(msg.reply_to, conn_id)))
    if msg.type is not None:
        h.append(("type", msg.type))
    if msg.content_type is not None:
        h.append(("content-type", msg.content_type))
    props = msg.properties
    if group_headers:
        if msg.group_id is not None:
            h.append(("JMSXGroupID", msg.group_id))
    elif "JMSXGroupSeq" in props:
        props = {k: v for k, v in props.items() if k != "JMSXGroupSeq"}
    for key, value in props.items():
        if key == "originalDestination" and isinstance(value, str) and "://" in value:
            kind, _, name = value.partition("://")
            h.append(("original-destination", format_destination(Address(kind, name), conn_id)))
        else:
            h.append((key, value if type(value) is str else property_text(value)))
    if not msg.text:
        h.append(("content-length", str(len(msg.body))))
    return h


def encode_message_head(
    msg: Message, conn_id: str, version: str, *, group_headers: bool = False
) -> bytes:
    """The header lines of `message_headers`, escaped for `version`, as bytes.

    The per-delivery hot path for queues (each message is encoded once): one f-string
    for the headers every message has, escaping only the values that can need it.
    """
    esc = escaper(version)
    d = msg.destination
    assert d is not None
    prefix = _ADDRESS_PREFIX.get(d.kind)
    dest = prefix + d.name if prefix is not None else format_destination(d, conn_id)
    head = (
        f"message-id:{esc(msg.id)}\ndestination:{esc(dest)}\ntimestamp:{msg.timestamp}\n"
        f"expires:{msg.expiration}\npriority:{msg.priority}\n"
    )
    if msg.redelivered:
        head += "redelivered:true\n"
    if msg.persistent:
        head += "persistent:true\n"
    if (
        msg.properties
        or msg.correlation_id is not None
        or msg.reply_to is not None
        or msg.type is not None
        or msg.content_type is not None
        or msg.group_id is not None
    ):
        # Less common headers: the general path (same order as message_headers).
        rest = message_headers(msg, conn_id, group_headers=group_headers)[5:]
        head += "".join(
            f"{esc(k)}:{esc(v)}\n"
            for k, v in rest
            if k not in ("redelivered", "persistent", "content-length")
        )
    if not msg.text:
        head += f"content-length:{len(msg.body)}\n"
    return head.encode()


def needs_private_encoding(msg: Message) -> bool:
    """True when the MESSAGE headers depend on the receiving connection (temp names)."""
    d = msg.destination
    r = msg.reply_to
    return (d is not None and d.kind in (TEMP_QUEUE, TEMP_TOPIC)) or (
        r is not None and r.kind in (TEMP_QUEUE, TEMP_TOPIC)
    )


def encode_headers(headers: list[tuple[str, str]], version: str) -> bytes:
    """`name:value\\n` lines, escaped for `version` (never for CONNECTED)."""
    # 1.0 has no escapes; its escaper turns CR/LF into spaces so a value cannot split
    # the frame.
    esc = escaper(version)
    return "".join(f"{esc(k)}:{esc(v)}\n" for k, v in headers).encode()
