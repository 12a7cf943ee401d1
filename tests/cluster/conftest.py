"""A real etcd server per test module, on ephemeral loopback ports, in a temporary
data directory; killed when the module ends."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.demo.failover import free_port as demo_free_port


@dataclass
class EtcdServer:
    """A running etcd: its client URL and process (tests may SIGSTOP it)."""

    url: str
    port: int
    process: subprocess.Popen[bytes]


def free_port() -> int:
    # Outside the ephemeral range (broker/demo/failover.py says why): a node rebinds its
    # ports on promotion, and etcd takes its own a moment after this returns.
    return demo_free_port()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    exe = shutil.which("etcd")
    if exe is None:
        # The coordinator's tests need a real etcd; skipping would hide a broken setup.
        pytest.fail("etcd is not installed (apt-get install etcd-server; .ci/run does)")
    data: Path = tmp_path_factory.mktemp("etcd")
    client, peer = free_port(), free_port()
    client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    log = open(data / "etcd.log", "wb")  # noqa: SIM115  (closed below, after the process)
    process = subprocess.Popen(
        [
            exe,
            "--name=test",
            f"--data-dir={data / 'data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=test={peer_url}",
            # Lower raft timings: etcd's minimum lease TTL is 1.5 election timeouts, so
            # leases of a second or two are honoured as asked.
            "--heartbeat-interval=50",
            "--election-timeout=500",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            # Polling an external process until it serves: there is no event to wait on.
            if process.poll() is not None:
                pytest.fail(f"etcd exited: {(data / 'etcd.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(client_url + "/health", timeout=1) as r:
                    if b"true" in r.read():
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"etcd did not start: {(data / 'etcd.log').read_text()[-2000:]}")
            time.sleep(0.05)
        yield EtcdServer(url=client_url, port=client, process=process)
    finally:
        process.kill()
        process.wait()
        log.close()
