"""The command line as operators use it: a real `python -m broker run` process, driven by
signals and real clients. Waiting is on the process's stderr lines (read by a thread
into a queue) and on the process itself, always with a timeout."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import stomp

from tests.conftest import ChildBroker, Collector

START_TIMEOUT = 10.0
LISTENER = re.compile(r"stomp listener on (\S+):(\d+)")
CONSOLE = re.compile(r"console listener on (\S+):(\d+)")


class BrokerProcess(ChildBroker):
    """A `python -m broker ...` child process of these tests."""

    def stomp_port(self) -> int:
        return int(self.wait_for(LISTENER, START_TIMEOUT).group(2))


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator:
    procs: list[BrokerProcess] = []

    def make(*args: str, exe: list[str] | None = None) -> BrokerProcess:
        argv = [*(exe or [sys.executable, "-m", "broker"]), *args]
        p = BrokerProcess(argv, tmp_path)
        procs.append(p)
        return p

    yield make
    for p in procs:
        p.cleanup()


def run_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--stomp-port",
        "0",
        "--console-port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        *extra,
    ]


def round_trip(port: int) -> None:
    conn = stomp.Connection12([("127.0.0.1", port)])
    listener = Collector()
    conn.set_listener("c", listener)
    conn.connect(wait=True)
    try:
        conn.subscribe("/queue/cli.test", id="1", ack="auto")
        conn.send("/queue/cli.test", "over the wire", receipt="r1")
        assert listener.receipt() == "r1"
        assert listener.next().body == "over the wire"
    finally:
        conn.disconnect()


def short_timeout_config(tmp_path: Path, seconds: float = 2.0) -> Path:
    path = tmp_path / "short.toml"
    path.write_text(f"[broker]\nshutdown_timeout = {seconds}\n")
    return path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_serves_stomp_and_stops_on_signal(spawn, tmp_path: Path, sig: signal.Signals) -> None:
    config = short_timeout_config(tmp_path, 2.0)
    p = spawn(*run_args(tmp_path, "--config", str(config)))
    port = p.stomp_port()
    p.wait_for(r"broker \S+ started")
    round_trip(port)

    started = time.monotonic()
    p.proc.send_signal(sig)
    assert p.proc.wait(timeout=2.0 + 3.0) == 0
    assert time.monotonic() - started < 2.0 + 1.0
    err = p.stderr_text()
    assert "broker stopped" in err
    assert sig.name in err  # the log says which signal started the drain
    # The port is released.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_stomp_port_flag_and_log_line_agree(spawn, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The port is free again (a tiny race with other processes is acceptable here).
    p = spawn("run", "--stomp-port", str(port), "--console-port", "0", "--data-dir", str(tmp_path))
    match = p.wait_for(LISTENER)
    assert match is not None
    assert (match.group(1), int(match.group(2))) == ("127.0.0.1", port)
    round_trip(port)


def test_openwire_port_flag_serves_openwire_there(spawn, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = spawn(*run_args(tmp_path, "--openwire-port", str(port)))
    match = p.wait_for(re.compile(r"openwire listener on (\S+):(\d+)"))
    assert (match.group(1), int(match.group(2))) == ("127.0.0.1", port)
    # An OpenWire broker speaks first: its WireFormatInfo, with the protocol's magic.
    with socket.create_connection(("127.0.0.1", port), timeout=START_TIMEOUT) as sock:
        head = b""
        while len(head) < 13:
            chunk = sock.recv(13 - len(head))
            assert chunk, "the broker closed before its WireFormatInfo"
            head += chunk
    assert head[4] == 1 and head[5:13] == b"ActiveMQ"  # WIREFORMAT_INFO, the magic


def test_unknown_config_key_exits_2_naming_the_key(spawn, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[listeners.stomp]\nport = 0\nmax_franes = 10\n")
    p = spawn(*run_args(tmp_path, "--config", str(bad)))
    assert p.proc.wait(timeout=START_TIMEOUT) == 2
    err = p.stderr_text()
    assert "listeners.stomp.max_franes" in err
    assert "stomp listener on" not in err


def test_bad_flag_value_exits_2(spawn, tmp_path: Path) -> None:
    p = spawn("run", "--stomp-port", "70000", "--console-port", "0", "--data-dir", str(tmp_path))
    assert p.proc.wait(timeout=START_TIMEOUT) == 2
    assert "listeners.stomp.port" in p.stderr_text()


def test_port_in_use_exits_nonzero(spawn, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = spawn(
            "run", "--stomp-port", str(port), "--console-port", "0", "--data-dir", str(tmp_path)
        )
        assert p.proc.wait(timeout=START_TIMEOUT) not in (0, None)
    assert "stomp listener on" not in p.stderr_text()


def test_zonemq_console_script(spawn, tmp_path: Path) -> None:
    exe = shutil.which("zonemq")
    if exe is None:
        pytest.skip("zonemq console script is not installed")
    p = spawn(*run_args(tmp_path), exe=[exe])
    round_trip(p.stomp_port())
    p.proc.send_signal(signal.SIGTERM)
    assert p.proc.wait(timeout=15) == 0
    assert "broker stopped" in p.stderr_text()


def _stall_console_drain(console_port: int) -> socket.socket:
    """An HTTP request whose declared body never arrives: aiohttp answers it, then lingers
    reading the rest, which keeps the console listener's graceful shutdown busy."""
    s = socket.create_connection(("127.0.0.1", console_port), timeout=5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc")
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = s.recv(4096)
        assert chunk, reply
        reply += chunk
    assert reply.startswith(b"HTTP/1.1 200"), reply
    return s


def test_second_signal_exits_at_once(spawn, tmp_path: Path) -> None:
    """The stalled HTTP request keeps the graceful drain busy (about a second, the console's
    own shutdown bound), so the second SIGTERM lands while it is still running."""
    config = short_timeout_config(tmp_path, 30.0)
    p = spawn(*run_args(tmp_path, "--config", str(config)))
    console = int(p.wait_for(CONSOLE).group(2))
    p.wait_for(r"broker \S+ started")
    stall = _stall_console_drain(console)
    try:
        p.proc.send_signal(signal.SIGTERM)
        p.wait_for("draining")
        started = time.monotonic()
        p.proc.send_signal(signal.SIGTERM)
        assert p.proc.wait(timeout=5) == 130
        assert time.monotonic() - started < 2.0
    finally:
        stall.close()
    err = p.stderr_text()
    assert "second signal" in err
    assert "broker stopped" not in err  # it really skipped the drain


def test_second_signal_right_after_the_first_ends_promptly(spawn, tmp_path: Path) -> None:
    p = spawn(*run_args(tmp_path))
    p.wait_for(r"broker \S+ started")
    started = time.monotonic()
    p.proc.send_signal(signal.SIGTERM)
    p.proc.send_signal(signal.SIGTERM)
    # Either the drain finished first (0) or the second signal cut it short (130).
    assert p.proc.wait(timeout=5) in (0, 130)
    assert time.monotonic() - started < 3.0


def test_graceful_stop_is_bounded_by_shutdown_timeout(spawn, tmp_path: Path) -> None:
    config = short_timeout_config(tmp_path, 1.0)
    p = spawn(*run_args(tmp_path, "--config", str(config)))
    console = int(p.wait_for(CONSOLE).group(2))
    p.wait_for(r"broker \S+ started")
    stall = _stall_console_drain(console)
    try:
        p.proc.send_signal(signal.SIGTERM)
        try:
            code = p.proc.wait(timeout=1.0 + 2.0)
        except subprocess.TimeoutExpired:
            pytest.fail("still running 2 s after broker.shutdown_timeout")
        assert code == 0
    finally:
        stall.close()
