"""Routing by pattern for one Core (issue 12): which destinations a wildcard or
composite subscription covers, and which queues a virtual topic forwards to.

Nothing here runs per message. Patterns are matched when a destination or a
subscription is created, through SubjectTries (broker/core/subjects.py), and the result
is kept where dispatch already looks: a topic's `subs`, a QueueGroup's members on each
queue (broker/core/multi.py), a virtual topic's `forward` list of consumer queues.
Only queues and topics take part, never temporary destinations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.core.errors import INVALID, CoreError
from broker.core.message import QUEUE, TOPIC, Address, Message
from broker.core.multi import QueueGroup, TopicSet
from broker.core.queue import Consumer, MessageQueue, Subscription
from broker.core.subjects import SubjectTrie, is_wildcard, matches

if TYPE_CHECKING:
    from broker.core.core import Core
    from broker.core.selector import Selector
    from broker.core.topic import Topic


class Router:
    """The tries of one Core: the queues and topics that exist, and the wildcard
    subscriptions waiting for new ones; and the virtual topic rule (ActiveMQ's default
    virtualDestinationInterceptor: topics matching `vt_name` forward to the existing
    queues named `vt_prefix` + the topic's name; `vt_name` "" turns it off)."""

    __slots__ = (
        "core",
        "queue_names",
        "queue_watchers",
        "topic_names",
        "topic_watchers",
        "vt_depth",
        "vt_name",
        "vt_prefix",
    )

    def __init__(self, core: Core, vt_name: str, vt_prefix: str) -> None:
        self.core = core
        self.queue_names: SubjectTrie[MessageQueue] = SubjectTrie()
        self.topic_names: SubjectTrie[Topic] = SubjectTrie()
        self.queue_watchers: SubjectTrie[QueueGroup] = SubjectTrie()
        self.topic_watchers: SubjectTrie[Subscription] = SubjectTrie()
        self.vt_name = vt_name
        self.vt_prefix = vt_prefix
        self.vt_depth = vt_prefix.count(".")

    # -- destinations come and go ---------------------------------------------------------

    def _virtual_topic_of(self, queue_name: str) -> Topic | None:
        """The existing virtual topic whose consumer queue `queue_name` would be."""
        if not self.vt_name or queue_name.count(".") < self.vt_depth:
            return None
        topic_name = queue_name.split(".", self.vt_depth)[-1]
        t = self.core.topics.get(Address(TOPIC, topic_name))
        if t is None or t.forward is None or not matches(self.vt_prefix + topic_name, queue_name):
            return None
        return t

    def queue_created(self, q: MessageQueue) -> None:
        """A new queue joins the wildcard consumers that match it and, if it is a
        virtual topic's consumer queue, that topic's forwards."""
        name = q.address.name
        self.queue_names.add(name, q)
        for group in self.queue_watchers.matching(name):
            group.attach(q)
        t = self._virtual_topic_of(name)
        if t is not None and t.forward is not None:
            t.forward.append(q)

    def queue_deleted(self, q: MessageQueue) -> None:
        """(Its consumers, wildcard members too, were closed by Core.delete.)"""
        self.queue_names.remove(q.address.name, q)
        t = self._virtual_topic_of(q.address.name)
        if t is not None and t.forward and q in t.forward:
            t.forward.remove(q)

    def topic_created(self, t: Topic) -> None:
        """A new topic gets the wildcard subscribers that match it and, if it is a
        virtual topic, the consumer queues that exist."""
        name = t.address.name
        self.topic_names.add(name, t)
        for sub in self.topic_watchers.matching(name):
            covered = sub.topic
            if isinstance(covered, TopicSet) and not sub.closed and t not in covered.topics:
                covered.topics.append(t)
                t.subs.append(sub)
        if self.vt_name and matches(self.vt_name, name):
            t.forward = self.queue_names.matched_by(self.vt_prefix + name)

    def topic_deleted(self, t: Topic) -> None:
        """Take `t` out of the wildcard and composite subscribers covering it (they
        cover other topics too, so they stay open); Core.delete closes the rest."""
        self.topic_names.remove(t.address.name, t)
        for sub in list(t.subs):
            covered = sub.topic
            if isinstance(covered, TopicSet):
                t.subs.remove(sub)
                covered.topics.remove(t)

    def forwards(self, topic: Topic, msg: Message) -> list[tuple[MessageQueue, Message]]:
        """A virtual topic's message as each of its consumer queues gets it: a copy (a
        queued message is mutated where it sits), the same id, the queue as destination."""
        out = []
        for q in topic.forward or ():
            copy = msg.copy()
            copy.destination = q.address
            out.append((q, copy))
        return out

    # -- subscriptions over several destinations ------------------------------------------

    @staticmethod
    def covered(address: Address | tuple[Address, ...]) -> tuple[Address, ...]:
        """What a subscription to `address` consumes from. Of a composite, only the
        parts of its first part's kind, as ActiveMQ 5.17 (its composite is a queue or a
        topic; `/queue/a,/topic/b` consumes from queue a alone); wildcards only on
        queues and topics, not temporary ones."""
        parts = (address,) if type(address) is not tuple else address
        if not parts:
            raise CoreError(INVALID, "composite destination is empty")
        first = parts[0]
        out: list[Address] = []
        for part in parts:
            if part.is_queue != first.is_queue:
                continue
            if part.kind not in (QUEUE, TOPIC) and is_wildcard(part.name):
                raise CoreError(INVALID, f"{part}: a temporary destination has no wildcards")
            if part not in out:
                out.append(part)
        return tuple(out)

    def subscribe_queues(
        self,
        parts: tuple[Address, ...],
        consumer: Consumer,
        ack_mode: str,
        prefetch: int | None,
        tag: object,
        paused: bool,
        selector: Selector | None,
    ) -> Subscription:
        core = self.core
        group = QueueGroup(
            core,
            core.subscription_num(),
            parts[0],
            tuple(p.name for p in parts),
            consumer,
            ack_mode=ack_mode,
            prefetch=prefetch or core.limits.queue_prefetch,
            tag=tag,
            selector=selector,
        )
        group.paused = paused
        for part in parts:
            if is_wildcard(part.name) and part.kind == QUEUE:
                self.queue_watchers.add(part.name, group)
                for q in self.queue_names.matched_by(part.name):
                    group.attach(q)
            else:
                group.attach(core.queue(part))  # created on first use, as a plain subscribe
        return group

    def subscribe_topics(
        self,
        parts: tuple[Address, ...],
        consumer: Consumer,
        ack_mode: str,
        prefetch: int | None,
        no_local: bool,
        origin: object,
        tag: object,
        paused: bool,
        selector: Selector | None,
    ) -> Subscription:
        core = self.core
        covered = TopicSet(tuple(p.name for p in parts))
        source = MessageQueue(core, parts[0], limit=core.limits.topic_pending_limit)
        sub = Subscription(
            core,
            core.subscription_num(),
            parts[0],
            source,
            consumer,
            ack_mode=ack_mode,
            prefetch=prefetch or core.limits.topic_prefetch,
            no_local=no_local,
            origin=origin,
            tag=tag,
            topic=covered,
            selector=selector,
        )
        sub.paused = paused
        source.add_consumer(sub)
        topics: list[Topic] = []
        for part in parts:
            if is_wildcard(part.name):
                self.topic_watchers.add(part.name, sub)
                topics.extend(self.topic_names.matched_by(part.name))
            else:
                topics.append(core.topic(part))
        for t in topics:
            if t not in covered.topics:
                covered.topics.append(t)
                t.subs.append(sub)
        return sub

    def unsubscribed(self, sub: Subscription) -> None:
        """A wildcard or composite subscription closed: forget it everywhere."""
        covered = sub.topic
        if isinstance(covered, TopicSet):
            for pattern in covered.patterns:
                self.topic_watchers.remove(pattern, sub)
            for t in covered.topics:
                if sub in t.subs:
                    t.subs.remove(sub)
            if covered.topics:
                # Its counters stay with the first topic it covered, counted once.
                first = covered.topics[0]
                for key in first.gone:
                    first.gone[key] += getattr(sub.source, key)
            covered.topics.clear()
        elif isinstance(sub, QueueGroup):
            for pattern in sub.patterns:
                self.queue_watchers.remove(pattern, sub)
