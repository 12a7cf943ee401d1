"""The names and codes AMQP 1.0 JMS clients and ActiveMQ agree on (no imports at all).

Destination kinds are the core's kind names (``queue``, ``topic``, ``temp-queue``,
``temp-topic``; protocols.amqp.mapping checks that they are); `KIND_CODES` are their
x-opt-jms-dest / x-opt-jms-reply-to values (Qpid JMS, ActiveMQ).
"""

from __future__ import annotations

from typing import Any, Protocol

KIND_CODES = {"queue": 0, "topic": 1, "temp-queue": 2, "temp-topic": 3}
CODE_KINDS = {v: k for k, v in KIND_CODES.items()}

# x-opt-jms-msg-type values.
MSG_PLAIN, MSG_MAP, MSG_BYTES, MSG_STREAM, MSG_TEXT = 0, 2, 3, 4, 5
# Message annotations for scheduled delivery (ActiveMQ's AMQP transformer): the hand
# decoder leaves messages with them to proton's path (mapping.message_from_amqp).
DELAYS = (
    "x-opt-delivery-delay",
    "x-opt-delivery-time",
    "x-opt-delivery-period",
    "x-opt-delivery-repeat",
    "x-opt-delivery-cron",
)

# Reserved properties carrying AMQP fields the core has no slot for.
P_MESSAGE_ID = "JMS_AMQP_MessageId"
P_ENCODING = "JMS_AMQP_ORIGINAL_ENCODING"
P_CONTENT_ENCODING = "JMS_AMQP_ContentEncoding"
P_GROUP_SEQ = "JMSXGroupSeq"
P_USER_ID = "JMSXUserID"
P_ANNOTATION = "JMS_AMQP_MA_"
RESERVED = frozenset({P_MESSAGE_ID, P_ENCODING, P_CONTENT_ENCODING, P_GROUP_SEQ, P_USER_ID})
# JMS_AMQP_ORIGINAL_ENCODING values (ActiveMQ's AmqpMessageSupport codes).
ENC_OTHER, ENC_NULL, ENC_SEQUENCE, ENC_BINARY, ENC_MAP, ENC_LIST = 0, 1, 3, 6, 7, 8
ENCODING_TYPE = {
    ENC_NULL: MSG_PLAIN,
    ENC_SEQUENCE: MSG_STREAM,
    ENC_BINARY: MSG_BYTES,
    ENC_MAP: MSG_MAP,
    ENC_LIST: MSG_STREAM,
}


class AddressLike(Protocol):
    """What the codec reads of a destination (the core's Address is one)."""

    kind: str
    name: str


def format_address(address: AddressLike) -> str:
    """An address as AMQP writes it: always with its kind prefix (``queue://x``)."""
    return f"{address.kind}://{address.name}"


def kind_of(code: Any) -> str | None:
    """The destination kind an x-opt-jms-dest / x-opt-jms-reply-to value names."""
    return CODE_KINDS.get(code) if isinstance(code, int) else None


# ttl is a uint of milliseconds: an expiration over 49 days away is written as the most it
# can say (the absolute-expiry-time beside it is exact).
TTL_MAX = 2**32 - 1
