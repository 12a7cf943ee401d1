"""A 1 GiB persistent backlog in a real broker process stays within its memory limit."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import RawClient
from tests.daemon.test_cli import BrokerProcess

GIB = 1024 * 1024 * 1024
BODY = 64 * 1024
TOTAL = GIB // BODY
LIMIT = 16 * 1024 * 1024
# The broker's own footprint (interpreter, uvloop, aiohttp, prometheus) plus the index
# entry each paged message keeps in memory: fixed, and far below the 1 GiB on disk.
OVERHEAD = 200 * 1024 * 1024
WINDOW = 64


def peak_rss(pid: int) -> int:
    """The process's high-water mark of resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def test_one_gib_backlog_pages_and_drains_in_order(tmp_path: Path) -> None:
    config = tmp_path / "zonemq.toml"
    config.write_text(f"[destinations]\nqueue_memory_limit = {LIMIT}\n")
    argv = [sys.executable, "-m", "broker", "run", "--config", str(config)]
    argv += ["--stomp-port", "0", "--console-port", "0", "--data-dir", str(tmp_path / "data")]
    proc = BrokerProcess(argv, tmp_path)
    try:
        port = proc.stomp_port()
        producer = RawClient(port)
        producer.connect("1.2")
        body = b"p" * BODY
        # Pipelined sends with a receipt every WINDOW messages, two windows in flight.
        owed = 0
        for i in range(TOTAL):
            last = i % WINDOW == WINDOW - 1
            receipt = f"receipt:r{i}\n" if last else ""
            head = f"SEND\ndestination:/queue/deep\npersistent:true\nn:{i}\n{receipt}"
            producer.send(head.encode() + f"content-length:{BODY}\n\n".encode() + body + b"\x00")
            if last:
                owed += 1
                if owed > 2:
                    assert producer.frame(timeout=60).startswith(b"RECEIPT")
                    owed -= 1
        for _ in range(owed):
            assert producer.frame(timeout=60).startswith(b"RECEIPT")
        held = peak_rss(proc.proc.pid)
        assert held < LIMIT + OVERHEAD, f"peak RSS {held / 2**20:.0f} MiB while filling"

        consumer = RawClient(port)
        consumer.connect("1.2")
        consumer.send(
            b"SUBSCRIBE\ndestination:/queue/deep\nid:1\nack:auto\nactivemq.prefetchSize:64\n\n\x00"
        )
        for i in range(TOTAL):
            head, _, payload = consumer.frame(timeout=60).partition(b"\n\n")
            assert f"\nn:{i}\n".encode() in head
            assert len(payload) == BODY
        held = peak_rss(proc.proc.pid)
        assert held < LIMIT + OVERHEAD, f"peak RSS {held / 2**20:.0f} MiB after draining"
    finally:
        proc.cleanup()
