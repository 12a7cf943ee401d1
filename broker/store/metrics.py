"""Prometheus instruments for the journal.

Updated once per batch (group commit), per fsync and per segment created or deleted,
never per record. Prometheus instruments are thread-safe, so the I/O thread observes
fsync latency and bytes written directly while the event loop observes group sizes and
the segment count.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)


class JournalMetrics:
    """The journal's instruments, registered in one registry (one per broker)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.bytes_written = Counter(
            "zonemq_journal_bytes_written",
            "Bytes written to journal segment files (record frames and segment headers)",
            registry=registry,
        )
        self.segments = Gauge(
            "zonemq_journal_segments", "Journal segment files on disk", registry=registry
        )
        self.fsync_seconds = Histogram(
            "zonemq_journal_fsync_seconds",
            "Time spent in fsync/fdatasync of journal files and the journal directory",
            buckets=_FSYNC_BUCKETS,
            registry=registry,
        )
        self.group_records = Histogram(
            "zonemq_journal_group_records",
            "Records written per group commit (one write, at most one data fsync)",
            buckets=_GROUP_BUCKETS,
            registry=registry,
        )
