"""Subscriptions over several destinations: wildcards and composites (issue 12).

A topic subscription to a wildcard (`a.*`) or a composite (`a,b`) is one ordinary
Subscription with one private queue; the core puts it in the `subs` of every Topic it
covers (`TopicSet` records which), so `Topic.put` offers it each message as any other
subscriber and routing a message costs nothing for the patterns that do not match.
Topics created later join through the core's trie of wildcard topic subscriptions.

A queue subscription to several queues is a `QueueGroup`: what the protocol holds, with
one `Member` (an ordinary Subscription) on each queue, so each queue's dispatch is its
own (MessageQueue is untouched). As in ActiveMQ, where one consumer is added to every
matching queue, the members share one prefetch: a member is ready only while the
group's messages in flight are below it, and an outcome on any member lets every member
dispatch again. Queues created later get a member through the core's trie of wildcard
queue groups; a deleted queue's member leaves the group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.core.message import Address, Message
from broker.core.queue import AUTO, CLIENT, INDIVIDUAL, Consumer, MessageQueue, Subscription

if TYPE_CHECKING:
    from broker.core.core import Core
    from broker.core.selector import Selector
    from broker.core.topic import Topic
    from broker.core.transaction import Transaction


class TopicSet:
    """What a wildcard or composite topic subscription covers: its patterns (literal
    names or wildcards) and the topics it is a subscriber of now."""

    __slots__ = ("patterns", "topics")

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.patterns = patterns
        self.topics: list[Topic] = []


class Member(Subscription):
    """A QueueGroup's subscription on one of its queues."""

    __slots__ = ("group",)

    group: QueueGroup

    def ready(self) -> bool:
        return not self.paused and (self.auto or self.group.held < self.prefetch)

    def deliver(self, msg: Message) -> None:
        group = self.group
        if not self.auto:
            group.held += 1
            holders = group.inflight.get(msg.id)
            if holders is None:
                group.inflight[msg.id] = [self]  # type: ignore[assignment]
            else:
                # The same message id on two queues (a composite send, a virtual topic).
                holders.append(self)  # type: ignore[attr-defined]
        super().deliver(msg)

    def _take(self, msg_id: str, cumulative: bool) -> list[Message]:
        taken = super()._take(msg_id, cumulative)
        if taken:
            self.group.forget(self, msg_id)
        return taken

    def take_back(self, msg_id: str) -> Message | None:
        msg = super().take_back(msg_id)
        if msg is not None:
            self.group.forget(self, msg_id)
        return msg

    def restore(self, msgs: list[Message]) -> None:
        super().restore(msgs)
        group = self.group
        for msg in msgs:
            group.held += 1
            group.inflight.setdefault(msg.id, []).append(self)  # type: ignore[attr-defined]

    def close(self) -> None:
        if self.closed:
            return
        group = self.group
        for msg_id in list(self.inflight):
            group.forget(self, msg_id)
        super().close()
        group.members.remove(self)
        if not group.closed:
            group.dispatch()  # the credit it held is free for the other queues


class QueueGroup(Subscription):
    """A consumer of several queues (wildcard and/or composite), held by the protocol
    as its Subscription. `inflight` maps each message id in flight to the members that
    delivered it, in delivery order (a client ack is cumulative over the group, as
    ActiveMQ's is over its one subscription)."""

    __slots__ = ("held", "members", "patterns")

    def __init__(
        self,
        core: Core,
        num: int,
        address: Address,
        patterns: tuple[str, ...],
        consumer: Consumer,
        *,
        ack_mode: str,
        prefetch: int,
        tag: object = None,
        selector: Selector | None = None,
    ) -> None:
        # The group itself holds no messages: its `source` is an empty queue no one
        # sends to, so code that reads a subscription's source finds a queue.
        super().__init__(
            core,
            num,
            address,
            MessageQueue(core, address),
            consumer,
            ack_mode=ack_mode,
            prefetch=prefetch,
            tag=tag,
            selector=selector,
        )
        self.patterns = patterns
        self.members: list[Member] = []
        # Messages in flight over all members (what the shared prefetch bounds).
        self.held = 0
        # Message id -> the members that delivered it (see the class docstring); the
        # protocols only ask whether an id is in flight here.
        self.inflight = {}  # type: ignore[assignment]

    def attach(self, queue: MessageQueue) -> None:
        """Consume from `queue` too (once)."""
        if self.closed or any(m.source is queue for m in self.members):
            return
        core = self.core
        member = Member(
            core,
            core.subscription_num(),
            queue.address,
            queue,
            self.consumer,
            ack_mode=AUTO if self.auto else INDIVIDUAL,
            prefetch=self.prefetch,
            tag=self.tag,
            selector=self.selector,
        )
        member.group = self
        member.paused = self.paused
        self.members.append(member)
        core.add_consumer(queue, member)

    def forget(self, member: Member, msg_id: str) -> None:
        holders: list[Member] | None = self.inflight.get(msg_id)  # type: ignore[assignment]
        if holders is None or member not in holders:
            return
        holders.remove(member)
        if not holders:
            del self.inflight[msg_id]
        self.held -= 1

    def dispatch(self) -> None:
        """Let every member's queue dispatch (credit was freed, or the group resumed)."""
        for member in list(self.members):
            if not member.closed:
                member.source.dispatch()

    def ready(self) -> bool:
        return not self.paused and (self.auto or self.held < self.prefetch)

    # -- outcomes, routed to the member that delivered the message ------------------------

    def _holder(self, msg_id: str) -> Member | None:
        holders: list[Member] | None = self.inflight.get(msg_id)  # type: ignore[assignment]
        return holders[0] if holders else None

    def _outcome(self, msg_id: str, settle: str, cause: str, tx: Transaction | None) -> bool:
        first = self._holder(msg_id)
        if first is None:
            return False
        if settle == "ack" and self.ack_mode == CLIENT:
            ids: list[str] = []
            for key in self.inflight:
                ids.append(key)
                if key == msg_id:
                    break
        else:
            ids = [msg_id]
        for key in ids:
            member = self._holder(key)
            if member is None:
                continue
            if settle == "ack":
                member.ack(key, tx=tx)
            elif settle == "nack":
                member.nack(key, tx=tx)
            elif settle == "poison":
                member.dead_letter(key, cause, tx=tx)
            else:
                member.release(key)
        self.dispatch()
        return True

    def ack(self, msg_id: str, *, tx: Transaction | None = None) -> bool:
        return self._outcome(msg_id, "ack", "", tx)

    def nack(self, msg_id: str, *, tx: Transaction | None = None) -> bool:
        return self._outcome(msg_id, "nack", "", tx)

    def dead_letter(self, msg_id: str, cause: str = "", *, tx: Transaction | None = None) -> bool:
        return self._outcome(msg_id, "poison", cause, tx)

    def release(self, msg_id: str) -> bool:
        return self._outcome(msg_id, "release", "", None)

    def take_back(self, msg_id: str) -> Message | None:
        member = self._holder(msg_id)
        return member.take_back(msg_id) if member is not None else None

    def restore(self, msgs: list[Message]) -> None:
        # Transactions hold the member that acked, never the group (see Member).
        raise NotImplementedError("restore goes to the member")

    def pause(self) -> None:
        self.paused = True
        for member in self.members:
            member.paused = True

    def resume(self) -> None:
        if not self.paused:
            return
        self.paused = False
        for member in self.members:
            member.paused = False
        if not self.closed:
            self.dispatch()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.core.unsubscribe(self)
        for member in list(self.members):
            member.close()
