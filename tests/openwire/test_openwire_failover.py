"""The ActiveMQ 5.17 JMS client with a failover URL across a replicated cluster (issue 16):
three node processes with the OpenWire listener on a real etcd, a producer sending
persistent messages synchronously to a queue and a topic, a CLIENT_ACKNOWLEDGE queue
consumer and a durable topic subscriber (tests/openwire/java/Failover.java); the active
is SIGKILLed mid-stream. The client reconnects by itself, its producer and consumers
carry on, every message whose send returned arrives, and a second copy of one comes
only flagged redelivered (so a resent send was not stored twice)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.demo.failover import node_config
from tests.cluster.conftest import EtcdServer, etcd, free_port  # noqa: F401 (the fixture)
from tests.cluster.test_failover import (
    NodeProc,
    Proxies,
    active_of,
    in_sync_count,
    wait_for,
)
from tests.openwire.conftest import classpath

T = 30.0


@pytest.fixture
def ow_cluster(
    etcd: EtcdServer,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[list[NodeProc]]:
    """Three nodes in three zones, each with the OpenWire listener (advertised, so a
    standby relays it to the active)."""
    proxies = Proxies()
    names = [("a", "az-a"), ("b", "az-b"), ("c", "az-c")]
    repl = {n: free_port() for n, _ in names}
    nodes = []
    for name, az in names:
        ports = {p: free_port() for p in ("stomp", "amqp", "aws", "console", "openwire")}
        proxy = proxies.add(("127.0.0.1", etcd.port))
        peers = {n: f"127.0.0.1:{p}" for n, p in repl.items() if n != name}
        advertise = {k: f"127.0.0.1:{ports[k]}" for k in ("stomp", "amqp", "aws", "openwire")}
        text = node_config(
            name,
            az,
            tmp_path / name,
            ports,
            f"127.0.0.1:{repl[name]}",
            peers,
            proxy.url,
            f"/zonemq/{request.node.name}",
            advertise,
        )
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(text)
        node = NodeProc(name, az, ports["stomp"], ports["console"], cfg, tmp_path / f"{name}.log")
        node.ports = ports
        node.etcd_proxy = proxy
        nodes.append(node)
    for node in nodes:
        node.start()
    try:
        yield nodes
    finally:
        for node in nodes:
            node.stop()
        proxies.close()


class JmsApp:
    """Failover.java in a JVM: its output lines, each with the time it was read."""

    def __init__(self, classes: Path, url: str, queue: str, topic: str, log: Path) -> None:
        self.log = log
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                ["java", "-cp", classpath(classes), "Failover", url, queue, topic, "ow-fo-client"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env={"PATH": "/usr/bin:/bin"},
            )
        self.cond = threading.Condition()
        self.lines: list[tuple[float, str, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            key, _, value = raw.decode().strip().partition("=")
            with self.cond:
                self.lines.append((time.monotonic(), key, value))
                self.cond.notify_all()
        with self.cond:
            self.lines.append((time.monotonic(), "eof", ""))
            self.cond.notify_all()

    def values(self, key: str) -> list[str]:
        with self.cond:
            return [v for _, k, v in self.lines if k == key]

    def wait(self, predicate, what: str, timeout: float = T) -> None:  # type: ignore[no-untyped-def]
        with self.cond:
            if not self.cond.wait_for(lambda: predicate() or self._ended(), timeout):
                pytest.fail(f"timed out waiting for {what}: {self.lines[-5:]}")
            if not predicate():
                pytest.fail("the JMS application ended first")

    def _ended(self) -> bool:
        return bool(self.lines) and self.lines[-1][1] == "eof"

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def sent_after(self, t: float) -> int:
        return sum(1 for when, k, _ in self.lines if k == "sent" and when > t)

    def first_sent_after(self, t: float) -> float:
        with self.cond:
            return min(when for when, k, _ in self.lines if k == "sent" and when > t)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"stop\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(T)


def copies(app: JmsApp, key: str) -> dict[int, list[bool]]:
    """Each number received under `key` -> the redelivered flag of each copy, in order."""
    out: dict[int, list[bool]] = {}
    for value in app.values(key):
        n, _, redelivered = value.partition(":")
        out.setdefault(int(n), []).append(redelivered == "true")
    return out


def test_jms_client_fails_over_across_a_killed_active_and_resumes(
    java_classes: Path, ow_cluster: list[NodeProc], tmp_path: Path
) -> None:
    nodes = ow_cluster
    wait_for(lambda: active_of(nodes) is not None, "an active node", nodes)
    first = active_of(nodes)
    assert first is not None
    wait_for(lambda: in_sync_count(first) >= 2, "both standbys in sync", nodes)
    hosts = ",".join(f"tcp://127.0.0.1:{n.ports['openwire']}" for n in nodes)
    # randomize=false: the list in order, as one lists a primary first; the default
    # maxReconnectDelay of 30 s would let the exponential back-off (from 10 ms, x2)
    # sleep seconds past the promotion, so an application sets it lower.
    url = f"failover:({hosts})?randomize=false&maxReconnectDelay=1000"
    app = JmsApp(java_classes, url, "ow.failover", "ow.failover.t", tmp_path / "jms.log")
    try:
        app.wait(lambda: len(app.values("sent")) >= 100, "100 sends returned")
        app.wait(lambda: len(app.values("q")) >= 50, "the queue consumer receiving")
        first.kill()
        killed = time.monotonic()
        sent_at_kill = len(app.values("sent"))
        app.wait(lambda: app.sent_after(killed) >= 1, "a send returned after the kill")
        failover = app.first_sent_after(killed) - killed
        app.wait(lambda: app.sent_after(killed) >= 100, "100 sends on the new active")
        new = active_of(nodes)
        assert new is not None and new is not first
        app.stop()
        app.wait(lambda: bool(app.values("done")), "the application to drain", 40)
    except BaseException:
        app.kill()
        logs = "\n".join(f"--- {n.name}\n{n.text()[-4000:]}" for n in nodes)
        print(f"{logs}\n--- JMS client stderr\n{app.stderr()}")
        raise
    finally:
        app.kill()
    sent = {int(v) for v in app.values("sent")}
    assert not app.values("error"), app.values("error")
    queue, topic = copies(app, "q"), copies(app, "t")
    print(
        f"OpenWire failover (SIGKILL of the active -> first send returned): {failover:.2f}s;"
        f" {len(sent)} sent ({sent_at_kill} before the kill);"
        f" queue copies {sum(map(len, queue.values()))}, topic {sum(map(len, topic.values()))}"
    )
    assert not sent - queue.keys(), f"lost on the queue: {sorted(sent - queue.keys())[:20]}"
    assert not sent - topic.keys(), f"lost on the topic: {sorted(sent - topic.keys())[:20]}"
    for name, got in (("queue", queue), ("topic", topic)):
        # A message comes again only flagged (its delivery was cut by the kill); an
        # unflagged second copy would be a resent send stored twice.
        twice = {n: flags for n, flags in got.items() if len(flags) > 1 and not all(flags[1:])}
        assert not twice, f"{name}: stored twice: {twice}"
        assert got.keys() <= sent, f"{name}: numbers never sent: {got.keys() - sent}"
