"""Per-destination policies seen from STOMP clients: the individual dead-letter
strategy, a policy's prefetch, garbage collection of inactive destinations, and the
configuration errors a bad `[[destinations.policies]]` entry gives."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from broker.config import ConfigError, load_settings
from tests.conftest import quiet, subscribe, wait_until

INDIVIDUAL = [{"pattern": ">", "kind": "queue", "dead_letter_strategy": "individual"}]


def test_individual_dlq_gets_the_queues_name(broker_factory, connect) -> None:
    b = broker_factory(**{"destinations.policies": INDIVIDUAL})
    dlq = connect(port=b.stomp_port)
    subscribe(dlq, "/queue/DLQ.orders.eu", "dlq", ack="client-individual")
    shared = connect(port=b.stomp_port)
    subscribe(shared, "/queue/ActiveMQ.DLQ", "shared")

    c = connect(port=b.stomp_port)
    subscribe(c, "/queue/orders.eu", "s", ack="client-individual")
    c.send("/queue/orders.eu", "order-7", headers={"persistent": "true"})
    c.nack_frame(c.listener.next())

    dead = dlq.listener.next()
    assert dead.body == "order-7"
    assert dead.headers["original-destination"] == "/queue/orders.eu"
    # Failing again on the DLQ drops it: no DLQ.DLQ.orders.eu, nothing on the shared one.
    dlq.nack_frame(dead)
    dlq.sync()
    assert b.stats("DLQ.DLQ.orders.eu") is None
    assert quiet(shared)
    assert b.stats("DLQ.orders.eu").depth == 0


def test_policy_prefetch_spreads_messages_over_consumers(broker_factory, connect) -> None:
    b = broker_factory(**{"destinations.policies": [{"pattern": "jobs", "queue_prefetch": 1}]})
    first = connect(port=b.stomp_port)
    subscribe(first, "/queue/jobs", "a", ack="client-individual")
    second = connect(port=b.stomp_port)
    subscribe(second, "/queue/jobs", "b", ack="client-individual")
    p = connect(port=b.stomp_port)
    for i in range(4):
        p.send("/queue/jobs", f"job-{i}")
    p.sync()
    got = [first.listener.next().body, second.listener.next().body]
    assert sorted(got) == ["job-0", "job-1"]
    assert quiet(first) and quiet(second)  # one unacknowledged each, the rest wait
    assert b.stats("jobs").depth == 4


def test_inactive_queue_is_garbage_collected(broker_factory, connect) -> None:
    b = broker_factory(
        **{
            "destinations.inactive_purge_period": 0.05,
            "destinations.policies": [
                {
                    "pattern": "tmp.>",
                    "gc_inactive_destinations": True,
                    "inactive_timeout_before_gc": 0.2,
                }
            ],
        }
    )
    c = connect(port=b.stomp_port)
    subscribe(c, "/queue/tmp.session", "s")
    c.send("/queue/tmp.session", "hello")
    assert c.listener.next().body == "hello"
    c.send("/queue/tmp.full", "waits")
    c.send("/queue/kept", "x")
    subscribe(c, "/queue/kept.idle", "k")
    c.unsubscribe("s")
    c.sync()
    assert wait_until(lambda: b.stats("tmp.session") is None)
    # A queue holding a message, or not matched by the policy, stays.
    assert b.stats("tmp.full").depth == 1
    assert b.stats("kept") is not None


def test_without_a_purge_period_nothing_is_collected(broker_factory, connect) -> None:
    """ActiveMQ 5.17.2 (live, bench.compare_configured): gcInactiveDestinations without
    schedulePeriodForDestinationPurge (0 by default) never removes a destination."""
    b = broker_factory(
        **{
            "destinations.expiry_check_interval": 0.05,  # sweeps run; they do not collect
            "destinations.policies": [
                {
                    "pattern": ">",
                    "gc_inactive_destinations": True,
                    "inactive_timeout_before_gc": 0.1,
                }
            ],
        }
    )
    c = connect(port=b.stomp_port)
    subscribe(c, "/queue/tmp.session", "s")
    c.send("/queue/tmp.session", "hello")
    assert c.listener.next().body == "hello"
    c.unsubscribe("s")
    c.sync()
    time.sleep(0.6)  # absence over time: many sweeps and timeouts pass
    assert b.stats("tmp.session") is not None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"pattern": ">", "kind": "queues"}, 'kind: must be "", "queue" or "topic"'),
        ({"pattern": ">", "dead_letter_strategy": "each"}, "dead_letter_strategy: must be"),
        ({"pattern": ">", "dead_letter_prefix": ""}, "dead_letter_prefix: must not be empty"),
        ({"pattern": ">", "queue_prefetch": 0}, "queue_prefetch: must be at least 1"),
        ({"pattern": ">", "memory_limit": -5}, "memory_limit: must be at least 1"),
        ({"pattern": ">", "inactive_timeout_before_gc": -1}, "must not be negative"),
        ({"pattern": ">", "max_redeliveries": -2}, "max_redeliveries: must be -1"),
        ({"pattern": ""}, "pattern: must not be empty"),
        ({"pattern": ">", "gc": True}, "destinations.policies[0].gc: unknown setting"),
    ],
)
def test_bad_policy_entries_are_named(tmp_path: Path, entry: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={}, overrides={"destinations.policies": [entry]})
    assert message in str(info.value)
    assert "destinations.policies[0]" in str(info.value)
