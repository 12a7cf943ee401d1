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
event's details (a ConnectionInfo, ConsumerInfo, DestinationInfo, RemoveInfo, the expired
message...) in an OpenWire data structure that its STOMP transport renders as JSON
(XStream's, the default `jms-advisory-json` transformation, named in a `transformation`
header); ZoneMQ's advisories carry that JSON as their text body, with the fields ZoneMQ
has (compared live with ActiveMQ 5.17.2, bench.compare_configured), and the
`transformation` property. A subscriber to a Connection, Consumer, Producer or destination advisory
topic first gets one advisory per connection, consumer, producer or destination that
already exists (ActiveMQ's replay), to it alone.

Cost: nothing is built unless the advisory topic has a subscriber; no event on the
message path is advised except expiry and dead-lettering, which are rare by nature.
"""

from __future__ import annotations

import itertools
import json
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


def destination_json(address: Address) -> dict[str, Any]:
    """An ActiveMQDestination as XStream writes it (its empty options map is "null")."""
    return {"@class": _CLASS[address.kind], "string": address.name, "null": ""}


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
        # Live connections (for the Connection topic's replay): id -> ConnectionInfo.
        self.connections: dict[object, dict[str, Any]] = {}
        # The OpenWire-style id each connection is given in advisories (ConnectionId).
        self._ids = itertools.count(1)
        # Producers bound to a destination: id -> (address, owning connection).
        self.producers: dict[object, tuple[Address, object]] = {}

    def set_broker_url(self, url: str) -> None:
        """The address advisories give as `originBrokerURL` (the broker sets its first
        client listener's once bound, as ActiveMQ gives its connector's)."""
        self._props["originBrokerURL"] = url

    # -- events -----------------------------------------------------------------------

    def connection(self, conn_id: object, *, added: bool, **info: Any) -> None:
        """A client connection logged in (`added`) or ended; `info` (client_id, user)
        goes into the ConnectionInfo body, kept for replay. An ended connection's
        producers go with it."""
        if not self.enabled:
            return
        if added:
            cid = f"ID:{self._props['originBrokerName']}-{next(self._ids)}"
            body: dict[str, Any] = {
                "commandId": 0,
                "responseRequired": True,
                "connectionId": {"value": cid},
                # ActiveMQ gives a connection without a client-id its connection id.
                "clientId": info.get("client_id") or cid,
            }
            peer = getattr(conn_id, "peer", None)
            if isinstance(peer, str) and peer:
                body["clientIp"] = peer.rpartition(":")[0] or peer
            if info.get("user"):
                body["userName"] = info["user"]
            body.update(
                password="",
                brokerMasterConnector=False,
                manageable=False,
                clientMaster=True,
                faultTolerant=False,
                failoverReconnect=False,
            )
            self.connections[conn_id] = body
            self._publish(CONNECTION, {}, {"ConnectionInfo": body})
            return
        for producer_id in [p for p, (_, owner) in self.producers.items() if owner == conn_id]:
            self.producer(producer_id, None, added=False)
        gone = self.connections.pop(conn_id, None)
        if gone is not None:
            object_id = {"@class": "ConnectionId", "value": gone["connectionId"]["value"]}
            self._publish(CONNECTION, {}, _remove_info(object_id, response=True))

    def connection_id(self, conn: object) -> str:
        """The ConnectionId a connection's advisories give (the broker's for none)."""
        info = self.connections.get(conn)
        return info["connectionId"]["value"] if info else self._props["originBrokerId"]

    def consumer_info(self, sub: Subscription) -> dict[str, Any]:
        """Subscription `sub` as ActiveMQ's ConsumerInfo (the fields ZoneMQ has)."""
        body: dict[str, Any] = {
            "commandId": 0,
            "responseRequired": False,
            "consumerId": self._consumer_id(sub),
            "destination": destination_json(sub.address),
            "prefetchSize": sub.prefetch,
            "maximumPendingMessageLimit": 0,
            "browser": False,
            "dispatchAsync": True,
        }
        selector = sub.selector
        if selector is not None:
            # ActiveMQ's STOMP transport marks its selectors so (string conversion).
            prefix = "convert_string_expressions:" if selector.convert_strings else ""
            body["selector"] = prefix + selector.text
        body.update(
            noLocal=sub.no_local,
            exclusive=sub.exclusive,
            retroactive=False,
            priority=sub.priority,
            optimizedAcknowledge=False,
            noRangeAcks=False,
        )
        return {"ConsumerInfo": body}

    def _consumer_id(self, sub: Subscription) -> dict[str, Any]:
        return {"connectionId": self.connection_id(sub.consumer), "sessionId": -1, "value": sub.num}

    def consumer(self, address: Address, *, added: bool, sub: Subscription | None = None) -> None:
        """A consumer `sub` of `address` came (`added`) or went."""
        if not self.enabled or is_advisory(address):
            return
        name = consumer_topic(address)
        if not self.core.has_subscribers(Address(TOPIC, name)):
            return
        body: dict[str, Any] = {}
        if sub is not None and added:
            body = self.consumer_info(sub)
        elif sub is not None:
            body = _remove_info({"@class": "ConsumerId", **self._consumer_id(sub)})
        self._publish(name, {"consumerCount": self._consumers(address)}, body)

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
            address, owner = entry
        count = sum(1 for a, _ in self.producers.values() if a == address)
        producer = {"connectionId": self.connection_id(owner), "sessionId": -1, "value": 1}
        if added:
            body: dict[str, Any] = {
                "ProducerInfo": {
                    "commandId": 0,
                    "responseRequired": False,
                    "producerId": producer,
                    "destination": destination_json(address),
                    "dispatchAsync": False,
                    "windowSize": 0,
                }
            }
        else:
            body = _remove_info({"@class": "ProducerId", **producer})
        self._publish(producer_topic(address), {"producerCount": count}, body)

    def destination(self, address: Address, *, added: bool = True) -> None:
        """A destination was created (`added`) or deleted."""
        if not is_advisory(address):
            self._publish(_KIND_TOPICS[address.kind], {}, _destination_info(address, added))

    def expired(self, address: Address, msg: Message) -> None:
        if not is_advisory(address):
            name = f"{PREFIX}Expired.{_KIND_WORD[address.kind]}.{address.name}"
            self._publish(name, {"orignalMessageId": msg.id}, _message_json(address, msg))

    def dead_lettered(self, address: Address, msg: Message) -> None:
        if not is_advisory(address):
            name = f"{PREFIX}MessageDLQd.{_KIND_WORD[address.kind]}.{address.name}"
            self._publish(name, {}, _message_json(address, msg))

    def slow_consumer(self, address: Address, sub: Subscription) -> None:
        if not is_advisory(address):
            name = f"{PREFIX}SlowConsumer.{_KIND_WORD[address.kind]}.{address.name}"
            cid = self._consumer_id(sub)
            # ActiveMQ's ConsumerId text: connection:session:value.
            text = f"{cid['connectionId']}:{cid['sessionId']}:{cid['value']}"
            self._publish(name, {"consumerId": text}, self.consumer_info(sub))

    # -- replay to a new advisory subscriber ---------------------------------------------

    def replay(self, sub: Subscription) -> None:
        """Tell a new subscriber of an advisory topic what already exists."""
        if not self.enabled:
            return
        name = sub.address.name
        core = self.core
        if name == CONNECTION:
            for info in list(self.connections.values()):
                self._deliver(sub, {}, {"ConnectionInfo": info})
            return
        for kind, topic in _KIND_TOPICS.items():
            if name == topic:
                names = core.queues if kind in (QUEUE, TEMP_QUEUE) else core.topics
                for address in list(names):
                    if address.kind == kind and not is_advisory(address):
                        self._deliver(sub, {}, _destination_info(address, True))
                return
        for address, q in list(core.queues.items()) + list(core.topics.items()):
            if is_advisory(address):
                continue
            if name == consumer_topic(address):
                subs = q.consumers if address.is_queue else q.subs
                count = len(subs)
                for consumer in list(subs):
                    self._deliver(sub, {"consumerCount": count}, self.consumer_info(consumer))
                return
        producers = [(a, o) for a, o in self.producers.values() if producer_topic(a) == name]
        for address, owner in producers:
            info = {
                "commandId": 0,
                "responseRequired": False,
                "producerId": {
                    "connectionId": self.connection_id(owner),
                    "sessionId": -1,
                    "value": 1,
                },
                "destination": destination_json(address),
                "dispatchAsync": False,
                "windowSize": 0,
            }
            self._deliver(sub, {"producerCount": len(producers)}, {"ProducerInfo": info})

    # -- publishing ------------------------------------------------------------------------

    def _consumers(self, address: Address) -> int:
        core = self.core
        if address.is_queue:
            q = core.queues.get(address)
            return len(q.consumers) if q is not None else 0
        t = core.topics.get(address)
        return len(t.subs) if t is not None else 0

    def _message(self, props: dict[str, Any], body: dict[str, Any]) -> Message:
        return Message(
            json.dumps(body, separators=(",", ":")).encode() if body else b"",
            properties={**self._props, "transformation": TRANSFORMATION, **props},
            text=True,
            type="Advisory",
            priority=0,  # ActiveMQ's advisories leave it unset: 0
        )

    def _publish(self, name: str, props: dict[str, Any], body: dict[str, Any]) -> None:
        if not self.enabled:
            return
        address = Address(TOPIC, name)
        if not self.core.has_subscribers(address):
            return
        self.core.send(address, self._message(props, body))

    def _deliver(self, sub: Subscription, props: dict[str, Any], body: dict[str, Any]) -> None:
        msg = self._message(props, body)
        core = self.core
        msg.id = core.next_id()
        msg.timestamp = core.now_ms()
        msg.destination = sub.address
        sub.source.put(msg)


def _remove_info(object_id: dict[str, Any], *, response: bool = False) -> dict[str, Any]:
    return {
        "RemoveInfo": {
            "commandId": 0,
            "responseRequired": response,
            "objectId": object_id,
            "lastDeliveredSequenceId": -2,
        }
    }


def _destination_info(address: Address, added: bool) -> dict[str, Any]:
    return {
        "DestinationInfo": {
            "commandId": 0,
            "responseRequired": False,
            "destination": destination_json(address),
            "operationType": ADD if added else REMOVE,
            "timeout": 0,
        }
    }


def _message_json(address: Address, msg: Message) -> dict[str, Any]:
    """The advised message (Expired, MessageDLQd) as ActiveMQ's JSON shows it, with the
    fields ZoneMQ has; its body is left out, as ActiveMQ's includeBodyForAdvisory=false."""
    kind = "ActiveMQTextMessage" if msg.text else "ActiveMQBytesMessage"
    return {
        kind: {
            "commandId": 0,
            "responseRequired": False,
            "messageId": {"value": msg.id},
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
