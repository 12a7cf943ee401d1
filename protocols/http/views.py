"""JSON shapes of the admin API: destinations, messages, connections (pure functions).

A message body is shown as text when it is valid UTF-8, otherwise as base64
(`body_encoding` says which; `text` says whether the producer sent a text message, as
ActiveMQ's TextMessage / BytesMessage); property values that are bytes go as base64
text too, since JSON has no bytes.
"""

from __future__ import annotations

import base64
from typing import Any

from broker.core import DestinationStats, Message, MessageQueue, Subscription


def destination(stats: DestinationStats, *, paused: bool | None, oldest_ms: int | None) -> dict:
    """One destination's counters as the admin API lists them."""
    out: dict[str, Any] = {
        "kind": stats.kind,
        "name": stats.name,
        "depth": stats.depth,
        "pending": stats.depth - stats.inflight,
        "inflight": stats.inflight,
        "consumers": stats.consumers,
        "enqueued": stats.enqueued,
        "dequeued": stats.acked,
        "dispatched": stats.dispatched,
        "redelivered": stats.redelivered,
        "dlq": stats.dlq,
        "expired": stats.expired,
        "discarded": stats.discarded,
        "memory_bytes": stats.memory,
        "oldest_message_age_ms": oldest_ms,
    }
    if paused is not None:
        out["paused"] = paused
    return out


def oldest_timestamp(q: MessageQueue, *, read_stubs: bool) -> int | None:
    """The oldest pending message's timestamp: the lane heads (one per priority) are the
    oldest of each lane. A paged-out head is read back only with `read_stubs` (a
    journal read: the detail view pays it, the list does not)."""
    oldest: int | None = None
    for lane in q.lanes:
        if not lane:
            continue
        head = lane[0]
        if type(head) is int:
            if not read_stubs:
                continue
            ts = q.peek(head).timestamp
        else:
            assert isinstance(head, Message)
            ts = head.timestamp
        if ts and (oldest is None or ts < oldest):
            oldest = ts
    return oldest


def _value(value: object) -> object:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def message(msg: Message) -> dict:
    """A pending message: its headers, properties and body."""
    body = msg.body or b""
    text: str | None
    try:
        text = body.decode()
    except UnicodeDecodeError:
        text = None
    return {
        "id": msg.id,
        "persistent": msg.persistent,
        "priority": msg.priority,
        "timestamp": msg.timestamp,
        "expiration": msg.expiration,
        "redelivered": msg.redelivered,
        "delivery_count": msg.delivery_count,
        "correlation_id": msg.correlation_id,
        "reply_to": str(msg.reply_to) if msg.reply_to is not None else None,
        "type": msg.type,
        "group_id": msg.group_id,
        "content_type": msg.content_type,
        "text": msg.text,
        "properties": {k: _value(v) for k, v in msg.properties.items()},
        "size": len(body),
        "body_encoding": "text" if text is not None else "base64",
        "body": text if text is not None else base64.b64encode(body).decode(),
    }


def consumer(sub: Subscription) -> dict:
    """One consumer of a destination: the connection it came from (`origin`, the
    connection id for STOMP and AMQP; another owner's tag such as SNS's) and its window."""
    return {
        "connection": sub.origin if isinstance(sub.origin, str) else None,
        "ack_mode": sub.ack_mode,
        "prefetch": sub.prefetch,
        "inflight": len(sub.inflight),
        "selector": sub.selector.text if sub.selector is not None else None,
        "priority": sub.priority,
        "exclusive": sub.exclusive,
    }
