"""The store limit on SQS sends: past `destinations.store_limit` under
`store_full_policy = "block"`, SendMessage and SendMessageBatch wait for space, as STOMP
producers stop being read and AMQP ones get no credit.

An HTTP request cannot be left unread like a socket, so a send waits for at most
`listeners.aws.send_block_timeout` (ActiveMQ's sendFailIfNoSpaceAfterTimeout) and is
then answered RequestThrottled, which SDKs retry with backoff; and at most
`listeners.aws.max_blocked_sends` requests wait (each holds its body), beyond which a
send is answered RequestThrottled at once. Nothing of a refused send is stored.

Invariants (all on the loop; no await between a check and the change it guards):
- `_waiting` holds the futures of the waiting sends, in arrival order, each with its
  timeout; while it is not empty, `_registered` is true: one callback is registered
  with the core (Core.when_store_space), since a core callback cannot be taken back and
  one per request would pile up while requests time out and are retried;
- a send arriving while others wait waits behind them even if the store has room by
  then, so it does not overtake them;
- `close` (the broker stops) answers every waiting send, and every later one at once,
  with ServiceUnavailable.
"""

from __future__ import annotations

import asyncio

from broker.core import Address, Core
from protocols.aws.errors import SqsError

# Why a future completes: space (send now), timed out, or the broker is stopping.
_SPACE, _TIMEOUT, _CLOSED = 0, 1, 2


class SendGate:
    """Holds SQS sends back while the store is full (one per SqsService)."""

    def __init__(self, core: Core, timeout: float, max_waiting: int) -> None:
        self.core = core
        self.timeout = timeout
        self.max_waiting = max_waiting
        self._waiting: dict[asyncio.Future[int], asyncio.TimerHandle | None] = {}
        self._registered = False
        self._closed = False

    @property
    def waiting(self) -> int:
        """Sends waiting for space now."""
        return len(self._waiting)

    async def space(self, address: Address) -> None:
        """Return when a journaled send to `address` may go ahead; raise SqsError
        RequestThrottled if it may not within the timeout or too many wait already."""
        if self._closed:
            raise _stopping()
        if not self._waiting and not self.core.store_full:
            return  # the hot path: one property read
        if not self._registered:
            # when_store_space is False when the policy is "fail" (the core refuses the
            # send: OverLimit) or `address` does not journal: nothing to wait for.
            if not self.core.when_store_space(address, self._wake):
                return
            self._registered = True
        if len(self._waiting) >= self.max_waiting or self.timeout <= 0:
            raise _throttled("too many sends are waiting" if self.timeout > 0 else "")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        self._waiting[fut] = loop.call_later(self.timeout, self._finish, fut, _TIMEOUT)
        try:
            why = await fut
        finally:
            # Also when the request is cancelled (its client went away).
            handle = self._waiting.pop(fut, None)
            if handle is not None:
                handle.cancel()
        if why == _TIMEOUT:
            raise _throttled(f"no space within {self.timeout:g}s")
        if why == _CLOSED:
            raise _stopping()

    def close(self) -> None:
        """The broker is stopping: answer every waiting send now (not stored)."""
        self._closed = True
        for fut in list(self._waiting):
            self._finish(fut, _CLOSED)

    def _wake(self) -> None:
        """The core's callback: the store is below 90% of its limit; all go, in order."""
        self._registered = False
        for fut in list(self._waiting):
            self._finish(fut, _SPACE)

    def _finish(self, fut: asyncio.Future[int], why: int) -> None:
        handle = self._waiting.pop(fut, None)
        if handle is not None and why != _TIMEOUT:
            handle.cancel()
        if not fut.done():
            fut.set_result(why)


def _throttled(detail: str) -> SqsError:
    reason = f" ({detail})" if detail else ""
    return SqsError(
        "RequestThrottled",
        f"The persistent store is full (destinations.store_limit); retry later{reason}.",
    )


def _stopping() -> SqsError:
    return SqsError("ServiceUnavailable", "The broker is shutting down.")
