"""Mutated real-client sessions against a live broker, a bounded count per protocol (the
soak is `python -m bench.fuzz`; see bench/fuzz/__init__.py). Whatever the bytes, the
broker answers or closes that one connection: a well-behaved bystander keeps being
served and gets back every message it stored, no connection is left open, and nothing
is logged as an internal error (a fuzz finding is a bug of ours, not noise)."""

from __future__ import annotations

import logging
import time

import pytest

from bench.fuzz.run import fuzz
from tests.conftest import WAIT, BrokerThread

CASES = 600


def internal_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.name.startswith("zonemq") and r.levelno >= logging.ERROR
    ]


def open_connections(broker: BrokerThread) -> int:
    def count() -> int:
        return sum(len(getattr(lst, "connections", ())) for lst in broker.broker.listeners.values())

    return int(broker.call(count))


@pytest.mark.parametrize("protocol", ["stomp", "amqp", "sqs"])
def test_mutated_sessions_hurt_no_one(
    broker: BrokerThread, caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    caplog.set_level(logging.INFO)
    port = broker.broker.port({"sqs": "aws"}.get(protocol, protocol))
    report = fuzz(protocol, ("127.0.0.1", port), broker.stomp_port, cases=CASES, seed=7)
    assert report.cases == CASES
    assert report.bystander_ok, "\n".join(report.lines())
    assert not report.stalled, "\n".join(report.lines())
    # Every fuzz connection is gone (the bystander's own is the one left).
    deadline = time.monotonic() + WAIT
    while open_connections(broker) > 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert open_connections(broker) <= 1
    assert internal_errors(caplog) == []
