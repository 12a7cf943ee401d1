"""Advisory messages as ActiveMQ's OpenWire gives them: an ActiveMQMessage whose
dataStructure says what happened (broker/core/advisory.py makes the message and its
protocol-neutral Event; this turns the Event into ActiveMQ's structure).

Compared with ActiveMQ 5.17.2 (tests/openwire/test_jms_advisories.py):

- Connection: ConnectionInfo when a connection comes (the client's own, its password
  blanked to "" as ActiveMQ does; for a STOMP or AMQP connection one made of its id,
  client id and user), RemoveInfo with its ConnectionId when it goes;
- Consumer.Queue/Topic.<name>: the consumer's ConsumerInfo (an OpenWire consumer's own,
  so its ConsumerId is the one the client knows; another protocol's consumer gets one
  made of its connection id, session -1, its subscription number, destination,
  selector, prefetch, no-local, exclusive, priority), RemoveInfo with that ConsumerId
  when it goes; property consumerCount;
- Producer.Queue/Topic.<name>: ProducerInfo, then RemoveInfo with the ProducerId;
  property producerCount;
- Queue / Topic / TempQueue / TempTopic: DestinationInfo, operation ADD (0) or REMOVE
  (1), with the owning connection's id for a temporary one. The JMS client keeps its
  list of live temporary destinations from these (watchTopicAdvisories; a send to a
  temporary destination not in it is refused in the client with
  InvalidDestinationException "Cannot publish to a deleted Destination"), and
  ActiveMQConnection.getDestinationSource() lists destinations from them;
- Expired.* and MessageDLQd.*: the message itself without its body (ActiveMQ's
  includeBodyForAdvisory is off by default), its JMSMessageID the producer's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from broker.core import Message
from broker.core.advisory import (
    CONNECTION_EVENT,
    CONSUMER_EVENT,
    DESTINATION_EVENT,
    MESSAGE_EVENT,
    NO_SESSION,
    PRODUCER_EVENT,
    AdvisoryMessage,
    Event,
)
from protocols.openwire import mapping
from protocols.openwire.codec import commands as c

_MESSAGE_FIELDS = tuple(f.name for f in dataclasses.fields(c.Message))


def _connection_id(owner: str | None) -> c.ConnectionId:
    return c.ConnectionId(value=owner or "")


def _consumer_id(event: Event) -> c.ConsumerId:
    info = event.detail
    if isinstance(info, c.ConsumerInfo) and info.consumer_id is not None:
        return info.consumer_id
    # Another protocol's consumer: the ids its JSON advisory shows too.
    conn, session, value = event.ids or (event.owner or "", NO_SESSION, 0)
    return c.ConsumerId(connection_id=conn, session_id=session, value=value)


def _producer_id(event: Event) -> c.ProducerId:
    info = event.detail
    if isinstance(info, c.ProducerInfo) and info.producer_id is not None:
        return info.producer_id
    if isinstance(event.ident, c.ProducerId):
        return event.ident
    # Another protocol's producer (an AMQP sender link): the ids the core gave it, which
    # its JSON advisory shows too.
    conn, session, value = event.ids or (event.owner or "", NO_SESSION, 0)
    return c.ProducerId(connection_id=conn, session_id=session, value=value)


def _connection(event: Event) -> c.Command:
    info = event.detail
    if isinstance(info, c.ConnectionInfo):
        cid = info.connection_id or _connection_id(event.owner)
        if not event.added:
            return c.RemoveInfo(object_id=cid)
        return dataclasses.replace(info, password="", command_id=0, response_required=False)
    cid = _connection_id(event.owner)
    if not event.added:
        return c.RemoveInfo(object_id=cid)
    client_id, user, _ip = event.client or (None, None, None)
    return c.ConnectionInfo(connection_id=cid, client_id=client_id, user_name=user or None)


def _consumer(event: Event) -> c.Command:
    if not event.added:
        return c.RemoveInfo(object_id=_consumer_id(event))
    info = event.detail
    if isinstance(info, c.ConsumerInfo):
        return dataclasses.replace(info, command_id=0, response_required=False)
    selector, prefetch, no_local, exclusive, priority = event.consumer or (None, 0, False, False, 0)
    assert event.address is not None
    return c.ConsumerInfo(
        consumer_id=_consumer_id(event),
        destination=mapping.destination_of(event.address),
        prefetch_size=prefetch,
        selector=selector,
        no_local=no_local,
        exclusive=exclusive,
        priority=priority,
    )


def _producer(event: Event) -> c.Command:
    if not event.added:
        return c.RemoveInfo(object_id=_producer_id(event))
    info = event.detail
    if isinstance(info, c.ProducerInfo):
        return dataclasses.replace(info, command_id=0, response_required=False)
    assert event.address is not None
    return c.ProducerInfo(
        producer_id=_producer_id(event), destination=mapping.destination_of(event.address)
    )


def _destination(event: Event) -> c.Command:
    assert event.address is not None
    return c.DestinationInfo(
        connection_id=_connection_id(event.owner) if event.owner is not None else None,
        destination=mapping.destination_of(event.address),
        operation_type=c.DEST_ADD if event.added else c.DEST_REMOVE,
    )


def _message(event: Event) -> c.Message | None:
    msg = event.detail
    if not isinstance(msg, Message) or event.address is None:
        return None
    copy = msg.copy()
    copy.destination = event.address
    out = mapping.openwire_message(copy)
    out.content = None  # ActiveMQ's includeBodyForAdvisory: off
    out.compressed = False
    return out


_BUILDERS = {
    CONNECTION_EVENT: _connection,
    CONSUMER_EVENT: _consumer,
    PRODUCER_EVENT: _producer,
    DESTINATION_EVENT: _destination,
    MESSAGE_EVENT: _message,
}


def data_structure(event: Event) -> Any:
    """ActiveMQ's data structure for `event` (None when there is none to give)."""
    build = _BUILDERS.get(event.kind)
    return build(event) if build is not None else None


def advisory_message(msg: AdvisoryMessage) -> c.Message:
    """Advisory `msg` as ActiveMQ sends one over OpenWire: an ActiveMQMessage, no body
    (the core's JSON rendering is for the other protocols), no `transformation`
    property (ActiveMQ's STOMP transport names it), the Event's structure as
    dataStructure."""
    plain = msg.copy()
    plain.body = b""
    plain.properties.pop("transformation", None)
    out = mapping.openwire_message(plain)
    adv = c.Message()
    for name in _MESSAGE_FIELDS:
        setattr(adv, name, getattr(out, name))
    adv.content = None
    adv.data_structure = data_structure(msg.event)
    return adv
