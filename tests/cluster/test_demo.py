"""`zonemq demo failover` end to end, in each of its three modes: a real etcd, three
node processes, STOMP, AMQP and SQS clients with failover address lists, the fault,
and the checker's verdict (the demo exits 0 only when nothing acknowledged was lost)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "mode", [[], ["--kill-zone", "az-b"], ["--partition"]], ids=["kill", "kill-zone", "partition"]
)
def test_demo_loses_no_acknowledged_message(mode: list[str]) -> None:
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed (apt-get install etcd-server; .ci/run does)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONEMQ_")}
    env["PYTHONPATH"] = str(ROOT)
    argv = [sys.executable, "-m", "broker", "demo", "failover", "--warmup", "2", "--after", "1"]
    done = subprocess.run(
        [*argv, *mode], capture_output=True, text=True, env=env, cwd=ROOT, timeout=240
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr[-3000:] + _node_logs(out)
    assert "lost acknowledged messages: 0" in out
    for protocol in ("stomp", "amqp", "sqs"):
        assert f"{protocol}: clients acknowledged again" in out
        row = next(
            line.split() for line in out.splitlines() if line.strip().startswith(protocol + " ")
        )
        assert int(row[3]) > 0 and row[5] == "0"  # acknowledged > 0, lost == 0
    if mode == ["--partition"]:
        assert "stepped down" in out.split("promoted")[0]  # before anyone else is active


def _node_logs(out: str) -> str:
    """The tails of a failed demo's node logs (it keeps its directory when it fails)."""
    found = re.search(r"data and logs in (\S+)", out)
    if found is None:
        return ""
    root = Path(found.group(1))
    tails = [
        f"\n--- {p.name}\n{p.read_text(errors='replace')[-2500:]}"
        for p in sorted(root.glob("*.log"))
    ]
    shutil.rmtree(root, ignore_errors=True)
    return "".join(tails)
