"""The journal's I/O thread: one thread that runs jobs in submission order and hands each
outcome straight back to the event loop.

Why not a ThreadPoolExecutor with `run_in_executor` (what the journal used before): a
persistent send with one receipt in flight waits for two hand-overs per batch, loop ->
thread and thread -> loop, and the executor's way costs more on both legs: a submit
takes two locks and a semaphore and builds a concurrent Future; the thread completes
that Future under its condition lock, whose callback schedules a copy into an asyncio
Future, whose own callback is scheduled for the loop turn after that. Here a job is one
`SimpleQueue.put` (C), and the thread calls `loop.call_soon_threadsafe(done, result,
error)` once: the batch's completion runs in the first loop turn after the fdatasync
returns.

Ordering is the executor's: one thread, jobs in the order submitted, so a delete or a
read never overtakes an earlier write. `done` callbacks run on the loop in the same order.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
import weakref
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

Done = Callable[[Any, BaseException | None], None]
_Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, Done]

# Threads still running at interpreter exit finish their queued jobs first (as
# concurrent.futures does for its workers): a journal that was never closed still gets
# every write it was handed, and nothing is cut off mid-write.
_live: weakref.WeakSet[IoThread] = weakref.WeakSet()


@atexit.register
def _drain_at_exit() -> None:
    for io in list(_live):
        io.stop()


class IoThread:
    """A single worker thread; `submit` and `run` must be called from one event loop."""

    def __init__(self, name: str) -> None:
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        # A daemon thread so an unclosed journal cannot hang the interpreter's exit;
        # the atexit hook above still lets it finish what it was given.
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._stopped = False
        self._thread.start()
        _live.add(self)

    def submit(
        self,
        loop: asyncio.AbstractEventLoop,
        done: Done,
        fn: Callable[..., Any],
        *args: Any,
    ) -> None:
        """Run `fn(*args)` on the thread after every job submitted before it; then call
        `done(result, None)` or `done(None, exception)` on `loop`."""
        if self._stopped:
            raise RuntimeError("the journal's I/O thread has stopped")
        self._jobs.put((fn, args, loop, done))

    def run(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any
    ) -> asyncio.Future[Any]:
        """`submit` as an awaitable: a future with `fn`'s result or exception."""
        fut: asyncio.Future[Any] = loop.create_future()

        def done(result: Any, exc: BaseException | None) -> None:
            if fut.cancelled():
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        self.submit(loop, done, fn, *args)
        return fut

    def stop(self) -> None:
        """Let the thread finish the jobs already queued, then end it; waits for it
        (called once the last job has completed, so the wait is short)."""
        if not self._stopped:
            self._stopped = True
            self._jobs.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join()
        _live.discard(self)

    def _serve(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            fn, args, loop, done = job
            try:
                result, exc = fn(*args), None
            except BaseException as error:  # handed to the loop: the journal decides
                result, exc = None, error
            # RuntimeError: the loop has closed (an unclosed journal at exit): nobody waits.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(done, result, exc)
            # Drop every reference before blocking again: `done` (the journal's callback)
            # holds the batch it completes, and kept here until the next job arrived it
            # kept the last batch's records alive after the loop was done with them.
            del job, fn, args, result, exc, loop, done
