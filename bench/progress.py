"""Progress lines on long runs: every `every` seconds, how many deliveries are in."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

EVERY = 10.0


async def report(count: Callable[[], int], total: int, every: float = EVERY) -> None:
    """Print '# … delivered n of total (rate/s)' to stderr every `every` seconds until
    cancelled; a run shorter than `every` prints nothing."""
    start = time.monotonic()
    last = 0
    while True:
        await asyncio.sleep(every)
        n = count()
        elapsed = time.monotonic() - start
        rate = (n - last) / every
        last = n
        print(
            f"#   {elapsed:.0f}s: delivered {n:,} of {total:,} ({rate:,.0f}/s)",
            file=sys.stderr,
            flush=True,
        )


def start(count: Callable[[], int], total: int, every: float = EVERY) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(report(count, total, every))
