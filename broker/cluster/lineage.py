"""A node's lineage: which epoch's active wrote the journal from which position.

Kept in `<data_dir>/epochs` (JSON, replaced atomically and fsynced) beside the journal
directory. An entry (epoch, start) says the records from `start` on, up to the next
entry's start, were written by the active of `epoch`. The active appends its own entry
when it is promoted, before it accepts a write; a standby adopts the active's lineage
from WELCOME, after truncating what the active does not have.

What it decides (`truncate_point`): a node whose mirror ends at P and whose last byte
was written in epoch e holds a tail the current history never had when P lies beyond
the start of the first later epoch: that tail was written by a deposed active (or
received from it) after the standby that replaced it stopped copying, so nobody was
ever told it was durable, and it is cut there. Kafka's leader-epoch checkpoint works the
same way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from broker.cluster.wire import Epoch, Position

FILENAME = "epochs"


class Lineage:
    """The (epoch, start) entries of one data directory, oldest first."""

    def __init__(self, path: Path, entries: list[Epoch] | None = None) -> None:
        self.path = path
        self.entries: list[Epoch] = list(entries or [])

    @classmethod
    def load(cls, data_dir: Path) -> Lineage:
        path = data_dir / FILENAME
        if not path.exists():
            return cls(path)
        raw = json.loads(path.read_text())
        return cls(path, [Epoch(int(e), Position(int(s), int(o))) for e, s, o in raw])

    def save(self) -> None:
        """Replace the file atomically and durably (rename, then fsync the directory)."""
        tmp = self.path.with_suffix(".tmp")
        data = json.dumps([[e.epoch, *e.start] for e in self.entries]).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def last_epoch(self, position: Position) -> int:
        """The epoch that wrote the byte just before `position` (0: none known)."""
        epoch = 0
        for entry in self.entries:
            if entry.start < position:
                epoch = entry.epoch
        return epoch

    def truncate_point(self, last_epoch: int, position: Position) -> Position | None:
        """Where a mirror ending at `position`, last written in `last_epoch`, must be cut
        to follow this history; None when it is a prefix of it."""
        for entry in self.entries:
            if entry.epoch > last_epoch:
                return entry.start if position > entry.start else None
        return None

    def begin(self, epoch: int, position: Position) -> None:
        """This node becomes the active of `epoch` with its journal ending at `position`:
        entries from `position` on (epochs that wrote nothing here) go, ours is added,
        and the file is durable before the caller accepts a write."""
        self.entries = [e for e in self.entries if e.start < position]
        self.entries = [e for e in self.entries if e.epoch < epoch]
        self.entries.append(Epoch(epoch, position))
        self.save()

    def adopt(self, entries: list[Epoch]) -> None:
        """Take the active's lineage (after any truncation it asked for)."""
        self.entries = list(entries)
        self.save()
