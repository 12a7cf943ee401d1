"""`zonemq admin ...` as a subprocess against a real broker (the in-process fixture's
console port), and `zonemq --version`."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import REPO, BrokerThread, Client, subscribe

TIMEOUT = 30.0


def zonemq(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture
def admin(broker: BrokerThread) -> Any:
    url = f"http://127.0.0.1:{broker.console_port}"

    def run(*args: str, ok: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        done = zonemq("admin", "--url", url, *args, stdin=stdin)
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    return run


def send(c: Client, dest: str, body: str, **headers: str) -> None:
    c.send(dest, body, headers={"persistent": "true", **headers}, receipt="s")
    assert c.listener.receipt() == "s"


def test_version() -> None:
    done = zonemq("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("zonemq ") and done.stdout.split()[1][0].isdigit()


def test_list_and_stat_tables_and_json(connect, admin) -> None:
    c = connect()
    for i in range(3):
        send(c, "/queue/cli.orders.fifo", f"m{i}")
    text = admin("list").stdout.splitlines()
    assert text[0].split() == [
        "KIND",
        "NAME",
        "DEPTH",
        "CONSUMERS",
        "ENQUEUED",
        "DEQUEUED",
        "INFLIGHT",
        "DLQ",
        "PAUSED",
    ]
    row = next(line.split() for line in text if "cli.orders.fifo" in line)
    assert row[:5] == ["queue", "cli.orders.fifo", "3", "0", "3"] and row[-1] == "no"
    listed = json.loads(admin("list", "--json").stdout)
    assert any(d["name"] == "cli.orders.fifo" for d in listed["destinations"])
    stat = admin("stat", "cli.orders.fifo").stdout
    assert any(line.split() == ["depth", "3"] for line in stat.splitlines())
    # --json after the command works too.
    assert json.loads(admin("stat", "cli.orders.fifo", "--json").stdout)["enqueued"] == 3
    assert "version" in admin("stat").stdout


def test_send_browse_and_delete_one(connect, admin) -> None:
    assert admin("send", "cli/a/b", "hello", "-p", "color=red").stdout.startswith("sent ID:")
    assert admin("send", "cli/a/b", "-", stdin="from stdin").returncode == 0
    out = admin("browse", "cli/a/b").stdout
    assert "hello" in out and "from stdin" in out and "2 of 2 pending" in out
    msgs = json.loads(admin("browse", "cli/a/b", "--json").stdout)["messages"]
    assert msgs[0]["properties"] == {"color": "red"}
    done = admin("delete", "cli/a/b", "--message", msgs[0]["id"])
    assert done.stdout.strip() == f"deleted message {msgs[0]['id']} from cli/a/b"
    c = connect()
    subscribe(c, "/queue/cli/a/b", "1")
    assert c.listener.next().body == "from stdin"


def test_drain_and_redrive_the_dlq_from_the_cli(connect, admin) -> None:
    c = connect()
    for i in range(3):
        send(c, "/queue/cli.work", f"job{i}")
    subscribe(c, "/queue/cli.work", "1", ack="client-individual")
    for frame in c.listener.take(3):
        c.nack_frame(frame)
    c.unsubscribe("1")
    c.sync()
    row = next(r.split() for r in admin("list").stdout.splitlines() if "ActiveMQ.DLQ" in r)
    assert row[2] == "3"
    out = admin("retry-dlq").stdout
    assert out.strip() == (
        "moved 3 message(s) back to their original queues; 0 without one left on ActiveMQ.DLQ"
    )
    subscribe(c, "/queue/cli.work", "2")
    assert sorted(f.body for f in c.listener.take(3)) == ["job0", "job1", "job2"]
    # And a DLQ nobody wants back is purged.
    send(c, "/queue/ActiveMQ.DLQ", "junk")
    assert admin("purge", "ActiveMQ.DLQ").stdout.strip() == (
        "purged 1 message(s) from ActiveMQ.DLQ"
    )


def test_move_by_selector_and_pause(connect, admin) -> None:
    c = connect()
    for i in range(4):
        send(c, "/queue/cli.mv", f"m{i}", k=str(i % 2))
    out = admin("move", "cli.mv", "cli.mv.odd", "--selector", "k = '1'").stdout
    assert out.strip() == "moved 2 message(s) from cli.mv to cli.mv.odd"
    assert admin("move", "cli.mv", "cli.mv.copy", "--all", "--copy").stdout.startswith("copied 2")
    assert admin("pause", "cli.mv").stdout.strip() == "cli.mv: paused"
    subscribe(c, "/queue/cli.mv", "1")
    assert c.listener.none_within(0.3)
    assert admin("resume", "cli.mv").stdout.strip() == "cli.mv: dispatching"
    assert sorted(f.body for f in c.listener.take(2)) == ["m0", "m2"]


def test_connections_and_close(connect, admin) -> None:
    c = connect(headers={"client-id": "cli-client"})
    subscribe(c, "/queue/cli.conn", "1")
    text = admin("connections").stdout.splitlines()
    assert text[0].split() == ["ID", "PROTOCOL", "USER", "PEER", "CLIENT-ID", "SUBSCRIPTIONS"]
    row = next(line.split() for line in text if "cli-client" in line)
    assert row[1] == "stomp" and row[-1] == "1"
    assert admin("connections", "--close", row[0]).stdout.strip() == f"closed {row[0]}"
    assert c.listener.disconnected.wait(5)


def test_errors_exit_1_with_the_api_message(admin) -> None:
    done = admin("purge", "cli.nothing", ok=False)
    assert done.returncode == 1
    assert done.stderr.strip() == "zonemq admin: 404 not-found: no such queue: cli.nothing"
    done = admin("move", "cli.nothing", "x", "--selector", "a =", ok=False)
    assert done.returncode == 1 and "404" in done.stderr
    done = admin("send", "cli.x", "b", "-p", "novalue", ok=False)
    assert done.returncode == 1 and "KEY=VALUE" in done.stderr
    done = admin("move", "cli.x", "y", ok=False)  # neither --id, --selector nor --all
    assert done.returncode == 2 and "one of the arguments" in done.stderr


def test_unreachable_broker_exits_2() -> None:
    done = zonemq("admin", "--url", "http://127.0.0.1:1", "list")
    assert done.returncode == 2
    assert done.stderr.startswith("zonemq admin: cannot reach http://127.0.0.1:1")


def test_credentials(broker_factory) -> None:
    b = broker_factory(**{"auth.users": {"ops": "ops-pw"}})
    url = f"http://127.0.0.1:{b.console_port}"
    assert zonemq("admin", "--url", url, "list").returncode == 1
    done = zonemq("admin", "--url", url, "--user", "ops", "--password", "ops-pw", "list")
    assert done.returncode == 0 and done.stdout.startswith("KIND")
    done = zonemq("admin", "--url", url, "--user", "ops", "--password", "bad", "list")
    assert done.returncode == 1 and "401" in done.stderr
