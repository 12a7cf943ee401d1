"""The console port: Prometheus /metrics after real STOMP traffic, and /healthz."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import WAIT, BrokerThread, Client

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def get(broker: BrokerThread, path: str) -> tuple[int, dict[str, str], bytes]:
    url = f"http://127.0.0.1:{broker.console_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def scrape(broker: BrokerThread) -> Samples:
    status, headers, body = get(broker, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"{name}{labels} not exposed; have {sorted(k[0] for k in samples)}"
    return samples[key]


def scrape_until(
    broker: BrokerThread, check: Callable[[Samples], bool], timeout: float = WAIT
) -> Samples:
    """Scrape until `check` holds (each scrape is a real HTTP round trip) or time runs out."""
    deadline = time.monotonic() + timeout
    samples = scrape(broker)
    while not check(samples) and time.monotonic() < deadline:
        samples = scrape(broker)
    return samples


def test_healthz_reports_ok(broker: BrokerThread) -> None:
    status, headers, body = get(broker, "/healthz")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"status": "ok"}


def test_unknown_path_is_404(broker: BrokerThread) -> None:
    status, _, _ = get(broker, "/nope")
    assert status == 404


def test_connections_gauge_follows_stomp_clients(broker: BrokerThread, connect) -> None:
    assert value(scrape(broker), "zonemq_connections", protocol="stomp") == 0
    a: Client = connect("1.2")
    b: Client = connect("1.1")
    assert value(scrape(broker), "zonemq_connections", protocol="stomp") == 2
    b.disconnect()
    samples = scrape_until(
        broker, lambda s: s.get(("zonemq_connections", frozenset({("protocol", "stomp")}))) == 1
    )
    assert value(samples, "zonemq_connections", protocol="stomp") == 1
    a.sync()


def test_destination_depth_counts_pending_messages(broker: BrokerThread, connect) -> None:
    c: Client = connect()
    for i in range(2):
        c.send("/queue/metrics.depth", f"m{i}")
    c.send("/topic/metrics.topic", "nobody listens")
    c.sync()
    s = scrape(broker)
    assert value(s, "zonemq_destination_depth", kind="queue", destination="metrics.depth") == 2
    assert value(s, "zonemq_destination_inflight", kind="queue", destination="metrics.depth") == 0
    assert (
        value(s, "zonemq_messages_enqueued_total", kind="queue", destination="metrics.depth") == 2
    )
    assert value(s, "zonemq_consumers", kind="queue", destination="metrics.depth") == 0
    assert value(s, "zonemq_destinations", kind="queue") >= 1
    assert value(s, "zonemq_destinations", kind="topic") >= 1


def test_queue_counters_after_traffic(broker: BrokerThread, connect) -> None:
    q = "metrics.flow"
    labels = {"kind": "queue", "destination": q}
    producer: Client = connect()
    consumer: Client = connect("1.2")
    # Persistent: ActiveMQ dead-letters only persistent messages (others are dropped).
    for i in range(3):
        producer.send(f"/queue/{q}", f"m{i}", headers={"persistent": "true"})
    producer.sync()

    # One delivery given back unacknowledged: counted as a redelivery.
    consumer.subscribe(
        f"/queue/{q}",
        id="first",
        ack="client-individual",
        headers={"activemq.prefetchSize": "1"},
    )
    first = consumer.listener.next()
    assert first.body == "m0"
    consumer.unsubscribe(id="first")
    consumer.sync()

    s = scrape(broker)
    assert value(s, "zonemq_messages_redelivered_total", **labels) == 1
    assert value(s, "zonemq_destination_depth", **labels) == 3

    # Consume two with ACK, NACK the third (straight to the DLQ, as ActiveMQ does for STOMP).
    consumer.subscribe(f"/queue/{q}", id="second", ack="client-individual")
    msgs = consumer.listener.take(3)
    assert [m.body for m in msgs] == ["m0", "m1", "m2"]
    assert msgs[0].headers["redelivered"] == "true"
    s = scrape(broker)
    assert value(s, "zonemq_destination_inflight", **labels) == 3
    assert value(s, "zonemq_consumers", **labels) == 1
    consumer.ack_frame(msgs[0])
    consumer.ack_frame(msgs[1])
    consumer.nack_frame(msgs[2])
    consumer.sync()

    s = scrape(broker)
    assert value(s, "zonemq_messages_enqueued_total", **labels) == 3
    assert value(s, "zonemq_messages_dispatched_total", **labels) == 4
    assert value(s, "zonemq_messages_acked_total", **labels) == 2
    assert value(s, "zonemq_messages_redelivered_total", **labels) == 1
    assert value(s, "zonemq_messages_dead_lettered_total", **labels) == 1
    assert value(s, "zonemq_messages_expired_total", **labels) == 0
    assert value(s, "zonemq_destination_depth", **labels) == 0
    assert value(s, "zonemq_destination_inflight", **labels) == 0
    dlq = {"kind": "queue", "destination": "ActiveMQ.DLQ"}
    assert value(s, "zonemq_destination_depth", **dlq) == 1
    assert value(s, "zonemq_messages_enqueued_total", **dlq) == 1
    assert value(s, "zonemq_connections", protocol="stomp") == 2

    # The metrics agree with the core's own statistics.
    stats = broker.stats(q)
    assert (stats.enqueued, stats.dispatched, stats.acked, stats.redelivered, stats.dlq) == (
        3,
        4,
        2,
        1,
        1,
    )


def test_metrics_text_declares_counter_types(broker: BrokerThread, connect) -> None:
    c: Client = connect()
    c.send("/queue/metrics.types", "x")
    c.sync()
    _, _, body = get(broker, "/metrics")
    text = body.decode()
    for name in (
        "zonemq_messages_enqueued",
        "zonemq_messages_dispatched",
        "zonemq_messages_acked",
        "zonemq_messages_redelivered",
        "zonemq_messages_dead_lettered",
    ):
        # prometheus_client names the TYPE line with or without the _total suffix.
        assert f"# TYPE {name} counter" in text or f"# TYPE {name}_total counter" in text, name
    assert "# TYPE zonemq_connections gauge" in text
    assert "# TYPE zonemq_destination_depth gauge" in text
    assert 'zonemq_connections{protocol="stomp"} 1.0' in text
