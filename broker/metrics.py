"""Prometheus metrics, collected at scrape time from the core's counters.

Nothing here runs per message: the core keeps plain integer counters on each
destination, and this collector turns a snapshot of them into metric families when
/metrics is scraped. Each Broker has its own registry, so several brokers can live in
one process (as they do in the tests).

Computed at scrape, so nothing outlives what it describes: a consumer's series
(`zonemq_consumer_*`) exist while it is attached and vanish when it closes, a deleted
destination's with it. `zonemq_queue_oldest_message_age_seconds` is read from the
front of each queue's lanes, not tracked per message. `_created` series are disabled
for the whole process (prometheus_client's switch is global): they double the series
count and no dashboard here reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from broker.core import Core
from broker.core.message import DURABLE
from broker.core.queue import MessageQueue, Subscription

disable_created_metrics()

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

    def __init__(
        self,
        core: Callable[[], Core],
        connections: Callable[[], dict[str, int]],
        version: str = "",
    ) -> None:
        self._core = core
        self._connections = connections
        self._version = version

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "zonemq_build_info", "The running broker's version", labels=["version"]
        )
        info.add_metric([self._version], 1)
        yield info
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
            yield from _queue_ages(core)
            yield from _consumers(core)
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


def _queues(core: Core) -> Iterator[tuple[str, str, MessageQueue]]:
    """Queues and durable subscriptions, labelled as in `Core.stats`."""
    for q in core.queues.values():
        yield q.address.kind, q.address.name, q
    for d in core.durables.subs.values():
        yield DURABLE, d.label, d.queue


def _queue_ages(core: Core) -> Iterator[Metric]:
    age = GaugeMetricFamily(
        "zonemq_queue_oldest_message_age_seconds",
        "Age of the oldest message waiting for delivery (from its timestamp; 0 when none)",
        labels=["kind", "destination"],
    )
    now = core.now_ms()
    for kind, name, q in _queues(core):
        stamp = q.oldest_timestamp() if q.count else None
        age.add_metric([kind, name], max(0, now - stamp) / 1000 if stamp is not None else 0.0)
    yield age


def _consumers(core: Core) -> Iterator[Metric]:
    """One series per attached consumer, numbered as the core numbers subscriptions."""
    labels = ["kind", "destination", "consumer"]
    inflight = GaugeMetricFamily(
        "zonemq_consumer_inflight",
        "Messages delivered to the consumer, not yet acked",
        labels=labels,
    )
    prefetch = GaugeMetricFamily(
        "zonemq_consumer_prefetch",
        "The consumer's prefetch (unacked messages allowed)",
        labels=labels,
    )
    subs: list[tuple[str, str, Subscription]] = []
    for kind, name, q in _queues(core):
        subs.extend((kind, name, sub) for sub in q.consumers)
    for t in core.topics.values():
        subs.extend((t.address.kind, t.address.name, sub) for sub in t.subs)
    for kind, name, sub in subs:
        key = [kind, name, str(sub.num)]
        inflight.add_metric(key, len(sub.inflight))
        prefetch.add_metric(key, sub.prefetch)
    yield inflight
    yield prefetch


def register_process(registry: CollectorRegistry) -> None:
    """The process and platform collectors (prometheus_client registers them only in
    its global registry, which a broker does not use)."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format of everything in `registry`."""
    return generate_latest(registry)
