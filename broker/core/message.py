"""The broker's message model, shared by every protocol.

A Message is owned by exactly one place at a time when it sits on a queue, so the core
mutates its delivery state there. A topic shares one Message object among all its
subscribers; such a message is never mutated: redelivery and dead-lettering work on a
copy (`redelivery_copy`, `copy`). Protocols may cache encoded bytes in `wire`, which a
copy does not inherit.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from broker.core.values import PropertyValue

# What a queued message costs beyond its body and headers (the object and its slots, its
# properties dict, its id): counted in `Message.size` so that a queue's memory gauge and
# limit see many small messages for what they weigh (issue 10).
MESSAGE_OVERHEAD = 256
# A property value that is not text or bytes (typed values too) is counted as this many
# bytes.
_SCALAR = 8

QUEUE = "queue"
TOPIC = "topic"
TEMP_QUEUE = "temp-queue"
TEMP_TOPIC = "temp-topic"
# The private queue of a durable topic subscription (broker/core/durable.py): never a
# destination a client names, only the key its journal records are kept under.
DURABLE = "durable"


class Address(NamedTuple):
    """A destination's kind (queue, topic, temp-queue, temp-topic) and name."""

    kind: str
    name: str

    @property
    def is_queue(self) -> bool:
        return self.kind == QUEUE or self.kind == TEMP_QUEUE

    def __str__(self) -> str:
        return f"{self.kind}://{self.name}"


class Message:
    """One message: immutable content plus the delivery state the core keeps for it.

    `text` records whether the producer sent text (ActiveMQ's TextMessage) or bytes
    (BytesMessage); protocols preserve it on the way out. Times are ms since the epoch;
    `expiration` 0 means never.

    `size` (what the message holds in memory: body, headers and properties, and
    MESSAGE_OVERHEAD) and `head` (the headers and properties alone: what stays in memory
    when the body is paged out) are computed once, here; queues count them, never
    recount them, so they stay what they were when the message was made (a copy that
    gains properties keeps its original's figures, which is what its queue counted).
    Text is counted by characters, not encoded bytes: an estimate of the same order.
    """

    __slots__ = (
        "body",
        "content_type",
        "correlation_id",
        "delivery_count",
        "destination",
        "expiration",
        "group_id",
        "head",
        "id",
        "origin",
        "persistent",
        "priority",
        "properties",
        "redelivered",
        "reply_to",
        "seq",
        "size",
        "text",
        "timestamp",
        "type",
        "wire",
    )

    def __init__(
        self,
        body: bytes,
        *,
        destination: Address | None = None,
        properties: dict[str, PropertyValue] | None = None,
        persistent: bool = False,
        priority: int = 4,
        timestamp: int = 0,
        expiration: int = 0,
        text: bool = False,
        correlation_id: str | None = None,
        reply_to: Address | None = None,
        content_type: str | None = None,
        group_id: str | None = None,
        type: str | None = None,
        origin: object = None,
    ) -> None:
        self.id = ""
        self.body = body
        self.destination = destination
        self.properties = properties if properties is not None else {}
        self.persistent = persistent
        self.priority = priority
        self.timestamp = timestamp
        self.expiration = expiration
        self.text = text
        self.correlation_id = correlation_id
        self.reply_to = reply_to
        self.content_type = content_type
        self.group_id = group_id
        self.type = type
        # Who sent it: a small identity of the sending connection (its id), compared
        # with a no-local subscription's. Never the connection object itself: a stored
        # message outlives its producer, and would keep the whole connection alive.
        self.origin = origin
        self.delivery_count = 0
        self.redelivered = False
        # Its place in the queue it waits on (MessageQueue numbers what it queues; picky
        # dispatch remembers how far each consumer's selector has refused).
        self.seq = 0
        self.wire: Any = None
        head = 0
        if properties:
            for key, value in properties.items():
                head += len(key) + (len(value) if isinstance(value, str | bytes) else _SCALAR)
        if correlation_id:
            head += len(correlation_id)
        if reply_to is not None:
            head += len(reply_to.name)
        if content_type:
            head += len(content_type)
        if group_id:
            head += len(group_id)
        if type:
            head += len(type)
        self.head = head
        self.size = len(body) + head + MESSAGE_OVERHEAD

    def copy(self) -> Message:
        """A new Message with the same content and delivery state, no cached wire bytes."""
        m = Message.__new__(Message)
        for name in Message.__slots__:
            setattr(m, name, getattr(self, name))
        m.properties = dict(self.properties)
        m.wire = None
        return m

    def redelivery_copy(self) -> Message:
        """The message as it goes back for another delivery: counted and flagged."""
        m = self.copy()
        m.delivery_count += 1
        m.redelivered = True
        return m

    def __repr__(self) -> str:
        return f"<Message {self.id} to {self.destination} {len(self.body)}B>"
