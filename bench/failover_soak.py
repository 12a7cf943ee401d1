"""The seeded fault loop of tests/cluster/test_failover.py, longer: kills of the active
or a standby and partitions of the active from etcd, with a STOMP producer sending
persistent messages with receipts throughout; prints the faults, the acknowledged and
lost counts and the failover time (fault -> new active) p50/max.

    python bench/failover_soak.py --faults 200 --seed 7

Needs etcd on the PATH (Debian's etcd-server) and the test dependencies.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    os.environ["FAILOVER_SOAK_FAULTS"] = str(args.faults)
    os.environ["FAILOVER_SOAK_SEED"] = str(args.seed)
    root = Path(__file__).resolve().parents[1]
    os.chdir(root)
    test = "tests/cluster/test_failover.py::test_seeded_random_faults_lose_no_acknowledged_message"
    return int(pytest.main(["-q", "-s", "-p", "no:cacheprovider", "--timeout", "0", test]))


if __name__ == "__main__":
    sys.exit(main())
