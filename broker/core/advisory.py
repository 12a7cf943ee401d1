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
`originBrokerName`, `originBrokerId` and `originBrokerURL`. ActiveMQ puts the event's
details (a ConsumerInfo, a ConnectionInfo...) in an OpenWire data structure that its STOMP
transport leaves out of the frame (the body is empty unless a JSON/XML transformation is
asked for); ZoneMQ has no OpenWire structures yet, so its advisories are those headers and
an empty body. A subscriber to a Connection, Consumer, Producer or destination advisory
topic first gets one advisory per connection, consumer, producer or destination that
already exists (ActiveMQ's replay), to it alone.

Cost: nothing is built unless the advisory topic has a subscriber; no event on the
message path is advised except expiry and dead-lettering, which are rare by nature.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.core.message import QUEUE, TEMP_QUEUE, TEMP_TOPIC, TOPIC, Address, Message

if TYPE_CHECKING:
    from broker.core.core import Core
    from broker.core.queue import Subscription

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


def is_advisory(address: Address) -> bool:
    """Whether `address` is an advisory topic (never itself advised)."""
    return address.kind == TOPIC and address.name.startswith(PREFIX)


def consumer_topic(address: Address) -> str:
    return f"{PREFIX}Consumer.{_KIND_WORD[address.kind]}.{address.name}"


def producer_topic(address: Address) -> str:
    return f"{PREFIX}Producer.{_KIND_WORD[address.kind]}.{address.name}"


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
        # Live connections (for the Connection topic's replay): id -> properties.
        self.connections: dict[object, dict[str, Any]] = {}
        # Producers bound to a destination: id -> (address, owning connection).
        self.producers: dict[object, tuple[Address, object]] = {}

    def set_broker_url(self, url: str) -> None:
        """The address advisories give as `originBrokerURL` (the broker sets its first
        client listener's once bound, as ActiveMQ gives its connector's)."""
        self._props["originBrokerURL"] = url

    # -- events -----------------------------------------------------------------------

    def connection(self, conn_id: object, *, added: bool, **info: Any) -> None:
        """A client connection logged in (`added`) or ended; `info` is kept for replay
        and is not published (it is OpenWire's ConnectionInfo, not a header). An ended
        connection's producers go with it."""
        if not self.enabled:
            return
        if added:
            self.connections[conn_id] = info
            self._publish(CONNECTION, {})
            return
        for producer_id in [p for p, (_, owner) in self.producers.items() if owner == conn_id]:
            self.producer(producer_id, None, added=False)
        if self.connections.pop(conn_id, None) is not None:
            self._publish(CONNECTION, {})

    def consumer(self, address: Address, *, added: bool) -> None:
        if self.enabled and not is_advisory(address):
            self._publish(consumer_topic(address), {"consumerCount": self._consumers(address)})

    def producer(
        self, producer_id: object, address: Address | None, *, added: bool, owner: object = None
    ) -> None:
        """A producer of connection `owner` came (bound to `address`) or went; only one
        bound to a destination is advised (`address` None: anonymous; on removal the
        address is looked up)."""
        if not self.enabled:
            return
        if added:
            if address is None or is_advisory(address):
                return
            self.producers[producer_id] = (address, owner)
        else:
            entry = self.producers.pop(producer_id, None)
            if entry is None:
                return
            address = entry[0]
        count = sum(1 for a, _ in self.producers.values() if a == address)
        self._publish(producer_topic(address), {"producerCount": count})

    def destination(self, address: Address) -> None:
        """A destination was created or deleted."""
        if not is_advisory(address):
            self._publish(_KIND_TOPICS[address.kind], {})

    def expired(self, address: Address, msg: Message) -> None:
        if not is_advisory(address):
            name = f"{PREFIX}Expired.{_KIND_WORD[address.kind]}.{address.name}"
            self._publish(name, {"orignalMessageId": msg.id})

    def dead_lettered(self, address: Address, msg: Message) -> None:
        if not is_advisory(address):
            name = f"{PREFIX}MessageDLQd.{_KIND_WORD[address.kind]}.{address.name}"
            self._publish(name, {})

    def slow_consumer(self, address: Address, sub: Subscription) -> None:
        if not is_advisory(address):
            name = f"{PREFIX}SlowConsumer.{_KIND_WORD[address.kind]}.{address.name}"
            self._publish(name, {"consumerId": str(sub.num)})

    # -- replay to a new advisory subscriber ---------------------------------------------

    def replay(self, sub: Subscription) -> None:
        """Tell a new subscriber of an advisory topic what already exists."""
        if not self.enabled:
            return
        name = sub.address.name
        core = self.core
        if name == CONNECTION:
            for _ in self.connections:
                self._deliver(sub, {})
            return
        for kind, topic in _KIND_TOPICS.items():
            if name == topic:
                names = core.queues if kind in (QUEUE, TEMP_QUEUE) else core.topics
                for address in list(names):
                    if address.kind == kind and not is_advisory(address):
                        self._deliver(sub, {})
                return
        for address, q in list(core.queues.items()) + list(core.topics.items()):
            if is_advisory(address):
                continue
            if name == consumer_topic(address):
                subs = q.consumers if address.is_queue else q.subs
                count = len(subs)
                for _ in subs:
                    self._deliver(sub, {"consumerCount": count})
                return
        producers = [a for a, _ in self.producers.values() if producer_topic(a) == name]
        for _ in producers:
            self._deliver(sub, {"producerCount": len(producers)})

    # -- publishing ------------------------------------------------------------------------

    def _consumers(self, address: Address) -> int:
        core = self.core
        if address.is_queue:
            q = core.queues.get(address)
            return len(q.consumers) if q is not None else 0
        t = core.topics.get(address)
        return len(t.subs) if t is not None else 0

    def _message(self, props: dict[str, Any]) -> Message:
        return Message(b"", properties={**self._props, **props}, text=True, type="Advisory")

    def _publish(self, name: str, props: dict[str, Any]) -> None:
        if not self.enabled:
            return
        address = Address(TOPIC, name)
        if not self.core.has_subscribers(address):
            return
        self.core.send(address, self._message(props))

    def _deliver(self, sub: Subscription, props: dict[str, Any]) -> None:
        msg = self._message(props)
        core = self.core
        msg.id = core.next_id()
        msg.timestamp = core.now_ms()
        msg.destination = sub.address
        sub.source.put(msg)
