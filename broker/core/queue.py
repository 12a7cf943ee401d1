"""Message queues and the subscriptions that consume from them.

A MessageQueue holds pending messages in arrival order and hands them to its consumers
round-robin among those with credit; on a broker queue, as ActiveMQ's Queue does, higher
consumer priorities first, a message group to its owner, everything to an exclusive
consumer while there is one ("picky dispatch" below). With `prioritized` (the destination policy
`prioritized_messages`, ActiveMQ's prioritizedMessages; off by default, as in ActiveMQ)
it keeps ten FIFO lanes, one per priority, higher first; otherwise every message goes to
lane 0 whatever its priority, so dispatch is FIFO.
A broker queue is one MessageQueue shared by competing subscriptions; each topic
subscription owns a private MessageQueue (bounded by the slow-consumer limit) that the
topic fills.

Invariants (single-threaded: everything runs on the event loop, and nothing here awaits,
so "no await between check and change" holds by construction):
- a message is in exactly one place: a pending lane, one subscription's `inflight`, or a
  transaction's ack list; counters (`count`, `bytes`, `inflight_count`) follow it;
- a subscription never holds more than `prefetch` unacknowledged messages, and receives
  nothing while paused (`Subscription.pause()`: its connection's outbound buffer is
  full); `Subscription.resume()` restarts dispatch;
- the core never mutates a delivered message; a redelivery is a counted copy;
- `bytes` counts each pending message's `size` (body, headers and properties, a fixed
  overhead: `Message.size`, computed once when the message was made), so header-heavy
  messages weigh what they cost (issue 10: the gauge used to count bodies only);
- paging: a persistent message arriving at a durable queue already over its memory
  limit is offered to the store (`Records.page_out`), which may keep it as a *stub*:
  an int in the lane in place of the Message (`bytes` counts PAGED_ENTRY), rebuilt from
  the journal when it is popped (`page_in`). A stub never expires nor has a group (the
  store's rule), so expiry sweeps and group picks skip stubs, and a queue that picks by
  group (`keep_fields`) holds none. A message the store will not stub keeps its headers
  and drops only its body (`body` None; `bytes` counts its `head`), read back at pop.
  So `bytes` is what the queue really holds in memory.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Protocol

from broker.core.message import Address, Message

if TYPE_CHECKING:
    from broker.core.core import Core
    from broker.core.selector import Selector
    from broker.core.transaction import Transaction

# What one stub costs in memory: its lane slot, the int, the store's index entry
# (bench/bench_paged_index.py measures it), counted in `bytes` for each stub.
PAGED_ENTRY = 100

# A lane entry: a Message, or a stub (an int) of a paged-out one.
Entry = Message | int

AUTO = "auto"
CLIENT = "client"
INDIVIDUAL = "client-individual"
ACK_MODES = (AUTO, CLIENT, INDIVIDUAL)


class Consumer(Protocol):
    """What the core needs from a protocol's consumer (e.g. one STOMP subscription)."""

    def deliver(self, sub: Subscription, msg: Message) -> None:
        """Send `msg`; called only while `sub.ready()` is true. Must not call back into the
        core synchronously except to pause `sub`."""

    def slow(self, sub: Subscription) -> None:
        """The subscription fell too far behind and the policy is to disconnect it."""


class MessageQueue:
    """Pending messages of one queue (or one topic subscription) and its consumers."""

    # Only a virtual topic forwards (Topic.forward); Core.send reads this on any
    # destination, as it reads `durable`.
    forward: ClassVar[None] = None

    __slots__ = (
        "_rr",
        "_space_waiters",
        "acked",
        "address",
        "bytes",
        "consumers",
        "core",
        "count",
        "discarded",
        "dispatched",
        "dlq",
        "durable",
        "enqueued",
        "exclusive_sub",
        "expired",
        "flow_control",
        "group_limit",
        "grouped",
        "inflight_count",
        "lanes",
        "limit",
        "memory_limit",
        "own_limit",
        "owner",
        "owners",
        "page_stubs",
        "pending_limit",
        "picky",
        "prioritized",
        "ranked",
        "redelivered",
        "refused",
        "regroup",
        "selective",
        "seq_back",
        "seq_front",
        "settled",
        "slow",
        "slow_at",
        "top",
    )

    def __init__(
        self,
        core: Core,
        address: Address,
        *,
        limit: int = 0,
        memory_limit: int = 0,
        owner: object = None,
    ) -> None:
        self.core = core
        self.address = address
        # The destination half of the journaled rule (broker/core/persistence.py), kept
        # as a plain boolean so the per-message test is two attribute reads.
        self.durable = core.records.durable(address)
        self.lanes: list[deque[Entry]] = [deque() for _ in range(10)]
        # Highest lane that may be non-empty; lanes above it are empty.
        self.top = 0
        self.count = 0
        self.bytes = 0
        self.inflight_count = 0
        self.consumers: list[Subscription] = []
        self._rr = 0
        # Topic subscriptions: messages kept beyond credit before the slow-consumer policy.
        # `limit` is the count past which _push calls Core.over_limit: the pending limit,
        # or, while a slow-consumer advisory is armed (`arm_slow`), the lower `slow_at`,
        # so the per-message test stays one comparison.
        self.limit = limit
        self.pending_limit = limit
        self.slow_at = 0
        self.slow = False
        self.memory_limit = memory_limit
        # The policy's producer_flow_control (Core._new_queue sets it): False, and past
        # its memory limit the queue joins `core.overflowing` instead of pausing producers.
        self.flow_control = True
        self._space_waiters: list[Callable[[], None]] = []
        # The connection a temporary destination belongs to.
        self.owner = owner
        # Set by Core.set_own_limit: no broker redelivery limit here (a pull owner,
        # e.g. SQS, applies its own receive limit and dead-letter target).
        self.own_limit = False
        # May paged-out messages be stubs? Not where pending messages are picked by
        # their fields (`keep_fields`).
        self.page_stubs = True
        # Dispatch by priority (the core sets it from the destination's policy).
        self.prioritized = False
        # Consumers with a selector (Core.subscribe counts them); while any, dispatch
        # takes the picky path ("picky dispatch" below).
        self.selective = 0
        # Consumers known to be able to take no pending message (picky dispatch only).
        self.settled: set[Subscription] = set()
        # Queued messages are numbered (Message.seq): growing at the back, falling at
        # the front, so a lane is in seq order. `refused[sub]`: every pending message
        # numbered up to it is one sub's selector refuses (picky dispatch, below).
        self.seq_back = 0
        self.seq_front = 0
        self.refused: dict[Subscription, int] = {}
        # Message groups (a queue only): set by the first message with a group id. Then
        # `owners` maps each group to the consumer that got its first message, least
        # recently used first, at most `group_limit` of them (the policy's
        # message_group_cache_size: ActiveMQ's CachedMessageGroupMap of 1024).
        self.grouped = False
        self.owners: dict[str, Subscription] = {}
        self.group_limit = 0
        # An ownership change in the middle of a walk (a group closed, evicted, taken
        # over): what the walk passed may be takeable now.
        self.regroup = False
        # The exclusive consumer that alone receives while it is there (ActiveMQ's).
        self.exclusive_sub: Subscription | None = None
        # Consumers of more than one priority.
        self.ranked = False
        # Any of the above, or a selective consumer: dispatch takes the picky path
        # ("picky dispatch" below); one attribute test on the plain path.
        self.picky = False
        self.enqueued = 0
        self.dispatched = 0
        self.acked = 0
        self.redelivered = 0
        self.dlq = 0
        self.expired = 0
        self.discarded = 0

    # -- intake ---------------------------------------------------------------------------

    def put(self, msg: Message) -> None:
        """Offer a new message: straight to a ready consumer if nothing waits, else queue it."""
        self.enqueued += 1
        if self.picky or (msg.group_id is not None and self._start_groups()):
            self._put_picky(msg)
            return
        if self.count == 0 and self.consumers:
            if msg.expiration and msg.expiration <= self.core.now_ms():
                self.core.expire(self, msg)
                return
            sub = self._next_ready()
            if sub is not None:
                sub.deliver(msg)
                return
        self._push(msg)

    def _push(self, msg: Message) -> None:
        prio = msg.priority if self.prioritized else 0
        self.seq_back += 1
        msg.seq = self.seq_back
        # journaled(self, msg), inlined (hot path): only the journal can page a body in.
        if self.bytes > self.memory_limit:
            if self.durable and msg.persistent:
                stub = self.core.records.page_out(self, msg) if self.page_stubs else None
                if stub is None:
                    msg.body = None  # type: ignore[assignment]  # paged out: the journal has it
                    self.lanes[prio].append(msg)
                    self.bytes += msg.head
                else:
                    self.lanes[prio].append(stub)
                    self.bytes += PAGED_ENTRY
            else:
                if not self.flow_control:
                    self.core.overflowing.add(self)
                self.lanes[prio].append(msg)
                self.bytes += msg.size
        else:
            self.lanes[prio].append(msg)
            self.bytes += msg.size
        if prio > self.top:
            self.top = prio
        self.count += 1
        if self.limit and self.count > self.limit:
            self.core.over_limit(self)

    def arm_slow(self, prefetch: int) -> None:
        """Advise (Core.over_limit) once a message comes while more than `prefetch` wait
        beyond the subscriber's prefetch, as ActiveMQ's TopicSubscription.add ("twice
        its prefetch limit pending", tested before the new one is added: so when
        prefetch + 2 wait; never for a prefetch of 1)."""
        self.slow = False
        if prefetch > 1:
            at = prefetch + 1
            self.slow_at = at
            self.limit = min(at, self.pending_limit) if self.pending_limit else at

    def push_front(self, msgs: list[Message] | list[Message | tuple[int, int]]) -> None:
        """Return messages ahead of newer ones, keeping their relative order (a recovered
        paged-out message comes as its stub and its priority)."""
        if self.settled:
            self.settled.clear()  # returned messages may match anyone
        if self.refused:
            self.refused.clear()  # they are numbered below what was refused
        for msg in reversed(msgs):
            if type(msg) is tuple:
                stub, prio = msg
                if not self.prioritized:
                    prio = 0
                self.lanes[prio].appendleft(stub)
                self.bytes += PAGED_ENTRY
            else:
                assert isinstance(msg, Message)
                if msg.group_id is not None and not self.grouped:
                    self._start_groups()
                prio = msg.priority if self.prioritized else 0
                self.seq_front -= 1
                msg.seq = self.seq_front
                self.lanes[prio].appendleft(msg)
                self.bytes += msg.head if msg.body is None else msg.size
            if prio > self.top:
                self.top = prio
            self.count += 1

    def pop(self) -> Message | None:
        """Remove and return the highest-priority, oldest message."""
        if not self.count:
            return None
        lanes = self.lanes
        top = self.top
        while not lanes[top]:
            top -= 1
        self.top = top
        msg = lanes[top].popleft()
        self.count -= 1
        if type(msg) is int:
            msg = self.core.records.page_in(self, msg)
            self.bytes -= PAGED_ENTRY
        elif msg.body is None:
            msg.body = self.core.page_in(self, msg)
            self.bytes -= msg.head
        else:
            self.bytes -= msg.size
        if self._space_waiters and self.bytes <= self.memory_limit * 0.7:
            self._wake_producers()
        return msg

    def drop_oldest(self) -> Message | None:
        """Discard the oldest message of the lowest non-empty priority (slow-consumer policy)."""
        for lane in self.lanes:
            if lane:
                msg = lane.popleft()
                self.count -= 1
                if type(msg) is int:
                    msg = self.core.records.page_in(self, msg)
                    self.bytes -= PAGED_ENTRY
                else:
                    self.bytes -= msg.head if msg.body is None else msg.size
                self.discarded += 1
                return msg
        return None

    # -- dispatch -------------------------------------------------------------------------

    def _next_ready(self) -> Subscription | None:
        consumers = self.consumers
        n = len(consumers)
        if n == 1:
            sub = consumers[0]
            return sub if sub.ready() else None
        start = self._rr
        for i in range(n):
            j = (start + i) % n
            sub = consumers[j]
            if sub.ready():
                self._rr = j + 1
                return sub
        return None

    def dispatch(self) -> None:
        """Hand pending messages to ready consumers until one side runs out."""
        if not self.count or not self.consumers:
            return
        if self.picky:
            self._dispatch_picky()
            return
        now = self.core.now_ms()
        while self.count:
            sub = self._next_ready()
            if sub is None:
                return
            msg = self.pop()
            assert msg is not None
            if msg.expiration and msg.expiration <= now:
                self.core.expire(self, msg)
                continue
            sub.deliver(msg)

    # -- consumers ------------------------------------------------------------------------

    def add_consumer(self, sub: Subscription) -> None:
        """Attach `sub` (Core.subscribe). Consumers stay in ActiveMQ's dispatch order:
        highest priority first, then (with groups) fewest owned groups, then the
        round-robin order."""
        consumers = self.consumers
        consumers.append(sub)
        if sub.topic is None and len(consumers) > 1:
            consumers.sort(key=self._rank)
            self.ranked = consumers[0].priority != consumers[-1].priority
        if sub.exclusive and sub.topic is None:
            current = self.exclusive_sub
            # ActiveMQ: the first exclusive consumer keeps the queue, unless a newcomer
            # has a higher priority or the highest there is (127).
            if current is None or sub.priority == 127 or sub.priority > current.priority:
                self.exclusive_sub = sub
                self.settled.clear()
        self._set_mode()

    def remove_consumer(self, sub: Subscription) -> None:
        """Detach `sub` (Core.unsubscribe): its groups lose their owner, and if it was the
        exclusive consumer the highest-priority remaining exclusive one (the first of
        them) takes over, or none. The caller dispatches once `sub`'s unacknowledged
        messages are back (Subscription.close)."""
        consumers = self.consumers
        if sub not in consumers:
            return
        consumers.remove(sub)
        self.refused.pop(sub, None)
        if sub.topic is None:
            if sub.selector is not None:
                self.selective -= 1
            self.settled.discard(sub)
            if sub.groups:
                owners = self.owners
                for group in [g for g, owner in owners.items() if owner is sub]:
                    del owners[group]
                sub.groups = 0
                self.settled.clear()
            if sub is self.exclusive_sub:
                best: Subscription | None = None
                for s in consumers:
                    if s.exclusive and (best is None or s.priority > best.priority):
                        best = s
                self.exclusive_sub = best
                self.settled.clear()
            self.ranked = bool(consumers) and consumers[0].priority != consumers[-1].priority
        self._set_mode()

    def _rank(self, sub: Subscription) -> tuple[int, int]:
        return (-sub.priority, sub.groups if self.grouped else 0)

    def _set_mode(self) -> None:
        self.picky = bool(
            self.selective or self.grouped or self.ranked or self.exclusive_sub is not None
        )

    def _start_groups(self) -> bool:
        """A first message with a group id: a queue starts keeping group owners (for
        good: ownership outlives the messages), a topic's subscription queue never."""
        if not self.address.is_queue:
            return False
        self.grouped = True
        self.group_limit = self.core.policies.for_name(self.address.name).message_group_cache_size
        self.picky = True
        self.settled.clear()
        return True

    # -- picky dispatch ---------------------------------------------------------------------
    # Selective consumers, message groups, an exclusive consumer or consumers of more
    # than one priority: a pending message may then wait while a consumer is ready (it
    # may take it: selector, group owner, exclusivity), so the queue keeps this
    # invariant instead: no ready consumer may take a pending message. A new message
    # goes to the first ready consumer in dispatch order (priority, then fewest groups,
    # then round-robin: ActiveMQ's) that may take it, whatever waits before it: what
    # waits is for nobody ready, so no consumer sees its messages out of order. A
    # consumer that becomes ready walks the pending messages from the head
    # (`_dispatch_picky`). Cost: a walk is O(pending) checks when it finds little; to
    # avoid repeating it, a consumer that walked everything and still has credit is
    # *settled* (it may take nothing pending) until something it may take is queued,
    # messages come back to the front, or ownership changes (a group closed or without
    # owner, another exclusive consumer), so a backlog that no consumer may take costs
    # nothing per ack or per resume. A consumer whose messages are sparse in a deep
    # backlog still walks from the head each time it becomes ready (ActiveMQ looks at a
    # page of 200 messages only, which is how its selective consumers starve; this walk
    # does not). Selectors read message fields, so a queue with any holds no stubs
    # (`keep_fields`); elsewhere a stub (no group, no selector to read it) is for
    # anyone ready.

    def _put_picky(self, msg: Message) -> None:
        if msg.group_id is not None and not self.grouped:
            self._start_groups()  # picky already (a selector, say): groups start here
        if msg.expiration and msg.expiration <= self.core.now_ms():
            self.core.expire(self, msg)
            return
        owner = self._owner_of(msg) if self.grouped else None
        excl = self.exclusive_sub
        candidates: list[Subscription] | tuple[Subscription, ...]
        if excl is not None:
            candidates = (excl,) if owner is None or owner is excl else ()
        elif owner is not None:
            candidates = (owner,)
        else:
            candidates = self.consumers
        for sub in candidates:
            sel = sub.selector
            if sel is None or sel.matches(msg):
                if sub.ready():
                    self._hand(sub, msg)
                    if self.regroup:
                        self.regroup = False
                        self.dispatch()
                    return
                self.settled.discard(sub)
        self._push(msg)

    def _owner_of(self, msg: Message) -> Subscription | None:
        """The consumer `msg` must go to, if its group has one (JMSXGroupSeq 1 starts the
        group afresh, as in ActiveMQ)."""
        group = msg.group_id
        if group is None or _group_seq(msg) == 1:
            return None
        return self.owners.get(group)

    def _hand(self, sub: Subscription, msg: Message) -> None:
        """Deliver to `sub`, which may take `msg`: group ownership first, then the
        round-robin turn (an exclusive consumer keeps its place, as in ActiveMQ)."""
        groups = sub.groups
        if self.grouped and msg.group_id is not None:
            self._assign(sub, msg.group_id, _group_seq(msg))
        sub.deliver(msg)
        consumers = self.consumers
        if len(consumers) > 1 and sub is not self.exclusive_sub and sub in consumers:
            consumers.remove(sub)
            if self.grouped and (self.regroup or sub.groups != groups):
                # Group counts changed: sort them all, as ActiveMQ does after each turn.
                consumers.append(sub)
                consumers.sort(key=self._rank)
            else:
                # Behind its equals, ahead of lower ranks (what the sort would do).
                i = len(consumers)
                if self.grouped:
                    rank = self._rank(sub)
                    while i and self._rank(consumers[i - 1]) > rank:
                        i -= 1
                else:
                    while i and consumers[i - 1].priority < sub.priority:
                        i -= 1
                consumers.insert(i, sub)

    def _assign(self, sub: Subscription, group: str, seq: int) -> None:
        """ActiveMQ's Queue.assignMessageGroup once `sub` takes a message of `group`: an
        unowned group (or sequence 1) becomes `sub`'s; its owner's message with a
        negative sequence closes it; the least recently used group past the limit loses
        its owner."""
        owners = self.owners
        owner = owners.pop(group, None)
        if owner is None or seq == 1:
            if owner is not None:
                owner.groups -= 1
                self.regroup = True  # what waited for the old owner is the new one's
            sub.groups += 1
            owners[group] = sub
            if len(owners) > self.group_limit:
                eldest = next(iter(owners))
                owners.pop(eldest).groups -= 1
                self.regroup = True
        elif seq < 0:
            sub.groups -= 1
            self.regroup = True
        else:
            owners[group] = sub  # most recently used now
        if self.regroup:
            self.settled.clear()

    def _ready_list(self) -> list[Subscription]:
        excl = self.exclusive_sub
        settled = self.settled
        if excl is not None:
            return [excl] if excl not in settled and excl.ready() else []
        return [s for s in self.consumers if s not in settled and s.ready()]

    def _taker(
        self,
        entry: Entry,
        ready: list[Subscription],
        refused: dict[Subscription, int] | None = None,
        contiguous: set[Subscription] | None = None,
    ) -> Subscription | None:
        """The first of `ready` that may take `entry`. With `refused` (picky dispatch's
        memo), a consumer whose selector is known to refuse it is not asked again, and
        one still `contiguous` (it has refused everything before `entry` this walk)
        that refuses it has its memo moved up to it."""
        if type(entry) is int:
            return ready[0]  # a stub: no group, and no selector on a queue with stubs
        assert isinstance(entry, Message)
        owner = self._owner_of(entry) if self.grouped else None
        seq = entry.seq
        for sub in ready:
            if owner is not None and sub is not owner:
                if contiguous is not None:
                    contiguous.discard(sub)  # refused for its group, not its selector
                continue
            sel = sub.selector
            if sel is None:
                return sub
            if refused is not None and seq <= refused.get(sub, _NEVER):
                continue
            if sel.matches(entry):
                return sub
            if contiguous is not None and sub in contiguous:
                refused[sub] = seq  # type: ignore[index]
        return None

    def _dispatch_picky(self) -> None:
        settled = self.settled
        # The refusal memo holds where a consumer's selector has refused every pending
        # message up to some number: one lane in seq order (not prioritized) and no
        # stubs (a selective queue has none). Then a walk starts past what every ready
        # consumer has refused, so a consumer made ready by an ack costs O(new
        # messages), not O(backlog) (bench/README.md "Selectors").
        memo = (
            self.refused
            if self.selective and not self.prioritized and not self.page_stubs
            else None
        )
        while True:
            self.regroup = False
            ready = self._ready_list()
            if not ready:
                return
            now = self.core.now_ms()
            for prio in range(self.top, -1, -1):
                lane = self.lanes[prio]
                i = 0
                contiguous: set[Subscription] | None = None
                if memo is not None and lane:
                    start = min(
                        memo.get(s, _NEVER) if s.selector is not None else _NEVER for s in ready
                    )
                    if start != _NEVER:
                        i = bisect_right(lane, start, key=_seq)
                    contiguous = {s for s in ready if s.selector is not None}
                while i < len(lane):
                    entry = lane[i]
                    if type(entry) is not int and entry.expiration and entry.expiration <= now:  # type: ignore[union-attr]
                        self.core.expire(self, self._take_at(lane, i))
                        continue
                    sub = self._taker(entry, ready, memo, contiguous)
                    if sub is None:
                        i += 1
                        continue
                    self._hand(sub, self._take_at(lane, i))
                    # A delivery may pause others too (their connection's buffer), and
                    # moves `sub` back in the round-robin order.
                    ready = self._ready_list()
                    if not ready:
                        break
                if not ready:
                    break
            if not self.regroup:
                settled.update(ready)
                return
            settled.clear()

    def _take_at(self, lane: deque[Entry], i: int) -> Message:
        msg = lane[i]
        del lane[i]
        self.count -= 1
        if type(msg) is int:
            msg = self.core.records.page_in(self, msg)
            self.bytes -= PAGED_ENTRY
        elif msg.body is None:
            msg.body = self.core.page_in(self, msg)
            self.bytes -= msg.head
        else:
            self.bytes -= msg.size
        if self._space_waiters and self.bytes <= self.memory_limit * 0.7:
            self._wake_producers()
        return msg

    # -- producer flow control ------------------------------------------------------------

    @property
    def full(self) -> bool:
        return bool(self.memory_limit) and self.bytes > self.memory_limit

    def when_space(self, callback: Callable[[], None]) -> bool:
        """If the queue is over its memory limit, call `callback` once it has drained
        below 70% of it and return True; otherwise return False and never call it."""
        if not self.full:
            return False
        self._space_waiters.append(callback)
        return True

    def _wake_producers(self) -> None:
        waiters, self._space_waiters = self._space_waiters, []
        for callback in waiters:
            callback()

    # -- browsing and admin ---------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """The pending messages as the lanes hold them (stubs included), in dispatch
        order: highest priority first."""
        out: list[Entry] = []
        for lane in reversed(self.lanes):
            out.extend(lane)
        return out

    def oldest_timestamp(self) -> int | None:
        """The timestamp (ms) of the oldest pending message, None when none is pending.
        Each lane is in arrival order, so only lane fronts are looked at (a stub is read
        back from the journal): a scrape costs at most ten entries, not a walk."""
        oldest: int | None = None
        for lane in self.lanes:
            if not lane:
                continue
            entry = lane[0]
            if type(entry) is int:
                try:
                    stamp = self.peek(entry).timestamp
                except LookupError:  # popped meanwhile: no longer pending
                    continue
            else:
                assert isinstance(entry, Message)
                stamp = entry.timestamp
            if oldest is None or stamp < oldest:
                oldest = stamp
        return oldest

    def browse(self) -> list[Message]:
        """The pending messages in dispatch order, a paged-out one as a copy read back
        from the journal (it stays paged out). Reads every stub: for a deep queue,
        walk `entries()` and `peek` one at a time instead."""
        return [self.peek(m) for m in self.entries()]

    def peek(self, entry: Entry) -> Message:
        """The message of a pending entry with its body, leaving the queue's copy as is."""
        if type(entry) is int:
            return self.core.records.peek(self, entry)
        assert isinstance(entry, Message)
        if entry.body is None:
            copy = entry.copy()
            copy.body = self.core.page_in(self, entry)
            return copy
        return entry

    def keep_fields(self) -> None:
        """Hold no stubs from now on (a pick by group reads every pending message's
        fields): page the ones there are back in, as body-less Messages."""
        self.page_stubs = False
        page_in = self.core.records.page_in
        for i, lane in enumerate(self.lanes):
            if not any(type(m) is int for m in lane):
                continue
            keep: deque[Entry] = deque()
            for m in lane:
                if type(m) is int:
                    m = page_in(self, m)
                    self.bytes += m.head - PAGED_ENTRY
                    m.body = None  # type: ignore[assignment]
                keep.append(m)
            self.lanes[i] = keep
        # The paged-in messages are new objects: number every pending one afresh.
        self.refused.clear()
        for lane in self.lanes:
            for m in lane:
                self.seq_back += 1
                m.seq = self.seq_back  # type: ignore[union-attr]

    def purge(self) -> int:
        n = self.count
        if self.durable:
            records = self.core.records
            for lane in self.lanes:
                records.removed(self, [m for m in lane if type(m) is not int])
                records.discard(self, [m for m in lane if type(m) is int])
        for lane in self.lanes:
            lane.clear()
        self.count = 0
        self.bytes = 0
        self.top = 0
        if self._space_waiters:
            self._wake_producers()
        return n

    def remove_pending(self, ids: set[int]) -> None:
        """Take the pending messages whose `id()` is in `ids` off the queue (the caller
        owns them now; paged-out bodies are not read back)."""
        for i, lane in enumerate(self.lanes):
            if not lane or not any(id(m) in ids for m in lane):
                continue
            keep: deque[Entry] = deque()
            for msg in lane:
                if id(msg) in ids:
                    assert isinstance(msg, Message)  # the caller picked it by its fields
                    self.count -= 1
                    self.bytes -= msg.head if msg.body is None else msg.size
                else:
                    keep.append(msg)
            self.lanes[i] = keep

    def sweep_expired(self, now: int) -> None:
        """Remove expired pending messages (the periodic expiry timer calls this)."""
        if not self.count:
            return
        expired: list[Message] = []

        def due(m: Entry) -> bool:
            # A stub never expires (the store's rule: it has no expiration to read).
            return type(m) is not int and bool(m.expiration) and m.expiration <= now  # type: ignore[union-attr]

        for i, lane in enumerate(self.lanes):
            if not lane or not any(due(m) for m in lane):
                continue
            keep: deque[Entry] = deque()
            for m in lane:
                if due(m):
                    expired.append(m)  # type: ignore[arg-type]
                else:
                    keep.append(m)
            self.lanes[i] = keep
        for msg in expired:
            self.count -= 1
            if msg.body is None:
                msg.body = self.core.page_in(self, msg)
                self.bytes -= msg.head
            else:
                self.bytes -= msg.size
            self.core.expire(self, msg)
        if self._space_waiters and self.bytes <= self.memory_limit * 0.7:
            self._wake_producers()


# Below every message's number: "refused nothing yet".
_NEVER = -(1 << 62)


def _seq(entry: Entry) -> int:
    return entry.seq  # type: ignore[union-attr]  # no stubs where the memo is used


def _group_seq(msg: Message) -> int:
    """A message's JMSXGroupSeq (0 when absent; an int as ActiveMQ keeps it, but a
    journal written before STOMP parsed it may hold the header's text)."""
    seq = msg.properties.get("JMSXGroupSeq", 0)
    if type(seq) is int:
        return seq
    try:
        return int(seq)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


class Subscription:
    """One consumer's attachment to a queue or topic.

    Owned by the protocol connection that created it; the core calls
    `consumer.deliver(self, msg)` only while `ready()`. `inflight` maps message id to
    message in delivery order (dicts keep insertion order), which makes a cumulative
    (client) ack a walk from the front.
    """

    __slots__ = (
        "ack_mode",
        "address",
        "auto",
        "closed",
        "consumer",
        "core",
        "exclusive",
        "groups",
        "inflight",
        "no_local",
        "num",
        "origin",
        "paused",
        "prefetch",
        "priority",
        "selector",
        "source",
        "tag",
        "topic",
    )

    def __init__(
        self,
        core: Core,
        num: int,
        address: Address,
        source: MessageQueue,
        consumer: Consumer,
        *,
        ack_mode: str,
        prefetch: int,
        no_local: bool = False,
        origin: object = None,
        tag: object = None,
        topic: object = None,
        selector: Selector | None = None,
        priority: int = 0,
        exclusive: bool = False,
    ) -> None:
        self.core = core
        self.num = num
        self.address = address
        self.source = source
        self.consumer = consumer
        self.ack_mode = ack_mode
        self.auto = ack_mode == AUTO
        self.prefetch = prefetch
        self.no_local = no_local
        self.origin = origin
        # Free for the protocol: e.g. the STOMP subscription id.
        self.tag = tag
        # The Topic this subscription listens to, or None for a queue subscription.
        self.topic = topic
        # Only messages it matches are offered (None: every message).
        self.selector = selector
        # Consumer priority (ActiveMQ's ConsumerInfo priority, a byte, 0 by default):
        # on a queue, a message goes to the highest-priority consumer that can take it.
        self.priority = priority
        # An exclusive consumer alone receives its queue's messages while it is there.
        self.exclusive = exclusive
        # Message groups this subscription owns on its queue (MessageQueue.owners).
        self.groups = 0
        self.inflight: dict[str, Message] = {}
        self.paused = False
        self.closed = False

    def ready(self) -> bool:
        return not self.paused and (self.auto or len(self.inflight) < self.prefetch)

    def deliver(self, msg: Message) -> None:
        source = self.source
        source.dispatched += 1
        # journaled(source, msg) is tested inline: the hot path makes no call for a
        # message that is not journaled.
        if self.auto:
            # ActiveMQ's STOMP auto ack: consumed once handed to the connection.
            source.acked += 1
            if source.durable and msg.persistent:
                self.core.records.removed(source, (msg,))
        else:
            self.inflight[msg.id] = msg
            source.inflight_count += 1
            if source.durable and msg.persistent:
                self.core.records.delivered(source, msg)
        self.consumer.deliver(self, msg)

    # -- outcomes -------------------------------------------------------------------------

    def _take(self, msg_id: str, cumulative: bool) -> list[Message]:
        inflight = self.inflight
        if msg_id not in inflight:
            return []
        if not cumulative:
            taken = [inflight.pop(msg_id)]
        else:
            taken = []
            for key in list(inflight):
                taken.append(inflight.pop(key))
                if key == msg_id:
                    break
        self.source.inflight_count -= len(taken)
        return taken

    def ack(self, msg_id: str, *, tx: Transaction | None = None) -> bool:
        """Acknowledge `msg_id` (and, in client mode, every earlier delivery). False if
        it is not in flight on this subscription."""
        taken = self._take(msg_id, self.ack_mode == CLIENT)
        if not taken:
            return False
        if tx is not None:
            tx.add_acks(self, taken, redeliver=False)
        else:
            self.source.acked += len(taken)
            self.core.acked(self.source, taken)
        if not self.closed:
            self.source.dispatch()
        return True

    def nack(self, msg_id: str, *, tx: Transaction | None = None) -> bool:
        """Give `msg_id` back for redelivery with its count raised; dead-letter it past the
        destination's redelivery limit, if it has one."""
        taken = self._take(msg_id, False)
        if not taken:
            return False
        if tx is not None:
            tx.add_acks(self, taken, redeliver=True)
        else:
            self.core.redeliver(self.source, taken, counted=True)
        if not self.closed:
            self.source.dispatch()
        return True

    def dead_letter(self, msg_id: str, cause: str = "", *, tx: Transaction | None = None) -> bool:
        """Move `msg_id` straight to the dead letter queue (a poison acknowledgement)."""
        taken = self._take(msg_id, False)
        if not taken:
            return False
        if tx is not None:
            tx.add_poison(self, taken, cause)
        else:
            for msg in taken:
                self.core.dead_letter(self.source, msg, cause)
        if not self.closed:
            self.source.dispatch()
        return True

    def release(self, msg_id: str) -> bool:
        """Give `msg_id` back unchanged, as if it had never been delivered."""
        taken = self._take(msg_id, False)
        if not taken:
            return False
        self.core.redeliver(self.source, taken, counted=False)
        if not self.closed:
            self.source.dispatch()
        return True

    def take_back(self, msg_id: str) -> Message | None:
        """Remove `msg_id` from in flight with no outcome at all: the caller (pull
        delivery) decides what happens to it next."""
        msg = self.inflight.pop(msg_id, None)
        if msg is not None:
            self.source.inflight_count -= 1
        return msg

    def restore(self, msgs: list[Message]) -> None:
        """Make messages taken by an aborted transaction in flight here again."""
        for msg in msgs:
            self.inflight[msg.id] = msg
        self.source.inflight_count += len(msgs)

    def pause(self) -> None:
        """Stop dispatch to this subscription (its consumer can take no more for now:
        a full outbound buffer, used-up credit, no waiting pull receiver)."""
        self.paused = True

    def resume(self) -> None:
        """Dispatch to this subscription again; pending messages flow at once."""
        if not self.paused:
            return
        self.paused = False
        if not self.closed:
            self.source.dispatch()

    def set_paused(self, paused: bool) -> None:
        """`pause()` or `resume()` by flag (kept for callers that hold a boolean)."""
        if paused:
            self.pause()
        else:
            self.resume()

    def close(self) -> None:
        """Detach; unacknowledged messages go back flagged redelivered."""
        if self.closed:
            return
        self.closed = True
        source = self.source
        # Its groups and exclusivity end with it: what waited for it may go to others,
        # but only after its unacknowledged messages are back in front of them.
        freed = self.groups > 0 or source.exclusive_sub is self
        self.core.unsubscribe(self)
        taken = list(self.inflight.values())
        self.inflight.clear()
        source.inflight_count -= len(taken)
        if self.topic is None and (taken or freed):
            if taken:
                self.core.redeliver(source, taken, counted=True)
            source.dispatch()
