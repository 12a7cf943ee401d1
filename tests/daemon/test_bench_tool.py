"""`zonemq bench` drives a real broker and accounts for every message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import BrokerThread

REPO = Path(__file__).resolve().parents[2]


def test_zonemq_bench_queue_run_is_exactly_once(broker: BrokerThread, tmp_path: Path) -> None:
    out = tmp_path / "results"
    target = f"stomp://127.0.0.1:{broker.stomp_port}?name=zonemq"
    argv = [sys.executable, "-m", "broker", "bench", "queue", "--target", target]
    argv += ["-n", "5000", "-p", "2", "-c", "2", "--runs", "1", "--duration", "30"]
    result = subprocess.run(
        [*argv, "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert row["lost"] == 0
    assert row["duplicated"] == 0
    assert not row["timed_out"]
    assert row["msgs_per_s"] > 0


def test_selector_scenario_gives_each_consumer_only_its_shard(
    broker: BrokerThread, tmp_path: Path
) -> None:
    """Disjoint selectors on one queue: every message is delivered once, and a consumer
    that matched another's shard would leave that shard's messages short (lost)."""
    out = tmp_path / "results"
    target = f"stomp://127.0.0.1:{broker.stomp_port}?name=zonemq"
    argv = [sys.executable, "-m", "broker", "bench", "selector", "--target", target]
    argv += ["-n", "4000", "-p", "2", "-c", "4", "--runs", "1", "--duration", "30"]
    result = subprocess.run(
        [*argv, "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert row["lost"] == 0 and row["duplicated"] == 0 and not row["timed_out"]
    assert row["label"].startswith("selector 2→4 disjoint")
    # Each consumer checks the shard header of what it gets against its selector.
    assert row["misrouted"] == 0


def test_bench_wildcard_run_delivers_each_message_to_the_matching_patterns(
    broker: BrokerThread, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    target = f"stomp://127.0.0.1:{broker.stomp_port}?name=zonemq"
    argv = [sys.executable, "-m", "bench", "wildcard", "--target", target, "-n", "2000"]
    argv += ["--patterns", "200", "--matching", "5", "--runs", "1", "--duration", "30"]
    result = subprocess.run(
        [*argv, "--out", str(out), "--no-plots"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert (row["delivered"], row["lost"], row["duplicated"]) == (10000, 0, 0)
    assert not row["timed_out"]


def test_wildcard_patterns_match_as_asked() -> None:
    from bench.scenarios import WILD_SEGMENTS, wildcard_patterns
    from broker.core.subjects import matches

    hits, misses = wildcard_patterns("run", 1000, 10)
    topic = ".".join(["run", *WILD_SEGMENTS])
    assert len(set(hits)) == 10 and len(set(misses)) == 990
    assert all(matches(p, topic) for p in hits)
    assert not any(matches(p, topic) for p in misses)


def test_a_timed_out_run_counts_never_sent_messages_as_unsent(
    broker: BrokerThread, tmp_path: Path
) -> None:
    """Two million messages in one second cannot all be sent: what was never sent is
    `unsent`, and lost + delivered + unsent add up to the messages asked for."""
    out = tmp_path / "results"
    target = f"stomp://127.0.0.1:{broker.stomp_port}?name=zonemq"
    argv = [sys.executable, "-m", "broker", "bench", "queue", "--target", target]
    argv += ["-n", "2000000", "--runs", "1", "--duration", "1", "--no-plots"]
    result = subprocess.run(
        [*argv, "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stdout + result.stderr  # timed out: a failure
    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert row["timed_out"] and row["unsent"] > 0
    assert row["lost"] + row["delivered"] + row["unsent"] == 2000000
    assert row["lost"] <= row["sent"]


def test_results_never_go_into_an_installed_package(tmp_path: Path) -> None:
    from bench.runner import default_out

    assert default_out("s", tmp_path) == tmp_path / "zonemq-bench-results" / "s"
    assert default_out("s", REPO) == REPO / "bench" / "results" / "s"


def test_remote_targets_need_allow_remote(tmp_path: Path) -> None:
    from bench.target import parse_target

    argv = [sys.executable, "-m", "broker", "bench", "queue", "--target"]
    result = subprocess.run(
        [*argv, "stomp://192.0.2.1:61613", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "--allow-remote" in result.stderr
    assert parse_target("stomp://192.0.2.1:61613", allow_remote=True).host == "192.0.2.1"


def test_long_runs_print_progress() -> None:
    import asyncio
    import contextlib
    import io

    from bench import progress

    err = io.StringIO()

    async def run() -> None:
        ticker = progress.start(lambda: 42, 100, every=0.05)
        await asyncio.sleep(0.12)
        ticker.cancel()

    with contextlib.redirect_stderr(err):
        asyncio.run(run())
    assert "delivered 42 of 100" in err.getvalue()
