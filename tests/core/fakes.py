"""Test doubles for the core alone: a fake clock/loop, a recording consumer, a memory store.

With these the core's rules (redelivery, dead-lettering, expiry, transactions, lease
deadlines) run in microseconds: no sockets, no event loop, time moves only when a test
calls `FakeLoop.advance`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from broker.core import Address, Message, Subscription

T = TypeVar("T")


class FakeTimer:
    """A scheduled callback of FakeLoop (what asyncio.TimerHandle is to a real loop)."""

    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """A clock and timer queue standing in for the event loop: the Core's `clock` and
    `call_later` and the `Loop` of pull delivery. Nothing runs until `advance`."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, FakeTimer]] = []
        self._seq = itertools.count()
        # Futures need a loop object, never a running one: coroutines are driven by hand.
        self._futures_loop = asyncio.new_event_loop()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> FakeTimer:
        timer = FakeTimer(self.now + max(delay, 0.0), callback, args)
        heapq.heappush(self._heap, (timer.when, next(self._seq), timer))
        return timer

    def call_soon(self, callback: Callable[..., object], *args: Any) -> FakeTimer:
        return self.call_later(0.0, callback, *args)

    def create_future(self) -> asyncio.Future[Any]:
        return self._futures_loop.create_future()

    @property
    def pending(self) -> int:
        """Timers scheduled and not cancelled."""
        return sum(1 for _, _, t in self._heap if not t.cancelled)

    def advance(self, seconds: float) -> None:
        """Move time forward, running every timer that falls due on the way, in order
        (a callback may schedule more; those run too if due)."""
        end = self.now + seconds
        while self._heap and self._heap[0][0] <= end:
            when, _, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            self.now = max(self.now, when)
            timer.callback(*timer.args)
        self.now = end

    def close(self) -> None:
        self._futures_loop.close()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that must finish without waiting (e.g. receive with wait=0)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the coroutine waited")


class RecordingConsumer:
    """A Consumer that records what the core hands it."""

    def __init__(self) -> None:
        self.got: list[Message] = []
        self.slowed: list[Subscription] = []

    def deliver(self, sub: Subscription, msg: Message) -> None:
        self.got.append(msg)

    def slow(self, sub: Subscription) -> None:
        self.slowed.append(sub)

    @property
    def bodies(self) -> list[bytes]:
        return [m.body for m in self.got]


class MemoryStore:
    """A Store that keeps journaled messages in a dict and logs every call, so tests can
    assert exactly which records the core writes."""

    def __init__(self, *, stubs: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.held: dict[tuple[Address, str], bytes] = {}
        # With `stubs`, page_out keeps the whole message here under a stub, as the real
        # store keeps its record (and refuses what the real store refuses).
        self.stubs = stubs
        self.paged: dict[int, Message] = {}
        self._next_stub = 1 << 40
        self.queues: dict[Address, dict[str, bool]] = {}
        self.barriers = 0
        # Bytes the store holds, for the store limit (a test sets it).
        self.stored_bytes = 0

    def ops(self, *names: str) -> list[tuple[Any, ...]]:
        """The logged calls named `names` (all when none are given)."""
        return [c for c in self.calls if not names or c[0] in names]

    def add(self, queue: Address, msg: Message) -> None:
        self.calls.append(("add", queue, msg.id))
        self.held[(queue, msg.id)] = msg.body

    def remove(self, queue: Address, msg: Message) -> None:
        self.calls.append(("remove", queue, msg.id))
        self.held.pop((queue, msg.id), None)

    def delivered(self, queue: Address, msg: Message) -> None:
        self.calls.append(("delivered", queue, msg.id, msg.delivery_count))

    def returned(self, queue: Address, msg: Message) -> None:
        self.calls.append(("returned", queue, msg.id, msg.delivery_count))

    def transaction(
        self, adds: list[tuple[Address, Message]], removes: list[tuple[Address, Message]]
    ) -> None:
        self.calls.append(
            ("transaction", [(a, m.id) for a, m in adds], [(a, m.id) for a, m in removes])
        )
        for a, m in removes:
            self.held.pop((a, m.id), None)
        for a, m in adds:
            self.held[(a, m.id)] = m.body

    def queue_created(self, queue: Address, flags: dict[str, bool] | None = None) -> None:
        self.calls.append(("queue_created", queue, flags))
        self.queues[queue] = flags or self.queues.get(queue, {})

    def queue_deleted(self, queue: Address) -> None:
        self.calls.append(("queue_deleted", queue))
        self.queues.pop(queue, None)

    def subscription_saved(self, client_id: str, name: str, info: tuple[Any, ...]) -> None:
        self.calls.append(("subscription_saved", client_id, name, info))

    def subscription_deleted(self, client_id: str, name: str) -> None:
        self.calls.append(("subscription_deleted", client_id, name))

    def barrier(self) -> Awaitable[None] | None:
        self.barriers += 1
        return None

    def load(self, queue: Address, msg: Message) -> bytes:
        self.calls.append(("load", queue, msg.id))
        return self.held[(queue, msg.id)]

    def page_out(self, queue: Address, msg: Message) -> int | None:
        if not self.stubs or msg.expiration or msg.group_id is not None:
            return None
        self.calls.append(("page_out", queue, msg.id))
        stub = self._next_stub
        self._next_stub += 1
        # A rebuilt message is a new object, as the real store's is.
        self.paged[stub] = msg.copy()
        return stub

    def page_in(self, queue: Address, stub: int) -> Message:
        msg = self.paged.pop(stub)
        self.calls.append(("page_in", queue, msg.id))
        return msg

    def peek(self, queue: Address, stub: int) -> Message:
        return self.paged[stub].copy()

    def discard(self, queue: Address, stub: int) -> None:
        self.remove(queue, self.page_in(queue, stub))

    def job_added(self, job: Any) -> None:
        self.calls.append(("job_added", job.id, job.address, job.due, job.repeat))

    def job_moved(self, job: Any) -> None:
        self.calls.append(("job_moved", job.id, job.due, job.repeat, job.count))

    def job_done(self, job: Any) -> None:
        self.calls.append(("job_done", job.id))
