"""Failover with real processes: three cluster nodes (each `python -m broker run` with a
[cluster] section) in three zones on one real etcd, a STOMP producer with a failover
host list sending persistent messages with receipts, the active SIGKILLed under load;
a standby takes over and every message whose receipt the producer saw is consumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import stomp

from broker.demo.failover import node_config
from broker.demo.faultproxy import FaultProxy
from tests.cluster.conftest import EtcdServer, free_port

T = 30.0
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class NodeProc:
    name: str
    az: str
    stomp: int
    console: int
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    etcd_proxy: FaultProxy | None = None
    ports: dict[str, int] = field(default_factory=dict)

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "broker", "run", "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def write_config(
    path: Path,
    data: Path,
    name: str,
    az: str,
    ports: dict[str, int],
    repl: dict[str, int],
    etcd: str,
    prefix: str,
) -> None:
    peers = {n: f"127.0.0.1:{p}" for n, p in repl.items() if n != name}
    advertise = {k: f"127.0.0.1:{ports[k]}" for k in ("stomp", "amqp", "openwire", "aws")}
    path.write_text(
        node_config(
            name, az, data, ports, f"127.0.0.1:{repl[name]}", peers, etcd, prefix, advertise
        )
    )


class Proxies:
    """FaultProxy instances (broker/demo/faultproxy.py) on a loop in their own thread,
    one per node between it and etcd, so a test can cut one node off etcd."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxies: list[FaultProxy] = []

    def call(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(T)

    def add(self, upstream: tuple[str, int]) -> FaultProxy:
        proxy = self.call(FaultProxy(upstream).start())
        self.proxies.append(proxy)
        return proxy

    def do(self, fn) -> None:  # type: ignore[no-untyped-def]
        self.loop.call_soon_threadsafe(fn)

    def close(self) -> None:
        for proxy in self.proxies:
            self.call(proxy.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(T)
        self.loop.close()


@pytest.fixture
def proxies() -> Iterator[Proxies]:
    p = Proxies()
    yield p
    p.close()


@pytest.fixture
def cluster(
    etcd: EtcdServer, tmp_path: Path, request: pytest.FixtureRequest, proxies: Proxies
) -> Iterator[list[NodeProc]]:
    names = [("a", "az-a"), ("b", "az-b"), ("c", "az-c")]
    repl = {n: free_port() for n, _ in names}
    nodes = []
    for name, az in names:
        ports = {p: free_port() for p in ("stomp", "amqp", "openwire", "aws", "console")}
        cfg = tmp_path / f"{name}.toml"
        proxy = proxies.add(("127.0.0.1", etcd.port))
        prefix = f"/zonemq/{request.node.name}"
        write_config(cfg, tmp_path / name, name, az, ports, repl, proxy.url, prefix)
        node = NodeProc(name, az, ports["stomp"], ports["console"], cfg, tmp_path / f"{name}.log")
        node.ports = ports
        node.etcd_proxy = proxy
        nodes.append(node)
    for node in nodes:
        node.start()
    yield nodes
    for node in nodes:
        node.stop()


def wait_for(predicate, what: str, nodes: list[NodeProc], timeout: float = T) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        # Polling child processes' logs: there is no event to wait on across processes.
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n.name}\n{n.text()[-3000:]}" for n in nodes)
            pytest.fail(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.05)


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def get_json(url: str) -> dict[str, Any]:
    return dict(json.loads(get_text(url)))


def active_of(nodes: list[NodeProc]) -> NodeProc | None:
    for node in nodes:
        if node.process is not None and node.process.poll() is None:
            lines = [ln for ln in node.text().splitlines() if f"cluster: {node.name} is " in ln]
            if lines and " is active " in lines[-1]:
                return node
    return None


def in_sync_count(node: NodeProc) -> int:
    return node.text().count(") is in sync")


class Receipts(stomp.ConnectionListener):
    """Receipts seen on one connection, and whether it is still up."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.seen: set[str] = set()
        self.up = True

    def on_receipt(self, frame) -> None:  # type: ignore[no-untyped-def]
        with self.cond:
            self.seen.add(frame.headers["receipt-id"])
            self.cond.notify_all()

    def on_disconnected(self) -> None:
        with self.cond:
            self.up = False
            self.cond.notify_all()

    def wait(self, receipt: str, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: receipt in self.seen or not self.up, timeout) and (
                receipt in self.seen
            )


class Producer(threading.Thread):
    """Sends persistent messages with a receipt each, trying the hosts in turn (as a
    failover transport does); a send whose receipt did not come is sent again."""

    def __init__(self, hosts: list[tuple[str, int]]) -> None:
        super().__init__(daemon=True)
        self.hosts = hosts
        self.acked: set[int] = set()
        self.stop = threading.Event()
        self.seq = 0
        self.reconnects = 0

    def run(self) -> None:
        attempt = 0
        while not self.stop.is_set():
            host = self.hosts[attempt % len(self.hosts)]
            attempt += 1
            conn = stomp.Connection([host], reconnect_attempts_max=1, heartbeats=(0, 0))
            receipts = Receipts()
            conn.set_listener("receipts", receipts)
            try:
                conn.connect(wait=True)
                self.reconnects += 1
                while not self.stop.is_set():
                    seq = self.seq
                    conn.send(
                        "/queue/failover",
                        str(seq),
                        headers={"persistent": "true"},
                        receipt=f"r{seq}",
                    )
                    if not receipts.wait(f"r{seq}", 5):
                        break
                    self.acked.add(seq)
                    self.seq += 1
            except Exception:
                pass  # the connection died or was refused: the next host
            finally:
                with contextlib.suppress(Exception):
                    conn.disconnect()
            self.stop.wait(0.05)


def drain(
    hosts: list[tuple[str, int]], want: set[int], queue: str = "/queue/failover", send: bool = False
) -> set[int]:
    got: set[int] = set()
    done = threading.Event()

    class L(stomp.ConnectionListener):
        def on_message(self, frame) -> None:  # type: ignore[no-untyped-def]
            got.add(int(frame.body))
            conn.ack(frame.headers["message-id"], frame.headers["subscription"])
            if want <= got:
                done.set()

    for host in hosts:
        conn = stomp.Connection([host], reconnect_attempts_max=1, heartbeats=(0, 0))
        conn.set_listener("l", L())
        try:
            conn.connect(wait=True)
            break
        except stomp.exception.ConnectFailedException:
            continue
    conn.subscribe(queue, id="1", ack="client-individual")
    for seq in want if send else ():
        conn.send(queue, str(seq), headers={"persistent": "true"})
    done.wait(T)
    conn.disconnect()
    return got


def test_sigkill_of_the_active_loses_no_acknowledged_message(cluster: list[NodeProc]) -> None:
    nodes = cluster
    wait_for(lambda: active_of(nodes) is not None, "an active node", nodes)
    first = active_of(nodes)
    assert first is not None
    wait_for(lambda: in_sync_count(first) >= 2, "both standbys in sync", nodes)
    health = get_json(f"http://127.0.0.1:{first.console}/healthz?cluster")
    assert health["cluster"]["role"] == "active"
    assert sorted(sb["in_sync"] for sb in health["cluster"]["standbys"]) == [True, True]
    assert len(health["cluster"]["insync_zones"]) == 2
    for other in nodes:
        if other is not first:
            text = get_text(f"http://127.0.0.1:{other.console}/metrics")
            assert 'zonemq_cluster_role{role="standby"} 1.0' in text
    hosts = [("127.0.0.1", n.stomp) for n in nodes]
    # Every node serves STOMP: a standby relays to the active (a client without a
    # failover list still works through any live node).
    standby = next(n for n in nodes if n is not first)
    assert drain([("127.0.0.1", standby.stomp)], {-1}, queue="/queue/relayed", send=True) == {-1}
    producer = Producer(hosts)
    producer.start()
    wait_for(lambda: len(producer.acked) >= 200, "200 acknowledged sends", nodes)
    first.kill()
    killed = time.monotonic()
    killed_at = len(producer.acked)
    wait_for(lambda: len(producer.acked) > killed_at, "an acknowledged send after the kill", nodes)
    failover = time.monotonic() - killed
    new = active_of(nodes)
    assert new is not None and new is not first
    # The killed node comes back as a standby of the new active and catches up.
    before = in_sync_count(new)
    first.start()
    wait_for(lambda: len(producer.acked) >= killed_at + 200, "sends on the new active", nodes)
    wait_for(lambda: in_sync_count(new) > before, "the old active in sync again", nodes)
    producer.stop.set()
    producer.join(T)
    acked = set(producer.acked)
    got = drain(hosts, acked)
    print(f"failover (kill -> first acknowledged send): {failover:.2f}s; {len(acked)} acked")
    assert not acked - got, f"lost {len(acked - got)} acknowledged messages"
    assert f"cluster: {first.name} is active" not in first.text().split("is standby")[-1]


def log_time(node: NodeProc, needle: str) -> float:
    """The wall-clock time of the last log line of `node` holding `needle`."""
    import datetime

    line = [ln for ln in node.text().splitlines() if needle in ln][-1]
    stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()


def test_partitioned_active_stops_before_another_is_elected_and_rejoins(
    cluster: list[NodeProc], proxies: Proxies
) -> None:
    nodes = cluster
    wait_for(lambda: active_of(nodes) is not None, "an active node", nodes)
    first = active_of(nodes)
    assert first is not None and first.etcd_proxy is not None
    wait_for(lambda: in_sync_count(first) >= 2, "both standbys in sync", nodes)
    hosts = [("127.0.0.1", n.stomp) for n in nodes]
    producer = Producer(hosts)
    producer.start()
    wait_for(lambda: len(producer.acked) >= 200, "200 acknowledged sends", nodes)
    proxies.do(first.etcd_proxy.blackhole)  # the active can no longer reach etcd
    cut = len(producer.acked)
    wait_for(lambda: f"{first.name} steps down" in first.text(), "the step-down", nodes)
    wait_for(lambda: (a := active_of(nodes)) is not None and a is not first, "a new active", nodes)
    new = active_of(nodes)
    assert new is not None
    stepped = log_time(first, f"{first.name} steps down")
    elected = log_time(new, f"cluster: {new.name} is active, epoch")
    assert stepped < elected, "two actives could have accepted writes at once"
    wait_for(lambda: len(producer.acked) >= cut + 200, "sends on the new active", nodes)
    before = in_sync_count(new)
    proxies.do(first.etcd_proxy.heal)
    wait_for(lambda: in_sync_count(new) > before, "the old active in sync again", nodes)
    producer.stop.set()
    producer.join(T)
    acked = set(producer.acked)
    got = drain(hosts, acked)
    print(f"stepped down {elected - stepped:.2f}s before the new active was elected")
    assert not acked - got, f"lost {len(acked - got)} acknowledged messages"


class Frames(Receipts):
    """Receipts and ERROR frames of one connection."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []

    def on_error(self, frame) -> None:  # type: ignore[no-untyped-def]
        with self.cond:
            self.errors.append(frame.headers.get("message", ""))
            self.cond.notify_all()


def send_once(port: int, seq: int) -> Frames:
    conn = stomp.Connection([("127.0.0.1", port)], reconnect_attempts_max=1, heartbeats=(0, 0))
    frames = Frames()
    conn.set_listener("f", frames)
    conn.connect(wait=True)
    conn.send("/queue/zones", str(seq), headers={"persistent": "true"}, receipt=f"r{seq}")
    with frames.cond:
        frames.cond.wait_for(lambda: f"r{seq}" in frames.seen or frames.errors, T)
    with contextlib.suppress(Exception):
        conn.disconnect()
    return frames


def test_lost_zones_refuse_writes_visibly_until_the_operator_lowers_the_minimum(
    cluster: list[NodeProc],
) -> None:
    nodes = cluster
    wait_for(lambda: active_of(nodes) is not None, "an active node", nodes)
    active = active_of(nodes)
    assert active is not None
    wait_for(lambda: in_sync_count(active) >= 2, "both standbys in sync", nodes)
    assert f"r{0}" in send_once(active.stomp, 0).seen
    for node in nodes:
        if node is not active:
            node.kill()  # two zones lost; min_insync_azs = 1 cannot be met
    wait_for(lambda: active.text().count("is out of sync") >= 2, "both standbys dropped", nodes)
    refused = send_once(active.stomp, 1)
    assert refused.errors and "min_insync_azs is 1" in refused.errors[0], refused.errors
    assert "r1" not in refused.seen
    subprocess.run(
        [sys.executable, "-m", "broker", "cluster", "--config", str(active.config),
         "min-insync-azs", "0"],
        check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=T,
    )  # fmt: skip
    wait_for(lambda: "min_insync_azs 1 -> 0" in active.text(), "the change applied", nodes)
    assert "r2" in send_once(active.stomp, 2).seen


def cluster_state(nodes: list[NodeProc]) -> tuple[NodeProc | None, int]:
    """The active (by its own /healthz) and how many standbys it has in sync."""
    for node in nodes:
        if node.process is None or node.process.poll() is not None:
            continue
        try:
            health = get_json(f"http://127.0.0.1:{node.console}/healthz?cluster")
        except (OSError, ValueError):
            continue
        info = health.get("cluster", {})
        if info.get("role") == "active":
            return node, sum(1 for sb in info.get("standbys", ()) if sb["in_sync"])
    return None, 0


# Eight faults keep CI's share of the loop near 25 s; seed 11's first eight cover all
# three kinds (kill-active x3, kill-standby x4, partition-active x1). bench/failover_soak.py
# runs it longer.
FAULTS = int(os.environ.get("FAILOVER_SOAK_FAULTS", "8"))
SEED = int(os.environ.get("FAILOVER_SOAK_SEED", "11"))


def test_seeded_random_faults_lose_no_acknowledged_message(
    cluster: list[NodeProc], proxies: Proxies
) -> None:
    """Kills of the active or a standby, and partitions of the active from etcd, one
    after another, with STOMP, AMQP and SQS producers and consumers (broker.demo's, with
    every node's address) and the Checker throughout (bench/failover_soak.py runs the
    same loop longer)."""
    import random

    from broker.demo.checker import Checker
    from broker.demo.workloads import make_workloads

    rng = random.Random(SEED)
    nodes = cluster
    wait_for(lambda: cluster_state(nodes)[1] == 2, "an active with two standbys in sync", nodes)
    checker = Checker()
    addresses = {
        proto: [("127.0.0.1", n.ports[port]) for n in nodes]
        for proto, port in (("stomp", "stomp"), ("amqp", "amqp"), ("sqs", "aws"))
    }
    clients = make_workloads(checker, addresses, queue=f"soak{SEED}")
    for client in clients:
        client.start()

    def acked() -> dict[str, int]:
        return {name: r.acknowledged for name, r in checker.report().items()}

    def progressed(base: dict[str, int], by: int = 5) -> bool:
        now = acked()
        return all(now.get(p, 0) >= base.get(p, 0) + by for p in addresses)

    done: list[str] = []
    failovers: list[float] = []
    try:
        for _ in range(FAULTS):
            active, _ = cluster_state(nodes)
            assert active is not None
            standbys = [n for n in nodes if n is not active]
            base = acked()
            wait_for(
                lambda b=base: progressed(b), "sends on every protocol before the fault", nodes
            )
            fault = rng.choice(["kill-active", "kill-standby", "partition-active"])
            started, base = time.monotonic(), acked()
            if fault == "kill-active":
                active.kill()
            elif fault == "kill-standby":
                victim = rng.choice(standbys)
                victim.kill()
                victim.start()
            else:
                assert active.etcd_proxy is not None
                proxies.do(active.etcd_proxy.blackhole)
            if fault != "kill-standby":
                wait_for(
                    lambda a=active: cluster_state(nodes)[0] not in (None, a), "failover", nodes
                )
                # Fault -> the first acknowledged send on every protocol after it.
                wait_for(lambda b=base: progressed(b, 1), "sends on the new active", nodes)
                failovers.append(time.monotonic() - started)
                if fault == "kill-active":
                    active.start()
                else:
                    assert active.etcd_proxy is not None
                    proxies.do(active.etcd_proxy.heal)
            done.append(fault)
            wait_for(lambda: cluster_state(nodes)[1] == 2, f"recovery after {fault}", nodes, 60)
        base = acked()
        wait_for(lambda: progressed(base), "sends after the last fault", nodes)
        for client in clients:
            if "producer" in client.name:
                client.stop()
        drained = checker.wait_for_drain(T)
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                client.stop()
    print(f"{len(done)} faults: " + ", ".join(f"{f} x{done.count(f)}" for f in sorted(set(done))))
    print(checker.table())
    if failovers:
        ordered = sorted(failovers)
        print(
            f"failover (fault -> first acknowledged send on every protocol): p50"
            f" {ordered[len(ordered) // 2]:.2f}s max {ordered[-1]:.2f}s"
        )
    reports = checker.report()
    assert drained, checker.table()
    for report in reports.values():
        assert report.acknowledged > 0
        assert report.lost == 0 and report.unexpected == 0, checker.table()
