"""STOMP frames to and from the core's message model, following ActiveMQ 5.x conventions.

Destinations: ``/queue/x`` is queue x, ``/topic/x`` topic x, a name without a prefix is a
queue; ``/temp-queue/x`` and ``/temp-topic/x`` name a temporary destination of the
sending connection, stored in the core as ``<connection id>:x``; other connections see
it (e.g. in ``reply-to``) as ``/remote-temp-queue/<connection id>:x`` and may send to it.
A comma-separated list is a composite destination (``/queue/a,/topic/b``): each part
with its own prefix, a part without one a queue (as ActiveMQ's STOMP, whatever the first
part is), a trailing comma ignored (ActiveMQ too); see `parse_composite`.

SEND headers onto a Message:
  destination → destination            persistent:true → persistent (default false)
  priority (0–9, default 4) → priority  expires (ms since epoch, 0 = never) → expiration
  correlation-id → correlation_id       reply-to → reply_to (a destination)
  type → type                           content-type → content_type
  JMSXGroupID → group_id                content-length present → bytes message, else text
  JMSXGroupSeq → the int property JMSXGroupSeq (ActiveMQ keeps it as an int)
  receipt, transaction, content-length, message-id, timestamp, redelivered, subscription
  and ack are frame-level and not stored; every other header becomes a string property
  (AMQ_SCHEDULED_DELAY / _PERIOD / _REPEAT become ints once broker.core.schedule_of has
  checked them, as ActiveMQ types them Long / Integer: see connection.py).

MESSAGE frames carry, as ActiveMQ 5.17 does: message-id, destination, subscription (when
the SUBSCRIBE had an id), ack (1.2, client and client-individual only), timestamp,
expires (0 = never), priority, redelivered:true and persistent:true only when true,
correlation-id, reply-to, type, content-type, the properties as headers (a value that is
not a string as ActiveMQ's STOMP transport writes it, Java's toString: broker.core.values
`property_text`; AMQP's typed values as ActiveMQ's AMQP transformer stores them), content-length
for bytes messages only (a text message has none), and on dead-lettered messages
original-destination, originalExpiration and (expired ones) dlqDeliveryFailureCause.
Not JMSXGroupID nor JMSXGroupSeq, which ActiveMQ keeps as message fields and its STOMP
translator does not copy, unless `group_headers` (listeners.stomp.group_headers).

The code is `_mapping.py`; as for the codec, setup.py compiles the same file into
`_mapping_c` and this module exports one of the two (``IMPLEMENTATION``).
"""

from typing import TYPE_CHECKING

from protocols.stomp import _ext

_impl, _compiled = _ext.load("protocols.stomp._mapping_c", "protocols.stomp._mapping")

#: "compiled" (Cython) or "python": which implementation the names below are.
IMPLEMENTATION: str = "compiled" if _compiled else "python"

if TYPE_CHECKING:
    # Type checkers read the pure module; both have the same names and signatures.
    from protocols.stomp._mapping import (
        FRAME_HEADERS,
        BadHeader,
        encode_headers,
        encode_message_head,
        format_destination,
        message_from_send,
        message_headers,
        needs_private_encoding,
        parse_composite,
        parse_destination,
    )
else:
    BadHeader = _impl.BadHeader
    FRAME_HEADERS = _impl.FRAME_HEADERS
    encode_headers = _impl.encode_headers
    encode_message_head = _impl.encode_message_head
    format_destination = _impl.format_destination
    message_from_send = _impl.message_from_send
    message_headers = _impl.message_headers
    needs_private_encoding = _impl.needs_private_encoding
    parse_composite = _impl.parse_composite
    parse_destination = _impl.parse_destination

__all__ = [
    "FRAME_HEADERS",
    "IMPLEMENTATION",
    "BadHeader",
    "encode_headers",
    "encode_message_head",
    "format_destination",
    "message_from_send",
    "message_headers",
    "needs_private_encoding",
    "parse_composite",
    "parse_destination",
]
