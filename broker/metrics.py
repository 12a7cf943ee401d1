"""Prometheus metrics, collected at scrape time from the core's counters.

Nothing here runs per message: the core keeps plain integer counters on each
destination, and this collector turns a snapshot of them into metric families when
/metrics is scraped. Each Broker has its own registry, so several brokers can live in
one process (as they do in the tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from broker.core import Core

_COUNTERS = (
    ("enqueued", "zonemq_messages_enqueued", "Messages sent to the destination"),
    ("dispatched", "zonemq_messages_dispatched", "Messages delivered to consumers"),
    ("acked", "zonemq_messages_acked", "Messages acknowledged (consumed)"),
    ("redelivered", "zonemq_messages_redelivered", "Messages returned for redelivery"),
    ("dlq", "zonemq_messages_dead_lettered", "Messages moved to a dead letter queue"),
    ("expired", "zonemq_messages_expired", "Messages that expired before delivery"),
    ("discarded", "zonemq_messages_discarded", "Messages dropped by the slow-consumer policy"),
)


class BrokerCollector(Collector):
    """Reads the core's stats and the listeners' connection counts on each scrape."""

    def __init__(self, core: Callable[[], Core], connections: Callable[[], dict[str, int]]):
        self._core = core
        self._connections = connections

    def collect(self) -> Iterator[Metric]:
        conns = GaugeMetricFamily(
            "zonemq_connections", "Open client connections", labels=["protocol"]
        )
        for protocol, n in sorted(self._connections().items()):
            conns.add_metric([protocol], n)
        yield conns
        core = self._core()
        stats = core.stats() if core is not None else []
        dests = GaugeMetricFamily("zonemq_destinations", "Destinations", labels=["kind"])
        kinds: dict[str, int] = {}
        for s in stats:
            kinds[s.kind] = kinds.get(s.kind, 0) + 1
        for kind, n in sorted(kinds.items()):
            dests.add_metric([kind], n)
        yield dests
        labels = ["kind", "destination"]
        depth = GaugeMetricFamily(
            "zonemq_destination_depth", "Messages held (pending + in flight)", labels=labels
        )
        inflight = GaugeMetricFamily(
            "zonemq_destination_inflight", "Messages delivered, not yet acked", labels=labels
        )
        consumers = GaugeMetricFamily("zonemq_consumers", "Consumers attached", labels=labels)
        memory = GaugeMetricFamily(
            "zonemq_destination_memory_bytes", "Bytes of pending messages in memory", labels=labels
        )
        counters = {
            attr: CounterMetricFamily(name, doc, labels=labels) for attr, name, doc in _COUNTERS
        }
        for s in stats:
            key = [s.kind, s.name]
            depth.add_metric(key, s.depth)
            inflight.add_metric(key, s.inflight)
            consumers.add_metric(key, s.consumers)
            memory.add_metric(key, s.memory)
            for attr, family in counters.items():
                family.add_metric(key, getattr(s, attr))
        yield depth
        yield inflight
        yield consumers
        yield memory
        yield from counters.values()
        if core is not None:
            sched = core.scheduler
            yield GaugeMetricFamily(
                "zonemq_scheduled_messages", "Scheduled messages waiting", value=len(sched.jobs)
            )
            yield GaugeMetricFamily(
                "zonemq_scheduled_bytes", "Bytes of scheduled messages held", value=sched.bytes
            )
            yield CounterMetricFamily(
                "zonemq_scheduled_delivered",
                "Deliveries made by the scheduler",
                value=sched.delivered,
            )


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format of everything in `registry`."""
    return generate_latest(registry)
