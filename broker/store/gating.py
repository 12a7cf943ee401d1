"""The journal's gate: a durability condition beyond the local disk (replication).

`Gate(segment, end)` is called with the end of each batch once it is written locally
and returns None (nothing more to wait for) or a future; the batch's commit futures
get that future's outcome (`settle`). See Journal.gate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

Gate = Callable[[int, int], "asyncio.Future[None] | None"]


def observed(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()


def settle(waiter: asyncio.Future[None], gated: asyncio.Future[None]) -> None:
    if waiter.done():
        return
    exc = None if gated.cancelled() else gated.exception()
    if gated.cancelled():
        waiter.cancel()
    elif exc is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(None)
