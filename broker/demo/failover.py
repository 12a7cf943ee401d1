"""`zonemq demo failover`: a three-zone cluster on loopback, clients on every protocol,
a fault, and the evidence.

It starts a real etcd (Debian's `etcd-server`; `etcd` on the PATH) and three nodes
(`python -m broker run` with a generated [cluster] config each, one per zone, ephemeral
ports, data in a temporary directory), waits for an active with both standbys in sync,
runs STOMP, AMQP and SQS producers and consumers (broker.demo.workloads: every client
has the three nodes' addresses and reconnects across them), then injects the fault:

- default: SIGKILL of the active node;
- `--kill-zone AZ`: SIGKILL of every node in that zone (the active's or a standby's);
- `--partition`: the active is cut off from etcd and from its standbys (a fault proxy,
  broker/demo/faultproxy.py, sits on each node's etcd link and in front of each node's
  replication port; clients still reach it and are relayed once it steps down).

A timeline is printed as it happens (loss detected, standby promoted, clients
reconnected), then the fault is repaired (killed nodes restarted, the partition
healed) and the old node must rejoin in sync; the producers stop, the consumers drain,
and the per-protocol table says sent / acknowledged / consumed / lost (must be 0) /
redelivered. The exit status is 0 only when nothing acknowledged was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.demo.faultproxy import FaultProxy

ZONES = ("az-a", "az-b", "az-c")
LEASE_TTL = 2
MARGIN = 0.5


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A loopback port no process holds, outside the kernel's ephemeral range. A cluster
    node releases its client and replication ports while it is a standby and binds them
    again when promoted: a port from the ephemeral range could meanwhile become some
    client connection's source port, and the promotion fail with "address in use"
    (seen once in the 20-fault loop)."""
    low, high = _ephemeral_range()
    lo, hi = (20000, low - 1) if low > 21000 else (high + 1, 65535)
    for _ in range(200):
        port = random.randint(lo, hi)
        # A port is free again as soon as its probe closes, so without this one cluster's
        # 20-odd draws could hand the same port to two listeners (about 2 % of demos).
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free loopback port in {lo}-{hi}")


# Every port free_port has returned in this process (a few per cluster node).
_handed_out: set[int] = set()


class Clock:
    """Prints timeline lines as `+12.345s  text`."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.lock = threading.Lock()

    def say(self, text: str) -> None:
        with self.lock:
            print(f"+{time.monotonic() - self.start:7.3f}s  {text}", flush=True)


@dataclass
class Node:
    """One broker process of the demo cluster."""

    name: str
    az: str
    root: Path
    ports: dict[str, int]
    etcd_proxy: FaultProxy | None = None
    repl_proxy: FaultProxy | None = None
    process: subprocess.Popen[bytes] | None = None
    killed: bool = False

    @property
    def config(self) -> Path:
        return self.root / f"{self.name}.toml"

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.log"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZONEMQ_")}
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "broker", "run", "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.killed = False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.killed = True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def health(self) -> dict[str, Any] | None:
        """This node's /healthz?cluster body, or None when it does not answer."""
        if self.process is None or self.process.poll() is not None:
            return None
        url = f"http://127.0.0.1:{self.ports['console']}/healthz?cluster"
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return dict(json.loads(r.read()).get("cluster", {}))
        except (OSError, ValueError):
            return None


@dataclass
class Cluster:
    """etcd, the proxies and three nodes in a temporary directory."""

    root: Path
    nodes: list[Node] = field(default_factory=list)
    etcd: subprocess.Popen[bytes] | None = None
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    thread: threading.Thread | None = None

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(self) -> None:
        exe = shutil.which("etcd")
        if exe is None:
            raise SystemExit(
                "zonemq demo: etcd is not installed (Debian: apt-get install etcd-server)"
            )
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        client, peer = free_port(), free_port()
        url = f"http://127.0.0.1:{client}"
        self.etcd = subprocess.Popen(
            [
                exe,
                "--name=demo",
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=demo=http://127.0.0.1:{peer}",
                "--heartbeat-interval=50",
                "--election-timeout=500",
            ],
            stdin=subprocess.DEVNULL,
            stdout=open(self.root / "etcd.log", "wb"),  # noqa: SIM115 (lives as long as etcd)
            stderr=subprocess.STDOUT,
        )
        until(lambda: _etcd_healthy(url), 20, "etcd to start")
        repl = {z: free_port() for z in ZONES}
        for az in ZONES:
            name = az.removeprefix("az-")
            ports = {p: free_port() for p in ("stomp", "amqp", "openwire", "aws", "console")}
            node = Node(name, az, self.root, ports)
            node.etcd_proxy = self._run(FaultProxy(("127.0.0.1", client)).start())
            node.repl_proxy = self._run(FaultProxy(("127.0.0.1", repl[az])).start())
            self.nodes.append(node)
        for node in self.nodes:
            _write_config(node, self.nodes, repl[node.az])
            node.start()

    def cut(self, node: Node) -> None:
        for proxy in (node.etcd_proxy, node.repl_proxy):
            if proxy is not None:
                self.loop.call_soon_threadsafe(proxy.blackhole)

    def heal(self, node: Node) -> None:
        for proxy in (node.etcd_proxy, node.repl_proxy):
            if proxy is not None:
                self.loop.call_soon_threadsafe(proxy.heal)

    def active(self) -> tuple[Node | None, dict[str, Any]]:
        for node in self.nodes:
            health = node.health()
            if health and health.get("role") == "active":
                return node, health
        return None, {}

    def in_sync(self) -> int:
        _, health = self.active()
        return sum(1 for sb in health.get("standbys", ()) if sb.get("in_sync"))

    def addresses(self, protocol: str) -> list[tuple[str, int]]:
        return [("127.0.0.1", n.ports[protocol]) for n in self.nodes]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self.etcd is not None:
            self.etcd.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.etcd.wait(10)
        for node in self.nodes:
            for proxy in (node.etcd_proxy, node.repl_proxy):
                if proxy is not None:
                    with contextlib.suppress(Exception):
                        self._run(proxy.close())
        self.loop.call_soon_threadsafe(self.loop.stop)


def _etcd_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as r:
            return b"true" in r.read()
    except OSError:
        return False


def node_config(
    name: str,
    az: str,
    data_dir: Path,
    ports: dict[str, int],
    replication: str,
    peers: dict[str, str],
    etcd: str,
    prefix: str,
    advertise: dict[str, str],
) -> str:
    """A loopback cluster node's TOML (the demo's, and tests/cluster's): `ports` by
    listener name (stomp, amqp, openwire, aws, console; each listener named is written,
    so every node gets its own port for each), `peers` node id -> replication address."""
    peer_list = ", ".join(f'{n} = "{a}"' for n, a in peers.items())
    published = ", ".join(f'{k} = "{a}"' for k, a in advertise.items())
    listeners = "".join(f"\n[listeners.{k}]\nport = {port}\n" for k, port in ports.items())
    return f"""[broker]
name = "{name}"
data_dir = "{data_dir}"
shutdown_timeout = 2.0
{listeners}
[cluster]
node_id = "{name}"
az = "{az}"
replication_address = "{replication}"
peers = {{ {peer_list} }}
etcd_endpoints = ["{etcd}"]
etcd_prefix = "{prefix}"
min_insync_azs = 1
lease_ttl = {LEASE_TTL}
step_down_margin = {MARGIN}
advertise = {{ {published} }}
"""


def _write_config(node: Node, nodes: list[Node], repl_port: int) -> None:
    assert node.etcd_proxy is not None and node.repl_proxy is not None
    peers = {
        n.name: f"127.0.0.1:{n.repl_proxy.port}"
        for n in nodes
        if n is not node and n.repl_proxy is not None
    }
    advertise = {k: f"127.0.0.1:{node.ports[k]}" for k in ("stomp", "amqp", "openwire", "aws")}
    advertise["replication"] = f"127.0.0.1:{node.repl_proxy.port}"
    node.config.write_text(
        node_config(
            node.name,
            node.az,
            node.root / node.name,
            node.ports,
            f"127.0.0.1:{repl_port}",
            peers,
            node.etcd_proxy.url,
            "/zonemq/demo",
            advertise,
        )
    )


def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` (other processes' state: nothing to wait on) until it holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def run(args: argparse.Namespace) -> int:
    from broker.demo.checker import Checker
    from broker.demo.workloads import make_workloads

    # The client libraries log every refused connection attempt of a failover: the
    # timeline says what happened instead.
    for name in ("stomp.py", "proton"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    clock = Clock()
    root = Path(tempfile.mkdtemp(prefix="zonemq-demo-"))
    cluster = Cluster(root)
    clients: list[Any] = []
    print(f"zonemq demo failover: data and logs in {root}", flush=True)
    failed = True  # the data and logs stay for whoever reads why
    try:
        cluster.start()
        until(lambda: cluster.in_sync() == 2, 60, "an active with two standbys in sync")
        first, health = cluster.active()
        assert first is not None
        clock.say(
            f"cluster up: {first.name} ({first.az}) active, epoch {health['epoch']}, 2 in sync"
        )
        checker = Checker()
        protocols = {
            p: cluster.addresses(p if p != "sqs" else "aws") for p in ("stomp", "amqp", "sqs")
        }
        clients = make_workloads(checker, protocols, rate=args.rate)
        for client in clients:
            client.start()
        time.sleep(args.warmup)  # the demo's own pacing: traffic before the fault
        before = {name: r.acknowledged for name, r in checker.report().items()}
        clock.say(f"traffic: acknowledged so far {before}")
        victims = _inject(args, cluster, first, clock)
        fault_at = time.monotonic()
        _watch(cluster, first, victims, checker, before, clock, fault_at, args)
        _repair(args, cluster, first, victims, clock)
        time.sleep(args.after)
        for client in clients:
            if "producer" in client.name:
                client.stop()
        clock.say("producers stopped; draining")
        drained = checker.wait_for_drain(args.drain)
        for client in clients:
            client.stop()
        clients = []
        clock.say("consumers drained" if drained else "drain timed out")
        print()
        print(checker.table())
        lost = sum(r.lost for r in checker.report().values())
        print()
        print("lost acknowledged messages:", lost)
        failed = not (lost == 0 and drained)
        return 1 if failed else 0
    except TimeoutError as exc:
        print(f"zonemq demo: {exc}; logs in {root}", file=sys.stderr)
        return 1
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                client.stop()
        cluster.stop()
        if not args.keep and not failed:
            shutil.rmtree(root, ignore_errors=True)


def _inject(args: argparse.Namespace, cluster: Cluster, first: Node, clock: Clock) -> list[Node]:
    if args.partition:
        clock.say(f"FAULT: {first.name} ({first.az}) cut off from etcd and its standbys")
        cluster.cut(first)
        return [first]
    if args.kill_zone:
        victims = [n for n in cluster.nodes if n.az == args.kill_zone]
        if not victims:
            raise SystemExit(f"zonemq demo: no node in zone {args.kill_zone} ({', '.join(ZONES)})")
    else:
        victims = [first]
    for node in victims:
        node.kill()
    names = ", ".join(f"{n.name} ({n.az}{', the active' if n is first else ''})" for n in victims)
    clock.say(f"FAULT: SIGKILL {names}")
    return victims


def _watch(
    cluster: Cluster,
    first: Node,
    victims: list[Node],
    checker: Any,
    before: dict[str, int],
    clock: Clock,
    fault_at: float,
    args: argparse.Namespace,
) -> None:
    """Print the timeline until every protocol has acknowledged a send since the fault."""
    active_lost = first in victims
    detected = promoted = False
    reconnected: set[str] = set()
    deadline = fault_at + args.timeout
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("the cluster to recover from the fault")
        node, health = cluster.active()
        if active_lost and not detected:
            if args.partition:
                text = first.log.read_text(errors="replace")
                if f"{first.name} steps down" in text:
                    detected = True
                    clock.say(
                        f"{first.name} stepped down (lease not renewed): no writes, clients closed"
                    )
            elif node is not first:
                detected = True
                clock.say("loss detected: the active's process is gone (no /healthz)")
        if active_lost and not promoted and node is not None and node is not first:
            promoted = True
            clock.say(f"standby {node.name} ({node.az}) promoted, epoch {health.get('epoch')}")
        for name, report in checker.report().items():
            if name not in reconnected and report.acknowledged > before.get(name, 0) + 2:
                reconnected.add(name)
                clock.say(f"{name}: clients acknowledged again")
        if (promoted or not active_lost) and reconnected >= set(before):
            return
        time.sleep(0.02)


def _repair(
    args: argparse.Namespace, cluster: Cluster, first: Node, victims: list[Node], clock: Clock
) -> None:
    if args.partition:
        cluster.heal(first)
        clock.say(f"partition healed: {first.name} rejoins as a standby")
    else:
        for node in victims:
            node.start()
        clock.say(f"restarted {', '.join(n.name for n in victims)}")
    until(lambda: cluster.in_sync() == 2, 60, "both standbys in sync again")
    node, _ = cluster.active()
    clock.say(f"{node.name if node else '?'} active with two standbys in sync again")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="zonemq demo failover", description=__doc__.splitlines()[0]
    )
    fault = parser.add_mutually_exclusive_group()
    fault.add_argument(
        "--kill-zone", metavar="AZ", help=f"kill every node of a zone ({', '.join(ZONES)})"
    )
    fault.add_argument(
        "--partition", action="store_true", help="cut the active off etcd and its peers"
    )
    parser.add_argument("--rate", type=float, default=50.0, help="messages/s per producer")
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of traffic before the fault"
    )
    parser.add_argument(
        "--after", type=float, default=2.0, help="seconds of traffic after recovery"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to recover")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to drain")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the data and logs (kept anyway when the demo fails)",
    )
    return run(parser.parse_args(argv))
