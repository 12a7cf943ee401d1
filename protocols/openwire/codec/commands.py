"""OpenWire version 12's data structures: one class per type, each with its type byte
and its fields in wire order (what ActiveMQ 5.17's v12 marshallers read and write).

`FIELDS` names each field with its kind, which is all the loose encoding needs
(protocols/openwire/codec/loose.py):

  Z boolean   B byte   I int   L long   S string (a presence flag, then writeUTF)
  Y byte[] / ByteSequence (a presence flag, an int length, the bytes)
  N a nested structure (a presence flag, its type byte, its fields)
  C a nested structure ActiveMQ's marshallers pass through the marshalling cache (ids,
    destinations): with the cache off the same as N; on, a flag (new or not), a short
    index, and when new the nested structure (codec/cache.py)
  A an array of nested structures (a presence flag, a short count, each nested)
  T a Throwable (a presence flag, class name, message; with stack traces enabled,
    which ZoneMQ never offers, frames and a cause would follow)

A command (`Command` and its subclasses) starts with commandId and responseRequired;
the ids and destinations are plain structures without them. Field names are the Java
property names in snake case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


class Structure:
    """A marshallable OpenWire value; subclasses are dataclasses with `TYPE` and `FIELDS`."""

    __slots__ = ()
    TYPE: ClassVar[int] = 0
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = ()


_BASE = (("command_id", "I"), ("response_required", "Z"))


@dataclass(slots=True)
class Command(Structure):
    """A command: what a frame carries at its top level."""

    command_id: int = 0
    response_required: bool = False


# ---- ids and destinations -------------------------------------------------------------


@dataclass(slots=True, unsafe_hash=True)
class ConnectionId(Structure):
    TYPE = 120
    FIELDS = (("value", "S"),)
    value: str | None = None


@dataclass(slots=True, unsafe_hash=True)
class SessionId(Structure):
    TYPE = 121
    FIELDS = (("connection_id", "S"), ("value", "L"))
    connection_id: str | None = None
    value: int = 0


@dataclass(slots=True, unsafe_hash=True)
class ConsumerId(Structure):
    TYPE = 122
    FIELDS = (("connection_id", "S"), ("session_id", "L"), ("value", "L"))
    connection_id: str | None = None
    session_id: int = 0
    value: int = 0


@dataclass(slots=True, unsafe_hash=True)
class ProducerId(Structure):
    TYPE = 123
    # value before session_id: the wire order, unlike ConsumerId's.
    FIELDS = (("connection_id", "S"), ("value", "L"), ("session_id", "L"))
    connection_id: str | None = None
    value: int = 0
    session_id: int = 0


@dataclass(slots=True, unsafe_hash=True)
class BrokerId(Structure):
    TYPE = 124
    FIELDS = (("value", "S"),)
    value: str | None = None


@dataclass(slots=True, unsafe_hash=True)
class MessageId(Structure):
    TYPE = 110
    FIELDS = (
        ("text_view", "S"),
        ("producer_id", "C"),
        ("producer_sequence_id", "L"),
        ("broker_sequence_id", "L"),
    )
    text_view: str | None = None
    producer_id: ProducerId | None = None
    producer_sequence_id: int = 0
    broker_sequence_id: int = 0

    def text(self) -> str:
        """The id as JMSMessageID shows it (without the "ID:" prefix): producer id
        and sequence, ActiveMQ's MessageId.toString."""
        if self.text_view is not None:
            return self.text_view
        p = self.producer_id
        if p is None:
            return f"null:{self.producer_sequence_id}"
        return f"{p.connection_id}:{p.session_id}:{p.value}:{self.producer_sequence_id}"


@dataclass(slots=True, unsafe_hash=True)
class LocalTransactionId(Structure):
    TYPE = 111
    FIELDS = (("value", "L"), ("connection_id", "C"))
    value: int = 0
    connection_id: ConnectionId | None = None


@dataclass(slots=True, unsafe_hash=True)
class XATransactionId(Structure):
    TYPE = 112
    FIELDS = (("format_id", "I"), ("global_transaction_id", "Y"), ("branch_qualifier", "Y"))
    format_id: int = 0
    global_transaction_id: bytes | None = None
    branch_qualifier: bytes | None = None


@dataclass(slots=True, unsafe_hash=True)
class Destination(Structure):
    """An ActiveMQDestination; the subclass says queue, topic or temporary. A physical
    name may be a composite (`a,b`) or carry options (`a?consumer.prefetchSize=1`)."""

    FIELDS = (("physical_name", "S"),)
    physical_name: str | None = None


@dataclass(slots=True, unsafe_hash=True)
class Queue(Destination):
    TYPE = 100


@dataclass(slots=True, unsafe_hash=True)
class Topic(Destination):
    TYPE = 101


@dataclass(slots=True, unsafe_hash=True)
class TempQueue(Destination):
    TYPE = 102


@dataclass(slots=True, unsafe_hash=True)
class TempTopic(Destination):
    TYPE = 103


# ---- connection setup ------------------------------------------------------------------

MAGIC = b"ActiveMQ"


@dataclass(slots=True)
class WireFormatInfo(Structure):
    """The first frame each way: the magic, a version and the options as a primitive
    map (`properties`, decoded by the codec)."""

    TYPE = 1
    FIELDS = (("magic", "M"), ("version", "I"), ("properties", "P"))
    magic: bytes = MAGIC
    version: int = 12
    properties: dict[str, Any] | None = None


@dataclass(slots=True)
class BrokerInfo(Command):
    TYPE = 2
    FIELDS = (
        *_BASE,
        ("broker_id", "C"),
        ("broker_url", "S"),
        ("peer_broker_infos", "A"),
        ("broker_name", "S"),
        ("slave_broker", "Z"),
        ("master_broker", "Z"),
        ("fault_tolerant_configuration", "Z"),
        ("duplex_connection", "Z"),
        ("network_connection", "Z"),
        ("connection_id", "L"),
        ("broker_upload_url", "S"),
        ("network_properties", "S"),
    )
    broker_id: BrokerId | None = None
    broker_url: str | None = None
    peer_broker_infos: list[Any] | None = None
    broker_name: str | None = None
    slave_broker: bool = False
    master_broker: bool = False
    fault_tolerant_configuration: bool = False
    duplex_connection: bool = False
    network_connection: bool = False
    connection_id: int = 0
    broker_upload_url: str | None = None
    network_properties: str | None = None


@dataclass(slots=True)
class ConnectionInfo(Command):
    TYPE = 3
    FIELDS = (
        *_BASE,
        ("connection_id", "C"),
        ("client_id", "S"),
        ("password", "S"),
        ("user_name", "S"),
        ("broker_path", "A"),
        ("broker_master_connector", "Z"),
        ("manageable", "Z"),
        ("client_master", "Z"),
        ("fault_tolerant", "Z"),
        ("failover_reconnect", "Z"),
        ("client_ip", "S"),
    )
    connection_id: ConnectionId | None = None
    client_id: str | None = None
    password: str | None = None
    user_name: str | None = None
    broker_path: list[Any] | None = None
    broker_master_connector: bool = False
    manageable: bool = False
    client_master: bool = False
    fault_tolerant: bool = False
    failover_reconnect: bool = False
    client_ip: str | None = None


@dataclass(slots=True)
class SessionInfo(Command):
    TYPE = 4
    FIELDS = (*_BASE, ("session_id", "C"))
    session_id: SessionId | None = None


@dataclass(slots=True)
class ConsumerInfo(Command):
    TYPE = 5
    FIELDS = (
        *_BASE,
        ("consumer_id", "C"),
        ("browser", "Z"),
        ("destination", "C"),
        ("prefetch_size", "I"),
        ("maximum_pending_message_limit", "I"),
        ("dispatch_async", "Z"),
        ("selector", "S"),
        ("client_id", "S"),
        ("subscription_name", "S"),
        ("no_local", "Z"),
        ("exclusive", "Z"),
        ("retroactive", "Z"),
        ("priority", "B"),
        ("broker_path", "A"),
        ("additional_predicate", "N"),
        ("network_subscription", "Z"),
        ("optimized_acknowledge", "Z"),
        ("no_range_acks", "Z"),
        ("network_consumer_path", "A"),
    )
    consumer_id: ConsumerId | None = None
    browser: bool = False
    destination: Destination | None = None
    prefetch_size: int = 0
    maximum_pending_message_limit: int = 0
    dispatch_async: bool = False
    selector: str | None = None
    client_id: str | None = None
    subscription_name: str | None = None
    no_local: bool = False
    exclusive: bool = False
    retroactive: bool = False
    priority: int = 0
    broker_path: list[Any] | None = None
    additional_predicate: Any = None
    network_subscription: bool = False
    optimized_acknowledge: bool = False
    no_range_acks: bool = False
    network_consumer_path: list[Any] | None = None


@dataclass(slots=True)
class ProducerInfo(Command):
    TYPE = 6
    FIELDS = (
        *_BASE,
        ("producer_id", "C"),
        ("destination", "C"),
        ("broker_path", "A"),
        ("dispatch_async", "Z"),
        ("window_size", "I"),
    )
    producer_id: ProducerId | None = None
    destination: Destination | None = None
    broker_path: list[Any] | None = None
    dispatch_async: bool = False
    window_size: int = 0


# TransactionInfo.type
TX_BEGIN = 0
TX_PREPARE = 1
TX_COMMIT_ONE_PHASE = 2
TX_COMMIT_TWO_PHASE = 3
TX_ROLLBACK = 4
TX_RECOVER = 5
TX_FORGET = 6
TX_END = 7


@dataclass(slots=True)
class TransactionInfo(Command):
    TYPE = 7
    FIELDS = (*_BASE, ("connection_id", "C"), ("transaction_id", "C"), ("type", "B"))
    connection_id: ConnectionId | None = None
    transaction_id: LocalTransactionId | XATransactionId | None = None
    type: int = 0


# DestinationInfo.operation_type
DEST_ADD = 0
DEST_REMOVE = 1


@dataclass(slots=True)
class DestinationInfo(Command):
    TYPE = 8
    FIELDS = (
        *_BASE,
        ("connection_id", "C"),
        ("destination", "C"),
        ("operation_type", "B"),
        ("timeout", "L"),
        ("broker_path", "A"),
    )
    connection_id: ConnectionId | None = None
    destination: Destination | None = None
    operation_type: int = 0
    timeout: int = 0
    broker_path: list[Any] | None = None


@dataclass(slots=True)
class RemoveSubscriptionInfo(Command):
    TYPE = 9
    FIELDS = (*_BASE, ("connection_id", "C"), ("subscription_name", "S"), ("client_id", "S"))
    connection_id: ConnectionId | None = None
    subscription_name: str | None = None
    client_id: str | None = None


@dataclass(slots=True)
class KeepAliveInfo(Command):
    TYPE = 10
    FIELDS = _BASE


@dataclass(slots=True)
class ShutdownInfo(Command):
    TYPE = 11
    FIELDS = _BASE


@dataclass(slots=True)
class RemoveInfo(Command):
    TYPE = 12
    FIELDS = (*_BASE, ("object_id", "C"), ("last_delivered_sequence_id", "L"))
    object_id: Any = None
    last_delivered_sequence_id: int = 0


@dataclass(slots=True)
class ControlCommand(Command):
    TYPE = 14
    FIELDS = (*_BASE, ("command", "S"))
    command: str | None = None


@dataclass(slots=True)
class FlushCommand(Command):
    TYPE = 15
    FIELDS = _BASE


@dataclass(slots=True)
class ConnectionError(Command):
    TYPE = 16
    FIELDS = (*_BASE, ("exception", "T"), ("connection_id", "N"))
    exception: tuple[str, str | None] | None = None
    connection_id: ConnectionId | None = None


@dataclass(slots=True)
class ConsumerControl(Command):
    TYPE = 17
    FIELDS = (
        *_BASE,
        ("destination", "N"),
        ("close", "Z"),
        ("consumer_id", "N"),
        ("prefetch", "I"),
        ("flush", "Z"),
        ("start", "Z"),
        ("stop", "Z"),
    )
    destination: Destination | None = None
    close: bool = False
    consumer_id: ConsumerId | None = None
    prefetch: int = 0
    flush: bool = False
    start: bool = False
    stop: bool = False


@dataclass(slots=True)
class ConnectionControl(Command):
    TYPE = 18
    FIELDS = (
        *_BASE,
        ("close", "Z"),
        ("exit", "Z"),
        ("fault_tolerant", "Z"),
        ("resume", "Z"),
        ("suspend", "Z"),
        ("connected_brokers", "S"),
        ("reconnect_to", "S"),
        ("rebalance_connection", "Z"),
        ("token", "Y"),
    )
    close: bool = False
    exit: bool = False
    fault_tolerant: bool = False
    resume: bool = False
    suspend: bool = False
    connected_brokers: str | None = None
    reconnect_to: str | None = None
    rebalance_connection: bool = False
    token: bytes | None = None


@dataclass(slots=True)
class ProducerAck(Command):
    TYPE = 19
    FIELDS = (*_BASE, ("producer_id", "N"), ("size", "I"))
    producer_id: ProducerId | None = None
    size: int = 0


@dataclass(slots=True)
class MessagePull(Command):
    TYPE = 20
    FIELDS = (
        *_BASE,
        ("consumer_id", "C"),
        ("destination", "C"),
        ("timeout", "L"),
        ("correlation_id", "S"),
        ("message_id", "N"),
    )
    consumer_id: ConsumerId | None = None
    destination: Destination | None = None
    timeout: int = 0
    correlation_id: str | None = None
    message_id: MessageId | None = None


@dataclass(slots=True)
class Message(Command):
    """ActiveMQMessage and its body kinds (the subclasses). `content` is the body as
    the JMS client marshals it (see protocols/openwire/bodies.py), `properties` the
    marshalled property map (decoded lazily by the mapping, not here)."""

    TYPE = 23
    FIELDS = (
        *_BASE,
        ("producer_id", "C"),
        ("destination", "C"),
        ("transaction_id", "C"),
        ("original_destination", "C"),
        ("message_id", "N"),
        ("original_transaction_id", "C"),
        ("group_id", "S"),
        ("group_sequence", "I"),
        ("correlation_id", "S"),
        ("persistent", "Z"),
        ("expiration", "L"),
        ("priority", "B"),
        ("reply_to", "N"),
        ("timestamp", "L"),
        ("type", "S"),
        ("content", "Y"),
        ("properties", "Y"),
        ("data_structure", "N"),
        ("target_consumer_id", "C"),
        ("compressed", "Z"),
        ("redelivery_counter", "I"),
        ("broker_path", "A"),
        ("arrival", "L"),
        ("user_id", "S"),
        ("recieved_by_df_bridge", "Z"),
        ("droppable", "Z"),
        ("cluster", "A"),
        ("broker_in_time", "L"),
        ("broker_out_time", "L"),
        ("jmsx_group_first_for_consumer", "Z"),
    )
    producer_id: ProducerId | None = None
    destination: Destination | None = None
    transaction_id: LocalTransactionId | XATransactionId | None = None
    original_destination: Destination | None = None
    message_id: MessageId | None = None
    original_transaction_id: LocalTransactionId | XATransactionId | None = None
    group_id: str | None = None
    group_sequence: int = 0
    correlation_id: str | None = None
    persistent: bool = False
    expiration: int = 0
    priority: int = 0
    reply_to: Destination | None = None
    timestamp: int = 0
    type: str | None = None
    content: bytes | None = None
    properties: bytes | None = None
    data_structure: Any = None
    target_consumer_id: ConsumerId | None = None
    compressed: bool = False
    redelivery_counter: int = 0
    broker_path: list[Any] | None = None
    arrival: int = 0
    user_id: str | None = None
    recieved_by_df_bridge: bool = False
    droppable: bool = False
    cluster: list[Any] | None = None
    broker_in_time: int = 0
    broker_out_time: int = 0
    jmsx_group_first_for_consumer: bool = False


@dataclass(slots=True)
class BytesMessage(Message):
    TYPE = 24


@dataclass(slots=True)
class MapMessage(Message):
    TYPE = 25


@dataclass(slots=True)
class ObjectMessage(Message):
    TYPE = 26


@dataclass(slots=True)
class StreamMessage(Message):
    TYPE = 27


@dataclass(slots=True)
class TextMessage(Message):
    TYPE = 28


@dataclass(slots=True)
class MessageDispatch(Command):
    TYPE = 21
    FIELDS = (
        *_BASE,
        ("consumer_id", "C"),
        ("destination", "C"),
        ("message", "N"),
        ("redelivery_counter", "I"),
    )
    consumer_id: ConsumerId | None = None
    destination: Destination | None = None
    message: Message | None = None
    redelivery_counter: int = 0


# MessageAck.ack_type
ACK_DELIVERED = 0
ACK_STANDARD = 2
ACK_POISON = 1
ACK_REDELIVERED = 3
ACK_INDIVIDUAL = 4
ACK_UNMATCHED = 5
ACK_EXPIRED = 6


@dataclass(slots=True)
class MessageAck(Command):
    TYPE = 22
    FIELDS = (
        *_BASE,
        ("destination", "C"),
        ("transaction_id", "C"),
        ("consumer_id", "C"),
        ("ack_type", "B"),
        ("first_message_id", "N"),
        ("last_message_id", "N"),
        ("message_count", "I"),
        ("poison_cause", "T"),
    )
    destination: Destination | None = None
    transaction_id: LocalTransactionId | XATransactionId | None = None
    consumer_id: ConsumerId | None = None
    ack_type: int = 0
    first_message_id: MessageId | None = None
    last_message_id: MessageId | None = None
    message_count: int = 0
    poison_cause: tuple[str, str | None] | None = None


@dataclass(slots=True)
class Response(Command):
    TYPE = 30
    FIELDS = (*_BASE, ("correlation_id", "I"))
    correlation_id: int = 0


@dataclass(slots=True)
class ExceptionResponse(Response):
    """`exception` is (Java class name, message): the client rebuilds that class, so a
    JMS application sees e.g. javax.jms.InvalidSelectorException."""

    TYPE = 31
    FIELDS = (*Response.FIELDS, ("exception", "T"))
    exception: tuple[str, str | None] | None = None


@dataclass(slots=True)
class DataResponse(Response):
    TYPE = 32
    FIELDS = (*Response.FIELDS, ("data", "N"))
    data: Any = None


@dataclass(slots=True)
class DataArrayResponse(Response):
    TYPE = 33
    FIELDS = (*Response.FIELDS, ("data", "A"))
    data: list[Any] | None = field(default=None)


@dataclass(slots=True)
class IntegerResponse(Response):
    TYPE = 34
    FIELDS = (*Response.FIELDS, ("result", "I"))
    result: int = 0


@dataclass(slots=True)
class MessageDispatchNotification(Command):
    TYPE = 90
    FIELDS = (
        *_BASE,
        ("consumer_id", "C"),
        ("destination", "C"),
        ("delivery_sequence_id", "L"),
        ("message_id", "N"),
    )
    consumer_id: ConsumerId | None = None
    destination: Destination | None = None
    delivery_sequence_id: int = 0
    message_id: MessageId | None = None


TYPES: dict[int, type[Structure]] = {
    cls.TYPE: cls
    for cls in (
        ConnectionId,
        SessionId,
        ConsumerId,
        ProducerId,
        BrokerId,
        MessageId,
        LocalTransactionId,
        XATransactionId,
        Queue,
        Topic,
        TempQueue,
        TempTopic,
        WireFormatInfo,
        BrokerInfo,
        ConnectionInfo,
        SessionInfo,
        ConsumerInfo,
        ProducerInfo,
        TransactionInfo,
        DestinationInfo,
        RemoveSubscriptionInfo,
        KeepAliveInfo,
        ShutdownInfo,
        RemoveInfo,
        ControlCommand,
        FlushCommand,
        ConnectionError,
        ConsumerControl,
        ConnectionControl,
        ProducerAck,
        MessagePull,
        Message,
        BytesMessage,
        MapMessage,
        ObjectMessage,
        StreamMessage,
        TextMessage,
        MessageDispatch,
        MessageAck,
        Response,
        ExceptionResponse,
        DataResponse,
        DataArrayResponse,
        IntegerResponse,
        MessageDispatchNotification,
    )
}
"""Every type this codec reads, by type byte; any other type ends the connection
(BlobMessage, the network-bridge and journal types are not for clients)."""
