"""Which standbys are in sync, and when a position is durable enough to acknowledge.

The rule (Kafka's in-sync replicas, with zones): a position is replicated when every
in-sync standby has acknowledged it, and writes are refused while the in-sync standbys
cover fewer than `min_insync_azs` zones other than the active's own. Every in-sync
standby therefore holds every acknowledged record, so any of them may take over; a
standby joins only once it has caught up, and leaves (the node records it in etcd
first) when it disconnects or lags, after which nothing waits for it.

`gate(segment, offset)` is the journal's gate (Journal.gate): None when the position is
already replicated, otherwise a future that completes when it is, or fails with
`NotReplicated` when the zones required can no longer acknowledge it.

Ownership: on the event loop; no method awaits.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging

from broker.cluster.wire import ZERO, Position
from broker.core.errors import WriteRefused

log = logging.getLogger("zonemq.cluster")


class NotReplicated(WriteRefused):
    """A persistent write cannot be acknowledged: too few zones are in sync."""


class InSync:
    """The in-sync standbys (node id -> AZ), their acknowledged positions, and waiters."""

    def __init__(self, az: str, min_insync_azs: int) -> None:
        self.az = az
        self.min_insync_azs = min_insync_azs
        self.members: dict[str, str] = {}
        self.acked: dict[str, Position] = {}
        self._waiters: list[tuple[Position, int, float, asyncio.Future[None]]] = []
        self._tie = itertools.count()
        self.closed = False

    def zones(self) -> set[str]:
        """The zones other than ours that in-sync standbys cover."""
        return {az for az in self.members.values() if az != self.az}

    def shortfall(self) -> str | None:
        """Why writes cannot be acknowledged now, or None."""
        if self.closed:
            return "this node is no longer the active"
        have = len(self.zones())
        if have >= self.min_insync_azs:
            return None
        return (
            f"replication: {have} other zone(s) in sync, min_insync_azs is"
            f" {self.min_insync_azs}; the write is on the active only"
        )

    def replicated(self) -> Position | None:
        """The position every in-sync standby has acknowledged (None: no member)."""
        if not self.members:
            return None
        return min(self.acked.get(node, ZERO) for node in self.members)

    def gate(self, segment: int, offset: int) -> asyncio.Future[None] | None:
        position = Position(segment, offset)
        reason = self.shortfall()
        loop = asyncio.get_running_loop()
        if reason is not None:
            fut: asyncio.Future[None] = loop.create_future()
            fut.set_exception(NotReplicated(reason))
            return fut
        done = self.replicated()
        if not self.members or (done is not None and done >= position):
            return None
        fut = loop.create_future()
        heapq.heappush(self._waiters, (position, next(self._tie), loop.time(), fut))
        return fut

    def oldest_wait(self) -> tuple[Position, float] | None:
        """The position and start time of the oldest write still waiting."""
        if not self._waiters:
            return None
        position, _, since, _ = self._waiters[0]
        return position, since

    def ack(self, node: str, position: Position) -> None:
        if position > self.acked.get(node, ZERO):
            self.acked[node] = position
        if node in self.members:
            self._release()

    def add(self, node: str, az: str) -> None:
        """`node` is in sync from now on: later writes wait for it too."""
        if node not in self.members:
            log.info("replication: standby %s (%s) is in sync", node, az)
        self.members[node] = az
        self._release()

    def remove(self, node: str) -> None:
        """`node` is no longer waited for (the caller recorded that in etcd first)."""
        if self.members.pop(node, None) is not None:
            log.warning("replication: standby %s is out of sync", node)
        self._release()

    def set_min_insync_azs(self, value: int) -> None:
        """The operator changed it (logged): waiters are judged again at once."""
        if value != self.min_insync_azs:
            log.warning("replication: min_insync_azs %d -> %d", self.min_insync_azs, value)
            self.min_insync_azs = value
            self._release()

    def close(self) -> None:
        """Fail every waiter: this node is no longer the active."""
        self.closed = True
        self._release()

    def _release(self) -> None:
        reason = self.shortfall()
        waiters = self._waiters
        if reason is not None:
            while waiters:
                fut = heapq.heappop(waiters)[3]
                if not fut.done():
                    fut.set_exception(NotReplicated(reason))
            return
        done = self.replicated()
        while waiters and (done is None or waiters[0][0] <= done):
            fut = heapq.heappop(waiters)[3]
            if not fut.done():
                fut.set_result(None)
