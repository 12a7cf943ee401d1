"""The core's one seam to storage: the journaled rule and every record write it causes.

The rule (`journaled`): a message is written to the journal when it is persistent and
its destination is durable, and a destination is durable when it is a broker queue (kind
"queue") or a durable topic subscription's queue (kind "durable", broker/core/durable.py:
a persistent message sent to a topic is journaled once per durable subscription it is
offered to), not a temporary queue nor a plain topic subscription, and the core has a
store that persists. `MessageQueue.durable` is that destination half,
computed once per queue by `Records.durable`, so the per-message test is two attribute
reads.

`Records` holds the store (always present: a `NullStore` when nothing persists, as for
a Core built with store=None) and makes every write the core does; each method applies
the rule itself, so callers need not. Hot paths test `queue.durable and msg.persistent`
inline first (the body of `journaled`), so a message that is not journaled costs no
call at all, exactly as the old `if store is not None` checks did.

Scheduled jobs (broker/core/scheduler.py) are the one write the rule does not decide:
the scheduler marks a job `journaled` (a persistent message for a queue or a topic)
and calls `job_added` / `job_moved` / `job_done` only for those.

broker.store.MessageStore implements `Store` on the journal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from broker.core.message import DURABLE, QUEUE, Address, Message

if TYPE_CHECKING:
    from broker.core.queue import MessageQueue
    from broker.core.scheduler import Job


class Store(Protocol):
    """What the core needs from storage; see broker/store/messages.py for the records."""

    # Bytes of the messages the store holds (their `Message.size`), for the store limit.
    stored_bytes: int

    def add(self, queue: Address, msg: Message) -> None: ...

    def remove(self, queue: Address, msg: Message) -> None: ...

    def delivered(self, queue: Address, msg: Message) -> None: ...

    def returned(self, queue: Address, msg: Message) -> None: ...

    def transaction(
        self, adds: list[tuple[Address, Message]], removes: list[tuple[Address, Message]]
    ) -> None: ...

    def queue_created(self, queue: Address, flags: dict[str, bool] | None = None) -> None: ...

    def queue_deleted(self, queue: Address) -> None: ...

    # A durable topic subscription (broker/core/durable.py `Info`), latest per key wins.
    def subscription_saved(self, client_id: str, name: str, info: tuple[Any, ...]) -> None: ...

    def subscription_deleted(self, client_id: str, name: str) -> None: ...

    def barrier(self) -> Awaitable[None] | None: ...

    def load(self, queue: Address, msg: Message) -> bytes: ...

    # Paging as stubs: `page_out` may forget a pending message and hand back an int, its
    # stub, that the queue keeps in its place; a stub is never a message that expires
    # or belongs to a group (the queue's expiry sweep and group picks skip stubs).
    # `page_in` gives the message back (known again), `peek` a copy (still paged out),
    # `discard` removes it for good.

    def page_out(self, queue: Address, msg: Message) -> int | None: ...

    def page_in(self, queue: Address, stub: int) -> Message: ...

    def peek(self, queue: Address, stub: int) -> Message: ...

    def discard(self, queue: Address, stub: int) -> None: ...

    # Scheduled jobs (broker/core/scheduler.py): created, moved to a later due time, done.

    def job_added(self, job: Job) -> None: ...

    def job_moved(self, job: Job) -> None: ...

    def job_done(self, job: Job) -> None: ...


class NullStore:
    """A Store that keeps nothing (a core without a journal). The core never calls it for
    messages, since no destination is durable then; it is here so `Records.store` is
    always a Store and nothing has to test for None."""

    stored_bytes = 0

    def add(self, queue: Address, msg: Message) -> None:
        pass

    def remove(self, queue: Address, msg: Message) -> None:
        pass

    def delivered(self, queue: Address, msg: Message) -> None:
        pass

    def returned(self, queue: Address, msg: Message) -> None:
        pass

    def transaction(
        self, adds: list[tuple[Address, Message]], removes: list[tuple[Address, Message]]
    ) -> None:
        pass

    def queue_created(self, queue: Address, flags: dict[str, bool] | None = None) -> None:
        pass

    def queue_deleted(self, queue: Address) -> None:
        pass

    def subscription_saved(self, client_id: str, name: str, info: tuple[Any, ...]) -> None:
        pass

    def subscription_deleted(self, client_id: str, name: str) -> None:
        pass

    def barrier(self) -> Awaitable[None] | None:
        return None

    def load(self, queue: Address, msg: Message) -> bytes:
        # Only a durable queue pages bodies out, and without a store none is durable.
        raise LookupError(f"no store holds the body of {msg.id} on {queue}")

    def page_out(self, queue: Address, msg: Message) -> int | None:
        return None

    def page_in(self, queue: Address, stub: int) -> Message:
        raise LookupError(f"no store holds paged message {stub} of {queue}")

    def peek(self, queue: Address, stub: int) -> Message:
        raise LookupError(f"no store holds paged message {stub} of {queue}")

    def discard(self, queue: Address, stub: int) -> None:
        raise LookupError(f"no store holds paged message {stub} of {queue}")

    def job_added(self, job: Job) -> None:
        pass

    def job_moved(self, job: Job) -> None:
        pass

    def job_done(self, job: Job) -> None:
        pass


def journaled(queue: MessageQueue, msg: Message) -> bool:
    """THE rule: is `msg`, held by `queue`, written to the journal? (module docstring)"""
    return queue.durable and msg.persistent


class Records:
    """Every journal write the core makes, each guarded by the journaled rule."""

    __slots__ = ("persists", "store")

    def __init__(self, store: Store | None) -> None:
        self.store: Store = store if store is not None else NullStore()
        # The fast boolean behind every `durable`: False means no write ever happens.
        self.persists = store is not None

    # -- the rule, for destinations and for addresses --------------------------------------

    def durable(self, address: Address) -> bool:
        """Does `address` keep its persistent messages in the journal?"""
        return self.persists and (address.kind == QUEUE or address.kind == DURABLE)

    def journaled(self, address: Address, msg: Message) -> bool:
        """`journaled` for a message not (yet) on a queue: a send to `address`."""
        return msg.persistent and self.persists and address.kind == QUEUE

    # -- destinations ---------------------------------------------------------------------

    def queue_created(self, queue: MessageQueue) -> None:
        if queue.durable:
            self.store.queue_created(queue.address)

    def own_limit_set(self, queue: MessageQueue) -> None:
        """Record the queue again with its own_limit flag (replayed before any protocol
        could set it again)."""
        if queue.durable:
            self.store.queue_created(queue.address, {"own_limit": True})

    def queue_deleted(self, queue: MessageQueue) -> None:
        if queue.durable:
            self.store.queue_deleted(queue.address)

    def subscription_saved(self, client_id: str, name: str, info: tuple[Any, ...]) -> None:
        if self.persists:
            self.store.subscription_saved(client_id, name, info)

    def subscription_deleted(self, client_id: str, name: str) -> None:
        if self.persists:
            self.store.subscription_deleted(client_id, name)

    # -- messages -------------------------------------------------------------------------

    def sent(self, address: Address, msg: Message) -> Awaitable[None] | None:
        """A new message for `address`: journal it if the rule says so; the awaitable
        completes when it is durable (None: nothing to wait for)."""
        if msg.persistent and self.persists and address.kind == QUEUE:
            self.store.add(address, msg)
            return self.store.barrier()
        return None

    def offered(self, queue: MessageQueue, msg: Message) -> None:
        """A topic's message for a durable subscription's queue (the caller has applied
        the rule: `queue.durable and msg.persistent`)."""
        self.store.add(queue.address, msg)

    def delivered(self, queue: MessageQueue, msg: Message) -> None:
        """Handed to a consumer that will acknowledge it: after a crash it comes back
        redelivered."""
        if queue.durable and msg.persistent:
            self.store.delivered(queue.address, msg)

    def removed(self, queue: MessageQueue, msgs: Iterable[Message]) -> None:
        """Gone from `queue` for good: consumed, purged, dropped or expired."""
        if queue.durable:
            store = self.store
            address = queue.address
            for msg in msgs:
                if msg.persistent:
                    store.remove(address, msg)

    def returned(self, queue: MessageQueue, msg: Message) -> None:
        """Back on `queue` with its delivery count raised (a counted return)."""
        if queue.durable and msg.persistent:
            self.store.returned(queue.address, msg)

    def moved(
        self, source: MessageQueue, msg: Message, target: MessageQueue, copy: Message
    ) -> None:
        """`msg` left `source` and `copy` of it joins `target`: one record, so a crash
        keeps the move whole."""
        removes = [(source.address, msg)] if journaled(source, msg) else []
        adds = [(target.address, copy)] if journaled(target, copy) else []
        if adds or removes:
            self.store.transaction(adds, removes)

    def committed(
        self,
        sends: list[tuple[Address, Message]],
        acks: list[tuple[MessageQueue, Message]],
        offered: Iterable[tuple[MessageQueue, Message]] = (),
    ) -> None:
        """A transaction's sends and acknowledgements, all or nothing (one record), with
        the copies of its topic sends `offered` to durable subscriptions' queues."""
        if not self.persists:
            return
        adds = [(a, m) for a, m in sends if self.journaled(a, m)]
        adds += [(q.address, m) for q, m in offered if journaled(q, m)]
        removes = [(q.address, m) for q, m in acks if journaled(q, m)]
        if adds or removes:
            self.store.transaction(adds, removes)

    def load(self, queue: MessageQueue, msg: Message) -> bytes:
        """The body of a paged-out message, read back from the journal."""
        return self.store.load(queue.address, msg)

    # -- paging as stubs (the Store protocol's comment); only durable queues page ---------

    def page_out(self, queue: MessageQueue, msg: Message) -> int | None:
        return self.store.page_out(queue.address, msg)

    def page_in(self, queue: MessageQueue, stub: int) -> Message:
        return self.store.page_in(queue.address, stub)

    def peek(self, queue: MessageQueue, stub: int) -> Message:
        return self.store.peek(queue.address, stub)

    def discard(self, queue: MessageQueue, stubs: Iterable[int]) -> None:
        store = self.store
        address = queue.address
        for stub in stubs:
            store.discard(address, stub)

    # -- scheduled jobs (the scheduler decides which are journaled: `Job.journaled`) -----

    def job_added(self, job: Job) -> None:
        self.store.job_added(job)

    def job_moved(self, job: Job) -> None:
        self.store.job_moved(job)

    def job_done(self, job: Job) -> None:
        self.store.job_done(job)

    def barrier(self) -> Awaitable[None] | None:
        """Completes when everything written so far is durable; None if nothing waits."""
        return self.store.barrier() if self.persists else None
