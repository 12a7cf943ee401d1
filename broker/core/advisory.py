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

Every advisory is a non-persistent message of type `Advisory` with the properties
`originBrokerName`, `originBrokerId` and `originBrokerURL`, and an empty body. ActiveMQ
puts the event's details in an OpenWire data structure (a ConsumerInfo, a ConnectionInfo,
a DestinationInfo, a RemoveInfo, the expired or dead-lettered message without its body),
which its STOMP transport leaves out of the frame. Here an advisory is an
`AdvisoryMessage`: a Message that also carries its `Event`, a protocol-neutral account of
what happened (which kind of thing, added or removed, its destination, the owning
connection's id, and the protocol's own structure for it when the protocol gave one:
OpenWire passes its ConsumerInfo, ProducerInfo and ConnectionInfo). The OpenWire
listener turns the Event into ActiveMQ's structure (protocols/openwire/advisories.py);
STOMP and AMQP consumers get the message alone, as ActiveMQ's STOMP transport gives it.
A consumer's Event is read from its Subscription (and its tag's `advisory_info`, when
the protocol's tag has one) at the time of the event: it holds no connection.

A subscriber to a Connection, Consumer, Producer or destination advisory topic (also as
a part of a composite, as the JMS client's ActiveMQ.Advisory.TempQueue,
ActiveMQ.Advisory.TempTopic) first gets one advisory per connection, consumer, producer
or destination that already exists (ActiveMQ's replay), to it alone.

Cost: no message is built unless the advisory topic has a subscriber (a consumer's or a
destination's Event neither); a connection's and a bound producer's Event is kept while
it lives, for the replay (one small object each). No event on the message path is
advised except expiry and dead-lettering, which are rare by nature.
"""

from __future__ import annotations

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

# Event.kind
CONNECTION_EVENT = "connection"
CONSUMER_EVENT = "consumer"
PRODUCER_EVENT = "producer"
DESTINATION_EVENT = "destination"
MESSAGE_EVENT = "message"


@dataclass(slots=True, frozen=True)
class Event:
    """What an advisory reports, in no protocol's terms (see the module docstring).

    `ident` is the thing's own id: a consumer's subscription number, a producer's id as
    its protocol gave it, a connection's id. `owner` is the id of the connection it
    belongs to (text), `detail` the protocol's own structure for it (or, for an expired
    or dead-lettered message, the Message), `consumer` a consumer's settings:
    (selector text, prefetch, no-local, exclusive, priority)."""

    kind: str
    added: bool
    address: Address | None = None
    ident: object = None
    owner: str | None = None
    detail: object = None
    consumer: tuple[str | None, int, bool, bool, int] | None = None


class AdvisoryMessage(Message):
    """An advisory: a Message and the Event it reports (copies keep the Event)."""

    __slots__ = ("event",)

    def __init__(self, event: Event, properties: dict[str, Any]) -> None:
        super().__init__(b"", properties=properties, text=True, type="Advisory")
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


def consumer_event(sub: Subscription, *, added: bool) -> Event:
    """The Event of consumer `sub` coming or going."""
    selector = sub.selector
    return Event(
        CONSUMER_EVENT,
        added,
        sub.address,
        sub.num,
        _id_of(sub.consumer),
        getattr(sub.tag, "advisory_info", None),
        (
            _selector_text(selector) if selector is not None else None,
            sub.prefetch,
            sub.no_local,
            sub.exclusive,
            sub.priority,
        ),
    )


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

    def set_broker_url(self, url: str) -> None:
        """The address advisories give as `originBrokerURL` (the broker sets its first
        client listener's once bound, as ActiveMQ gives its connector's)."""
        self._props["originBrokerURL"] = url

    # -- events -----------------------------------------------------------------------

    def connection(self, conn_id: object, *, added: bool, **info: Any) -> None:
        """A client connection logged in (`added`) or ended; `info` may give `detail`,
        the protocol's own structure for it (OpenWire's ConnectionInfo), kept for
        replay. An ended connection's producers go with it."""
        if not self.enabled:
            return
        if added:
            # Kept for the replay, so built even with nobody listening (once per login).
            detail = info.get("detail")
            if detail is None:
                detail = {"client_id": info.get("client_id"), "user": info.get("user")}
            event = Event(
                CONNECTION_EVENT, True, ident=_id_of(conn_id), owner=_id_of(conn_id), detail=detail
            )
            self.connections[conn_id] = event
            self._publish(CONNECTION, {}, event)
            return
        for producer_id in [p for p, (_, owner, _e) in self.producers.items() if owner == conn_id]:
            self.producer(producer_id, None, added=False)
        event = self.connections.pop(conn_id, None)
        if event is not None:
            gone = Event(
                CONNECTION_EVENT, False, ident=event.ident, owner=event.owner, detail=event.detail
            )
            self._publish(CONNECTION, {}, gone)

    def consumer(self, address: Address, *, added: bool, sub: Subscription | None = None) -> None:
        if self.enabled and not is_advisory(address) and self._wanted(consumer_topic(address)):
            event = (
                consumer_event(sub, added=added)
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
    ) -> None:
        """A producer of connection `owner` came (bound to `address`) or went; only one
        bound to a destination is advised (`address` None: anonymous; on removal the
        address is looked up). `detail`: the protocol's structure (OpenWire's
        ProducerInfo)."""
        if not self.enabled:
            return
        if added:
            if address is None or is_advisory(address):
                return
            event = Event(PRODUCER_EVENT, True, address, producer_id, _id_of(owner), detail)
            self.producers[producer_id] = (address, owner, event)
        else:
            entry = self.producers.pop(producer_id, None)
            if entry is None:
                return
            address = entry[0]
            e = entry[2]
            event = Event(PRODUCER_EVENT, False, address, producer_id, e.owner, e.detail)
        count = sum(1 for a, _, _e in self.producers.values() if a == address)
        self._publish(producer_topic(address), {"producerCount": count}, event)

    def destination(self, address: Address, *, added: bool = True, owner: object = None) -> None:
        """A destination was created (`added`) or deleted; `owner`: a temporary one's
        connection."""
        if not is_advisory(address) and self._wanted(_KIND_TOPICS[address.kind]):
            event = Event(DESTINATION_EVENT, added, address, owner=_id_of(owner))
            self._publish(_KIND_TOPICS[address.kind], {}, event)

    def _producer_id(self, msg: Message) -> str:
        original = msg.properties.get(_PRODUCER_ID)
        return original if type(original) is str else msg.id

    def expired(self, address: Address, msg: Message) -> None:
        if not is_advisory(address):
            name = f"{PREFIX}Expired.{_KIND_WORD[address.kind]}.{address.name}"
            event = Event(MESSAGE_EVENT, True, address, msg.id, detail=msg)
            self._publish(name, {"orignalMessageId": self._producer_id(msg)}, event)

    def dead_lettered(self, address: Address, msg: Message) -> None:
        if not is_advisory(address):
            name = f"{PREFIX}MessageDLQd.{_KIND_WORD[address.kind]}.{address.name}"
            self._publish(name, {}, Event(MESSAGE_EVENT, True, address, msg.id, detail=msg))

    def slow_consumer(self, address: Address, sub: Subscription) -> None:
        if not is_advisory(address):
            name = f"{PREFIX}SlowConsumer.{_KIND_WORD[address.kind]}.{address.name}"
            self._publish(name, {"consumerId": str(sub.num)}, consumer_event(sub, added=True))

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
                        event = Event(DESTINATION_EVENT, True, address, owner=_id_of(q.owner))
                        self._deliver(sub, topic_address, {}, event)
                return
        for address, q in list(core.queues.items()) + list(core.topics.items()):
            if is_advisory(address):
                continue
            if name == consumer_topic(address):
                subs = q.consumers if address.is_queue else q.subs
                count = len(subs)
                for s in list(subs):
                    event = consumer_event(s, added=True)
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
