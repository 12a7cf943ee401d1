"""Test fixtures: a real broker on ephemeral ports, real stomp.py clients, raw sockets.

The broker runs in-process on its own uvloop event loop in a background thread, so tests
drive it over real sockets exactly as external clients do. Waiting is always on a
queue or event with a timeout, never a bare sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import stomp
import uvloop

from broker.config import ListenerSettings, load_settings
from broker.server import Broker

WAIT = 5.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every cluster test in one xdist worker (`--dist loadgroup`, pyproject's addopts).

    A cluster node takes its ports from outside the ephemeral range (broker/demo/failover.py
    `free_port` says why) and releases them while it is a standby; a cluster in the other
    worker could take such a port meanwhile (seen once: a node's /healthz answered by
    another cluster's AMQP listener). Ephemeral (port 0) tests cannot collide with them.
    """
    group = pytest.mark.xdist_group("cluster")
    for item in items:
        if "etcd" in getattr(item, "fixturenames", ()) or "tests/cluster/" in item.nodeid:
            item.add_marker(group)


def wait_until(predicate: Callable[[], object], timeout: float = WAIT) -> bool:
    """Poll a condition on a short event wait (bounded), for broker state with no event."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        pause.wait(0.01)
    return bool(predicate())


REPO = Path(__file__).resolve().parent.parent


def ephemeral_ports() -> dict[str, str]:
    """Environment putting every listener the broker has on an ephemeral port, so broker
    processes started by tests never fight over fixed ports (flags still win)."""
    fields = dataclasses.fields(ListenerSettings)
    return {f"ZONEMQ_LISTENERS__{f.name.upper()}__PORT": "0" for f in fields}


def popen_broker(argv: list[str], cwd: Path, **env: str) -> subprocess.Popen[str]:
    """A broker process running this checkout, with only the ZONEMQ_ settings given
    (every listener ephemeral unless `env` or a flag says otherwise) and stderr piped."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("ZONEMQ_")}
    full.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", **ephemeral_ports(), **env)
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=full,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


class ChildBroker:
    """A broker child process (popen_broker) whose stderr lines a thread puts on a queue:
    tests wait for log lines, always with a timeout, and show the whole log on failure."""

    def __init__(self, argv: list[str], cwd: Path, **env: str) -> None:
        self.proc = popen_broker(argv, cwd, **env)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern: re.Pattern[str] | str, timeout: float = 15.0) -> re.Match[str]:
        """The match in the first stderr line (from now on) matching `pattern`."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no line matching {regex.pattern!r}: {''.join(self.seen)}"
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, f"broker exited before {regex.pattern!r}: {''.join(self.seen)}"
            self.seen.append(line)
            match = regex.search(line)
            if match is not None:
                return match

    def stderr_text(self, timeout: float = 5.0) -> str:
        """Everything written to stderr (the process must have ended)."""
        self._reader.join(timeout)
        with contextlib.suppress(queue.Empty):
            while True:
                line = self.lines.get_nowait()
                if line is not None:
                    self.seen.append(line)
        return "".join(self.seen)

    def stop(self) -> None:
        """SIGTERM: a graceful drain, which must end with exit status 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(15.0)
        assert self.proc.returncode == 0, self.stderr_text()

    def kill(self) -> None:
        """SIGKILL: no drain, no journal close, no lock release but the kernel's. The
        broker must have been running until then."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(15.0)
        assert self.proc.returncode == -signal.SIGKILL, self.stderr_text()

    def cleanup(self) -> None:
        """Teardown: make sure the process is gone, whatever state it is in."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(15.0)


class BrokerThread:
    """A Broker running on a private event loop in a daemon thread."""

    def __init__(self, data_dir: Path, **overrides: Any) -> None:
        base = {
            "listeners.stomp.port": 0,
            "listeners.amqp.port": 0,
            "listeners.openwire.port": 0,
            "listeners.aws.port": 0,
            "listeners.console.port": 0,
            "broker.data_dir": str(data_dir),
        }
        base.update(overrides)
        self.settings = load_settings(None, env={}, overrides=base)
        self.loop = uvloop.new_event_loop()
        self.broker = Broker(self.settings)
        self._thread = threading.Thread(target=self._run, name="broker", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.broker.start())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self.loop.close()
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        # Closing the loop frees its file descriptors (epoll, wake-up pipe, sockets it
        # still holds): a test process starts hundreds of brokers, and proton's blocking
        # client uses select(), which fails once descriptors pass 1024.
        self.loop.close()

    def start(self) -> BrokerThread:
        self._thread.start()
        self._ready.wait(WAIT)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self.loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self.broker.stop(), self.loop)
            fut.result(WAIT * 2)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT)

    @property
    def stomp_port(self) -> int:
        return self.broker.port("stomp")

    @property
    def console_port(self) -> int:
        return self.broker.port("console")

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the broker's loop (the only safe way to look at core state)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(WAIT)

    def stats(self, name: str, kind: str = "queue") -> Any:
        def find() -> Any:
            for s in self.broker.core.stats():
                if s.kind == kind and s.name == name:
                    return s
            return None

        return self.call(find)


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., BrokerThread]]:
    started: list[BrokerThread] = []

    def make(**overrides: Any) -> BrokerThread:
        b = BrokerThread(tmp_path / f"data{len(started)}", **overrides).start()
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def broker(broker_factory: Callable[..., BrokerThread]) -> BrokerThread:
    return broker_factory()


class Collector(stomp.ConnectionListener):
    """Collects everything a stomp.py connection receives into thread-safe queues."""

    def __init__(self) -> None:
        self.messages: queue.Queue[stomp.utils.Frame] = queue.Queue()
        self.errors: queue.Queue[stomp.utils.Frame] = queue.Queue()
        self.receipts: queue.Queue[str] = queue.Queue()
        self.disconnected = threading.Event()
        self.heartbeat_timeouts = 0

    def on_message(self, frame: stomp.utils.Frame) -> None:
        self.messages.put(frame)

    def on_error(self, frame: stomp.utils.Frame) -> None:
        self.errors.put(frame)

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        self.receipts.put(frame.headers["receipt-id"])

    def on_disconnected(self) -> None:
        self.disconnected.set()

    def on_heartbeat_timeout(self) -> None:
        self.heartbeat_timeouts += 1

    def next(self, timeout: float = WAIT) -> stomp.utils.Frame:
        return self.messages.get(timeout=timeout)

    def take(self, n: int, timeout: float = WAIT) -> list[stomp.utils.Frame]:
        return [self.messages.get(timeout=timeout) for _ in range(n)]

    def none_within(self, timeout: float = 0.3) -> bool:
        """True if no message arrives within `timeout` (used to show absence)."""
        try:
            self.messages.get(timeout=timeout)
        except queue.Empty:
            return True
        return False

    def error(self, timeout: float = WAIT) -> stomp.utils.Frame:
        return self.errors.get(timeout=timeout)

    def receipt(self, timeout: float = WAIT) -> str:
        return self.receipts.get(timeout=timeout)


class Client:
    """A connected stomp.py client with its Collector."""

    def __init__(self, conn: Any, listener: Collector, version: str) -> None:
        self.conn = conn
        self.listener = listener
        self.version = version

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def ack_frame(self, frame: stomp.utils.Frame) -> None:
        h = frame.headers
        if self.version == "1.2":
            self.conn.ack(h["ack"])
        elif self.version == "1.1":
            self.conn.ack(h["message-id"], h["subscription"])
        else:
            self.conn.ack(h["message-id"])

    def nack_frame(self, frame: stomp.utils.Frame) -> None:
        h = frame.headers
        if self.version == "1.2":
            self.conn.nack(h["ack"])
        else:
            self.conn.nack(h["message-id"], h["subscription"])

    def sync(self) -> None:
        """Round trip: every frame sent before this has been processed by the broker."""
        self.conn.send("/queue/zonemq.test.sync", "", receipt="sync")
        while self.listener.receipt() != "sync":
            pass

    def close(self) -> None:
        if self.conn.is_connected():
            self.conn.disconnect()


@pytest.fixture
def connect(broker: BrokerThread) -> Iterator[Callable[..., Client]]:
    clients: list[Client] = []

    def make(
        version: str = "1.2",
        *,
        port: int | None = None,
        heartbeats: tuple[int, int] = (0, 0),
        **connect_kw: Any,
    ) -> Client:
        cls = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}
        kw: dict[str, Any] = {}
        if version != "1.0":
            kw["heartbeats"] = heartbeats
        conn = cls[version]([("127.0.0.1", port or broker.stomp_port)], **kw)
        listener = Collector()
        conn.set_listener("collector", listener)
        conn.connect(wait=True, **connect_kw)
        client = Client(conn, listener, version)
        clients.append(client)
        return client

    yield make
    for c in clients:
        with contextlib.suppress(Exception):
            c.close()


class RawClient:
    """A plain TCP socket for sending exact bytes, including bad ones."""

    def __init__(self, port: int, rcvbuf: int | None = None) -> None:
        if rcvbuf is None:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        else:
            # Set before connecting, so the window the broker sees is this small: a
            # client that stops reading then holds little in the kernel, whatever the
            # machine's autotuning would have allowed.
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(WAIT)
            self.sock.connect(("127.0.0.1", port))
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def connect(self, version: str = "1.2", extra: str = "") -> bytes:
        self.send(f"CONNECT\naccept-version:{version}\nhost:localhost\n{extra}\n\x00".encode())
        frame = self.frame()
        assert frame.startswith(b"CONNECTED\n"), frame
        return frame

    def frame(self, timeout: float = WAIT) -> bytes:
        """The next frame (up to its NUL), skipping heart-beat newlines."""
        self.sock.settimeout(timeout)
        while True:
            self.buf = self.buf.lstrip(b"\r\n")
            end = self.buf.find(b"\x00")
            if end >= 0:
                frame, self.buf = self.buf[:end], self.buf[end + 1 :]
                return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; buffered {self.buf!r}")
            self.buf += chunk

    def closed(self, timeout: float = WAIT) -> bool:
        """True if the broker closes the socket within `timeout` (data is discarded)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def headers_of(frame: bytes) -> tuple[str, dict[str, str]]:
    """Command and headers (first wins) of a raw frame, without unescaping."""
    head = frame.split(b"\n\n", 1)[0].decode()
    command, *lines = head.split("\n")
    headers: dict[str, str] = {}
    for line in lines:
        k, _, v = line.partition(":")
        headers.setdefault(k, v)
    return command, headers


@pytest.fixture
def raw(broker: BrokerThread) -> Iterator[Callable[[], RawClient]]:
    socks: list[RawClient] = []

    def make() -> RawClient:
        c = RawClient(broker.stomp_port)
        socks.append(c)
        return c

    yield make
    for s in socks:
        s.close()


# -- helpers shared by the STOMP semantics tests ------------------------------------


def subscribe(c: Client, dest: str, sub_id: str, ack: str = "auto", **headers: Any) -> None:
    """SUBSCRIBE and wait for its receipt, so later sends see the subscription."""
    receipt = f"sub-{sub_id}"
    c.subscribe(dest, id=sub_id, ack=ack, headers=headers, receipt=receipt)
    assert c.listener.receipt() == receipt


def quiet(c: Client, wait: float = 0.05) -> bool:
    """True if nothing more arrives for `c`: after a receipt round trip on `c` every
    frame the broker had queued for it is in, so only a short extra wait is needed."""
    c.sync()
    return c.listener.none_within(wait)


def bodies(frames: list[Any]) -> list[str]:
    return [f.body for f in frames]
