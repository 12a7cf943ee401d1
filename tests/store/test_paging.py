"""Paging: a durable queue past its memory limit keeps bodies in the journal only."""

from __future__ import annotations

from pathlib import Path

from broker.core.queue import PAGED_ENTRY
from tests.conftest import BrokerThread

LIMIT = 1024 * 1024
BODY = 32 * 1024


def fill(b: BrokerThread, connect, total: int) -> None:
    producer = connect(port=b.stomp_port)
    for i in range(total):
        body = (f"{i:08d}".encode() * (BODY // 8))[:BODY]
        producer.send("/queue/paged", body, headers={"persistent": "true", "n": str(i)})
    producer.sync()
    producer.close()


def drain(b: BrokerThread, connect, total: int) -> None:
    consumer = connect(port=b.stomp_port)
    consumer.subscribe("/queue/paged", id="c", ack="client-individual")
    for i, frame in enumerate(consumer.listener.take(total, timeout=30)):
        assert int(frame.headers["n"]) == i
        body = frame.body if isinstance(frame.body, bytes) else frame.body.encode()
        assert body == (f"{i:08d}".encode() * (BODY // 8))[:BODY]
        consumer.ack_frame(frame)
    consumer.sync()


def test_backlog_beyond_memory_limit_is_paged_and_drains_in_order(broker_factory, connect) -> None:
    b = broker_factory(**{"destinations.queue_memory_limit": LIMIT})
    total = 320  # 10 MiB of bodies against a 1 MiB limit
    fill(b, connect, total)
    stats = b.stats("paged")
    assert stats.depth == total
    # Bodies held in memory stay at the limit (plus the message that crossed it); each
    # paged-out message costs its index entry.
    assert stats.memory <= LIMIT + BODY + total * PAGED_ENTRY
    drain(b, connect, total)
    assert b.stats("paged").depth == 0


def test_paged_backlog_survives_restart_without_loading_it_all(tmp_path: Path, connect) -> None:
    overrides = {"destinations.queue_memory_limit": LIMIT}
    first = BrokerThread(tmp_path / "data", **overrides).start()
    try:
        fill(first, connect, 200)
    finally:
        first.stop()
    second = BrokerThread(tmp_path / "data", **overrides).start()
    try:
        stats = second.stats("paged")
        assert stats.depth == 200
        assert stats.memory <= LIMIT + BODY + 200 * PAGED_ENTRY
        drain(second, connect, 200)
    finally:
        second.stop()
