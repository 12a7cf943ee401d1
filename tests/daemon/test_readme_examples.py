"""The README's first STOMP example and its SQS example run as written (only the ports
are this test broker's)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BrokerThread

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def block(lang: str, after: str) -> str:
    """The first ```lang block after the heading or text `after`."""
    start = README.index(after)
    match = re.search(rf"```{lang}\n(.*?)```", README[start:], re.S)
    assert match is not None
    return match.group(1)


def test_the_python_example_receives_and_acks(broker: BrokerThread) -> None:
    code = block("python", "# ZoneMQ").replace("61613", str(broker.stomp_port))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hello"
    # Acknowledged: nothing is left on the queue.
    stats = broker.call(lambda: {s.name: s for s in broker.broker.core.stats()})
    assert stats["orders"].depth == 0


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_the_sqs_example_works_with_the_aws_cli(broker: BrokerThread) -> None:
    port = str(broker.broker.port("aws"))
    script = block("sh", "## SQS").replace("9324", port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        ["bash", "-euc", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert f"http://127.0.0.1:{port}/000000000000/orders" in done.stdout
    assert '"Body": "hello"' in done.stdout
