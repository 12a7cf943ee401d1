"""ActiveMQ.Scheduler.Management over STOMP: browsing and removing scheduled jobs.

Built from ActiveMQ 5.17's SchedulerBroker and compared live with ActiveMQ 5.17.2
(bench.compare_configured, a private instance with schedulerSupport="true"): a message to
a destination whose name starts with ActiveMQ.Scheduler.Management is never delivered;
AMQ_SCHEDULER_ACTION BROWSE sends every job's message to the reply-to (non-persistent,
a new message id, type Advisory, scheduledJobId — the message's own id —, the original
destination, its AMQ_SCHEDULED_* headers), REMOVE
removes the job named by scheduledJobId, REMOVEALL every job; ACTION_START_TIME and
ACTION_END_TIME together restrict BROWSE and REMOVEALL to the jobs next due within them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import WAIT, BrokerThread, Client, quiet, subscribe

ON = {"broker.scheduler_support": True}
MANAGE = "/topic/ActiveMQ.Scheduler.Management"


@pytest.fixture
def broker(broker_factory: Callable[..., BrokerThread]) -> BrokerThread:
    return broker_factory(**ON)


def schedule(c: Client, delays: list[int]) -> int:
    """Persistent messages to /queue/mgmt.target, each delayed; the send time (ms)."""
    now = int(time.time() * 1000)
    for i, delay in enumerate(delays):
        c.conn.send(
            "/queue/mgmt.target",
            f"job{i}",
            headers={"AMQ_SCHEDULED_DELAY": str(delay), "persistent": "true", "n": str(i)},
        )
    c.sync()
    return now


def browse(c: Client, **headers: str) -> list[dict[str, str]]:
    c.conn.send(
        MANAGE,
        "",
        headers={"AMQ_SCHEDULER_ACTION": "BROWSE", "reply-to": "/queue/mgmt.reply", **headers},
    )
    # The browsed copies are sent before the SEND's receipt: all are in once sync is.
    c.sync()
    got = []
    while not c.listener.messages.empty():
        frame = c.listener.messages.get_nowait()
        got.append(frame.headers | {"body": frame.body})
    return got


def test_browse_remove_and_removeall(connect: Callable[..., Client]) -> None:
    c = connect()
    subscribe(c, "/queue/mgmt.reply", "r")
    schedule(c, [60_000, 120_000, 180_000])
    jobs = browse(c)
    assert [j["body"] for j in jobs] == ["job0", "job1", "job2"]  # in due order
    first = jobs[0]
    assert first["type"] == "Advisory" and "persistent" not in first
    assert first["original-destination"] == "/queue/mgmt.target"
    assert first["n"] == "0" and len({j["scheduledJobId"] for j in jobs}) == 3
    # As ActiveMQ's: the job's message as sent, its schedule headers included.
    assert [j["AMQ_SCHEDULED_DELAY"] for j in jobs] == ["60000", "120000", "180000"]
    assert len({j["message-id"] for j in jobs}) == 3
    # REMOVE one by its id.
    c.conn.send(
        MANAGE,
        "",
        headers={"AMQ_SCHEDULER_ACTION": "REMOVE", "scheduledJobId": first["scheduledJobId"]},
    )
    assert [j["body"] for j in browse(c)] == ["job1", "job2"]
    # REMOVEALL within a time range: only job1 (due in 120 s) is inside it.
    now = int(time.time() * 1000)
    window = {"ACTION_START_TIME": str(now + 90_000), "ACTION_END_TIME": str(now + 150_000)}
    c.conn.send(MANAGE, "", headers={"AMQ_SCHEDULER_ACTION": "REMOVEALL", **window})
    assert [j["body"] for j in browse(c)] == ["job2"]
    # BROWSE within a range that holds nothing.
    assert browse(c, ACTION_START_TIME=str(now), ACTION_END_TIME=str(now + 1000)) == []
    c.conn.send(MANAGE, "", headers={"AMQ_SCHEDULER_ACTION": "REMOVEALL"})
    assert browse(c) == []


def test_management_messages_are_never_delivered_and_removal_survives_restart(
    broker_factory: Callable[..., BrokerThread], connect: Callable[..., Client], tmp_path: Path
) -> None:
    b = broker_factory(**ON)
    c = connect(port=b.stomp_port)
    subscribe(c, "/queue/mgmt.reply", "r")
    watcher = connect(port=b.stomp_port)
    subscribe(watcher, MANAGE, "m")
    schedule(c, [60_000, 120_000])
    jobs = browse(c)
    c.conn.send(
        MANAGE,
        "",
        headers={"AMQ_SCHEDULER_ACTION": "REMOVE", "scheduledJobId": jobs[0]["scheduledJobId"]},
    )
    c.sync()
    # Not even a subscriber of the management topic sees the instructions.
    assert quiet(watcher, 0.3)
    data_dir = b.settings.broker.data_dir
    c.close()
    watcher.close()
    b.stop()
    again = BrokerThread(Path(data_dir), **ON).start()
    try:
        c = connect(port=again.stomp_port)
        subscribe(c, "/queue/mgmt.reply", "r")
        assert [j["body"] for j in browse(c)] == ["job1"]
    finally:
        c.close()
        again.stop()


def test_without_scheduler_support_it_is_an_ordinary_topic(
    broker_factory: Callable[..., BrokerThread], connect: Callable[..., Client]
) -> None:
    b = broker_factory()
    c = connect(port=b.stomp_port)
    subscribe(c, MANAGE, "m")
    c.conn.send(MANAGE, "hello", headers={"AMQ_SCHEDULER_ACTION": "BROWSE"})
    assert c.listener.messages.get(timeout=WAIT).body == "hello"


def test_a_job_id_is_its_message_id_and_deliveries_lose_the_schedule(
    connect: Callable[..., Client],
) -> None:
    """ActiveMQ 5.17.2 (live): a delayed message is delivered with scheduledJobId equal to
    its message-id and without AMQ_SCHEDULED_DELAY; BROWSE showed the same job id."""
    c = connect()
    subscribe(c, "/queue/mgmt.reply", "r")
    c.conn.send("/queue/mgmt.target", "soon", headers={"AMQ_SCHEDULED_DELAY": "1500"})
    c.sync()
    (job,) = browse(c)
    subscribe(c, "/queue/mgmt.target", "t")
    got = c.listener.next()
    assert got.body == "soon" and "AMQ_SCHEDULED_DELAY" not in got.headers
    assert got.headers["scheduledJobId"] == got.headers["message-id"] == job["scheduledJobId"]
