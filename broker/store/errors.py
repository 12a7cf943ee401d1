"""Errors raised by the journal.

JournalError is the base; callers that only want "the store is unusable" catch it.
JournalCorrupt names the file and byte offset so an operator can look at the damage.
JournalFailed means a write, fsync or delete failed: the journal accepts nothing more
and the broker must stop (redis' rule: never acknowledge what may not be on disk).
"""

from __future__ import annotations

from pathlib import Path


class JournalError(Exception):
    """Misuse of the journal, or a state it cannot work from."""


class JournalCorrupt(JournalError):
    """A damaged record or segment that is not a torn tail (valid data follows it)."""

    def __init__(self, path: str | Path, offset: int, reason: str) -> None:
        super().__init__(f"{path}: corrupt journal data at offset {offset}: {reason}")
        self.path = Path(path)
        self.offset = offset
        self.reason = reason


class JournalFailed(JournalError):
    """An I/O error hit the journal; nothing appended since can be trusted to be durable."""
