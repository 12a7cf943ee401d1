"""Journal micro-benchmark: committed records per second against concurrency.

Each of N asyncio tasks appends a 256-byte record and awaits its commit future, in a
loop, for a fixed time; group commit should make fsync "always" throughput rise with N.
Prints one table row per (fsync policy, concurrency).

    python bench/bench_journal.py [--seconds 2] [--dir /path/on/the/real/disk] [--loop asyncio]

The directory's file system is printed with the table: on tmpfs an fsync costs nothing
and "always" looks like "never".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from broker.store import FsyncPolicy, Journal

PAYLOAD = bytes(range(256))
POLICIES: tuple[FsyncPolicy, ...] = ("always", "never")
CONCURRENCY = (1, 16, 128)


async def run_one(directory: Path, policy: FsyncPolicy, producers: int, seconds: float) -> str:
    journal = Journal(directory, fsync=policy)
    list(journal.open())
    committed = 0
    stop = False

    async def producer() -> None:
        nonlocal committed
        while not stop:
            journal.append(1, PAYLOAD)
            await journal.commit()
            committed += 1

    tasks = [asyncio.create_task(producer()) for _ in range(producers)]
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    stop = True
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    stats = journal.stats
    await journal.close()
    rate = committed / elapsed
    group = committed / stats.batches if stats.batches else 0.0
    fsyncs = stats.fsyncs / elapsed
    return f"| {policy:<6} | {producers:>9} | {rate:>14,.0f} | {group:>10.1f} | {fsyncs:>8,.0f} |"


def filesystem_of(path: Path) -> str:
    """The type of the mount holding `path`, from /proc/mounts (Linux), else '?'."""
    best, fstype = "", "?"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                _dev, mountpoint, kind, *_ = line.split()
                if str(path).startswith(mountpoint) and len(mountpoint) > len(best):
                    best, fstype = mountpoint, kind
    except OSError:
        pass
    return fstype


def event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="run time per row")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the journals")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="zonemq-bench-", dir=args.dir)).resolve()
    print(
        f"journal bench: 256-byte records, {args.seconds:g} s per row, {args.loop}, "
        f"{base} ({filesystem_of(base)}), {os.cpu_count()} CPUs"
    )
    print("| fsync  | producers |    committed/s |  rec/batch | fsyncs/s |")
    print("|--------|-----------|----------------|------------|----------|")
    try:
        for policy in POLICIES:
            for producers in CONCURRENCY:
                directory = base / f"{policy}-{producers}"
                with asyncio.Runner(loop_factory=event_loop_factory(args.loop)) as runner:
                    row = runner.run(run_one(directory, policy, producers, args.seconds))
                print(row, flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
