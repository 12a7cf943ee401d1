"""broker.store: the journal (record-level, knows nothing of messages) and the data
directory lock. Stdlib and prometheus_client only; never imports a protocol.

Modules, one concern each: format (bytes on disk), segment (files and the I/O-thread
writer), recovery (replay and torn-tail repair), compaction (which segments to empty),
journal (append, group commit, release, compaction, reads), metrics, lock, errors.
"""

from broker.store.errors import JournalCorrupt, JournalError, JournalFailed
from broker.store.format import Record, RecordRef
from broker.store.journal import Journal, JournalStats
from broker.store.lock import DataDirLock, DataDirLocked
from broker.store.segment import FsyncPolicy, SegmentInfo

__all__ = [
    "DataDirLock",
    "DataDirLocked",
    "FsyncPolicy",
    "Journal",
    "JournalCorrupt",
    "JournalError",
    "JournalFailed",
    "JournalStats",
    "Record",
    "RecordRef",
    "SegmentInfo",
]
