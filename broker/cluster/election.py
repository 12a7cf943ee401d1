"""Who is active: a campaign for one etcd key held by a lease, and fencing by deadline.

A node that is caught up (the caller says so: `set_caught_up`) and finds the key absent
grants a lease and creates the key attached to it in one transaction; the winner's
epoch is the key's create revision (broker/cluster/epoch.py). The winner renews the
lease every TTL/3. etcd drops the key when the lease expires, at least TTL after etcd
last renewed it, which is after we *sent* that renewal; so, on the local monotonic
clock, the lease lives at least until ``sent + TTL``. The active steps down (the
`stepped_down` callback: the broker stops accepting writes and closes its clients) at
``sent + TTL - margin`` unless a later renewal came back by then: a timer on the loop,
not the end of a hung request, does it. So an active that cannot reach etcd has stopped
before etcd can give the key to another node, and two actives never accept writes at
once, as long as the event loop is not blocked past the margin.

Standbys read the key, watch it, and campaign when it is deleted. A node that is not
caught up follows too (it must know the active to copy from it later) but never
campaigns. A node that steps down is no longer caught up: its journal may hold records
never replicated, so it rejoins as a standby once the caller says it has caught up again.

State is owned by the event loop; the role changes only in `_become_active` and
`step_down`, neither of which awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from broker.cluster.epoch import Fence
from broker.cluster.etcd import EtcdClient, EtcdError, KeyValue

log = logging.getLogger("zonemq.cluster")


class Role(enum.Enum):
    """Where a node stands in the election."""

    WAITING = "waiting"  # not caught up: follows, never campaigns
    CANDIDATE = "candidate"  # caught up, campaigning or about to
    STANDBY = "standby"  # another node is active
    ACTIVE = "active"


@dataclass(frozen=True)
class NodeInfo:
    """What a node publishes in the election key while it is active."""

    node_id: str
    az: str
    replication: str = ""
    clients: Mapping[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(
            {
                "node_id": self.node_id,
                "az": self.az,
                "replication": self.replication,
                "clients": dict(self.clients),
            },
            sort_keys=True,
        ).encode()


@dataclass(frozen=True)
class Leader:
    """The active node as read from the election key, with its epoch and lease."""

    node: NodeInfo
    epoch: int
    lease: int

    @classmethod
    def from_kv(cls, kv: KeyValue) -> Leader:
        try:
            raw = json.loads(kv.value)
            node = NodeInfo(
                node_id=str(raw["node_id"]),
                az=str(raw.get("az", "")),
                replication=str(raw.get("replication", "")),
                clients={str(k): str(v) for k, v in raw.get("clients", {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            # Someone else's value in our key: still a holder, with an unknown name.
            node = NodeInfo(node_id="?", az="")
        return cls(node=node, epoch=kv.create_revision, lease=kv.lease)


class ElectionEvents(Protocol):
    """What the broker is told. Called on the event loop; must not block or raise."""

    def became_active(self, leader: Leader) -> None: ...

    def stepped_down(self, reason: str) -> None: ...

    def following(self, leader: Leader) -> None: ...


class Election:
    """One node's part in the election for ``key``: campaign, renew, step down, follow.

    ``ttl`` is the lease's TTL in whole seconds (etcd's unit), ``margin`` the seconds
    before the earliest possible expiry at which an active that could not renew steps
    down. `start` runs it as a task; `stop` steps down (if active) and releases the
    lease. Times (`last_renewal`, `deadline`) are the loop's monotonic clock.
    """

    def __init__(
        self,
        client: EtcdClient,
        key: bytes,
        me: NodeInfo,
        events: ElectionEvents,
        *,
        ttl: int,
        margin: float,
        fence: Fence | None = None,
    ) -> None:
        if not 0 < margin < ttl * 2 / 3:
            # Below 2/3 TTL the deadline comes after the first renewal (at TTL/3).
            raise ValueError(f"margin must be in (0, {ttl * 2 / 3:.2f}), got {margin}")
        self.client = client
        self.key = key
        self.me = me
        self.events = events
        self.ttl = ttl
        self.margin = margin
        self.fence = fence if fence is not None else Fence()
        self.role = Role.WAITING
        self.leader: Leader | None = None
        self.epoch = 0  # ours while active, else 0
        self.last_renewal = 0.0
        self.deadline = 0.0
        self._lease = 0
        # (key, mod revision) that must be unchanged for a campaign to win: the in-sync
        # set this node read and found itself in (the node keeps it current).
        self.guard: tuple[bytes, int] | None = None
        self._caught_up = asyncio.Event()
        self._down = asyncio.Event()
        self._watchdog: asyncio.TimerHandle | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        # No etcd call may wait longer than a renewal period, and errors are retried at
        # a tenth of the TTL: fast enough to win an election soon after the key is gone.
        self._call_timeout = ttl / 3
        self._retry = max(0.05, ttl / 10)

    # -- the caller's controls ----------------------------------------------------------

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    def set_caught_up(self, value: bool) -> None:
        """Declare whether this node holds everything the active acknowledged; only a
        caught-up node campaigns (replication will call this; tests call it directly)."""
        if value:
            self._caught_up.set()
            if self.role is Role.WAITING:
                self.role = Role.CANDIDATE
        else:
            self._caught_up.clear()
            if self.role is Role.CANDIDATE:
                self.role = Role.WAITING

    @property
    def active(self) -> bool:
        return self.role is Role.ACTIVE

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.ensure_future(self._run())
        return self._task

    async def stop(self) -> None:
        """Step down if active, stop campaigning and following, release the lease."""
        self.step_down("stopping")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._release()

    # -- stepping down ------------------------------------------------------------------

    def step_down(self, reason: str) -> None:
        """Stop being active now (synchronously: the callback runs before this returns).
        A deposed node is no longer caught up (see the module docstring)."""
        if self.role is not Role.ACTIVE:
            return
        self.role = Role.WAITING
        self.epoch = 0
        self._caught_up.clear()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._renewer is not None and self._renewer is not asyncio.current_task():
            self._renewer.cancel()
        self._renewer = None
        log.warning("cluster: %s steps down: %s", self.me.node_id, reason)
        self._emit("stepped_down", reason)
        self._down.set()

    def _expired(self) -> None:
        self._watchdog = None
        self.step_down(
            f"no lease renewal acknowledged for {self.ttl - self.margin:.2f}s"
            f" (TTL {self.ttl}s, margin {self.margin:.2f}s)"
        )

    def _arm(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        self.deadline = deadline
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = loop.call_at(deadline, self._expired)

    # -- the main loop ------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                holder, revision = await self.client.get(self.key, timeout=self._call_timeout)
                if holder is not None:
                    await self._follow(holder, revision)
                elif not self.caught_up:
                    await self._wait_absent(revision)
                else:
                    await self._campaign()
            except EtcdError as exc:
                log.info("cluster: %s: etcd: %s", self.me.node_id, exc)
                await asyncio.sleep(self._retry)

    async def _wait_absent(self, revision: int) -> None:
        """No active and we may not campaign: wait until we may, or one appears."""
        caught = asyncio.ensure_future(self._caught_up.wait())
        appeared = asyncio.ensure_future(self._next_event(revision + 1))
        try:
            await asyncio.wait({caught, appeared}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (caught, appeared):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, EtcdError):
                    await task

    async def _next_event(self, start: int) -> None:
        async for _ in self.client.watch(self.key, start, idle=self.ttl):
            return

    async def _campaign(self) -> None:
        loop = asyncio.get_running_loop()
        self.role = Role.CANDIDATE
        sent = loop.time()
        lease, granted = await self.client.grant(self.ttl, timeout=self._call_timeout)
        self._lease = lease
        # etcd may grant more than asked (its minimum TTL); counting with the smaller
        # only makes us step down earlier than needed.
        ttl = min(self.ttl, granted) if granted else self.ttl
        try:
            created, holder, revision = await self.client.create(
                self.key, self.me.encode(), lease, timeout=self._call_timeout, guard=self.guard
            )
        except EtcdError:
            # It may have been applied; releasing the lease undoes it either way.
            await self._release()
            raise
        if not created and holder is not None and holder.lease == lease:
            # An earlier attempt of this same call went through (a retried request).
            created, revision = True, holder.create_revision
        now = loop.time()
        if created and self.caught_up and now < sent + ttl - self.margin:
            self._become_active(revision, sent, ttl)
            await self._lead()
            return
        await self._release()
        if holder is not None:
            await self._follow(holder, revision)
        else:
            await asyncio.sleep(self._retry)  # the guard changed: the node reads it again

    def _become_active(self, epoch: int, granted_at: float, ttl: int) -> None:
        self.role = Role.ACTIVE
        self.epoch = epoch
        self.fence.observe(epoch)
        self.last_renewal = granted_at
        self._down.clear()
        self._arm(granted_at + ttl - self.margin)
        self.leader = Leader(node=self.me, epoch=epoch, lease=self._lease)
        log.info("cluster: %s is active, epoch %d", self.me.node_id, epoch)
        self._emit("became_active", self.leader)
        self._renewer = asyncio.ensure_future(self._renew(ttl))

    async def _lead(self) -> None:
        await self._down.wait()
        # Let a standby take over now rather than at the lease's expiry, if etcd hears us.
        await self._release()

    async def _renew(self, ttl: int) -> None:
        loop = asyncio.get_running_loop()
        period = ttl / 3
        next_at = self.last_renewal + period
        while self.role is Role.ACTIVE:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            sent = loop.time()
            budget = min(period, self.deadline - sent)
            try:
                left = await self.client.keepalive(self._lease, timeout=max(0.01, budget))
            except EtcdError as exc:
                log.info("cluster: %s: lease renewal failed: %s", self.me.node_id, exc)
                next_at = loop.time() + self._retry
                continue
            if self.role is not Role.ACTIVE:
                return
            if left <= 0:
                self.step_down("etcd no longer holds our lease")
                return
            if loop.time() >= self.deadline:
                # Renewed, but only after the deadline: the timer is about to fire (or
                # would have); a late renewal must not extend an active that has lapsed.
                self.step_down("lease renewal acknowledged after the step-down deadline")
                return
            self.last_renewal = sent
            self._arm(sent + min(ttl, left) - self.margin)
            next_at = sent + period

    async def _release(self) -> None:
        lease, self._lease = self._lease, 0
        if lease:
            with contextlib.suppress(EtcdError):
                await self.client.revoke(lease, timeout=self._call_timeout)

    async def _follow(self, holder: KeyValue, revision: int) -> None:
        """Another node holds the key: follow it until the key is deleted."""
        self._observe(holder)
        start = revision + 1
        while True:
            async for event in self.client.watch(self.key, start, idle=self.ttl):
                start = event.kv.mod_revision + 1
                if event.deleted:
                    log.info("cluster: %s: the active's key is gone", self.me.node_id)
                    return
                self._observe(event.kv)
            # Quiet for a TTL: the watch may be cut without our knowing; look again.
            kv, revision = await self.client.get(self.key, timeout=self._call_timeout)
            if kv is None:
                return
            self._observe(kv)
            start = revision + 1

    def _observe(self, kv: KeyValue) -> None:
        leader = Leader.from_kv(kv)
        self.fence.observe(leader.epoch)
        if self.role is not Role.ACTIVE:
            self.role = Role.STANDBY if self.caught_up else Role.WAITING
        if self.leader is None or self.leader.epoch != leader.epoch:
            self.leader = leader
            log.info(
                "cluster: %s follows %s (epoch %d)",
                self.me.node_id,
                leader.node.node_id,
                leader.epoch,
            )
            self._emit("following", leader)

    def _emit(self, name: str, arg: object) -> None:
        try:
            getattr(self.events, name)(arg)
        except Exception:
            # Stepping down must finish whatever a callback does.
            log.exception("cluster: the %s callback failed", name)
