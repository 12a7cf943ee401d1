"""What one paged-out persistent message costs in memory (issue 10: about 1 KB each).

A durable queue past its memory limit keeps only an index entry per message (the body is
in the journal). This sends N persistent messages, shaped as a STOMP SEND maps them (an
id, a timestamp, a couple of properties), to one durable queue whose memory limit is
tiny, so nearly all are paged out, and reports the bytes allocated per message
(tracemalloc: the queue's lanes, the Message objects, their property dicts and ids, the
store's index of records) and the process RSS growth per message.

    python bench/bench_paged_index.py [-n 200000] [--dir /path] [--no-trace]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import tempfile
import tracemalloc
from pathlib import Path

from broker.core import QUEUE, Address, Core, CoreLimits, Message
from broker.store import Journal
from broker.store.messages import MessageStore


def rss() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def run(directory: Path, n: int, trace: bool = True) -> None:
    journal = Journal(directory, fsync="never")
    store = MessageStore(journal)
    store.recover()
    loop = asyncio.get_running_loop()
    core = Core(CoreLimits(queue_memory_limit=1024), call_later=loop.call_later, store=store)
    q = Address(QUEUE, "paged.bench")
    body = b"x" * 256
    core.send(q, Message(body, persistent=True))
    await asyncio.sleep(0)
    gc.collect()
    if trace:
        tracemalloc.start()
    before_py = tracemalloc.get_traced_memory()[0]
    before_rss = rss()
    for i in range(n):
        core.send(
            q,
            Message(
                body,
                persistent=True,
                properties={"n": str(i), "producer": "bench"},
            ),
        )
        if i % 1000 == 999:
            await asyncio.sleep(0)  # let group commit run, as the broker's loop would
    done = core.barrier()
    if done is not None:
        await done
    gc.collect()
    after_py = tracemalloc.get_traced_memory()[0] if trace else before_py
    tracemalloc.stop()
    after_rss = rss()
    queue = core.queue(q)
    paged = sum(1 for m in queue.entries() if type(m) is int or m.body is None)
    print(f"messages {n}  paged out {paged}  queue bytes gauge {queue.bytes}")
    if trace:
        print(f"python heap per message (tracemalloc): {(after_py - before_py) / n:.0f} B")
    on = "on" if trace else "off"
    print(f"RSS growth per message (tracemalloc {on}): {(after_rss - before_rss) / n:.0f} B")
    core.close()
    await journal.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200_000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument(
        "--no-trace", action="store_true", help="RSS only (tracemalloc costs memory itself)"
    )
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(dir=args.dir, prefix="paged-index-"))
    try:
        asyncio.run(run(directory, args.n, not args.no_trace))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
