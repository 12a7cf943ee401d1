"""`python -m bench.cores` (issue 15's second-core costs) runs and measures what it says."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cores
from protocols.stomp.codec import Frame

REPO = Path(__file__).resolve().parents[2]


def test_bench_cores_runs_and_reports_every_section() -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "bench.cores", "--frames", "128", "--repeats", "1"),
            *("--pipeline-frames", "400", "--pipeline-runs", "1", "--json"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    res = json.loads(result.stdout)
    assert res["frames"] == 128
    for section in ("inline", "thread", "process", "forward", "pipeline"):
        assert res[section], section
        for name, value in res[section].items():
            assert math.isfinite(value) and value > 0, (section, name, value)
    # The rows the ARCHITECTURE.md table is made of.
    assert "parse SEND (one per read)" in res["inline"]
    assert "core work, a Python thread parses (batch 16): core thread cpu" in res["thread"]
    assert "marshal.loads → Frame, batch 16" in res["process"]
    assert "landing: send to the owner, batch 16" in res["forward"]
    # Both pipeline modes ran end to end (the consumer read every message).
    assert res["pipeline_frames"] == 400
    assert res["pipeline"]["worker: worker cpu per message"] > 0
    assert res["pipeline"]["reader: worker cpu per message"] > 0
    assert res["pipeline"]["4→4 client-individual worker: worker cpu per message"] > 0
    assert res["forwarded_fraction"] == {"2": 0.5, "3": 2 / 3, "4": 0.75}


def test_client_frames_are_client_shaped_and_parse() -> None:
    sends, acks = cores.client_frames(8)
    frames = cores.parse_all(sends)
    assert [f.command for f in frames] == ["SEND"] * 8
    # Four header sets in turn, each with a correlation-id of its own.
    assert len({tuple(f.headers) for f in frames}) == 4
    assert len({f.headers["correlation-id"] for f in frames}) == 8
    assert all(len(f.body) == 256 for f in frames)
    assert [f.command for f in cores.parse_all(acks)] == ["ACK"] * 8


def test_flat_layout_round_trips_and_a_wrong_decode_is_caught() -> None:
    sends, _ = cores.client_frames(4)
    frames = cores.parse_all(sends)
    decoded = [cores.flat_decode(cores.flat_encode(f)) for f in frames]
    cores._check(decoded, frames, "flat")
    decoded[2] = Frame("SEND", {**decoded[2].headers, "type": "other"}, decoded[2].body)
    with pytest.raises(AssertionError, match="flat: decoded frames differ"):
        cores._check(decoded, frames, "flat")


def test_bench_cores_refuses_too_few_frames() -> None:
    with pytest.raises(SystemExit):
        cores.main(["--frames", "8"])
