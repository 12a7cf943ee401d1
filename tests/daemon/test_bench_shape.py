"""`python -m bench --shape client`: stomp.py-shaped traffic against a real broker, every
message accounted for, and the option's bad values refused."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stomp

from bench.stompclient import FrameReader, header
from bench.stompshape import HEADER_SHAPES, client_templates
from tests.conftest import BrokerThread, Collector

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerThread]:
    b = BrokerThread(tmp_path_factory.mktemp("shape")).start()
    yield b
    b.stop()


def _bench(
    broker: BrokerThread, out: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    target = f"stomp://127.0.0.1:{broker.stomp_port}?name=zonemq"
    argv = [sys.executable, "-m", "bench", *args, "--target", target, "--runs", "1"]
    argv += ["--duration", "30", "--no-plots", "--out", str(out)]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    path = out / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return result, rows


def test_templates_are_valid_frames_with_varied_headers() -> None:
    templates = client_templates("/queue/a%b:c", 100, persistent=True, receipt=True)
    assert len(templates) == len(HEADER_SHAPES)
    reader = FrameReader()
    data = b"".join(
        t % {b"g": g, b"k": g % 7, b"t": 123} for g, t in enumerate(templates, start=40)
    )
    frames = reader.feed(data)
    assert len(frames) == len(HEADER_SHAPES) and reader.buffered() == 0
    names = set()
    for g, (command, head, body) in enumerate(frames, start=40):
        assert command == b"SEND"
        # The destination's ':' is escaped and its '%' survived formatting.
        assert header(head, b"destination") == b"/queue/a%b\\cc"
        assert header(head, b"receipt") == str(g).encode()
        assert header(head, b"persistent") == b"true"
        assert len(body) == 100 and int(body[:12]) == g and int(body[12:32]) == 123
        # Every header of this message's shape, with its per-message value.
        for name, value in HEADER_SHAPES[g - 40]:
            assert header(head, name.encode()) == (value % {"g": g, "k": g % 7}).encode()
        names |= {line.split(b":")[0] for line in head.splitlines()}
    # Header names differ between messages, not only values.
    assert {b"type", b"tenant", b"reply-to", b"x-trace-id", b"retry-count"} <= names


def test_varied_headers_reach_a_stomp_py_consumer(shared_broker: BrokerThread) -> None:
    listener = Collector()
    conn = stomp.Connection12([("127.0.0.1", shared_broker.stomp_port)])
    conn.set_listener("c", listener)
    conn.connect(wait=True)
    conn.subscribe("/queue/shape.headers", id="s", ack="auto")
    try:
        templates = client_templates("/queue/shape.headers", 64, persistent=False, receipt=False)
        with socket.create_connection(("127.0.0.1", shared_broker.stomp_port), timeout=5) as s:
            s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\x00")
            for g, t in enumerate(templates):
                s.sendall(t % {b"g": g, b"k": g % 7, b"t": 0})
            s.sendall(b"DISCONNECT\nreceipt:x\n\n\x00")
            while b"receipt-id:x" not in s.recv(4096):
                pass
        got = {int(f.body[:12]): f.headers for f in listener.take(len(templates))}
        for g, shape in enumerate(HEADER_SHAPES):
            for name, value in shape:
                expected = value % {"g": g, "k": g % 7}
                assert got[g][name] == expected, (g, name)
    finally:
        conn.disconnect()


def test_client_shape_client_individual_acks_every_message(
    shared_broker: BrokerThread, tmp_path: Path
) -> None:
    """With a prefetch of 10 a consumer that missed an ACK would stall: the run times out."""
    result, rows = _bench(
        shared_broker,
        tmp_path,
        "queue",
        "--shape",
        "client",
        "-n",
        "3000",
        "-p",
        "2",
        "-c",
        "2",
        "--ack",
        "client-individual",
        "--prefetch",
        "10",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = rows
    assert (row["shape"], row["delivered"], row["lost"], row["duplicated"]) == (
        "client",
        3000,
        0,
        0,
    )
    assert not row["timed_out"] and not row.get("errors")
    # Four worker processes, each reporting its own CPU.
    assert row["workers"] == 4 and row["client_cpu_s"] > 0


def test_both_shapes_interleave_and_client_receipts_are_one_in_flight(
    shared_broker: BrokerThread, tmp_path: Path
) -> None:
    result, rows = _bench(
        shared_broker,
        tmp_path,
        "receipts",
        "--shape",
        "batched,client",
        "-n",
        "200",
        "-p",
        "2",
        "-c",
        "2",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert [(r["target"], r["shape"]) for r in rows] == [
        ("zonemq/batched", "batched"),
        ("zonemq/client", "client"),
    ]
    for r in rows:
        assert (r["delivered"], r["lost"], r["duplicated"], r["timed_out"]) == (200, 0, 0, False)
        # One receipt latency per persistent SEND.
        assert r["receipt_samples"] == 200
    assert "zonemq/client" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("queue", "--shape", "bogus"), "--shape takes batched or client"),
        (("fanout", "--shape", "client"), "--shape client runs queue/receipts"),
        (("queue", "--shape", ","), "--shape takes"),
    ],
)
def test_bad_shapes_are_refused_before_any_traffic(
    shared_broker: BrokerThread, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result, rows = _bench(shared_broker, tmp_path, *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert rows == []
