"""Scheduled jobs survive a SIGKILL of the broker process (record types 20-22).

A broker process with scheduling on takes persistent scheduled messages (each with a
RECEIPT, so its job record is durable) and is killed with SIGKILL; a new broker on the
same data directory must deliver every delayed one once, not before it is due, and
carry a repeating job on from where it was: its deliveries before the kill that were
acknowledged (with a receipt) never come again, and it delivers the rest.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import stomp

from tests.conftest import Collector
from tests.daemon.test_crash import BrokerProcess

ENV = {"ZONEMQ_BROKER__SCHEDULER_SUPPORT": "true"}
P = {"persistent": "true"}


def _connect(port: int) -> tuple[Any, Collector]:
    conn = stomp.Connection12([("127.0.0.1", port)], heartbeats=(0, 0))
    listener = Collector()
    conn.set_listener("c", listener)
    conn.connect(wait=True)
    return conn, listener


def test_scheduled_jobs_survive_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = BrokerProcess(data, tmp_path, ENV)
    second = None
    try:
        conn, listener = _connect(first.port)
        conn.subscribe("/queue/sched.kill.repeat", id="r", ack="client-individual")
        sent_at = time.time()
        for i in range(5):
            conn.send(
                "/queue/sched.kill.delay",
                f"d{i}",
                headers={**P, "AMQ_SCHEDULED_DELAY": "2500"},
                receipt=f"d{i}",
            )
        conn.send(
            "/queue/sched.kill.repeat",
            "rep",
            headers={
                **P,
                "AMQ_SCHEDULED_DELAY": "100",
                "AMQ_SCHEDULED_PERIOD": "300",
                "AMQ_SCHEDULED_REPEAT": "5",
            },
            receipt="rep",
        )
        assert sorted(listener.receipt() for _ in range(6)) == sorted(
            [f"d{i}" for i in range(5)] + ["rep"]
        )
        before = []
        for n in range(2):
            msg = listener.next()
            before.append(msg.headers["message-id"])
            conn.ack(msg.headers["ack"], receipt=f"ack{n}")
            assert listener.receipt() == f"ack{n}"
        first.kill()

        second = BrokerProcess(data, tmp_path, ENV)
        conn, listener = _connect(second.port)
        conn.subscribe("/queue/sched.kill.delay", id="d", ack="auto")
        conn.subscribe("/queue/sched.kill.repeat", id="r", ack="auto")
        got = [listener.next() for _ in range(9)]
        delayed = [m for m in got if m.headers["destination"] == "/queue/sched.kill.delay"]
        assert sorted(m.body for m in delayed) == [f"d{i}" for i in range(5)]
        assert time.time() - sent_at >= 2.5
        after = [m.headers["message-id"] for m in got if m.body == "rep"]
        assert len(set(after)) == 4 and set(after).isdisjoint(before)
        assert listener.none_within(1.0)
        conn.disconnect()
    finally:
        first.cleanup()
        if second is not None:
            second.cleanup()
