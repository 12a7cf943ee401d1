"""CPU and memory of the client (this process) and of a broker process given its pid.

The broker is sampled from /proc/<pid>/stat (utime + stime, fields 14 and 15, in clock
ticks) and /proc/<pid>/status (VmRSS), so no third-party package is needed. A sampler
owns its asyncio task; `stop()` returns the figures for the interval since `start()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time

_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far by process `pid` (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it are split from ")".
    fields = stat[stat.rfind(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def proc_rss_mib(pid: int) -> float | None:
    """Resident set size of process `pid` in MiB (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class ClientUsage:
    """The benchmark process's own CPU over an interval."""

    def __init__(self) -> None:
        self.cpu0 = time.process_time()
        self.wall0 = time.perf_counter()

    def stop(self) -> dict[str, float]:
        cpu = time.process_time() - self.cpu0
        wall = time.perf_counter() - self.wall0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {
            "client_cpu_s": round(cpu, 3),
            "client_cpu_pct": round(100 * cpu / wall, 1) if wall > 0 else 0.0,
            "client_maxrss_mib": round(rss, 1),
        }


class BrokerSampler:
    """Samples a broker's CPU and RSS every `interval` seconds while running."""

    def __init__(self, pid: int | None, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.task: asyncio.Task[None] | None = None
        self.cpu0: float | None = None
        self.wall0 = 0.0
        self.rss_max = 0.0
        self.rss_last = 0.0

    def start(self) -> None:
        if self.pid is None:
            return
        self.cpu0 = proc_cpu_seconds(self.pid)
        self.wall0 = time.perf_counter()
        self.task = asyncio.get_running_loop().create_task(self._run())

    def sample_rss(self) -> float | None:
        if self.pid is None:
            return None
        rss = proc_rss_mib(self.pid)
        if rss is not None:
            self.rss_last = rss
            self.rss_max = max(self.rss_max, rss)
        return rss

    async def _run(self) -> None:
        while True:
            self.sample_rss()
            await asyncio.sleep(self.interval)

    async def stop(self) -> dict[str, float]:
        if self.pid is None:
            return {}
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.sample_rss()
        cpu1 = proc_cpu_seconds(self.pid)
        wall = time.perf_counter() - self.wall0
        out: dict[str, float] = {
            "broker_rss_mib": round(self.rss_last, 1),
            "broker_rss_max_mib": round(self.rss_max, 1),
        }
        if cpu1 is not None and self.cpu0 is not None and wall > 0:
            out["broker_cpu_s"] = round(cpu1 - self.cpu0, 3)
            out["broker_cpu_pct"] = round(100 * (cpu1 - self.cpu0) / wall, 1)
        return out
