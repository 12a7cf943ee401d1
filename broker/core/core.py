"""The Core: destinations, routing, subscriptions, dead-lettering and expiry.

This is the one API every protocol uses (see DESIGN.md "The core, as the protocols see
it"). It knows no wire protocol and never awaits: it is called on the event loop and
schedules its own timers through the `call_later` it is given. Destinations are created
on first use, as ActiveMQ does; temporary ones belong to an owner (a connection) and are
deleted with it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from broker.core import admin
from broker.core.advisory import Advisories, is_advisory
from broker.core.audit import ProducerAudit
from broker.core.durable import Durables, Info, Offer
from broker.core.errors import DELETED, INVALID, NOT_FOUND, STORE_FULL, CoreError
from broker.core.leases import Leases, Loop
from broker.core.message import (
    DURABLE,
    QUEUE,
    TEMP_QUEUE,
    TEMP_TOPIC,
    TOPIC,
    Address,
    Message,
)
from broker.core.multi import QueueGroup, TopicSet
from broker.core.persistence import Records, Store, journaled
from broker.core.policy import Policy, PolicyMap, Rule
from broker.core.queue import ACK_MODES, Consumer, MessageQueue, Subscription
from broker.core.routing import Router
from broker.core.scheduler import Schedule, Scheduler
from broker.core.selector import Selector
from broker.core.subjects import is_wildcard
from broker.core.topic import Topic
from broker.core.transaction import Transaction

KINDS = (QUEUE, TOPIC, TEMP_QUEUE, TEMP_TOPIC)
# Seconds between looks at the store while producers wait for it to drain.
_STORE_POLL = 0.1


@dataclass(frozen=True, slots=True)
class CoreLimits:
    """The slice of configuration the core uses."""

    queue_prefetch: int = 1000
    topic_prefetch: int = 32766
    # -1: no broker-side limit (ActiveMQ's default, without its redelivery plugin).
    max_redeliveries: int = -1
    dead_letter_queue: str = "ActiveMQ.DLQ"
    expired_to_dlq: bool = True
    dead_letter_non_persistent: bool = False
    expiry_check_interval: float = 30.0
    # ActiveMQ's schedulePeriodForDestinationPurge (s): 0, its default, collects nothing.
    inactive_purge_period: float = 0.0
    queue_memory_limit: int = 64 * 1024 * 1024
    # ActiveMQ's producerFlowControl, the default of the policy of that name.
    producer_flow_control: bool = True
    # Bytes queues whose policy turns producer flow control off may hold in memory past
    # their own memory limits, all together (policy.py, `producer_flow_control`).
    overflow_memory_limit: int = 256 * 1024 * 1024
    # ActiveMQ's sendFailIfNoSpace (systemUsage): a send that would pause its producer
    # for memory is refused instead (CoreError STORE_FULL, ActiveMQ's text).
    send_fail_if_no_space: bool = False
    # Bytes of persistent messages the store may hold (ActiveMQ's storeUsage; 0: no
    # limit); past it producers to durable queues wait ("block") or are refused ("fail").
    store_limit: int = 100 * 1024**3
    store_full_policy: str = "block"
    topic_pending_limit: int = 10000
    slow_consumer_policy: str = "drop-oldest"
    # Dispatch by priority (ActiveMQ's prioritizedMessages, false by default).
    prioritized_messages: bool = False
    # Per-destination policies, (pattern, Policy) or (pattern, Policy, kind): the first
    # match wins over the defaults above (broker/core/policy.py).
    policies: tuple[Rule, ...] = ()
    # Owned message groups per queue (ActiveMQ's CachedMessageGroupMap cacheSize).
    message_group_cache_size: int = 1024
    # Publish ActiveMQ.Advisory.* messages (ActiveMQ's advisorySupport, on by default).
    advisory_support: bool = True
    # ActiveMQ's default virtualDestinationInterceptor: a message sent to a topic
    # matching `virtual_topic_name` is also sent to each existing queue named
    # `virtual_topic_prefix` + the topic's name ("*" in the prefix: any one segment).
    virtual_topics: bool = True
    virtual_topic_name: str = "VirtualTopic.>"
    virtual_topic_prefix: str = "Consumer.*."
    # Scheduled delivery (ActiveMQ's schedulerSupport, false by default) and its bounds.
    scheduler_support: bool = False
    scheduler_max_jobs: int = 100000
    scheduler_max_bytes: int = 64 * 1024 * 1024


def default_policy(limits: CoreLimits) -> Policy:
    """The policy of a destination no configured rule matches: the limits' defaults."""
    return Policy(
        limits.dead_letter_queue,
        limits.max_redeliveries,
        limits.prioritized_messages,
        expired_to_dlq=limits.expired_to_dlq,
        dead_letter_non_persistent=limits.dead_letter_non_persistent,
        memory_limit=limits.queue_memory_limit,
        producer_flow_control=limits.producer_flow_control,
        queue_prefetch=limits.queue_prefetch,
        topic_prefetch=limits.topic_prefetch,
        topic_pending_limit=limits.topic_pending_limit,
        message_group_cache_size=limits.message_group_cache_size,
    )


@dataclass(frozen=True, slots=True)
class DestinationStats:
    """A snapshot of one destination for metrics, console and admin."""

    kind: str
    name: str
    depth: int
    inflight: int
    consumers: int
    enqueued: int
    dispatched: int
    acked: int
    redelivered: int
    dlq: int
    expired: int
    discarded: int
    memory: int


class Core:
    """All destinations of one broker and the operations on them."""

    def __init__(
        self,
        limits: CoreLimits | None = None,
        *,
        name: str = "zonemq",
        clock: Callable[[], float] = time.time,
        call_later: Callable[[float, Callable[[], None]], Any] | None = None,
        store: Store | None = None,
        loop: Loop | None = None,
    ) -> None:
        """`call_later` schedules the expiry sweep (none without it); `loop` gives pull
        delivery its timers and futures (default: the running event loop, looked up when
        `leases` is first used); `store` journals persistent messages (none: nothing
        persists)."""
        self.limits = limits or CoreLimits()
        # The one seam to storage: always present, a null store when nothing persists.
        self.records = Records(store)
        self.store: Store = self.records.store
        self.clock = clock
        self._call_later = call_later
        self.queues: dict[Address, MessageQueue] = {}
        self.topics: dict[Address, Topic] = {}
        self.policies = PolicyMap(default_policy(self.limits), self.limits.policies)
        self.advisories = Advisories(self, enabled=self.limits.advisory_support, broker_name=name)
        # Inactive destinations seen by the sweep, when some policy collects them:
        # address -> (enqueued count then, first seen inactive at, ms).
        self._inactive: dict[Address, tuple[int, int]] = {}
        # Unique per broker start: message ids must not repeat across restarts.
        self._id_prefix = f"ID:{name}-{int(clock() * 1000)}-"
        self._ids = itertools.count(1)
        self._sub_nums = itertools.count(1)
        self._expiry_timer: Any = None
        self._loop = loop
        self._store_limit = self.limits.store_limit
        self._store_fail = self.limits.store_full_policy == "fail"
        # Producers waiting for the store to drain, and the timer that looks for it.
        self._store_waiters: list[Callable[[], None]] = []
        self._store_timer: Any = None
        # Queues without producer flow control that went past their memory limit (they
        # add themselves, MessageQueue._push; dropped once back under it): their excess
        # together is bounded by `overflow_memory_limit`. Producers waiting for it, and
        # the timer that looks.
        self.overflowing: set[MessageQueue] = set()
        self._overflow_limit = self.limits.overflow_memory_limit
        self._overflow_waiters: list[Callable[[], None]] = []
        self._overflow_timer: Any = None
        self._send_fail = self.limits.send_fail_if_no_space
        self._leases: Leases | None = None
        # Wildcards, composites and virtual topics (broker/core/routing.py).
        self.router = Router(
            self,
            self.limits.virtual_topic_name if self.limits.virtual_topics else "",
            self.limits.virtual_topic_prefix,
        )
        # While replaying the journal a queue of any name is recreated (see _check_name).
        self._restoring = False
        # Durable topic subscriptions (broker/core/durable.py).
        self.durables = Durables(self)
        # The last stored sequence per producer, against resends after a failover
        # (broker/core/audit.py): the journal's replay fills it, protocols add to it.
        self.producer_audit = ProducerAudit()
        # Counters for destinations that have been deleted, so totals never go down.
        self.retired = {"enqueued": 0, "dispatched": 0, "acked": 0, "dlq": 0, "redelivered": 0}
        if call_later is not None and self.limits.expiry_check_interval > 0:
            self._expiry_timer = call_later(self.limits.expiry_check_interval, self._sweep)
        # Garbage collection of inactive destinations: its own period, as ActiveMQ's
        # purge task, and only when some policy asks for it.
        self._purge_timer: Any = None
        if (
            call_later is not None
            and self.limits.inactive_purge_period > 0
            and self.policies.any_gc
        ):
            self._purge_timer = call_later(self.limits.inactive_purge_period, self._purge)
        # Scheduled messages (broker/core/scheduler.py): one heap, one timer.
        self._scheduler_on = self.limits.scheduler_support
        self.scheduler = Scheduler(
            self,
            enabled=self.limits.scheduler_support,
            max_jobs=self.limits.scheduler_max_jobs,
            max_bytes=self.limits.scheduler_max_bytes,
            call_later=call_later,
        )

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def next_id(self) -> str:
        return self._id_prefix + str(next(self._ids))

    @property
    def leases(self) -> Leases:
        """Pull delivery (broker/core/leases.py), shared by every pull facade; created on
        first use and closed by `close`."""
        leases = self._leases
        if leases is None:
            loop = self._loop if self._loop is not None else asyncio.get_running_loop()
            leases = self._leases = Leases(self, loop)
        return leases

    def close(self) -> None:
        """Stop the core's timers and end pull delivery (leases, long polls)."""
        if self._leases is not None:
            self._leases.close()
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None
        if self._purge_timer is not None:
            self._purge_timer.cancel()
            self._purge_timer = None
        if self._store_timer is not None:
            self._store_timer.cancel()
            self._store_timer = None
        if self._overflow_timer is not None:
            self._overflow_timer.cancel()
            self._overflow_timer = None
        self.scheduler.close()

    # -- destinations ---------------------------------------------------------------------

    def subscription_num(self) -> int:
        """A number no subscription has, for a protocol's own kind of subscription (a
        STOMP queue browser) numbered with the others in its ack ids."""
        return next(self._sub_nums)

    def queue(self, address: Address, *, create: bool = True) -> MessageQueue:
        q = self.queues.get(address)
        if q is None:
            if address.kind == TEMP_QUEUE:
                raise CoreError(DELETED, f"temporary queue {address.name} does not exist")
            if not create:
                raise CoreError(NOT_FOUND, f"no such queue: {address.name}")
            self._check_name(address)
            q = self._new_queue(address)
            self.queues[address] = q
            self.records.queue_created(q)
            if address.kind == QUEUE:
                self.router.queue_created(q)
            self.advisories.destination(address)
        return q

    def _new_queue(self, address: Address, owner: object = None) -> MessageQueue:
        policy = self.policies.for_name(address.name)
        q = MessageQueue(self, address, memory_limit=policy.memory_limit, owner=owner)
        q.prioritized = policy.prioritized_messages
        q.flow_control = policy.producer_flow_control
        return q

    def restore(
        self,
        queues: dict[Address, list[Message]] | dict[Address, list[Message | tuple[int, int]]],
        flags: dict[Address, dict[str, bool]] | None = None,
        subscriptions: dict[tuple[str, str], Info] | None = None,
    ) -> None:
        """Rebuild queues recovered from the journal, messages in their stored order
        (what the store left paged out stays so until dispatch: body-less Messages, and
        stubs, which come with their priority as `(stub, priority)`). A message whose
        delivery a crash ended counts that delivery: past the limit it is dead-lettered,
        as a closed subscription's return would have done, unless its queue has its own
        limit (`set_own_limit`; the journal keeps it in the queue's `flags`). Durable
        topic `subscriptions` are re-created first, so that their queues' messages
        find them; messages of one that no longer exists are removed for good."""
        flags = flags or {}
        self.durables.restore(subscriptions or {})
        for address, msgs in queues.items():
            if address.kind == DURABLE:
                owned = self.durables.queue_of(address)
                if owned is None:
                    # Its subscription's deletion outlived some REMOVEs (a torn tail).
                    orphans = MessageQueue(self, address)
                    orphans.push_front(msgs)
                    orphans.purge()
                    continue
                q = owned
            else:
                # A queue named with a wildcard by an older version is kept, not refused.
                self._restoring = True
                try:
                    q = self.queue(address)
                finally:
                    self._restoring = False
            q.own_limit = bool(flags.get(address, {}).get("own_limit"))
            limit = self.policies.for_name(address.name).max_redeliveries
            keep: list[Message | tuple[int, int]] = []
            for msg in msgs:
                if type(msg) is tuple:  # a stub and its priority: never delivered yet
                    keep.append(msg)
                elif msg.redelivered and 0 <= limit < msg.delivery_count and not q.own_limit:
                    if msg.body is None:
                        msg.body = self.page_in(q, msg)
                    count = msg.delivery_count + 1
                    self.dead_letter(q, msg, f"Delivery[{count}] exceeds redelivery limit[{limit}]")
                else:
                    keep.append(msg)
            q.push_front(keep)
            q.enqueued += len(keep)

    def set_own_limit(self, address: Address) -> None:
        """Exempt queue `address` from the broker's redelivery limit (max_redeliveries):
        its counted returns (Core.redeliver) and crash-ended deliveries (Core.restore)
        raise the delivery count but never dead-letter. For queues whose pull owner
        (broker/core/leases.py, e.g. SQS) applies its own receive limit and target.
        Expiry still dead-letters. A durable queue keeps the flag across restarts in its
        journal destination record, since the journal is replayed before any protocol
        could set it again."""
        q = self.queue(address)
        if q.own_limit:
            return
        q.own_limit = True
        self.records.own_limit_set(q)

    def page_in(self, source: MessageQueue, msg: Message) -> bytes:
        """The body of a paged-out message, read back from the journal."""
        return self.records.load(source, msg)

    def topic(self, address: Address, *, create: bool = True) -> Topic:
        t = self.topics.get(address)
        if t is None:
            if address.kind == TEMP_TOPIC:
                raise CoreError(DELETED, f"temporary topic {address.name} does not exist")
            if not create:
                raise CoreError(NOT_FOUND, f"no such topic: {address.name}")
            self._check_name(address)
            t = Topic(address)
            self.topics[address] = t
            self.durables.bind(t)
            if address.kind == TOPIC:
                self.router.topic_created(t)
            self.advisories.destination(address)
        return t

    def create_temporary(self, address: Address, owner: object) -> None:
        """Create a temporary destination that lives until `delete_owned(owner)`."""
        if address.kind == TEMP_QUEUE:
            if address in self.queues:
                return
            self.queues[address] = self._new_queue(address, owner)
        elif address.kind == TEMP_TOPIC:
            if address in self.topics:
                return
            self.topics[address] = Topic(address, owner=owner)
        else:
            raise CoreError(INVALID, f"{address} is not a temporary destination")
        self.advisories.destination(address, owner=owner)

    def delete_owned(self, owner: object) -> None:
        """Delete the temporary destinations of `owner`, closing their subscriptions."""
        for address in [a for a, q in self.queues.items() if q.owner is owner]:
            self.delete(address)
        for address in [a for a, t in self.topics.items() if t.owner is owner]:
            self.delete(address)

    def delete(self, address: Address) -> None:
        """Delete a destination; its consumers are detached and its messages dropped."""
        if address.is_queue:
            q = self.queues.pop(address, None)
            if q is None:
                return
            owner = q.owner
            for sub in list(q.consumers):
                sub.close()  # a wildcard group's member leaves its group
            q.purge()
            self.records.queue_deleted(q)
            self.retire(q)
            if address.kind == QUEUE:
                self.router.queue_deleted(q)
        else:
            t = self.topics.pop(address, None)
            if t is None:
                return
            owner = t.owner
            if address.kind == TOPIC:
                self.router.topic_deleted(t)  # wildcard subscribers stay on their others
            self.durables.unbind(t)
            for sub in list(t.subs):
                sub.close()
            self.retired["enqueued"] += t.enqueued
        self.advisories.destination(address, added=False, owner=owner)

    def retire(self, q: MessageQueue) -> None:
        """Keep the counters of a queue that goes, so that totals never go down."""
        for key in self.retired:
            self.retired[key] += getattr(q, key)

    def _check_name(self, address: Address) -> None:
        if address.kind not in KINDS:
            raise CoreError(INVALID, f"unknown destination kind {address.kind!r}")
        if not address.name:
            raise CoreError(INVALID, "destination name is empty")
        if is_wildcard(address.name) and not self._restoring:
            # A wildcard names several destinations: it is subscribed to, never created
            # (ActiveMQ would create a queue named "a.*"; see README, Differences).
            raise CoreError(
                INVALID,
                f"{address} is a wildcard: it can be subscribed to, not sent to or browsed",
            )

    # -- producing ------------------------------------------------------------------------

    def send(
        self, address: Address, msg: Message, *, tx: Transaction | None = None
    ) -> Awaitable[None] | None:
        """Accept a message for `address`. Returns an awaitable that completes when the
        message is durable, or None when there is nothing to wait for (the message is
        not journaled: see broker/core/persistence.py)."""
        if not msg.id:
            msg.id = self.next_id()
        if not msg.timestamp:
            msg.timestamp = self.now_ms()
        msg.destination = address
        if self._scheduler_on and Scheduler.is_management(address):
            # ActiveMQ.Scheduler.Management: an instruction to the scheduler, at once
            # (also in a transaction, as ActiveMQ), never a message to deliver.
            self.scheduler.manage(msg)
            return None
        if tx is not None:
            if tx.finished:
                raise CoreError(INVALID, "transaction already finished")
            # Check now that the destination exists, so the error reaches the sender.
            dest = self._resolve(address)
            if dest.durable and msg.persistent:
                if self._store_fail and self.store_full:
                    self._refuse_store_full()
            elif self._send_fail and self.full(address):
                self._refuse_no_space(address)
            tx.add_send(address, msg)
            if dest.forward:
                for q, copy in self.router.forwards(dest, msg):
                    if q.durable and copy.persistent and self._store_fail and self.store_full:
                        self._refuse_store_full()
                    tx.add_send(q.address, copy)
            return None
        dest = self._resolve(address)
        # journaled(dest, msg), inlined: a message that is not journaled makes no call.
        if dest.durable and msg.persistent:
            if self._store_fail and self.store_full:
                self._refuse_store_full()
            done = self.records.sent(address, msg)
            dest.put(msg)
            if address.kind != QUEUE:
                # A topic's durable subscriptions journaled it as it was offered to them
                # (and a virtual topic's queues journal their copies).
                if dest.forward:
                    self._forward(dest, msg)
                return self.records.barrier()
            return done
        if self._send_fail and self.full(address):
            self._refuse_no_space(address)
        dest.put(msg)
        if dest.forward:
            return self._forward(dest, msg)
        return None

    def _forward(self, topic: Topic, msg: Message) -> Awaitable[None] | None:
        """Send a virtual topic's message on to its consumer queues (as ActiveMQ's
        VirtualTopicInterceptor: the queues that exist now; a queue created later does
        not get it). A persistent copy is journaled on each durable queue like any send."""
        written = False
        for q, copy in self.router.forwards(topic, msg):
            if q.durable and copy.persistent:
                if self._store_fail and self.store_full:
                    self._refuse_store_full()
                self.records.sent(q.address, copy)
                written = True
            q.put(copy)
        return self.records.barrier() if written else None

    def send_composite(
        self, addresses: tuple[Address, ...], msg: Message, *, tx: Transaction | None = None
    ) -> Awaitable[None] | None:
        """Send `msg` to each of `addresses` (a composite destination, ActiveMQ's
        `a,b`): a copy each, all with the same message id, each naming its own
        destination. Completes when every journaled copy is durable."""
        if not msg.id:
            msg.id = self.next_id()
        if not msg.timestamp:
            msg.timestamp = self.now_ms()
        for address in addresses:
            # Every part first: a part that cannot be sent to (a wildcard, a temporary
            # destination gone) refuses the whole send, none of it delivered.
            self._resolve(address)
        written = False
        for i, address in enumerate(addresses):
            if self.send(address, msg if i == 0 else msg.copy(), tx=tx) is not None:
                written = True
        return self.records.barrier() if written else None

    def schedule(
        self,
        address: Address,
        msg: Message,
        schedule: Schedule,
        *,
        tx: Transaction | None = None,
    ) -> Awaitable[None] | None:
        """`send`, for a message whose properties ask for scheduled delivery
        (`scheduler.schedule_of`): held by the scheduler until due, created at commit in
        a transaction. With scheduler support off it is `send`, properties and all
        (ActiveMQ's default). Returns the durability awaitable of the job's record."""
        if not self.scheduler.enabled:
            return self.send(address, msg, tx=tx)
        if not msg.id:
            msg.id = self.next_id()
        if not msg.timestamp:
            msg.timestamp = self.now_ms()
        msg.destination = address
        if tx is not None and tx.finished:
            raise CoreError(INVALID, "transaction already finished")
        # Check now that the destination exists, so the error reaches the sender.
        self._resolve(address)
        self.scheduler.check_room(msg)
        if tx is not None:
            tx.add_scheduled(address, msg, schedule)
            return None
        return self.scheduler.schedule_send(address, msg, schedule)

    def barrier(self) -> Awaitable[None] | None:
        """Completes when everything the core has written so far is durable (receipts
        for acks, commits and the like wait on it); None if nothing is outstanding."""
        return self.records.barrier()

    def has_subscribers(self, address: Address) -> bool:
        """Whether a message sent to topic `address` now would reach anyone."""
        t = self.topics.get(address)
        if t is not None:
            return bool(t.subs)
        # Not created yet: a wildcard subscriber (ActiveMQ.Advisory.>) would join it.
        return bool(self.router.topic_watchers.matching(address.name))

    # -- connections and producers (advisories only: the core keeps no other state) ----

    def connected(self, conn_id: object, **info: Any) -> None:
        """A client connection has logged in (ActiveMQ.Advisory.Connection); `info`:
        client_id, user, and the protocol's own connection_id and detail if it has them
        (Advisories.connection)."""
        self.advisories.connection(conn_id, added=True, **info)

    def disconnected(self, conn_id: object) -> None:
        self.advisories.connection(conn_id, added=False)

    def producer_added(
        self,
        producer_id: object,
        address: Address | None,
        owner: object = None,
        detail: object = None,
        ids: tuple[str, int, int] | None = None,
    ) -> None:
        """A producer of connection `owner` bound to `address` (None: anonymous, never
        advised) appeared; it goes with `disconnected(owner)` if not removed before.
        `detail`: the protocol's own structure for it, `ids` its own ProducerId as
        (connection, session, value), for its advisories."""
        self.advisories.producer(
            producer_id, address, added=True, owner=owner, detail=detail, ids=ids
        )

    def producer_removed(self, producer_id: object) -> None:
        self.advisories.producer(producer_id, None, added=False)

    def _resolve(self, address: Address) -> MessageQueue | Topic:
        return self.queue(address) if address.is_queue else self.topic(address)

    def route(self, address: Address, msg: Message, durable: Offer | None = None) -> None:
        """Deliver to the destination without journaling (the caller has done that; for
        a topic's durable subscriptions, `durable` says where it did: durable.targets)."""
        dest = self._resolve(address)
        if durable is None:
            dest.put(msg)
        else:
            assert isinstance(dest, Topic)
            dest.put(msg, durable)

    def stored(self, address: Address, msg: Message) -> bool:
        """Would a send of `msg` to `address` be journaled? (Records.journaled)"""
        return self.records.journaled(address, msg)

    def journaled(self, source: MessageQueue, msg: Message) -> bool:
        """Is `msg`, held by `source`, journaled? The one rule, for protocols that must
        know (e.g. to hold a delivery until its record is durable)."""
        return journaled(source, msg)

    def full(self, address: Address) -> bool:
        """Must a producer of a message `address` keeps in memory wait? True if it is a
        queue over its memory limit with producer flow control, or without it while
        the overflow of such queues is past `overflow_memory_limit`. (Cheap; checked per
        send: the overflow is only summed for a queue over its own limit.)"""
        q = self.queues.get(address)
        if q is None or q.bytes <= q.memory_limit:
            return False
        return q.flow_control or self.overflow_full

    @property
    def overflow_full(self) -> bool:
        """Do the queues without producer flow control hold more than
        `overflow_memory_limit` bytes past their own memory limits?"""
        return self._overflow() > self._overflow_limit

    def _overflow(self) -> int:
        total = 0
        queues = self.queues
        for q in list(self.overflowing):
            over = q.bytes - q.memory_limit
            if over <= 0 or queues.get(q.address) is not q:
                self.overflowing.discard(q)  # back under its limit, or deleted
            else:
                total += over
        return total

    def when_space(self, address: Address, callback: Callable[[], None]) -> bool:
        """Producer flow control: True (and `callback` later) if `address` is full
        (`full`), or a durable queue while the store is over `store_limit` (policy
        "block")."""
        q = self.queues.get(address)
        if q is None:
            return False
        if self.when_store_space(address, callback):
            return True
        if self._send_fail:
            return False  # the next send is refused instead (send_fail_if_no_space)
        if q.flow_control:
            return q.when_space(callback)
        if q.bytes <= q.memory_limit or not self.overflow_full:
            return False
        self._overflow_waiters.append(callback)
        if self._overflow_timer is None and self._call_later is not None:
            self._overflow_timer = self._call_later(_STORE_POLL, self._check_overflow)
        return True

    def _check_overflow(self) -> None:
        """Wake producers waiting for the overflow once it is below 90% of its limit.
        Queues do not report their excess as it shrinks, so the core looks, and only
        while someone waits."""
        self._overflow_timer = None
        if not self._overflow_waiters:
            return
        if self._overflow() <= self._overflow_limit * 0.9:
            waiters, self._overflow_waiters = self._overflow_waiters, []
            for callback in waiters:
                callback()
        elif self._call_later is not None:
            self._overflow_timer = self._call_later(_STORE_POLL, self._check_overflow)

    def _refuse_no_space(self, address: Address) -> None:
        """send_fail_if_no_space: the send that would have paused its producer is
        refused, with ActiveMQ 5.17's text (seen over STOMP with sendFailIfNoSpace)."""
        raise CoreError(
            STORE_FULL,
            f"Usage Manager Memory Limit reached on {address.kind}://{address.name}. "
            "See http://activemq.apache.org/producer-flow-control.html for more info",
        )

    def when_store_space(self, address: Address, callback: Callable[[], None]) -> bool:
        """The store limit alone (what a journaled send waits for; its body pages out
        rather than wait for queue memory): True, and `callback` once the store is
        below 90% of `store_limit`, if `address` is a durable queue and the store is
        over the limit under policy "block"; otherwise False and `callback` is never
        called. A callback cannot be taken back: a caller that may give up waiting
        registers one at a time for all its waiters (protocols/aws/flow.py)."""
        q = self.queues.get(address)
        if q is None or not q.durable or self._store_fail or not self.store_full:
            return False
        self._store_waiters.append(callback)
        if self._store_timer is None and self._call_later is not None:
            self._store_timer = self._call_later(_STORE_POLL, self._check_store)
        return True

    # -- the store limit ------------------------------------------------------------------

    @property
    def store_full(self) -> bool:
        """Does the store hold more than `store_limit` bytes of messages? (cheap)"""
        limit = self._store_limit
        return bool(limit) and self.store.stored_bytes > limit

    def _refuse_store_full(self) -> None:
        raise CoreError(
            STORE_FULL,
            f"Persistent store is full: {self.store.stored_bytes} bytes stored, "
            f"limit {self._store_limit} (destinations.store_limit)",
        )

    def _check_store(self) -> None:
        """Wake producers waiting for the store once it is below 90% of its limit. The
        store does not call the core, so the core looks, only while someone waits."""
        self._store_timer = None
        if not self._store_waiters:
            return
        if self.store.stored_bytes <= self._store_limit * 0.9:
            waiters, self._store_waiters = self._store_waiters, []
            for callback in waiters:
                callback()
        elif self._call_later is not None:
            self._store_timer = self._call_later(_STORE_POLL, self._check_store)

    def begin(self) -> Transaction:
        return Transaction(self)

    # -- consuming ------------------------------------------------------------------------

    def subscribe(
        self,
        address: Address | tuple[Address, ...],
        consumer: Consumer,
        *,
        ack_mode: str = "auto",
        prefetch: int | None = None,
        no_local: bool = False,
        origin: object = None,
        tag: object = None,
        paused: bool = False,
        selector: Selector | None = None,
        durable: tuple[str, str] | None = None,
        priority: int = 0,
        exclusive: bool = False,
    ) -> Subscription:
        """Attach a push consumer; delivery starts at once if messages are waiting, or
        with `paused`, when the caller has finished its own set-up and calls `resume()`.
        With a `selector` it is offered only the messages the selector matches (on a
        queue, the others stay for other consumers: MessageQueue "selectors"). A
        wildcard address or a composite (a tuple) covers several destinations
        (broker/core/multi.py), including matching ones created later. `durable`
        (client id, subscription name) makes a topic subscription durable
        (broker/core/durable.py; wildcards and composites too). On a queue, `priority`
        (ActiveMQ's consumer priority) puts it before lower ones and an `exclusive`
        consumer alone receives while it is there (MessageQueue "picky dispatch")."""
        if ack_mode not in ACK_MODES:
            raise CoreError(INVALID, f"unknown ack mode {ack_mode!r}")
        if prefetch is not None and prefetch < 1:
            raise CoreError(INVALID, "prefetch must be at least 1")
        if not -128 <= priority <= 127:
            # ActiveMQ's consumer priority is a byte.
            raise CoreError(INVALID, f"consumer priority must be -128 to 127, got {priority}")
        if durable is not None:
            return self.durables.subscribe(
                durable[0],
                durable[1],
                self.router.covered(address),
                consumer,
                ack_mode=ack_mode,
                prefetch=prefetch,
                no_local=no_local,
                origin=origin,
                tag=tag,
                paused=paused,
                selector=selector,
            )
        if type(address) is tuple or is_wildcard(address.name):
            router = self.router
            parts = router.covered(address)
            if len(parts) > 1 or is_wildcard(parts[0].name):
                if parts[0].is_queue:
                    return router.subscribe_queues(
                        parts, consumer, ack_mode, prefetch, tag, paused, selector
                    )
                sub = router.subscribe_topics(
                    parts, consumer, ack_mode, prefetch, no_local, origin, tag, paused, selector
                )
                if any(is_advisory(p) for p in parts):
                    # The JMS client's ActiveMQ.Advisory.TempQueue,ActiveMQ.Advisory.TempTopic.
                    self.advisories.replay(sub, parts)
                return sub
            address = parts[0]
        topic: Topic | None
        if address.is_queue:
            topic = None
            source = self.queue(address)
            default_prefetch = self.policies.for_name(address.name).queue_prefetch
        else:
            # Each topic subscription drains a private queue the topic fills.
            topic = self.topic(address)
            policy = self.policies.for_name(address.name, queue=False)
            source = MessageQueue(self, address, limit=policy.topic_pending_limit)
            source.prioritized = policy.prioritized_messages
            default_prefetch = policy.topic_prefetch
        sub = Subscription(
            self,
            next(self._sub_nums),
            address,
            source,
            consumer,
            ack_mode=ack_mode,
            prefetch=prefetch or default_prefetch,
            no_local=no_local,
            origin=origin,
            tag=tag,
            topic=topic,
            selector=selector,
            priority=priority,
            exclusive=exclusive,
        )
        sub.paused = paused
        if topic is None:
            self.add_consumer(source, sub)
        else:
            if policy.advisory_for_slow_consumers:
                source.arm_slow(sub.prefetch)
            source.add_consumer(sub)
            topic.subs.append(sub)
        self.advisories.consumer(address, added=True, sub=sub)
        if is_advisory(address):
            self.advisories.replay(sub)
        return sub

    def add_consumer(self, source: MessageQueue, sub: Subscription) -> None:
        """Attach `sub` as a consumer of queue `source` and dispatch to it."""
        if sub.selector is not None:
            source.selective += 1
            if source.page_stubs:
                source.keep_fields()  # a selector reads the fields of pending messages
        source.add_consumer(sub)
        source.dispatch()

    def remove_subscription(self, client_id: str, name: str) -> None:
        """Delete durable subscription (client_id, name) and its messages (it must have no
        consumer attached): JMS unsubscribe, ActiveMQ's RemoveSubscriptionInfo."""
        self.durables.remove(client_id, name)

    def unsubscribe(self, sub: Subscription) -> None:
        """Called by Subscription.close; detaches it from its destination."""
        sub.source.remove_consumer(sub)
        topic = sub.topic
        if isinstance(topic, Topic) and sub in topic.subs:
            topic.subs.remove(sub)
            # Keep the totals of departed subscribers so topic counters never go down.
            for key in topic.gone:
                topic.gone[key] += getattr(sub.source, key)
        elif isinstance(topic, TopicSet) or isinstance(sub, QueueGroup):
            self.router.unsubscribed(sub)  # a wildcard or composite subscription
        if type(sub) is Subscription and not isinstance(topic, TopicSet):
            self.advisories.consumer(sub.address, added=False, sub=sub)

    # -- outcomes (called by subscriptions and transactions) ------------------------------

    def acked(self, source: MessageQueue, msgs: list[Message]) -> None:
        """Messages consumed for good: journal their removal."""
        if source.durable:
            self.records.removed(source, msgs)

    def redeliver(self, source: MessageQueue, msgs: list[Message], *, counted: bool) -> None:
        """Put messages back at the front of `source`; counted ones past the destination's
        redelivery limit, if it has one (`max_redeliveries` >= 0; by default none, as in
        ActiveMQ), go to the dead letter queue instead (not on a queue with its own limit:
        see `set_own_limit`)."""
        back: list[Message] = []
        limit = self._policy(source).max_redeliveries
        for msg in msgs:
            if counted:
                msg = msg.redelivery_copy()
                if 0 <= limit < msg.delivery_count and not source.own_limit:
                    self.dead_letter(
                        source,
                        msg,
                        f"Delivery[{msg.delivery_count + 1}] exceeds redelivery limit[{limit}]",
                    )
                    continue
                source.redelivered += 1
                self.records.returned(source, msg)
            back.append(msg)
        if back:
            source.push_front(back)

    def dead_letter(self, source: MessageQueue, msg: Message, cause: str = "") -> None:
        """Move a message to its destination's dead letter queue. As in ActiveMQ's
        default strategy, a non-persistent message is dropped instead (unless
        `dead_letter_non_persistent`), and a message failing on a DLQ itself too."""
        source.dlq += 1
        policy = self._policy(source)
        dlq = Address(QUEUE, policy.dead_letter_name(source.address.name))
        if (
            (source.address.is_queue and policy.is_dead_letter_queue(source.address.name))
            or source.address == dlq
            or (not msg.persistent and not policy.dead_letter_non_persistent)
        ):
            self.records.removed(source, (msg,))
            return
        copy = msg.copy()
        copy.properties["originalDestination"] = str(msg.destination or source.address)
        copy.properties["originalExpiration"] = msg.expiration
        if cause:
            copy.properties["dlqDeliveryFailureCause"] = cause
        copy.expiration = 0
        self.move(source, msg, copy, dlq)
        self.advisories.dead_lettered(source.address, msg)

    def move(self, source: MessageQueue, msg: Message, copy: Message, target: Address) -> None:
        """Put `copy` of `msg` (which has left `source`) on queue `target`, starting afresh
        (count 0, not redelivered: ActiveMQ shows no redelivered flag on the DLQ). When
        either side is journaled the move is one record, so a crash keeps it whole."""
        copy.destination = target
        copy.delivery_count = 0
        copy.redelivered = False
        dest = self.queue(target)
        self.records.moved(source, msg, dest, copy)
        dest.put(copy)

    def expire(self, source: MessageQueue, msg: Message) -> None:
        """A message past its expiration: persistent ones to the DLQ, the rest dropped."""
        source.expired += 1
        self.advisories.expired(source.address, msg)
        if msg.persistent and self._policy(source).expired_to_dlq:
            self.dead_letter(source, msg, f"Message Expired. Expiration:{msg.expiration}")
        else:
            self.records.removed(source, (msg,))

    def _policy(self, source: MessageQueue) -> Policy:
        address = source.address
        return self.policies.for_name(address.name, queue=address.is_queue)

    def over_limit(self, source: MessageQueue) -> None:
        """A topic subscriber fell `limit` messages behind: the slow-consumer advisory
        (once, when armed) and past the pending limit the slow-consumer policy."""
        if source.slow_at and not source.slow and source.count > source.slow_at:
            # Once per slow spell, as ActiveMQ; the sweep re-arms it once it caught up.
            source.slow = True
            source.limit = source.pending_limit
            for sub in source.consumers:
                self.advisories.slow_consumer(source.address, sub)
            if not source.limit or source.count <= source.limit:
                return
        if self.limits.slow_consumer_policy == "disconnect":
            for sub in list(source.consumers):
                sub.consumer.slow(sub)
            source.drop_oldest()
        else:
            source.drop_oldest()

    # -- inspection -----------------------------------------------------------------------

    def browse(self, address: Address) -> list[Message]:
        """The pending messages of a queue, bodies read back (MessageQueue.browse)."""
        return self.queue(address, create=False).browse()

    def purge(self, address: Address) -> int:
        return self.queue(address, create=False).purge()

    def stats(self) -> list[DestinationStats]:
        """Every destination, and each durable subscription (kind "durable", named
        client:name as ActiveMQ's subscription key) as its queue."""
        out = []
        named = [(q.address.kind, q.address.name, q) for q in self.queues.values()]
        named += [(DURABLE, d.label, d.queue) for d in self.durables.subs.values()]
        for kind, name, q in named:
            out.append(
                DestinationStats(
                    kind,
                    name,
                    q.count + q.inflight_count,
                    q.inflight_count,
                    len(q.consumers),
                    q.enqueued,
                    q.dispatched,
                    q.acked,
                    q.redelivered,
                    q.dlq,
                    q.expired,
                    q.discarded,
                    q.bytes,
                )
            )
        for t in self.topics.values():
            subs = [s.source for s in t.subs]
            totals = {k: v + sum(getattr(s, k) for s in subs) for k, v in t.gone.items()}
            out.append(
                DestinationStats(
                    t.address.kind,
                    t.address.name,
                    sum(s.count for s in subs),
                    sum(s.inflight_count for s in subs),
                    len(t.subs),
                    t.enqueued,
                    totals["dispatched"],
                    totals["acked"],
                    totals["redelivered"],
                    totals["dlq"],
                    totals["expired"],
                    totals["discarded"],
                    sum(s.bytes for s in subs),
                )
            )
        return out

    def _collect_inactive(self, now: int) -> None:
        """Delete destinations their policy lets go (gc_inactive_destinations) that have
        had no consumers, no messages and no sends for inactive_timeout_before_gc, as
        ActiveMQ's gcInactiveDestinations: the first look that finds one inactive starts
        its clock, a later one past the timeout deletes it (ActiveMQ's markForGC/canGC;
        compared live, bench.compare_configured). Never temporary destinations (their owner
        deletes them) nor queues with their own limit (SQS queues exist until deleted)."""
        seen = self._inactive
        candidates: list[tuple[Address, int, Policy]] = []
        for address, q in self.queues.items():
            if address.kind == QUEUE and not q.own_limit:
                policy = self.policies.for_name(address.name)
                idle = not q.consumers and q.count == 0 and q.inflight_count == 0
                if policy.gc_inactive_destinations and idle:
                    candidates.append((address, q.enqueued, policy))
        for address, t in self.topics.items():
            if address.kind == TOPIC and not t.subs:
                policy = self.policies.for_name(address.name, queue=False)
                if policy.gc_inactive_destinations:
                    candidates.append((address, t.enqueued, policy))
        keep: dict[Address, tuple[int, int]] = {}
        for address, enqueued, policy in candidates:
            before = seen.get(address)
            if before is None or before[0] != enqueued:
                keep[address] = (enqueued, now)
            elif now - before[1] >= policy.inactive_timeout_before_gc * 1000:
                self.delete(address)
            else:
                keep[address] = before
        self._inactive = keep

    def _purge(self) -> None:
        self._collect_inactive(self.now_ms())
        if self._call_later is not None:
            self._purge_timer = self._call_later(self.limits.inactive_purge_period, self._purge)

    def _sweep(self) -> None:
        now = self.now_ms()
        for q in list(self.queues.values()):
            q.sweep_expired(now)
            q.dispatch()
        for t in list(self.topics.values()):
            for sub in list(t.subs):
                source = sub.source
                source.sweep_expired(now)
                if source.slow and source.count == 0:
                    source.arm_slow(sub.prefetch)  # caught up: may be advised again
        for d in list(self.durables.subs.values()):
            d.queue.sweep_expired(now)
            d.queue.dispatch()
        if self._call_later is not None:
            self._expiry_timer = self._call_later(self.limits.expiry_check_interval, self._sweep)

    # -- administration (the admin API, protocols/http/admin.py; broker/core/admin.py) ---
    # Pending messages only: one in flight is its consumer's until acked or returned.

    def pause_queue(self, address: Address) -> bool:
        """Hold dispatch of a queue, consumers attached (in memory only; False if held)."""
        return admin.pause(self.queue(address, create=False))

    def resume_queue(self, address: Address) -> bool:
        """Dispatch a held queue again (False if it was not held)."""
        return admin.resume(self.queue(address, create=False))

    def queue_paused(self, address: Address) -> bool:
        return admin.paused(self.queue(address, create=False))

    def find_pending(self, address: Address, msg_id: str) -> Message:
        """Pending message `msg_id` of a queue (CoreError not-found if there is none)."""
        return admin.find(self.queue(address, create=False), msg_id)

    def remove_pending(
        self, address: Address, pick: Callable[[Message], bool] | None, limit: int | None = None
    ) -> int:
        """Delete the pending messages `pick` accepts (None: all, a purge: paged-out ones
        are not read back), journaled as consumed and counted as dequeued (ActiveMQ's
        removeMessage and purge count them so)."""
        q = self.queue(address, create=False)
        if pick is None and limit is None:
            n = q.purge()
        else:
            taken = admin.take(q, pick, limit)
            self.records.removed(q, taken)
            n = len(taken)
        q.acked += n
        return n

    def move_pending(
        self,
        address: Address,
        target: Address,
        pick: Callable[[Message], bool] | None,
        *,
        copy: bool = False,
        limit: int | None = None,
    ) -> int:
        """Move (one journal record each) or copy the pending messages `pick` accepts
        (None: all) to queue `target`, created if need be."""
        q = self.queue(address, create=False)
        admin.check_target(q, target)
        if copy:
            return admin.copy_to(self, q, pick, target)
        taken = admin.take(q, pick, limit)
        admin.move(self, q, taken, target)
        return len(taken)

    def retry_dead_letters(
        self, address: Address, pick: admin.Pick | None = None
    ) -> tuple[int, int]:
        """Move each pending message of a DLQ (those `pick` accepts, or all) back to its
        originalDestination queue; (moved, left without one)."""
        return admin.retry(self, self.queue(address, create=False), pick)
