"""Epochs and the fence that refuses stale ones.

An epoch is the etcd revision at which an active node created the election key: etcd's
revision is one counter for the whole etcd cluster, raised by every write, so each new
winner's epoch is greater than every earlier winner's (not consecutive: other writes
raise it too). It needs no counter key and no second compare in the campaign (etcd's
own election recipe orders leaders the same way). It is 0 for "none seen".

A `Fence` keeps the highest epoch this node has seen, from the election and (later) from
replication frames and peers; anything below it is stale and must be refused. It lives
on the event loop: `observe` and `is_stale` never await, so a check and the change it
guards cannot be split.
"""

from __future__ import annotations


class StaleEpoch(Exception):
    """A message or a node speaks for an epoch older than one already seen."""

    def __init__(self, epoch: int, current: int) -> None:
        super().__init__(f"epoch {epoch} is stale: epoch {current} has been seen")
        self.epoch = epoch
        self.current = current


class Fence:
    """The highest epoch seen by this node; epochs below it are stale."""

    def __init__(self, current: int = 0) -> None:
        self.current = current

    def is_stale(self, epoch: int) -> bool:
        """True when ``epoch`` is older than one already seen (equal is not stale)."""
        return epoch < self.current

    def observe(self, epoch: int) -> bool:
        """Learn of ``epoch``; True when it is the newest (it then becomes current)."""
        if epoch < self.current:
            return False
        self.current = epoch
        return True

    def check(self, epoch: int) -> None:
        """Raise StaleEpoch for a stale ``epoch``, else observe it."""
        if not self.observe(epoch):
            raise StaleEpoch(epoch, self.current)
