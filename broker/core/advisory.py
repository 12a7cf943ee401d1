"""Advisory messages: the broker reporting on itself on `ActiveMQ.Advisory.*` topics, as
ActiveMQ 5.17 does with `advisorySupport` on (its default).

What is published, and to which topic (ActiveMQ's names):

- `ActiveMQ.Advisory.Connection`: a client connected or disconnected;
- `ActiveMQ.Advisory.Consumer.Queue.<name>` / `.Consumer.Topic.<name>`: a consumer came
  or went, with `consumerCount` (the destination's consumers after the change);
- `ActiveMQ.Advisory.Producer.Queue.<name>` / `.Producer.Topic.<name>`: a producer bound
  to one destination came or went (an AMQP sender link with a target address; STOMP and
  anonymous producers have none, as in ActiveMQ), with `producerCount`;
- `ActiveMQ.Advisory.Queue` / `.Topic` / `.TempQueue` / `.TempTopic`: a destination was
  created or deleted;
- `ActiveMQ.Advisory.Expired.Queue.<name>` / `.Expired.Topic.<name>`: a message expired,
  with `orignalMessageId` (ActiveMQ's spelling);
- `ActiveMQ.Advisory.MessageDLQd.Queue.<name>` / `.Topic.<name>`: a message was moved to
  a dead letter queue;
- `ActiveMQ.Advisory.SlowConsumer.Topic.<name>`: a topic subscriber fell behind its
  pending limit, only where the destination's policy sets `advisory_for_slow_consumers`
  (ActiveMQ's advisoryForSlowConsumers, off by default).

Every advisory is a non-persistent message of type `Advisory`, priority 0, with the
properties `originBrokerName`, `originBrokerId` and `originBrokerURL`. ActiveMQ puts the
event's details in an OpenWire data structure (a ConnectionInfo, ConsumerInfo,
ProducerInfo, DestinationInfo, RemoveInfo, the expired or dead-lettered message without
its body). Here an advisory is an `AdvisoryMessage`: a Message that also carries its
`Event`, a protocol-neutral account of what happened (which kind of thing, added or
removed, its destination, its ids, the owning connection's id, and the protocol's own
structure for it when the protocol gave one: OpenWire passes its ConsumerInfo,
ProducerInfo and ConnectionInfo). Two renderings of the one Event:

- the message's text body is the structure as the JSON ActiveMQ's STOMP transport
  renders it (XStream's, its `jms-advisory-json` transformation, named in a
  `transformation` property), with the fields ZoneMQ has (compared live with ActiveMQ
  5.17.2, bench.compare_configured): what STOMP and AMQP consumers get. It is built here,
  from the Event alone, when the message is built;
- the OpenWire listener turns the Event into ActiveMQ's structure itself, as the
  ActiveMQMessage's dataStructure, without that body and property
  (protocols/openwire/advisories.py).

Both show the same ids: a connection's ConnectionId is the one its protocol gave
(`connection_id`: OpenWire's client-chosen one) or else the connection's own `id`; a
consumer's or producer's id is (connection, session, value), the protocol's own when its
tag has an `advisory_id` (OpenWire) or else (its connection's id, -1, its number), as
ActiveMQ's STOMP transport numbers them in session -1. A consumer's Event is read from its
Subscription (and its tag's `advisory_info` / `advisory_id`, when the protocol's tag has
them) at the time of the event: it holds no connection.

A subscriber to a Connection, Consumer, Producer or destination advisory topic (also as
a part of a composite, as the JMS client's ActiveMQ.Advisory.TempQueue,
ActiveMQ.Advisory.TempTopic) first gets one advisory per connection, consumer, producer
or destination that already exists (ActiveMQ's replay), to it alone.

Cost: no message (and no JSON) is built unless the advisory topic has a subscriber (a
consumer's or a destination's Event neither); a connection's and a bound producer's
Event is kept while it lives, for the replay (one small object each). No event on the
message path is advised except expiry and dead-lettering, which are rare by nature.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.core.message import QUEUE, TEMP_QUEUE, TEMP_TOPIC, TOPIC, Address, Message

if TYPE_CHECKING:
    from broker.core.core import Core
    from broker.core.queue import Subscription
    from broker.core.selector import Selector

PREFIX = "ActiveMQ.Advisory."
CONNECTION = PREFIX + "Connection"
_KIND_TOPICS = {
    QUEUE: PREFIX + "Queue",
    TOPIC: PREFIX + "Topic",
    TEMP_QUEUE: PREFIX + "TempQueue",
    TEMP_TOPIC: PREFIX + "TempTopic",
}
# The "Queue" / "Topic" part of per-destination advisory names (temporary ones are
# named as their permanent kind, as ActiveMQ's getDestinationTypeAsString).
_KIND_WORD = {QUEUE: "Queue", TEMP_QUEUE: "Queue", TOPIC: "Topic", TEMP_TOPIC: "Topic"}
# The producer's own message id, where the OpenWire and AMQP mappings keep it.
_PRODUCER_ID = "JMS_AMQP_MessageId"

# XStream's class names of ActiveMQ's destinations, as its JSON shows them.
_CLASS = {
    QUEUE: "ActiveMQQueue",
    TOPIC: "ActiveMQTopic",
    TEMP_QUEUE: "ActiveMQTempQueue",
    TEMP_TOPIC: "ActiveMQTempTopic",
}
TRANSFORMATION = "jms-advisory-json"
# DestinationInfo's operationType.
ADD, REMOVE = 0, 1
# The session ActiveMQ's STOMP transport gives its consumers and producers.
NO_SESSION = -1

# Event.kind
CONNECTION_EVENT = "connection"
CONSUMER_EVENT = "consumer"
PRODUCER_EVENT = "producer"
DESTINATION_EVENT = "destination"
MESSAGE_EVENT = "message"

# A consumer's or producer's id: (connection id, session id, value).
Ids = tuple[str, int, int]


@dataclass(slots=True, frozen=True)
class Event:
    """What an advisory reports, in no protocol's terms (see the module docstring).

    `ident` is the thing's own id: a consumer's subscription number, a producer's id as
    its protocol gave it, a connection's id, a message's id. `owner` is the
    ConnectionId (text) of the connection it belongs to (a connection's own, for a
    connection), `detail` the protocol's own structure for it (or, for an expired or
    dead-lettered message, the Message), `consumer` a consumer's settings: (selector
    text, prefetch, no-local, exclusive, priority), `ids` a consumer's or producer's
    (connection, session, value), `client` a connection's (client id, user, ip)."""

    kind: str
    added: bool
    address: Address | None = None
    ident: object = None
    owner: str | None = None
    detail: object = None
    consumer: tuple[str | None, int, bool, bool, int] | None = None
    ids: Ids | None = None
    client: tuple[str | None, str | None, str | None] | None = None


class AdvisoryMessage(Message):
    """An advisory: a Message (its body the Event as ActiveMQ's advisory JSON) and the
    Event it reports (copies keep the Event)."""

    __slots__ = ("event",)

    def __init__(self, event: Event, properties: dict[str, Any]) -> None:
        body = event_json(event)
        super().__init__(
            json.dumps(body, separators=(",", ":")).encode() if body else b"",
            properties={**properties, "transformation": TRANSFORMATION},
            text=True,
            type="Advisory",
            priority=0,  # ActiveMQ's advisories leave it unset: 0
        )
        self.event = event

    def copy(self) -> AdvisoryMessage:
        m = AdvisoryMessage.__new__(AdvisoryMessage)
        for name in Message.__slots__:
            setattr(m, name, getattr(self, name))
        m.properties = dict(self.properties)
        m.wire = None
        m.event = self.event
        return m


def is_advisory(address: Address) -> bool:
    """Whether `address` is an advisory topic (never itself advised)."""
    return address.kind == TOPIC and address.name.startswith(PREFIX)


def consumer_topic(address: Address) -> str:
    return f"{PREFIX}Consumer.{_KIND_WORD[address.kind]}.{address.name}"


def producer_topic(address: Address) -> str:
    return f"{PREFIX}Producer.{_KIND_WORD[address.kind]}.{address.name}"


def _id_of(conn: object) -> str | None:
    """A connection's id as text (every protocol's connection has an `id`)."""
    ident = getattr(conn, "id", None)
    return None if ident is None else str(ident)


def _selector_text(selector: Selector) -> str:
    """A selector as ActiveMQ's ConsumerInfo gives it: one that compares strings with
    numbers (STOMP's) with its STOMP transport's prefix."""
    if selector.convert_strings:
        return "convert_string_expressions:" + selector.text
    return selector.text


def consumer_event(sub: Subscription, *, added: bool, owner: str | None = None) -> Event:
    """The Event of consumer `sub` (of the connection whose ConnectionId is `owner`)
    coming or going."""
    selector = sub.selector
    tag = sub.tag
    ids = getattr(tag, "advisory_id", None)
    if ids is None:
        ids = (owner or "", NO_SESSION, sub.num)
    return Event(
        CONSUMER_EVENT,
        added,
        sub.address,
        sub.num,
        owner,
        getattr(tag, "advisory_info", None),
        (
            _selector_text(selector) if selector is not None else None,
            sub.prefetch,
            sub.no_local,
            sub.exclusive,
            sub.priority,
        ),
        ids,
    )


def ids_text(ids: Ids) -> str:
    """A ConsumerId's or ProducerId's text, as ActiveMQ's: connection:session:value."""
    return f"{ids[0]}:{ids[1]}:{ids[2]}"


class Advisories:
    """Publishes the core's advisory messages; the core calls one method per event."""

    def __init__(self, core: Core, *, enabled: bool, broker_name: str) -> None:
        self.core = core
        self.enabled = enabled
        self._props: dict[str, Any] = {
            "originBrokerName": broker_name,
            "originBrokerId": f"ID:{broker_name}",
            "originBrokerURL": "",
        }
        # Live connections (for the Connection topic's replay): id -> their Event.
        self.connections: dict[object, Event] = {}
        # Producers bound to a destination: id -> (address, owning connection, Event).
        self.producers: dict[object, tuple[Address, object, Event]] = {}
        # The value of a producer id its protocol did not give.
        self._producer_nums = itertools.count(1)

    def set_broker_url(self, url: str) -> None:
        """The address advisories give as `originBrokerURL` (the broker sets its first
        listener's)."""
        self._props["originBrokerURL"] = url

    def connection_id(self, conn: object) -> str:
        """The ConnectionId advisories give connection `conn` (see the module
        docstring; the broker's id for none)."""
        event = self.connections.get(conn)
        if event is not None and event.owner is not None:
            return event.owner
        return _id_of(conn) or self._props["originBrokerId"]

    # -- events -----------------------------------------------------------------------

    def connection(self, conn_id: object, *, added: bool, **info: Any) -> None:
        """A client connection logged in (`added`) or ended; `info` gives `client_id`,
        `user`, and may give `connection_id` (the protocol's ConnectionId, text) and
        `detail`, the protocol's own structure for it (OpenWire's ConnectionInfo), kept
        for replay. An ended connection's producers go with it."""
        if not self.enabled:
            return
        if added:
            # Kept for the replay, so built even with nobody listening (once per login).
            peer = getattr(conn_id, "peer", None)
            ip = (peer.rpartition(":")[0] or peer) if isinstance(peer, str) and peer else None
            event = Event(
                CONNECTION_EVENT,
                True,
                ident=_id_of(conn_id),
                owner=info.get("connection_id") or _id_of(conn_id),
                detail=info.get("detail"),
                client=(info.get("client_id"), info.get("user"), ip),
            )
            self.connections[conn_id] = event
            self._publish(CONNECTION, {}, event)
            return
        for producer_id in [p for p, (_, owner, _e) in self.producers.items() if owner == conn_id]:
            self.producer(producer_id, None, added=False)
        event = self.connections.pop(conn_id, None)
        if event is not None:
            gone = Event(
                CONNECTION_EVENT,
                False,
                ident=event.ident,
                owner=event.owner,
                detail=event.detail,
                client=event.client,
            )
            self._publish(CONNECTION, {}, gone)

    def consumer(self, address: Address, *, added: bool, sub: Subscription | None = None) -> None:
        """A consumer `sub` of `address` came (`added`) or went."""
        if self.enabled and not is_advisory(address) and self._wanted(consumer_topic(address)):
            event = (
                consumer_event(sub, added=added, owner=self.connection_id(sub.consumer))
                if sub is not None
                else Event(CONSUMER_EVENT, added, address)
            )
            self._publish(
                consumer_topic(address), {"consumerCount": self._consumers(address)}, event
            )

    def producer(
        self,
        producer_id: object,
        address: Address | None,
        *,
        added: bool,
        owner: object = None,
        detail: object = None,
        ids: Ids | None = None,
    ) -> None:
        """A producer of connection `owner` came (bound to `address`) or went; only one
        bound to a destination is advised (`address` None: anonymous; on removal the
        address is looked up). `detail`: the protocol's structure (OpenWire's
        ProducerInfo), `ids` its ProducerId as (connection, session, value)."""
        if not self.enabled:
            return
        if added:
            if address is None or is_advisory(address):
                return
            conn = self.connection_id(owner)
            if ids is None:
                ids = (conn, NO_SESSION, next(self._producer_nums))
            event = Event(PRODUCER_EVENT, True, address, producer_id, conn, detail, ids=ids)
            self.producers[producer_id] = (address, owner, event)
        else:
            entry = self.producers.pop(producer_id, None)
            if entry is None:
                return
            address = entry[0]
            e = entry[2]
            event = Event(PRODUCER_EVENT, False, address, producer_id, e.owner, e.detail, ids=e.ids)
        count = sum(1 for a, _, _e in self.producers.values() if a == address)
        self._publish(producer_topic(address), {"producerCount": count}, event)

    def destination(self, address: Address, *, added: bool = True, owner: object = None) -> None:
        """A destination was created (`added`) or deleted; `owner`: a temporary one's
        connection."""
        if not is_advisory(address) and self._wanted(_KIND_TOPICS[address.kind]):
            conn = self.connection_id(owner) if owner is not None else None
            event = Event(DESTINATION_EVENT, added, address, owner=conn)
            self._publish(_KIND_TOPICS[address.kind], {}, event)

    def expired(self, address: Address, msg: Message) -> None:
        if not is_advisory(address):
            name = f"{PREFIX}Expired.{_KIND_WORD[address.kind]}.{address.name}"
            event = Event(MESSAGE_EVENT, True, address, msg.id, detail=msg)
            self._publish(name, {"orignalMessageId": message_id(msg)}, event)

    def dead_lettered(self, address: Address, msg: Message) -> None:
        if not is_advisory(address):
            name = f"{PREFIX}MessageDLQd.{_KIND_WORD[address.kind]}.{address.name}"
            self._publish(name, {}, Event(MESSAGE_EVENT, True, address, msg.id, detail=msg))

    def slow_consumer(self, address: Address, sub: Subscription) -> None:
        if not is_advisory(address):
            name = f"{PREFIX}SlowConsumer.{_KIND_WORD[address.kind]}.{address.name}"
            if not self._wanted(name):
                return
            event = consumer_event(sub, added=True, owner=self.connection_id(sub.consumer))
            assert event.ids is not None
            self._publish(name, {"consumerId": ids_text(event.ids)}, event)

    # -- replay to a new advisory subscriber ---------------------------------------------

    def replay(self, sub: Subscription, parts: tuple[Address, ...] | None = None) -> None:
        """Tell a new subscriber of an advisory topic (or of a composite with advisory
        topics among its `parts`) what already exists."""
        if not self.enabled:
            return
        for part in parts if parts is not None else (sub.address,):
            if is_advisory(part):
                self._replay(sub, part)

    def _replay(self, sub: Subscription, topic_address: Address) -> None:
        name = topic_address.name
        core = self.core
        if name == CONNECTION:
            for event in list(self.connections.values()):
                self._deliver(sub, topic_address, {}, event)
            return
        for kind, topic in _KIND_TOPICS.items():
            if name == topic:
                names = core.queues if kind in (QUEUE, TEMP_QUEUE) else core.topics
                for address, q in list(names.items()):
                    if address.kind == kind and not is_advisory(address):
                        owner = self.connection_id(q.owner) if q.owner is not None else None
                        event = Event(DESTINATION_EVENT, True, address, owner=owner)
                        self._deliver(sub, topic_address, {}, event)
                return
        for address, q in list(core.queues.items()) + list(core.topics.items()):
            if is_advisory(address):
                continue
            if name == consumer_topic(address):
                subs = q.consumers if address.is_queue else q.subs
                count = len(subs)
                for s in list(subs):
                    event = consumer_event(s, added=True, owner=self.connection_id(s.consumer))
                    self._deliver(sub, topic_address, {"consumerCount": count}, event)
                return
        producers = [e for a, _, e in self.producers.values() if producer_topic(a) == name]
        for event in producers:
            self._deliver(sub, topic_address, {"producerCount": len(producers)}, event)

    # -- publishing ------------------------------------------------------------------------

    def _consumers(self, address: Address) -> int:
        core = self.core
        if address.is_queue:
            q = core.queues.get(address)
            return len(q.consumers) if q is not None else 0
        t = core.topics.get(address)
        return len(t.subs) if t is not None else 0

    def _message(self, props: dict[str, Any], event: Event) -> AdvisoryMessage:
        return AdvisoryMessage(event, {**self._props, **props})

    def _wanted(self, name: str) -> bool:
        """Whether advisory topic `name` has a subscriber (else nothing is built)."""
        return self.enabled and self.core.has_subscribers(Address(TOPIC, name))

    def _publish(self, name: str, props: dict[str, Any], event: Event) -> None:
        if not self.enabled:
            return
        address = Address(TOPIC, name)
        if not self.core.has_subscribers(address):
            return
        self.core.send(address, self._message(props, event))

    def _deliver(
        self, sub: Subscription, topic: Address, props: dict[str, Any], event: Event
    ) -> None:
        msg = self._message(props, event)
        core = self.core
        msg.id = core.next_id()
        msg.timestamp = core.now_ms()
        msg.destination = topic
        sub.source.put(msg)


def message_id(msg: Message) -> str:
    """A message's id as its producer gave it (the core's own when there is none)."""
    original = msg.properties.get(_PRODUCER_ID)
    return original if type(original) is str else msg.id


# -- the Event as ActiveMQ's advisory JSON (XStream, jms-advisory-json) --------------------


def destination_json(address: Address) -> dict[str, Any]:
    """An ActiveMQDestination as XStream writes it (its empty options map is "null")."""
    return {"@class": _CLASS[address.kind], "string": address.name, "null": ""}


def _ids_json(ids: Ids | None) -> dict[str, Any]:
    conn, session, value = ids if ids is not None else ("", NO_SESSION, 0)
    return {"connectionId": conn, "sessionId": session, "value": value}


def _remove_info(object_id: dict[str, Any], *, response: bool = False) -> dict[str, Any]:
    return {
        "RemoveInfo": {
            "commandId": 0,
            "responseRequired": response,
            "objectId": object_id,
            "lastDeliveredSequenceId": -2,
        }
    }


def _connection_json(event: Event) -> dict[str, Any]:
    cid = event.owner or ""
    if not event.added:
        return _remove_info({"@class": "ConnectionId", "value": cid}, response=True)
    client_id, user, ip = event.client or (None, None, None)
    body: dict[str, Any] = {
        "commandId": 0,
        "responseRequired": True,
        "connectionId": {"value": cid},
        # ActiveMQ gives a connection without a client-id its connection id.
        "clientId": client_id or cid,
    }
    if ip:
        body["clientIp"] = ip
    if user:
        body["userName"] = user
    body.update(
        password="",
        brokerMasterConnector=False,
        manageable=False,
        clientMaster=True,
        faultTolerant=False,
        failoverReconnect=False,
    )
    return {"ConnectionInfo": body}


def _consumer_json(event: Event) -> dict[str, Any]:
    if event.address is None:
        return {}  # a consumer the core knows no subscription of: headers alone
    if not event.added:
        return _remove_info({"@class": "ConsumerId", **_ids_json(event.ids)})
    selector, prefetch, no_local, exclusive, priority = event.consumer or (None, 0, False, False, 0)
    body: dict[str, Any] = {
        "commandId": 0,
        "responseRequired": False,
        "consumerId": _ids_json(event.ids),
        "destination": destination_json(event.address),
        "prefetchSize": prefetch,
        "maximumPendingMessageLimit": 0,
        "browser": False,
        "dispatchAsync": True,
    }
    if selector is not None:
        body["selector"] = selector
    body.update(
        noLocal=no_local,
        exclusive=exclusive,
        retroactive=False,
        priority=priority,
        optimizedAcknowledge=False,
        noRangeAcks=False,
    )
    return {"ConsumerInfo": body}


def _producer_json(event: Event) -> dict[str, Any]:
    producer = _ids_json(event.ids)
    if not event.added:
        return _remove_info({"@class": "ProducerId", **producer})
    assert event.address is not None
    return {
        "ProducerInfo": {
            "commandId": 0,
            "responseRequired": False,
            "producerId": producer,
            "destination": destination_json(event.address),
            "dispatchAsync": False,
            "windowSize": 0,
        }
    }


def _destination_json(event: Event) -> dict[str, Any]:
    assert event.address is not None
    body: dict[str, Any] = {"commandId": 0, "responseRequired": False}
    if event.owner is not None:
        # A temporary destination's connection, as OpenWire's DestinationInfo shows it
        # (ZoneMQ knows no creating connection of other destinations).
        body["connectionId"] = {"value": event.owner}
    body.update(
        destination=destination_json(event.address),
        operationType=ADD if event.added else REMOVE,
        timeout=0,
    )
    return {"DestinationInfo": body}


def _message_json(event: Event) -> dict[str, Any]:
    """The advised message (Expired, MessageDLQd) as ActiveMQ's JSON shows it, with the
    fields ZoneMQ has; its body is left out, as ActiveMQ's includeBodyForAdvisory=false."""
    msg = event.detail
    address = event.address
    if not isinstance(msg, Message) or address is None:
        return {}
    kind = "ActiveMQTextMessage" if msg.text else "ActiveMQBytesMessage"
    return {
        kind: {
            "commandId": 0,
            "responseRequired": False,
            "messageId": {"value": message_id(msg)},
            "destination": destination_json(address),
            "expiration": msg.expiration,
            "timestamp": msg.timestamp,
            "arrival": 0,
            "brokerInTime": msg.timestamp,
            "brokerOutTime": 0,
            "persistent": msg.persistent,
            "priority": msg.priority,
            "groupSequence": 0,
            "compressed": False,
            "redeliveryCounter": msg.delivery_count,
            "size": msg.size,
            "readOnlyProperties": True,
            "readOnlyBody": False,
            "droppable": False,
            "jmsXGroupFirstForConsumer": False,
        }
    }


_JSON = {
    CONNECTION_EVENT: _connection_json,
    CONSUMER_EVENT: _consumer_json,
    PRODUCER_EVENT: _producer_json,
    DESTINATION_EVENT: _destination_json,
    MESSAGE_EVENT: _message_json,
}


def event_json(event: Event) -> dict[str, Any]:
    """`event` as the JSON ActiveMQ's STOMP transport renders its advisory structure
    ({} when there is none)."""
    render = _JSON.get(event.kind)
    return render(event) if render is not None else {}
