"""Operator actions on queues (the admin API's core half; see Core "administration").

Kept out of queue.py and core.py on purpose: nothing here runs on the message path, and
the dispatch code stays as it is. What it does:

- **Pausing a queue** swaps the queue object's class to `HeldQueue` (a subclass with
  no slots of its own, so the swap is legal and the object, its lanes and its
  consumers stay the same): `put` only queues, `dispatch` does nothing. Consumers stay
  attached; every path that hands out messages goes through `put` or `dispatch`
  (acks, resumes, new subscriptions and the expiry sweep call `dispatch`), so nothing
  is delivered until `resume` swaps the class back and dispatches. A queue that is not
  paused pays nothing: its methods are the plain ones. The pause lives in memory only.
  Pull delivery (SQS ReceiveMessage) pops the queue directly, so `PullQueue._collect`
  asks `paused` first: receives come back empty or wait, and `resume` serves them.
- **Taking pending messages** by a predicate (ids, a selector, or all), stubs and
  paged-out bodies included: each taken message is whole again (read back from the
  journal) and no longer counted by the queue. Only pending messages are seen: a
  message in flight to a consumer is that consumer's until acked or returned.
- **Moving** a taken message is `Core.move` (one journal record for both sides, as
  dead-lettering does), counted as dequeued from its queue as ActiveMQ counts it;
  copying sends a new message (a new id) to the target.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from broker.core.errors import INVALID, NOT_FOUND, CoreError
from broker.core.message import QUEUE, Address, Message
from broker.core.queue import PAGED_ENTRY, Entry, MessageQueue

if TYPE_CHECKING:
    from broker.core.core import Core

Pick = Callable[[Message], bool]


class HeldQueue(MessageQueue):
    """A paused MessageQueue: it takes messages in and hands none out (module docstring)."""

    __slots__ = ()

    def put(self, msg: Message) -> None:
        self.enqueued += 1
        # A first group message makes the queue keep group owners, paused or not, or
        # dispatch after resume would hand the group out on the plain path.
        if msg.group_id is not None and not self.picky:
            self._start_groups()
        # Messages queued while paused may match consumers the selective path had
        # marked as matching nothing pending.
        self.settled.clear()
        self._push(msg)

    def dispatch(self) -> None:
        return


def pause(q: MessageQueue) -> bool:
    """Hold dispatch of `q`; False if it was held already."""
    if type(q) is HeldQueue:
        return False
    q.__class__ = HeldQueue
    return True


def resume(q: MessageQueue) -> bool:
    """Dispatch `q` again (what waited flows at once); False if it was not held."""
    if type(q) is not HeldQueue:
        return False
    q.__class__ = MessageQueue
    q.settled.clear()
    q.dispatch()
    return True


def paused(q: MessageQueue) -> bool:
    return type(q) is HeldQueue


def take(q: MessageQueue, pick: Pick | None, limit: int | None = None) -> list[Message]:
    """Remove the pending messages `pick` accepts (None: every one), at most `limit`, in
    dispatch order; each comes back whole (body read back, known to the store again)."""
    records = q.core.records
    taken: list[Message] = []
    # Lanes are dispatched highest priority first (MessageQueue.entries).
    for prio in range(len(q.lanes) - 1, -1, -1):
        lane = q.lanes[prio]
        if not lane:
            continue
        keep: deque[Entry] = deque()
        for entry in lane:
            if limit is not None and len(taken) >= limit:
                keep.append(entry)
                continue
            if pick is not None and not pick(q.peek(entry)):
                keep.append(entry)
                continue
            if type(entry) is int:
                msg = records.page_in(q, entry)
                q.bytes -= PAGED_ENTRY
            else:
                assert isinstance(entry, Message)
                msg = entry
                if msg.body is None:
                    msg.body = q.core.page_in(q, msg)
                    q.bytes -= msg.head
                else:
                    q.bytes -= msg.size
            q.count -= 1
            taken.append(msg)
        q.lanes[prio] = keep
    # Producers held back by the queue's memory limit wait on its space waiters.
    if taken and q._space_waiters and q.bytes <= q.memory_limit * 0.7:
        q._wake_producers()
    return taken


def by_ids(ids: set[str]) -> Pick:
    return lambda msg: msg.id in ids


def move(core: Core, q: MessageQueue, msgs: list[Message], target: Address) -> None:
    """Put messages taken from `q` on queue `target` (ActiveMQ's moveMessageTo: same id,
    `originalDestination` the queue it came from, delivery count reset)."""
    check_target(q, target)
    for msg in msgs:
        copy = msg.copy()
        copy.properties["originalDestination"] = str(q.address)
        core.move(q, msg, copy, target)
    # ActiveMQ counts a message moved away as dequeued from its queue.
    q.acked += len(msgs)


def copy_to(core: Core, q: MessageQueue, pick: Pick | None, target: Address) -> int:
    """Send a copy of each pending message `pick` accepts to queue `target` with a new id
    (the original stays; two messages with one id on a queue would collide in the
    journal's keys)."""
    check_target(q, target)
    n = 0
    for entry in q.entries():
        msg = q.peek(entry)
        if pick is not None and not pick(msg):
            continue
        copy = msg.copy()
        copy.id = ""
        copy.delivery_count = 0
        copy.redelivered = False
        copy.properties["originalDestination"] = str(q.address)
        core.send(target, copy)
        n += 1
    return n


def check_target(q: MessageQueue, target: Address) -> None:
    if target.kind != QUEUE:
        raise CoreError(INVALID, f"messages move to queues only, not {target}")
    if target == q.address:
        raise CoreError(INVALID, f"source and target are the same queue: {target.name}")
    if not target.name:
        raise CoreError(INVALID, "target queue name is empty")


def original_queue(msg: Message) -> Address | None:
    """A dead letter's `originalDestination` as a queue address, or None (absent, a
    topic, or not an address)."""
    value = msg.properties.get("originalDestination")
    if not isinstance(value, str):
        return None
    kind, sep, name = value.partition("://")
    if not sep or kind != QUEUE or not name:
        return None
    return Address(QUEUE, name)


def retry(core: Core, q: MessageQueue, pick: Pick | None = None) -> tuple[int, int]:
    """Move each pending message of (dead letter) queue `q` (those `pick` accepts, or
    all) back to the queue named by its `originalDestination` (ActiveMQ's
    retryMessages; one message is its QueueViewMBean.retryMessage); those without one,
    or whose original is a topic or `q` itself, stay. Returns (moved, left)."""
    left = 0

    def back(msg: Message) -> bool:
        nonlocal left
        if pick is not None and not pick(msg):
            return False
        target = original_queue(msg)
        if target is None or target == q.address:
            left += 1
            return False
        return True

    taken = take(q, back)
    for msg in taken:
        target = original_queue(msg)
        assert target is not None
        copy = msg.copy()
        copy.properties["originalDestination"] = str(q.address)
        # What dead-lettering added for the DLQ's readers goes (a retried message shows
        # no originalExpiration in ActiveMQ 5.17 either).
        copy.properties.pop("originalExpiration", None)
        core.move(q, msg, copy, target)
    q.acked += len(taken)
    return len(taken), left


def find(q: MessageQueue, msg_id: str) -> Message:
    """The pending message `msg_id` of `q` (a copy when paged out)."""
    for entry in q.entries():
        msg = q.peek(entry)
        if msg.id == msg_id:
            return msg
    raise CoreError(NOT_FOUND, f"no pending message {msg_id} on {q.address.name}")
