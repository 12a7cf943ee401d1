"""Pull delivery (SQS-style): leases on a queue's messages, built on a Subscription.

DESIGN.md: "push in-flight and pull leases are one mechanism". A PullQueue attaches one
client-individual Subscription to a core MessageQueue; a received message is in that
subscription's `inflight` like any pushed delivery, and a Lease adds what pull needs:
a token (the protocol builds its receipt handle from it) and a deadline. When the
deadline passes, the message goes back to the front of its queue with its delivery
count raised (a counted return, journaled as any redelivery). STOMP/AMQP consumers of
the same queue compete with pull receivers for the same messages.

A pulled queue has its own limit (Core.set_own_limit): the broker's max_redeliveries
never dead-letters its messages, whether they come back by an expired lease, a closed
subscription (broker stop, queue deletion) or a crash; only `policy` redrives them.

What a PullQueue adds to the queue, all protocol-neutral and set by its owner in
`policy`:
- delayed messages: journaled at send, put on the queue when due (until then they are
  held here, not on the queue);
- retention: a message older than `retention_ms` is dropped when a receive meets it;
- redrive: a message whose next receive would exceed `max_receives` is moved to
  `dead_letter` (a plain queue) instead of being delivered, recording the queue it left
  in property `origin_property` if set (so it can be moved back: `move_out`);
- `grouped` (FIFO): at most one receive holds messages of a group at a time, and a
  receive takes the oldest messages of unlocked groups, one group after another;
- long polling: `receive(wait=...)` completes as soon as a message is there. While a
  receiver waits the subscription is unpaused, so the queue hands a new message to it
  directly (MessageQueue.put); returns, deletes and due delays wake it too. For a
  grouped queue with a backlog whose groups are all locked, a message put by another
  protocol is seen at the next wake-up or when the wait ends (documented gap).

The Core owns one Leases (`Core.leases`, closed by `Core.close`), so every pull facade
shares it. Its timers and futures come from a `Loop`: the asyncio event loop, or a fake
clock in the core's tests.

Ownership: everything runs on the event loop and nothing here awaits between a check
and the change it guards, except `receive`, which re-checks after its wait. The
Subscription is paused whenever no receiver waits, so the queue never pushes to it
then; `_sink` is set only inside `_collect`.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from broker.core import admin
from broker.core.message import Address, Message
from broker.core.queue import INDIVIDUAL, MessageQueue, Subscription

if TYPE_CHECKING:
    from broker.core.core import Core

_UNLIMITED = 1 << 62


class Timer(Protocol):
    """A scheduled callback (asyncio.TimerHandle)."""

    def cancel(self) -> None: ...


class Loop(Protocol):
    """The part of an asyncio event loop pull delivery uses; a fake clock in tests."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer: ...

    def call_soon(self, callback: Callable[..., object], *args: Any) -> object: ...

    def create_future(self) -> asyncio.Future[Any]: ...


@dataclass(slots=True)
class PullPolicy:
    """Per-queue rules of pull delivery (0 / None = off)."""

    retention_ms: int = 0
    max_receives: int = 0
    dead_letter: Address | None = None
    grouped: bool = False
    origin_property: str = ""


class Lease:
    """One received message: in flight on the pull subscription until `deadline`."""

    __slots__ = ("active", "deadline", "first_receive", "msg", "timer", "token")

    def __init__(self, token: str, msg: Message, deadline: float, first_receive: int) -> None:
        self.token = token
        self.msg = msg
        self.deadline = deadline
        self.first_receive = first_receive
        self.timer: Timer | None = None
        # False once the lease has ended (expired, deleted, returned).
        self.active = True

    @property
    def receive_count(self) -> int:
        """How many times the message has been received, this time included."""
        return self.msg.delivery_count + 1


class _Waiter:
    __slots__ = ("future", "got", "max", "scheduled", "visibility")

    def __init__(self, max_: int, visibility: float, future: asyncio.Future[list[Lease]]) -> None:
        self.max = max_
        self.visibility = visibility
        self.future = future
        self.got: list[Lease] = []
        self.scheduled = False


class PullQueue:
    """Pull delivery on one core queue (see the module docstring)."""

    def __init__(self, owner: Leases, address: Address) -> None:
        self.owner = owner
        self.core = owner.core
        self.loop = owner.loop
        self.address = address
        self.queue: MessageQueue = self.core.queue(address)
        self._policy = PullPolicy()
        self.core.set_own_limit(address)
        self.sub: Subscription = self.core.subscribe(
            address, self, ack_mode=INDIVIDUAL, prefetch=_UNLIMITED, paused=True
        )
        # token -> lease, for active leases and for the latest ended one of a message
        # (a handle stays usable for delete until the message is received again).
        self.leases: dict[str, Lease] = {}
        self.latest: dict[str, Lease] = {}
        self.first_receive: dict[str, int] = {}
        self.delayed: dict[str, tuple[Message, Timer]] = {}
        self.group_holds: dict[str | None, int] = {}
        self.waiters: deque[_Waiter] = deque()
        self._sink: list[Message] | None = None

    @property
    def policy(self) -> PullPolicy:
        return self._policy

    @policy.setter
    def policy(self, policy: PullPolicy) -> None:
        if policy.grouped:
            # A group pick reads the fields of every pending message: no stubs.
            self.queue.keep_fields()
        self._policy = policy

    # -- the Consumer interface (called by the core's MessageQueue) -----------------------

    def deliver(self, sub: Subscription, msg: Message) -> None:
        if self._sink is not None:
            self._sink.append(msg)
            return
        # Pushed by the queue while a receiver waits (put or dispatch).
        if not self._acceptable(msg, self.core.now_ms()):
            self._untake(msg)
            self._dispose(msg, self.core.now_ms())
            return
        if self.policy.grouped and self.group_holds.get(msg.group_id):
            # Its group is held by another receive: back in front, stop listening.
            self._untake(msg)
            self.queue.push_front([msg])
            self.sub.pause()
            return
        self._hand_to_waiter(msg)

    def slow(self, sub: Subscription) -> None:  # queue subscriptions are never slow
        pass

    # -- receiving ------------------------------------------------------------------------

    async def receive(self, max_: int, visibility: float, wait: float) -> list[Lease]:
        """Up to `max_` leases of `visibility` seconds; waits up to `wait` seconds for the
        first message and returns as soon as there is one."""
        got = self._collect(max_, visibility)
        if got or wait <= 0:
            return got
        future: asyncio.Future[list[Lease]] = self.loop.create_future()
        waiter = _Waiter(max_, visibility, future)
        self.waiters.append(waiter)
        self._listen()
        timer = self.loop.call_later(wait, self._time_up, waiter)
        try:
            return await future
        finally:
            timer.cancel()
            if waiter in self.waiters:
                self.waiters.remove(waiter)
            self._listen()

    def _time_up(self, waiter: _Waiter) -> None:
        if waiter.future.done():
            return
        if waiter in self.waiters:
            self.waiters.remove(waiter)
        # Last look (a grouped queue may have gained messages without a wake-up).
        got = waiter.got or self._collect(waiter.max, waiter.visibility)
        waiter.future.set_result(got)
        # Stop listening now, not when the receive resumes: a send in between (an SNS
        # publish fans out many in one turn) would be pushed to a waiter that is gone.
        self._listen()

    def _listen(self) -> None:
        """Unpause the subscription while someone waits (for a grouped queue only while
        nothing is pending, since pending messages there may belong to held groups)."""
        listen = bool(self.waiters) and (not self.policy.grouped or self.queue.count == 0)
        if listen == (not self.sub.paused):
            return
        if listen:
            self.sub.resume()
        else:
            self.sub.pause()

    def _hand_to_waiter(self, msg: Message) -> None:
        waiter = self.waiters[0]
        waiter.got.append(self._lease(msg, waiter.visibility))
        if len(waiter.got) >= waiter.max:
            self._finish(waiter)
        elif not waiter.scheduled:
            # Let messages arriving in the same loop turn join this response.
            waiter.scheduled = True
            self.loop.call_soon(self._finish, waiter)

    def _finish(self, waiter: _Waiter) -> None:
        if waiter in self.waiters:
            self.waiters.remove(waiter)
        if not waiter.future.done():
            waiter.future.set_result(waiter.got)
        self._listen()

    def wake(self) -> None:
        """Something may have become receivable: serve waiting receivers in order."""
        while self.waiters:
            waiter = self.waiters[0]
            if waiter.got:
                return
            got = self._collect(waiter.max, waiter.visibility)
            if not got:
                break
            waiter.got = got
            self._finish(waiter)
        self._listen()

    def _collect(self, max_: int, visibility: float) -> list[Lease]:
        """Take up to `max_` receivable pending messages and lease them."""
        if admin.paused(self.queue):
            # An operator holds the queue (the admin API): receives wait or come back
            # empty; `resume` dispatches to a waiting receive.
            return []
        now = self.core.now_ms()
        picked = self._pick_grouped(max_, now) if self.policy.grouped else None
        sink: list[Message] = []
        self._sink = sink
        try:
            if picked is None:
                queue = self.queue
                while len(sink) < max_ and queue.count:
                    msg = queue.pop()
                    assert msg is not None
                    if self._acceptable(msg, now):
                        self.sub.deliver(msg)
                    else:
                        self._dispose(msg, now)
            else:
                for msg in picked:
                    if msg.body is None:
                        msg.body = self.core.page_in(self.queue, msg)
                    self.sub.deliver(msg)
        finally:
            self._sink = None
        return [self._lease(msg, visibility) for msg in sink]

    def _pick_grouped(self, max_: int, now: int) -> list[Message]:
        """FIFO: the oldest messages of groups nobody holds, as many of one group as
        possible before the next. Removes them (and unreceivable ones) from the queue."""
        holds = self.group_holds
        chosen: list[Message] = []
        order: list[str | None] = []
        by_group: dict[str | None, list[Message]] = {}
        dead: list[Message] = []
        # The queue's own entries (browse() would hand copies of paged ones, which
        # remove_pending cannot find); a grouped queue holds no stubs (keep_fields).
        for msg in self.queue.entries():
            assert isinstance(msg, Message)
            if not self._acceptable(msg, now):
                dead.append(msg)
                continue
            g = msg.group_id
            if holds.get(g):
                continue
            if g not in by_group:
                by_group[g] = []
                order.append(g)
            by_group[g].append(msg)
        for g in order:
            room = max_ - len(chosen)
            if room <= 0:
                break
            chosen.extend(by_group[g][:room])
        if chosen or dead:
            self.queue.remove_pending({id(m) for m in chosen} | {id(m) for m in dead})
            for msg in dead:
                self._dispose(msg, now)
        return chosen

    def _acceptable(self, msg: Message, now: int) -> bool:
        p = self.policy
        if msg.expiration and msg.expiration <= now:
            return False
        if p.retention_ms and msg.timestamp + p.retention_ms <= now:
            return False
        return not (p.max_receives and p.dead_letter and msg.delivery_count >= p.max_receives)

    def _dispose(self, msg: Message, now: int) -> None:
        """A message taken off the queue that must not be delivered: expired (the core's
        rule), past retention (dropped), or out of receives (moved to the DLQ)."""
        if msg.body is None:
            msg.body = self.core.page_in(self.queue, msg)
        p = self.policy
        if msg.expiration and msg.expiration <= now:
            self.core.expire(self.queue, msg)
        elif p.retention_ms and msg.timestamp + p.retention_ms <= now:
            self.queue.expired += 1
            self._forget(msg)
            self.core.records.removed(self.queue, (msg,))
        else:
            assert p.dead_letter is not None
            self._move(msg, p.dead_letter)

    def _move(self, msg: Message, target: Address) -> None:
        """Redrive: the message goes to `target` as it is (count reset), in one journal
        transaction when either side is durable."""
        self.queue.dlq += 1
        copy = msg.copy()
        if self.policy.origin_property:
            copy.properties[self.policy.origin_property] = self.address.name
        self.move_out(msg, copy, target)

    def take_pending(self) -> Message | None:
        """The oldest receivable pending message, taken off the queue for `move_out`
        (unreceivable ones met on the way are disposed of as a receive would); None
        when nothing is pending."""
        now = self.core.now_ms()
        while self.queue.count:
            msg = self.queue.pop()
            assert msg is not None
            if self._acceptable(msg, now):
                return msg
            self._dispose(msg, now)
        return None

    def move_out(self, msg: Message, copy: Message, target: Address) -> None:
        """`msg`, taken off this queue, goes to queue `target` as `copy` (count reset),
        in one journal transaction (Core.move); receivers waiting on `target` wake."""
        self._forget(msg)
        self.core.move(self.queue, msg, copy, target)
        self.owner.woken(target)

    def _lease(self, msg: Message, visibility: float) -> Lease:
        old = self.latest.get(msg.id)
        if old is not None:
            self.leases.pop(old.token, None)
        first = self.first_receive.setdefault(msg.id, self.core.now_ms())
        token = self.owner.token()
        lease = Lease(token, msg, self.loop.time() + visibility, first)
        lease.timer = self.loop.call_later(visibility, self._expired, lease)
        self.leases[token] = lease
        self.latest[msg.id] = lease
        if self.policy.grouped:
            self.group_holds[msg.group_id] = self.group_holds.get(msg.group_id, 0) + 1
        return lease

    # -- outcomes -------------------------------------------------------------------------

    def lease(self, token: str) -> Lease | None:
        """The lease named by `token`: active, or the latest ended one of its message."""
        return self.leases.get(token)

    def delete(self, lease: Lease) -> bool:
        """Consume the leased message. An ended lease still deletes its message while
        it waits in the queue unreceived (as SQS does); False if it is gone."""
        if lease.active:
            self._end(lease)
            self.sub.ack(lease.msg.id)
            self._forget(lease.msg)
            self.wake()
            return True
        self.leases.pop(lease.token, None)
        self.latest.pop(lease.msg.id, None)
        mid = lease.msg.id
        # A stub is never the message of a lease: it has not been delivered since it
        # was paged out (a returned message comes back as itself, at the front).
        for msg in self.queue.entries():
            if type(msg) is not int and msg.id == mid:
                self.queue.remove_pending({id(msg)})
                self.queue.acked += 1
                self._forget(msg)
                self.core.acked(self.queue, [msg])
                return True
        return False

    def change_visibility(self, lease: Lease, seconds: float) -> None:
        """New deadline `seconds` from now; 0 returns the message at once."""
        assert lease.active
        if lease.timer is not None:
            lease.timer.cancel()
        if seconds <= 0:
            self._expired(lease)
            return
        lease.deadline = self.loop.time() + seconds
        lease.timer = self.loop.call_later(seconds, self._expired, lease)

    def _end(self, lease: Lease) -> None:
        lease.active = False
        if lease.timer is not None:
            lease.timer.cancel()
            lease.timer = None
        if self.policy.grouped:
            g = lease.msg.group_id
            n = self.group_holds.get(g, 0) - 1
            if n > 0:
                self.group_holds[g] = n
            else:
                self.group_holds.pop(g, None)

    def _expired(self, lease: Lease) -> None:
        """The deadline passed: a counted return to the front of the queue."""
        if not lease.active:
            return
        self._end(lease)
        msg = self._untake_id(lease.msg.id)
        if msg is None:
            return
        back = msg.redelivery_copy()
        self.queue.redelivered += 1
        self.core.records.returned(self.queue, back)
        # The ended lease keeps naming the message (now the returned copy).
        lease.msg = back
        self.queue.push_front([back])
        self.queue.dispatch()
        self.wake()

    def _untake(self, msg: Message) -> None:
        self._untake_id(msg.id)

    def _untake_id(self, mid: str) -> Message | None:
        return self.sub.take_back(mid)

    def _forget(self, msg: Message) -> None:
        self.first_receive.pop(msg.id, None)
        old = self.latest.pop(msg.id, None)
        if old is not None:
            self.leases.pop(old.token, None)

    # -- sending with a delay -------------------------------------------------------------

    def send(self, msg: Message, delay: float = 0.0) -> Awaitable[None] | None:
        """Send to this queue; with `delay` the message is journaled now and put on the
        queue when due. Returns the durability awaitable as `Core.send` does."""
        if delay <= 0:
            done = self.core.send(self.address, msg)
            self.wake()
            return done
        core = self.core
        if not msg.id:
            msg.id = core.next_id()
        if not msg.timestamp:
            msg.timestamp = core.now_ms()
        msg.destination = self.address
        timer = self.loop.call_later(delay, self._due, msg.id)
        self.delayed[msg.id] = (msg, timer)
        return core.records.sent(self.address, msg)

    def _due(self, mid: str) -> None:
        entry = self.delayed.pop(mid, None)
        if entry is not None:
            self.queue.put(entry[0])
            self.wake()

    # -- admin ----------------------------------------------------------------------------

    def purge(self) -> int:
        """Drop pending, delayed and in-flight messages, as SQS's PurgeQueue: a received
        message's handle no longer deletes anything, and the FIFO groups its lease held
        are free again."""
        n = self.queue.purge()
        gone: list[Message] = []
        for lease in [lease for lease in self.leases.values() if lease.active]:
            self._end(lease)
            msg = self._untake_id(lease.msg.id)
            if msg is not None:
                gone.append(msg)
                self._forget(msg)
        if gone:
            self.core.records.removed(self.queue, gone)
            n += len(gone)
        for _msg, timer in self.delayed.values():
            timer.cancel()
        self.core.records.removed(self.queue, [msg for msg, _timer in self.delayed.values()])
        n += len(self.delayed)
        self.delayed.clear()
        self.latest = {k: v for k, v in self.latest.items() if v.active}
        self.leases = {k: v for k, v in self.leases.items() if v.active}
        return n

    def answer_waiters(self) -> None:
        """Every long poll returns now with what it has (a graceful stop's first step:
        a receiver waiting up to 20 s must not hold the drain)."""
        for waiter in list(self.waiters):
            self._finish(waiter)

    def close(self) -> None:
        """Stop: waiters get what they have, leases end (their messages go back when
        the subscription closes), delayed messages stay journaled."""
        self.answer_waiters()
        for lease in list(self.leases.values()):
            if lease.timer is not None:
                lease.timer.cancel()
            lease.active = False
        for _msg, timer in self.delayed.values():
            timer.cancel()
        self.leases.clear()
        self.latest.clear()
        self.sub.close()


class Leases:
    """The PullQueues of one core, created on first use (the core's `leases`)."""

    def __init__(self, core: Core, loop: Loop) -> None:
        self.core = core
        self.loop = loop
        self.queues: dict[Address, PullQueue] = {}
        self._seq = itertools.count(1)
        self._salt = secrets.token_hex(4)
        self._random = random.Random(secrets.randbits(64))

    def token(self) -> str:
        """A lease token unique for this broker run (never reused)."""
        # The counter makes it unique; the random tail (fast, not cryptographic: the
        # handle is not a credential) keeps it from being guessed from a neighbour's.
        return f"{self._salt}{next(self._seq):x}{self._random.getrandbits(32):08x}"

    def get(self, address: Address) -> PullQueue:
        pq = self.queues.get(address)
        if pq is None or pq.sub.closed or self.core.queues.get(address) is not pq.queue:
            pq = PullQueue(self, address)
            self.queues[address] = pq
        return pq

    def woken(self, address: Address) -> None:
        """A message was put on `address` by pull machinery: wake its receivers."""
        pq = self.queues.get(address)
        if pq is not None and not pq.sub.closed:
            pq.wake()

    def drop(self, address: Address) -> None:
        """Forget a queue that is about to be deleted; delayed messages are discarded."""
        pq = self.queues.pop(address, None)
        if pq is None:
            return
        self.core.records.removed(pq.queue, [msg for msg, _timer in pq.delayed.values()])
        pq.close()

    def answer_waiters(self) -> None:
        """Every long poll of every pull queue returns now (PullQueue.answer_waiters);
        leases stay, so deletes and visibility changes still in flight apply."""
        for pq in self.queues.values():
            pq.answer_waiters()

    def close(self) -> None:
        """End every pull queue (Core.close calls this; calling it again is harmless)."""
        for pq in self.queues.values():
            pq.close()
        self.queues.clear()
