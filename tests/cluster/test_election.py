"""The election against a real etcd: one of three wins; an active cut off from etcd
steps down before a standby is elected, and the new one has a higher epoch; the old
epoch is stale; a node that is not caught up never campaigns.

All nodes run on the test's event loop, so the events of every node are stamped by one
monotonic clock and their order can be compared directly."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from broker.cluster.election import Election, Leader, NodeInfo, Role
from broker.cluster.epoch import Fence, StaleEpoch
from broker.cluster.etcd import EtcdClient
from broker.demo.faultproxy import FaultProxy
from tests.cluster.conftest import EtcdServer

TTL = 2
MARGIN = 0.5
WAIT = 10.0
_prefixes = itertools.count()


@dataclass
class Recorder:
    """ElectionEvents that stamp each event with the loop's clock and wake waiters."""

    name: str
    log: list[tuple[float, str, str, object]]
    active: asyncio.Event = field(default_factory=asyncio.Event)
    down: asyncio.Event = field(default_factory=asyncio.Event)
    followed: asyncio.Event = field(default_factory=asyncio.Event)
    times: dict[str, float] = field(default_factory=dict)
    leaders: list[Leader] = field(default_factory=list)

    def _stamp(self, event: str, arg: object) -> None:
        now = asyncio.get_running_loop().time()
        self.times[event] = now
        self.log.append((now, self.name, event, arg))

    def became_active(self, leader: Leader) -> None:
        self._stamp("active", leader.epoch)
        self.active.set()

    def stepped_down(self, reason: str) -> None:
        self._stamp("down", reason)
        self.down.set()

    def following(self, leader: Leader) -> None:
        self._stamp("following", leader.epoch)
        self.leaders.append(leader)
        self.followed.set()


@dataclass
class Node:
    name: str
    election: Election
    events: Recorder
    client: EtcdClient


class Cluster:
    """Elections of several nodes on one key, each with its own etcd client."""

    def __init__(self) -> None:
        self.key = f"/zonemq-test/{os.getpid()}-{next(_prefixes)}/active".encode()
        self.log: list[tuple[float, str, str, object]] = []
        self.nodes: dict[str, Node] = {}

    def node(self, name: str, url: str, *, caught_up: bool = True) -> Node:
        client = EtcdClient([url])
        events = Recorder(name, self.log)
        election = Election(
            client,
            self.key,
            NodeInfo(node_id=name, az=f"az-{name}", replication=f"127.0.0.1:{7000 + len(name)}"),
            events,
            ttl=TTL,
            margin=MARGIN,
        )
        election.set_caught_up(caught_up)
        node = self.nodes[name] = Node(name, election, events, client)
        election.start()
        return node

    async def close(self) -> None:
        for node in self.nodes.values():
            await node.election.stop()
            await node.client.close()


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        await c.close()


async def wait(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), WAIT)


async def test_one_of_three_is_elected(etcd: EtcdServer, cluster: Cluster) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    nodes = [cluster.node(n, etcd.url) for n in ("a", "b", "c")]
    waits = [asyncio.ensure_future(n.events.active.wait()) for n in nodes]
    done, pending = await asyncio.wait(waits, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    assert done, "no node was elected"
    elected = loop.time() - started
    (winner,) = [n for n in nodes if n.election.active]
    losers = [n for n in nodes if n is not winner]
    for n in losers:
        await wait(n.events.followed)
        assert n.election.role is Role.STANDBY
        assert n.election.leader is not None
        assert n.election.leader.node.node_id == winner.name
        assert n.election.leader.epoch == winner.election.epoch > 0
        assert not n.events.active.is_set()
    # Renewals keep it active: three TTLs on, it is still active and never stepped down.
    first = winner.election.last_renewal
    while winner.election.last_renewal < first + 3 * TTL and winner.election.active:
        await asyncio.sleep(0.1)
    assert winner.election.active and not winner.events.down.is_set(), cluster.log
    assert all(not n.events.active.is_set() for n in losers)
    print(f"\nelection of one of three: {elected * 1000:.0f} ms")


@pytest.mark.parametrize("fault", ["blackhole", "drop"])
async def test_partitioned_active_steps_down_before_a_standby_is_elected(
    etcd: EtcdServer, cluster: Cluster, fault: str
) -> None:
    """blackhole: requests vanish (timeouts); drop: connections reset and refused."""
    proxy = await FaultProxy(("127.0.0.1", etcd.port)).start()
    try:
        a = cluster.node("a", proxy.url)
        await wait(a.events.active)
        old_epoch = a.election.epoch
        b = cluster.node("b", etcd.url)
        c = cluster.node("c", etcd.url, caught_up=False)
        await wait(b.events.followed)
        await wait(c.events.followed)
        # Let a renew at least once, so the deadline under test comes from a renewal.
        renewed = a.election.last_renewal
        while a.election.last_renewal == renewed:
            await asyncio.sleep(0.05)

        loop = asyncio.get_running_loop()
        cut = loop.time()
        getattr(proxy, fault)()
        last_renewal = a.election.last_renewal
        await wait(b.events.active)
        t_down, t_b = a.events.times["down"], b.events.times["active"]

        # The old active stepped down first, at its deadline (measured from the last
        # renewal it sent that was acknowledged), which is before etcd could expire the
        # lease, which is before b could win.
        assert t_down < t_b, cluster.log
        assert t_down <= last_renewal + TTL - MARGIN + 0.1, (t_down, last_renewal)
        assert t_b >= last_renewal + TTL, (t_b, last_renewal)
        assert not a.election.active
        assert not a.election.caught_up  # deposed: must catch up before campaigning
        assert b.election.epoch > old_epoch
        assert not c.events.active.is_set()  # c never was caught up
        order = [(name, ev) for _, name, ev, _ in cluster.log if ev in ("down", "active")]
        assert order[-2:] == [("a", "down"), ("b", "active")], order
        print(
            f"\npartition ({fault}): a stepped down {t_down - cut:.3f}s after the cut,"
            f" {t_down - last_renewal:.3f}s after its last renewal (TTL {TTL}s,"
            f" margin {MARGIN}s); b active {t_b - t_down:.3f}s after a stepped down,"
            f" {t_b - cut:.3f}s after the cut; epochs {old_epoch} -> {b.election.epoch}"
        )

        # Healed, a follows b and knows its own old epoch is stale.
        a.events.followed.clear()
        proxy.heal()
        await wait(a.events.followed)
        assert a.election.leader is not None
        assert a.election.leader.node.node_id == "b"
        assert a.election.role is Role.WAITING
        assert a.election.fence.is_stale(old_epoch)
        assert b.election.fence.is_stale(old_epoch)
        assert not b.election.fence.is_stale(b.election.epoch)
        with pytest.raises(StaleEpoch):
            c.election.fence.check(old_epoch)
    finally:
        await proxy.close()


async def test_a_standby_not_caught_up_does_not_campaign(
    etcd: EtcdServer, cluster: Cluster
) -> None:
    a = cluster.node("a", etcd.url)
    await wait(a.events.active)
    old_epoch = a.election.epoch
    b = cluster.node("b", etcd.url, caught_up=False)
    await wait(b.events.followed)
    await a.election.stop()  # resigns: the lease is revoked, the key deleted at once
    # An absence can only be shown over time: a full TTL with the key free and b
    # never campaigning (a caught-up b takes over within a renewal period).
    await asyncio.sleep(TTL)
    kv, _ = await b.client.get(cluster.key, timeout=1.0)
    assert kv is None
    assert not b.events.active.is_set()
    assert b.election.role is Role.WAITING
    loop = asyncio.get_running_loop()
    declared = loop.time()
    b.election.set_caught_up(True)
    await wait(b.events.active)
    assert b.election.epoch > old_epoch
    print(f"\ncaught up -> active: {(loop.time() - declared) * 1000:.0f} ms")


async def test_active_steps_down_when_etcd_stops_answering(
    etcd: EtcdServer, cluster: Cluster
) -> None:
    a = cluster.node("a", etcd.url)
    await wait(a.events.active)
    renewed = a.election.last_renewal
    while a.election.last_renewal == renewed:
        await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    os.kill(etcd.process.pid, signal.SIGSTOP)
    try:
        frozen = loop.time()
        last_renewal = a.election.last_renewal
        await wait(a.events.down)
        t_down = a.events.times["down"]
        assert t_down <= last_renewal + TTL - MARGIN + 0.1
        assert t_down - frozen <= TTL - MARGIN + 0.1
        print(
            f"\netcd frozen: stepped down {t_down - frozen:.3f}s after, "
            f"{t_down - last_renewal:.3f}s after the last renewal (TTL {TTL}s)"
        )
    finally:
        os.kill(etcd.process.pid, signal.SIGCONT)


def test_fence() -> None:
    fence = Fence()
    assert fence.observe(5)
    assert not fence.is_stale(5)
    assert fence.is_stale(4)
    assert not fence.observe(4)
    assert fence.current == 5
    fence.check(9)
    assert fence.current == 9
    with pytest.raises(StaleEpoch, match="epoch 5 is stale: epoch 9"):
        fence.check(5)


def test_margin_must_leave_room_for_a_renewal() -> None:
    with pytest.raises(ValueError, match="margin"):
        Election(
            None,  # type: ignore[arg-type]  # refused before the client is used
            b"k",
            NodeInfo("a", "az"),
            Recorder("a", []),
            ttl=3,
            margin=2.0,
        )
