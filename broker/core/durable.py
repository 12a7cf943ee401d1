"""Durable topic subscriptions: ActiveMQ's (client id, subscription name) subscriptions,
which keep what is published to their topic while no consumer is attached.

A durable subscription is a core-owned MessageQueue (address kind DURABLE) fed by its
topic: `Topic.put` offers each message to the topic's durable subscriptions (`offer`),
which apply their selector and no-local and put the message on their queue. A
persistent message is journaled on that queue first (an ADD under the subscription's
queue address), so what queues already do holds for it unchanged: paging as stubs,
COUNT records, returns flagged redelivered, recovery at start, the expiry sweep. At most
one consumer at a time; it is a plain queue Subscription on that queue (its `topic`
None), so a consumer that leaves returns its unacknowledged messages, counted, to the
next one.

The subscription itself is a journal record (DURABLE_SUB, broker/store/messages.py:
client id, name, topic, selector, no-local), written when it is created and when it
is removed; replay re-creates it before its queue's messages are restored.

As ActiveMQ 5.17 (TopicRegion):
- subscribing again with another topic, selector or no-local replaces it: the old one
  and its messages are dropped (`hasDurableSubChanged`; KahaDB keeps no-local);
- a second consumer while one is attached is refused ("Durable consumer is in use for
  client: c and subscriptionName: n");
- removing needs it inactive ("Durable consumer is in use"), and an unknown one is "No
  durable subscription exists for clientID: c and subscriptionName: n";
- non-persistent messages wait for an offline subscriber in memory, never journaled,
  so a restart loses them (ActiveMQ's pending cursor: memory, then its temp store);
- no slow-consumer policy applies (that bounds non-durable subscribers): an offline
  subscription is bounded by paging, as a queue is.
No-local compares a message's origin with that of the connection that last consumed
(ActiveMQ's NoLocalExpression keeps the last connection id), so while offline no
message is local.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.core.errors import INVALID, NOT_FOUND, CoreError
from broker.core.message import DURABLE, TOPIC, Address, Message
from broker.core.queue import Consumer, MessageQueue, Subscription
from broker.core.selector import Selector

if TYPE_CHECKING:
    from broker.core.core import Core
    from broker.core.topic import Topic

# ActiveMQPrefetchPolicy.DEFAULT_DURABLE_TOPIC_PREFETCH: a durable STOMP subscription's
# default credit.
DURABLE_PREFETCH = 100

# What the journal keeps of a subscription besides its key: topic kind and name,
# selector text (or None), whether the selector converts strings (STOMP), no-local.
Info = tuple[str, str, str | None, bool, bool]


def queue_address(client_id: str, name: str) -> Address:
    """The address a subscription's messages are journaled under. The client id's length
    leads, so that no two (client id, name) pairs share one."""
    return Address(DURABLE, f"{len(client_id)}:{client_id}:{name}")


class DurableSub:
    """One durable subscription: its key, topic and filters, and its queue."""

    __slots__ = ("client_id", "name", "no_local", "origin", "queue", "selector", "topic")

    def __init__(
        self,
        core: Core,
        client_id: str,
        name: str,
        topic: Address,
        selector: Selector | None,
        no_local: bool,
    ) -> None:
        self.client_id = client_id
        self.name = name
        self.topic = topic
        self.selector = selector
        self.no_local = no_local
        # The origin of the connection that consumed last (no-local compares with it).
        self.origin: object = None
        self.queue = MessageQueue(
            core, queue_address(client_id, name), memory_limit=core.limits.queue_memory_limit
        )
        self.queue.prioritized = core.policies.for_name(topic.name).prioritized_messages

    @property
    def active(self) -> bool:
        return bool(self.queue.consumers)

    @property
    def label(self) -> str:
        """Its name in stats and metrics: ActiveMQ's subscription key, client:name."""
        return f"{self.client_id}:{self.name}"

    def info(self) -> Info:
        sel = self.selector
        return (
            self.topic.kind,
            self.topic.name,
            sel.text if sel is not None else None,
            sel.convert_strings if sel is not None else False,
            self.no_local,
        )


# The queues of the durable subscriptions a message goes to (`targets`).
Offer = list[MessageQueue]


def targets(subs: list[DurableSub], msg: Message) -> Offer:
    """The queues of the subscriptions `msg` goes to (no side effect: a transaction
    journals it for them in its own record before it is put there)."""
    out: Offer = []
    origin = msg.origin
    for d in subs:
        if d.no_local and origin is not None and origin == d.origin:
            continue
        sel = d.selector
        if sel is not None and not sel.matches(msg):
            continue
        out.append(d.queue)
    return out


def offer(subs: list[DurableSub], msg: Message, chosen: Offer | None = None) -> None:
    """A message published to a topic, for the durable subscriptions it has: journaled
    on each one's queue and put there; or, from a committed transaction, put on the
    `chosen` ones, for which its record has journaled it."""
    for q in targets(subs, msg) if chosen is None else chosen:
        if msg.persistent and q.durable:
            if chosen is None:
                q.core.records.offered(q, msg)
            if q.bytes > q.memory_limit:
                # Paging drops the body or forgets the Message, and the topic's other
                # subscribers share this one: page out a copy of it (the same record).
                q.put(msg.copy())
                continue
        q.put(msg)


def _text(selector: Selector | None) -> str | None:
    return selector.text if selector is not None else None


class Durables:
    """Every durable subscription of one Core: by key, by topic, by queue address."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.subs: dict[tuple[str, str], DurableSub] = {}
        # The list a Topic offers to (Topic.durables is the same object).
        self._by_topic: dict[Address, list[DurableSub]] = {}
        self._by_queue: dict[Address, DurableSub] = {}
        # Client ids in use: client id -> (the connection, where it connected from).
        self._clients: dict[str, tuple[object, str]] = {}

    def bind(self, topic: Topic) -> None:
        """A topic just created (or created again) gets the subscriptions to it."""
        subs = self._by_topic.get(topic.address)
        if subs:
            topic.durables = subs
            topic.durable = self.core.records.persists

    def subscribe(
        self,
        client_id: str,
        name: str,
        topic: Address,
        consumer: Consumer,
        *,
        ack_mode: str,
        prefetch: int | None,
        no_local: bool,
        origin: object,
        tag: object,
        paused: bool,
        selector: Selector | None,
    ) -> Subscription:
        """Attach the one consumer of subscription (client_id, name), creating it, or
        replacing it when its topic, selector or no-local differ (module docstring)."""
        if topic.is_queue:
            raise CoreError(
                INVALID, "Invalid Subscription: cannot durably subscribe to a Queue destination!"
            )
        if topic.kind != TOPIC:
            # A temporary topic dies with its connection (TempTopicRegion refuses too).
            raise CoreError(
                INVALID, "A durable subscription cannot be created for a temporary topic."
            )
        d = self.subs.get((client_id, name))
        if d is not None:
            if d.active:
                raise CoreError(
                    INVALID,
                    f"Durable consumer is in use for client: {client_id} "
                    f"and subscriptionName: {name}",
                )
            if d.topic != topic or _text(d.selector) != _text(selector) or d.no_local != no_local:
                self._drop(d)
                d = None
        if d is None:
            d = self._add(client_id, name, topic, selector, no_local)
            self.core.records.subscription_saved(client_id, name, d.info())
        d.origin = origin
        core = self.core
        sub = Subscription(
            core,
            core.subscription_num(),
            topic,
            d.queue,
            consumer,
            ack_mode=ack_mode,
            prefetch=prefetch or DURABLE_PREFETCH,
            no_local=no_local,
            origin=origin,
            tag=tag,
        )
        sub.paused = paused
        d.queue.add_consumer(sub)
        d.queue.dispatch()
        return sub

    def find(self, client_id: str, name: str) -> DurableSub | None:
        return self.subs.get((client_id, name))

    def remove(self, client_id: str, name: str) -> None:
        """Delete subscription (client_id, name) and its messages; it must be inactive."""
        d = self.subs.get((client_id, name))
        if d is None:
            raise CoreError(
                NOT_FOUND,
                f"No durable subscription exists for clientID: {client_id} "
                f"and subscriptionName: {name}",
            )
        if d.active:
            raise CoreError(INVALID, "Durable consumer is in use")
        self._drop(d)

    def _add(
        self,
        client_id: str,
        name: str,
        topic: Address,
        selector: Selector | None,
        no_local: bool,
    ) -> DurableSub:
        d = DurableSub(self.core, client_id, name, topic, selector, no_local)
        self.subs[(client_id, name)] = d
        self._by_queue[d.queue.address] = d
        subs = self._by_topic.get(topic)
        if subs is None:
            subs = self._by_topic[topic] = []
        subs.append(d)
        t = self.core.topics.get(topic)
        if t is None:
            self.core.topic(topic)  # binds it
        else:
            self.bind(t)
        return d

    def _drop(self, d: DurableSub) -> None:
        del self.subs[(d.client_id, d.name)]
        del self._by_queue[d.queue.address]
        subs = self._by_topic[d.topic]
        subs.remove(d)
        if not subs:
            del self._by_topic[d.topic]
            t = self.core.topics.get(d.topic)
            if t is not None and t.durables is subs:
                t.durables = []
                t.durable = False
        # Its messages' REMOVEs before the subscription's: a torn tail then keeps the
        # subscription with fewer messages, never messages without a subscription.
        d.queue.purge()
        self.core.records.subscription_deleted(d.client_id, d.name)
        self.core.retire(d.queue)

    # -- client ids: one connection each, the key of its durable subscriptions -----------

    def claim_client(self, client_id: str, owner: object, where: str) -> str | None:
        """Let `owner` (a connection, connected from `where`) use `client_id`; if another
        connection holds it, None is not returned but that one's `where` (ActiveMQ's
        RegionBroker.addConnection refuses a client id already connected)."""
        held = self._clients.get(client_id)
        if held is not None and held[0] is not owner:
            return held[1]
        self._clients[client_id] = (owner, where)
        return None

    def release_client(self, client_id: str, owner: object) -> None:
        held = self._clients.get(client_id)
        if held is not None and held[0] is owner:
            del self._clients[client_id]

    # -- recovery -------------------------------------------------------------------------

    def restore(self, recovered: dict[tuple[str, str], Info]) -> None:
        """Re-create the journaled subscriptions (before their messages are restored)."""
        for (client_id, name), (kind, topic, text, convert, no_local) in recovered.items():
            selector = Selector(text, convert_strings=convert) if text is not None else None
            self._add(client_id, name, Address(kind, topic), selector, no_local)

    def queue_of(self, address: Address) -> MessageQueue | None:
        """The queue journaled under `address`, if its subscription still exists."""
        d = self._by_queue.get(address)
        return d.queue if d is not None else None
