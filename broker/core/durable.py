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

A subscription covers one topic, a wildcard pattern (`a.*`, `a.>`) or a composite
(`a,b.*`): its `parts`. Each part is a key of the Durables' SubjectTrie, so a topic
created later finds the subscriptions covering it with one trie walk, when it is
created (`bind`), never per message; each Topic keeps the list of the durable
subscriptions covering it (`Topic.durables`). A subscription is in that list once
however many of its parts match the topic, so a message is offered to it once; a
composite send (the same message id to several topics, one after the other) reaches a
subscription over several topics once, its first copy (`last_id`). ActiveMQ 5.17.2's
durable subscriptions get it once too, though not always its first copy; its plain
subscribers get every copy, and ZoneMQ's too.

The subscription itself is a journal record (DURABLE_SUB, broker/store/messages.py:
client id, name, topic, selector, no-local), written when it is created and when it
is removed; replay re-creates it before its queue's messages are restored. Its topic is
the name (one topic or one pattern: what every version wrote) or a tuple of names (a
composite), so journals written before wildcards were allowed replay unchanged.

As ActiveMQ 5.17 (TopicRegion):
- subscribing again with another topic, selector or no-local replaces it: the old one
  and its messages are dropped (`hasDurableSubChanged`; KahaDB keeps no-local); the
  topic is compared as written, so a composite with its parts in another order is
  another topic (both checked on 5.17.2 over STOMP);
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
from broker.core.subjects import SubjectTrie, is_wildcard

if TYPE_CHECKING:
    from broker.core.core import Core
    from broker.core.topic import Topic

# ActiveMQPrefetchPolicy.DEFAULT_DURABLE_TOPIC_PREFETCH: a durable STOMP subscription's
# default credit.
DURABLE_PREFETCH = 100

# What the journal keeps of a subscription besides its key: topic kind and name (a
# tuple of names for a composite), selector text (or None), whether the selector
# converts strings (STOMP), no-local.
Info = tuple[str, str | tuple[str, ...], str | None, bool, bool]


def queue_address(client_id: str, name: str) -> Address:
    """The address a subscription's messages are journaled under. The client id's length
    leads, so that no two (client id, name) pairs share one."""
    return Address(DURABLE, f"{len(client_id)}:{client_id}:{name}")


class DurableSub:
    """One durable subscription: its key, what it covers and its filters, and its queue.
    `topic` is its first part (its policy is that part's); `topics` the topics that
    feed it now."""

    __slots__ = (
        "client_id",
        "last_id",
        "multi",
        "name",
        "no_local",
        "origin",
        "parts",
        "queue",
        "selector",
        "topic",
        "topics",
    )

    def __init__(
        self,
        core: Core,
        client_id: str,
        name: str,
        parts: tuple[Address, ...],
        selector: Selector | None,
        no_local: bool,
    ) -> None:
        self.client_id = client_id
        self.name = name
        self.parts = parts
        self.topic = parts[0]
        self.selector = selector
        self.no_local = no_local
        # Can one message reach it from two topics (a composite send)? Then the id of
        # the last message offered to it tells the second copy apart.
        self.multi = len(parts) > 1 or is_wildcard(parts[0].name)
        self.last_id: str | None = None
        # Insertion-ordered, and a deleted topic leaves in O(1) (a `>` may cover many).
        self.topics: dict[Topic, None] = {}
        # The origin of the connection that consumed last (no-local compares with it).
        self.origin: object = None
        self.queue = MessageQueue(
            core, queue_address(client_id, name), memory_limit=core.limits.queue_memory_limit
        )
        self.queue.prioritized = core.policies.for_name(self.topic.name).prioritized_messages

    @property
    def address(self) -> Address | tuple[Address, ...]:
        """What it was subscribed to: one Address, or a composite's parts."""
        return self.parts if len(self.parts) > 1 else self.topic

    @property
    def active(self) -> bool:
        return bool(self.queue.consumers)

    @property
    def label(self) -> str:
        """Its name in stats and metrics: ActiveMQ's subscription key, client:name."""
        return f"{self.client_id}:{self.name}"

    def info(self) -> Info:
        sel = self.selector
        parts = self.parts
        return (
            self.topic.kind,
            self.topic.name if len(parts) == 1 else tuple(p.name for p in parts),
            sel.text if sel is not None else None,
            sel.convert_strings if sel is not None else False,
            self.no_local,
        )


# The queues of the durable subscriptions a message goes to (`targets`).
Offer = list[MessageQueue]


def targets(subs: list[DurableSub], msg: Message) -> Offer:
    """The queues of the subscriptions `msg` goes to (a transaction journals it for them
    in its own record before it is put there; called once per message and topic, in
    send order, since a subscription over several topics remembers the id it last saw)."""
    out: Offer = []
    origin = msg.origin
    for d in subs:
        if d.multi:
            if d.last_id == msg.id:
                continue  # the next copy of a composite send (module docstring)
            d.last_id = msg.id
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
    """Every durable subscription of one Core: by key, by queue address, and by the
    names and patterns they cover (a SubjectTrie: a topic's subscriptions are found
    when the topic is created, `bind`)."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.subs: dict[tuple[str, str], DurableSub] = {}
        self._by_queue: dict[Address, DurableSub] = {}
        # Each subscription under each of its parts' names (literal or a pattern).
        self._covering: SubjectTrie[DurableSub] = SubjectTrie()
        # Client ids in use: client id -> (the connection, where it connected from).
        self._clients: dict[str, tuple[object, str]] = {}

    def bind(self, topic: Topic) -> None:
        """A topic just created (or created again) gets the subscriptions covering it."""
        if topic.address.kind != TOPIC or not self._covering.size:
            return
        for d in self._covering.matching(topic.address.name):
            self._feed(d, topic)

    def unbind(self, topic: Topic) -> None:
        """A topic deleted: its subscriptions stay (a new topic of that name feeds them)."""
        for d in topic.durables:
            d.topics.pop(topic, None)
        topic.durables = []
        topic.durable = False

    def _feed(self, d: DurableSub, topic: Topic) -> None:
        if d in topic.durables:
            return  # two parts of a composite match it: offered once
        topic.durables.append(d)
        topic.durable = self.core.records.persists
        d.topics[topic] = None

    def subscribe(
        self,
        client_id: str,
        name: str,
        parts: tuple[Address, ...],
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
        """Attach the one consumer of subscription (client_id, name) over `parts` (one
        topic, or a wildcard's or composite's: Router.covered), creating it, or
        replacing it when what it covers, its selector or no-local differ (module
        docstring)."""
        topic = parts[0]
        if topic.is_queue:
            raise CoreError(
                INVALID, "Invalid Subscription: cannot durably subscribe to a Queue destination!"
            )
        if any(p.kind != TOPIC for p in parts):
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
            if d.parts != parts or _text(d.selector) != _text(selector) or d.no_local != no_local:
                self._drop(d)
                d = None
        if d is None:
            d = self._add(client_id, name, parts, selector, no_local)
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
        parts: tuple[Address, ...],
        selector: Selector | None,
        no_local: bool,
    ) -> DurableSub:
        core = self.core
        d = DurableSub(core, client_id, name, parts, selector, no_local)
        self.subs[(client_id, name)] = d
        self._by_queue[d.queue.address] = d
        for part in parts:
            self._covering.add(part.name, d)
        for part in parts:
            if is_wildcard(part.name):
                for t in core.router.topic_names.matched_by(part.name):
                    self._feed(d, t)
            else:
                t = core.topics.get(part)
                if t is None:
                    core.topic(part)  # created on first use, as a plain subscribe; binds it
                else:
                    self._feed(d, t)
        return d

    def _drop(self, d: DurableSub) -> None:
        del self.subs[(d.client_id, d.name)]
        del self._by_queue[d.queue.address]
        for part in d.parts:
            self._covering.remove(part.name, d)
        for t in d.topics:
            t.durables.remove(d)
            if not t.durables:
                t.durable = False
        d.topics.clear()
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
            names = (topic,) if type(topic) is str else tuple(topic)
            parts = tuple(Address(kind, n) for n in names)
            self._add(client_id, name, parts, selector, no_local)

    def queue_of(self, address: Address) -> MessageQueue | None:
        """The queue journaled under `address`, if its subscription still exists."""
        d = self._by_queue.get(address)
        return d.queue if d is not None else None
