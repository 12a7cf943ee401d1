"""The journal's I/O thread (broker/store/iothread.py): order, outcomes, stopping.

A real thread and the test's running loop; waiting is on futures, never on sleeps.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from broker.store.iothread import IoThread


async def test_jobs_run_and_complete_in_submission_order_off_the_loop() -> None:
    loop = asyncio.get_running_loop()
    io = IoThread("test-io")
    ran: list[int] = []
    threads: set[int] = set()
    completed: list[tuple[int, object, BaseException | None]] = []
    finished = loop.create_future()

    def job(i: int) -> int:
        threads.add(threading.get_ident())
        ran.append(i)
        if i % 100 == 7:
            raise OSError(f"job {i}")
        return i * 2

    def done_for(i: int) -> Callable[[object, BaseException | None], None]:
        def done(result: object, exc: BaseException | None) -> None:
            completed.append((i, result, exc))
            if len(completed) == 1000:
                finished.set_result(None)

        return done

    for i in range(1000):
        io.submit(loop, done_for(i), job, i)
    await finished
    io.stop()
    assert ran == list(range(1000))
    assert threads and threading.get_ident() not in threads
    assert [i for i, _, _ in completed] == list(range(1000))  # callbacks in order, on the loop
    for i, result, exc in completed:
        if i % 100 == 7:
            assert isinstance(exc, OSError) and result is None
        else:
            assert exc is None and result == i * 2


async def test_run_returns_an_awaitable_with_the_result_or_the_exception() -> None:
    loop = asyncio.get_running_loop()
    io = IoThread("test-io")
    assert await io.run(loop, sum, [1, 2, 3]) == 6
    with pytest.raises(ZeroDivisionError):
        await io.run(loop, lambda: 1 / 0)
    io.stop()


async def test_stop_finishes_queued_jobs_and_refuses_new_ones() -> None:
    loop = asyncio.get_running_loop()
    io = IoThread("test-io")
    gate = threading.Event()
    ran: list[int] = []
    io.submit(loop, lambda _r, _e: None, gate.wait)
    for i in range(5):
        io.submit(loop, lambda _r, _e: None, ran.append, i)
    gate.set()
    io.stop()  # joins: the five queued jobs ran first
    assert ran == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="stopped"):
        io.submit(loop, lambda _r, _e: None, ran.append, 5)
