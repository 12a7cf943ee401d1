"""A cluster node: one process that is the active broker or a standby mirroring it.

Roles and what runs in each:
- standby: the election follows the active's key; a `Replica` mirrors the active's
  journal into this node's data directory; a poller reads the in-sync set from etcd
  (`<prefix>/insync`) and lets the election campaign only while this node is in it,
  with the set's mod revision as the campaign's guard, so a node dropped from the set
  a moment ago cannot win with a stale read;
- active: the replica stops, the lineage records the new epoch at the journal's end,
  and a `Broker` opens the mirror as its journal with the replication gate installed
  before anything is written (`on_journal`): a `ReplicationSource` serves the
  standbys, `InSync` decides when commit futures complete. The in-sync set in etcd is
  written only while this node holds the election key (a guarded put): {self} at
  promotion, a standby added locally first and in etcd after (it is waited for from
  then on), removed in etcd first and locally after (only then does nothing wait for it).
- stepping down (the election's deadline, or a newer epoch seen): synchronously, the
  gate refuses everything and every client connection is closed, before the lease can
  expire; then the broker stops and the node starts over as a standby, whose first
  WELCOME cuts the tail nobody else has.

The data directory's lock is held by the node across roles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

from aiohttp import web

from broker.cluster.election import Election, Leader, NodeInfo
from broker.cluster.epoch import Fence
from broker.cluster.etcd import EtcdClient, EtcdError
from broker.cluster.insync import InSync
from broker.cluster.lineage import Lineage
from broker.cluster.mirror import scan_end
from broker.cluster.relay import Relay
from broker.cluster.replica import Replica
from broker.cluster.source import ReplicationSource, StandbyLink
from broker.cluster.status import ClusterCollector, standby_console, status
from broker.cluster.wire import Position
from broker.config import ClusterSettings, Settings
from broker.server import Broker
from broker.store import DataDirLock, Journal

log = logging.getLogger("zonemq.cluster")


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class ClusterNode:
    """Runs this process's part of the cluster described by `settings.cluster`."""

    def __init__(self, settings: Settings) -> None:
        assert settings.cluster is not None
        self.settings = settings
        self.cfg: ClusterSettings = settings.cluster
        self.data_dir = Path(settings.broker.data_dir)
        self.journal_dir = self.data_dir / "journal"
        self.fence = Fence()
        self.lock = DataDirLock(self.data_dir)
        self.lineage: Lineage | None = None
        self.etcd = EtcdClient(self.cfg.etcd_endpoints)
        prefix = self.cfg.etcd_prefix.rstrip("/")
        self.active_key = f"{prefix}/active".encode()
        self.insync_key = f"{prefix}/insync".encode()
        self.min_key = f"{prefix}/min_insync_azs".encode()
        self.min_insync_azs = self.cfg.min_insync_azs
        self.role = "starting"
        self.broker: Broker | None = None
        self.source: ReplicationSource | None = None
        self.insync: InSync | None = None
        self.replica: Replica | None = None
        self.leader: Leader | None = None
        self.epoch = 0
        self.failed = asyncio.Event()
        self.changed = asyncio.Event()  # set on every role change (tests wait on it)
        self._tasks: set[asyncio.Task[None]] = set()
        self._replicating: asyncio.Task[None] | None = None
        self._transition: asyncio.Task[None] | None = None
        self._etcd_timeout = self.cfg.lease_ttl / 3
        self.relays: list[Relay] = []
        self._console: web.AppRunner | None = None
        self.election = Election(
            self.etcd,
            self.active_key,
            NodeInfo(
                self.cfg.node_id,
                self.cfg.az,
                self.cfg.advertise.get("replication", self.cfg.replication_address),
                self.cfg.advertise,
            ),
            self,
            ttl=self.cfg.lease_ttl,
            margin=self.cfg.step_down_margin,
            fence=self.fence,
        )

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        self.lineage = Lineage.load(self.data_dir)
        self._set_role("standby")
        await self._start_relays()
        self._spawn(self._poll_insync())
        self.election.start()

    async def stop(self) -> None:
        await self.election.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._transition is not None:
            with contextlib.suppress(Exception):
                await self._transition
        await self._stop_replica()
        await self._stop_relays()
        await self._stop_broker()
        await self.etcd.close()
        if self.lock.held:
            self.lock.release()

    def _spawn(self, coro: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _set_role(self, role: str) -> None:
        log.info("cluster: %s is %s (epoch %d)", self.cfg.node_id, role, self.epoch)
        self.role = role
        self.changed.set()
        self.changed = asyncio.Event()

    # -- the election's events ----------------------------------------------------------------

    def became_active(self, leader: Leader) -> None:
        self.epoch = leader.epoch
        self._transition = asyncio.ensure_future(self._promote(leader.epoch))

    def stepped_down(self, reason: str) -> None:
        # Synchronously, before the lease can expire: no write is acknowledged from now
        # on, and no client keeps talking to a node that is no longer the active.
        if self.insync is not None:
            self.insync.close()
        if self.broker is not None:
            for listener in self.broker.listeners.values():
                listener.stop_accepting()
                for conn in list(getattr(listener, "connections", ())):
                    transport = getattr(conn, "transport", None)
                    if transport is not None:
                        transport.abort()
        self.epoch = 0
        prev = self._transition
        self._transition = asyncio.ensure_future(self._demote(prev, reason))

    def following(self, leader: Leader) -> None:
        self.leader = leader
        for relay in self.relays:
            # Connections relayed to the old active are cut: their clients reconnect.
            relay.drop(f"the active is now {leader.node.node_id}")
            relay.changed()
        if self.role == "standby":
            self._follow(leader)

    # -- relays: a standby's listeners pass clients to the active -----------------------------

    def _relay_target(self, name: str) -> tuple[str, int] | None:
        leader = self.leader
        if leader is None or leader.node.node_id == self.cfg.node_id:
            return None
        address = leader.node.clients.get(name)
        return _split(address) if address else None

    async def _start_relays(self) -> None:
        """On each client port this node would serve, relay to the active (whose client
        addresses are its `advertise` setting, published in the election key); and the
        console port's /healthz and /metrics."""
        bind = self.settings.broker.bind
        console = self.settings.listeners.console
        if console.enabled and console.port:
            self._console = await standby_console(self, bind, console.port, self.settings)
        for name in ("stomp", "amqp", "openwire", "aws"):
            own = getattr(self.settings.listeners, name)
            if not getattr(own, "enabled", True) or not own.port or name not in self.cfg.advertise:
                continue
            relay = Relay(name, bind, own.port, lambda n=name: self._relay_target(n))
            await relay.start()
            self.relays.append(relay)

    async def _stop_relays(self) -> None:
        relays, self.relays = self.relays, []
        for relay in relays:
            await relay.stop()
        if self._console is not None:
            await self._console.cleanup()
            self._console = None

    # -- standby ------------------------------------------------------------------------------

    def _follow(self, leader: Leader) -> None:
        if self._replicating is not None and not self._replicating.done():
            self._replicating.cancel()
        if leader.node.node_id == self.cfg.node_id or not leader.node.replication:
            return
        self._replicating = self._spawn(self._replicate(leader))

    async def _replicate(self, leader: Leader) -> None:
        host, port = _split(leader.node.replication)
        assert self.lineage is not None
        while True:
            if self.replica is None:
                position = await asyncio.get_running_loop().run_in_executor(
                    None, scan_end, self.journal_dir
                )
                self.replica = Replica(
                    self.journal_dir,
                    position,
                    self.lineage,
                    self.fence,
                    node=self.cfg.node_id,
                    az=self.cfg.az,
                )
            try:
                await self.replica.run(host, port)
            except (ConnectionError, OSError, EOFError) as exc:
                log.info("cluster: replication from %s: %s", leader.node.node_id, exc)
            except Exception as exc:
                log.warning("cluster: replication from %s: %s", leader.node.node_id, exc)
                await self._stop_replica()  # start again from what the disk holds
            await asyncio.sleep(0.2)

    async def _stop_replica(self) -> None:
        if self._replicating is not None:
            self._replicating.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._replicating
            self._replicating = None
        if self.replica is not None:
            await self.replica.close()
            self.replica = None

    async def _poll_insync(self) -> None:
        """Keep the election's guard and caught-up flag on the in-sync set in etcd, and
        min_insync_azs on the operator's value (`zonemq cluster min-insync-azs`)."""
        while True:
            with contextlib.suppress(EtcdError, ValueError):
                kv, _ = await self.etcd.get(self.min_key, timeout=self._etcd_timeout)
                if kv is not None:
                    self.min_insync_azs = int(kv.value)
                    if self.insync is not None:
                        self.insync.set_min_insync_azs(self.min_insync_azs)
            if self.role == "standby":
                try:
                    kv, _ = await self.etcd.get(self.insync_key, timeout=self._etcd_timeout)
                except EtcdError:
                    kv = None
                    self.election.set_caught_up(False)
                else:
                    members = json.loads(kv.value).get("members", []) if kv else []
                    # No set yet: nothing was ever acknowledged by a cluster.
                    mine = kv is None or self.cfg.node_id in members
                    self.election.guard = (self.insync_key, kv.mod_revision if kv else 0)
                    self.election.set_caught_up(mine)
            await asyncio.sleep(self.cfg.lease_ttl / 6)

    # -- active -------------------------------------------------------------------------------

    async def _promote(self, epoch: int) -> None:
        await self._stop_replica()
        await self._stop_relays()  # the broker binds these ports now
        if not self.election.active or self.election.epoch != epoch:
            return
        self._set_role("promoting")
        self.broker = Broker(
            self.settings, lock=self.lock, on_journal=self._attach, health=lambda: status(self)
        )
        self.broker.registry.register(ClusterCollector(self))
        try:
            await self.broker.start()
        except Exception:
            log.exception("cluster: the broker did not start as the active")
            self.election.step_down("the broker did not start")
            return
        if not self.election.active:
            return
        self._set_role("active")

    async def _attach(self, journal: Journal) -> None:
        assert self.lineage is not None
        head = journal.segments()[-1]
        self.lineage.begin(self.epoch, Position(head.id, head.size))
        self.insync = InSync(self.cfg.az, self.min_insync_azs)
        self.source = ReplicationSource(
            journal, self.epoch, self.lineage, self.insync, fence=self.fence, on_link=self._link
        )
        journal.gate(self.insync.gate)
        host, port = _split(self.cfg.replication_address)
        await self.source.start(host, port)
        if not await self._write_insync():
            raise EtcdError("no longer the active: the in-sync set was not written")

    async def _write_insync(self, without: str | None = None) -> bool:
        """Record {self} plus the in-sync standbys (less `without`) in etcd, only while
        this node still holds the election key (False: it no longer does)."""
        assert self.insync is not None
        members = sorted({self.cfg.node_id, *self.insync.members} - {without})
        value = json.dumps({"epoch": self.epoch, "members": members})
        return await self.etcd.put_if(
            self.insync_key, value.encode(), self.active_key, self.epoch, timeout=self._etcd_timeout
        )

    def _link(self, link: StandbyLink, what: str) -> None:
        insync = self.insync
        if insync is None or insync.closed:
            return
        if what == "caught_up" and link.node not in insync.members:
            insync.add(link.node, link.az)  # waited for from now on, then recorded
            self._spawn(self._record_insync())
        elif what == "lost" and link.node in insync.members:
            self._spawn(self._drop(link.node))

    async def _record_insync(self) -> None:
        try:
            if not await self._write_insync():
                log.warning("cluster: in-sync set not recorded: no longer the active")
        except EtcdError as exc:
            log.warning("cluster: in-sync set not recorded: %s", exc)

    async def _drop(self, node: str) -> None:
        """Out of the set in etcd first; only then stop waiting for it."""
        while self.insync is not None and not self.insync.closed:
            try:
                written = await self._write_insync(without=node)
            except EtcdError:
                await asyncio.sleep(0.1)
                continue
            if written:
                self.insync.remove(node)
            return  # else deposed: stepping down fails the waiters instead

    async def _stop_broker(self) -> None:
        if self.source is not None:
            await self.source.close()
            self.source = None
        if self.insync is not None:
            self.insync.close()
            self.insync = None
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None

    async def _demote(self, prev: asyncio.Task[None] | None, reason: str) -> None:
        if prev is not None:
            with contextlib.suppress(Exception):
                await prev
        self._set_role("stepping down")
        limit = self.settings.broker.shutdown_timeout + 10.0
        stopping = asyncio.ensure_future(self._stop_broker())
        done, _ = await asyncio.wait({stopping}, timeout=limit)
        if not done:
            # A step-down must finish (the node is useless until it is a standby again):
            # say where it hangs, then go on without the broker's clean stop.
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    log.error(
                        "cluster: step-down still waiting; task %r at %s",
                        task,
                        task.get_stack(limit=4),
                    )
            stopping.cancel()
            self.source = self.insync = self.broker = None
        self._set_role("standby")
        await self._start_relays()
        if self.leader is not None and self.leader.node.node_id != self.cfg.node_id:
            self._follow(self.leader)
