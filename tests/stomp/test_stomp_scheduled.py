"""Scheduled delivery over STOMP (AMQ_SCHEDULED_* headers), with stomp.py and raw sockets.

Compared with a real ActiveMQ 5.17.2 over STOMP (stomp.py and raw-socket scripts, not
tests; the shared instance has the default schedulerSupport="false", a private one had
schedulerSupport="true"):

- DELAY 3000, default config: ActiveMQ delivers at once, AMQ_SCHEDULED_DELAY kept. Same.
- DELAY abc / -5 / 1.5 / "", PERIOD abc, REPEAT abc, CRON "bogus cron", either config:
  ActiveMQ closes the connection without an ERROR. Here: an ERROR naming the header,
  then closed.
- CRON "* * * * *", default config: delivered at once, header kept. Same.
- DELAY 3000, schedulerSupport: ActiveMQ delivers after 3.4 s (it rounds the start up to
  500 ms), same message-id, scheduledJobId added, AMQ_SCHEDULED_* gone. Here after 3.0
  s, otherwise the same.
- DELAY 1000 PERIOD 500 REPEAT 2, schedulerSupport: ActiveMQ 3 copies at 1.25, 1.75,
  2.25 s, new message-ids, one scheduledJobId. Here at 1.0, 1.5, 2.0 s, otherwise the
  same.
- DELAY 1000 in a transaction committed 1.5 s after the SEND: both deliver 1.0 s after
  the COMMIT (ActiveMQ 1.08 s), with the SEND's timestamp.
- DELAY 3000 with expires = send + 2000: both deliver at 3 s with timestamp moved to
  the delivery and expires = delivery + 2000.
- DELAY 0: ActiveMQ after 0.17 s (its 500 ms rounding), here at once; REPEAT alone:
  both deliver at once, the header kept; DELAY 1000 to a topic: both after the delay.
- CRON "* * * * *": both deliver at the top of every minute, a new message-id each,
  one scheduledJobId.
- CRON "* * * * *" with DELAY 5000: ActiveMQ 5 s after the first minute, then at the
  top of every minute (it adds the delay to the first match only); here at the top of
  every minute (its documentation: cron takes priority over the delay).
- CRON "* * * * *" with DELAY 1000, PERIOD 1000, REPEAT 2: here 3 deliveries at 1, 2
  and 3 s past every minute (the series has its own scheduledJobId); ActiveMQ 5.17.2's
  scheduler thread deadlocked at the first match (jstack: JobSchedulerImpl.mainLoop
  holds the index read lock and schedule() waits for the write lock; AMQ-9808) and
  delivered no scheduled message after it, until its scheduler store was deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    BrokerThread,
    Client,
    RawClient,
    headers_of,
    quiet,
    subscribe,
    wait_until,
)

ON = {"broker.scheduler_support": True}


@pytest.fixture
def broker(broker_factory: Callable[..., BrokerThread]) -> BrokerThread:
    return broker_factory(**ON)


def test_default_config_delivers_at_once_with_the_headers(
    broker_factory: Callable[..., BrokerThread],
) -> None:
    import stomp

    from tests.conftest import Collector

    off = broker_factory()
    conn = stomp.Connection12([("127.0.0.1", off.stomp_port)])
    listener = Collector()
    conn.set_listener("c", listener)
    conn.connect(wait=True)
    try:
        conn.subscribe("/queue/sched.off", id="s", ack="auto")
        conn.send("/queue/sched.off", "now", headers={"AMQ_SCHEDULED_DELAY": "3000"})
        started = time.monotonic()
        msg = listener.next()
        assert time.monotonic() - started < 2.0
        assert msg.headers["AMQ_SCHEDULED_DELAY"] == "3000"
        assert "scheduledJobId" not in msg.headers
    finally:
        conn.disconnect()


def test_a_delayed_message_arrives_after_its_delay(connect: Callable[..., Client]) -> None:
    c = connect()
    subscribe(c, "/queue/sched.delay", "s")
    started = time.monotonic()
    c.send(
        "/queue/sched.delay", "later", headers={"AMQ_SCHEDULED_DELAY": "800", "k": "v"}, receipt="r"
    )
    assert c.listener.receipt() == "r"
    msg = c.listener.next()
    assert time.monotonic() - started >= 0.8
    assert msg.body == "later"
    assert msg.headers["k"] == "v"
    assert msg.headers["scheduledJobId"].startswith("ID:")
    assert not any(h.startswith("AMQ_SCHEDULED_") for h in msg.headers)


def test_period_and_repeat_deliver_repeat_plus_one(connect: Callable[..., Client]) -> None:
    c = connect()
    subscribe(c, "/queue/sched.repeat", "s")
    started = time.monotonic()
    c.send(
        "/queue/sched.repeat",
        "again",
        headers={
            "AMQ_SCHEDULED_DELAY": "200",
            "AMQ_SCHEDULED_PERIOD": "300",
            "AMQ_SCHEDULED_REPEAT": "2",
        },
    )
    got = []
    for _ in range(3):
        got.append((c.listener.next(), time.monotonic() - started))
    assert [round(t, 1) >= due for (_m, t), due in zip(got, (0.2, 0.5, 0.8), strict=True)] == [
        True
    ] * 3
    assert len({m.headers["message-id"] for m, _ in got}) == 3
    assert len({m.headers["scheduledJobId"] for m, _ in got}) == 1
    # The last copy was the last: a marker scheduled after it arrives alone.
    c.send("/queue/sched.repeat", "marker", headers={"AMQ_SCHEDULED_DELAY": "400"})
    assert c.listener.next().body == "marker"
    assert quiet(c)


def test_a_cron_job_is_held(connect: Callable[..., Client], broker: BrokerThread) -> None:
    c = connect()
    subscribe(c, "/queue/sched.cron", "s")
    c.send("/queue/sched.cron", "hourly", headers={"AMQ_SCHEDULED_CRON": "0 * * * *"}, receipt="r")
    assert c.listener.receipt() == "r"
    assert quiet(c)
    assert broker.call(broker.broker.core.scheduler.pending) == 1


def test_scheduled_in_a_transaction_counts_from_commit_and_abort_drops(
    connect: Callable[..., Client],
) -> None:
    c = connect()
    subscribe(c, "/queue/sched.tx", "s")
    delay = {"AMQ_SCHEDULED_DELAY": "300"}
    c.begin("aborted")
    c.send("/queue/sched.tx", "dropped", headers=delay, transaction="aborted")
    c.abort("aborted")
    c.begin("kept")
    c.send("/queue/sched.tx", "kept", headers=delay, transaction="kept")
    c.sync()
    committed = time.monotonic()
    c.commit("kept", receipt="done")
    assert c.listener.receipt() == "done"
    msg = c.listener.next()
    assert msg.body == "kept"
    assert time.monotonic() - committed >= 0.3
    # The aborted one (due earlier) would have come before this marker.
    c.send("/queue/sched.tx", "marker", headers=delay)
    assert c.listener.next().body == "marker"
    assert quiet(c)


@pytest.mark.parametrize(
    ("header", "text"),
    [
        ("AMQ_SCHEDULED_DELAY:abc", "AMQ_SCHEDULED_DELAY must be an integer"),
        ("AMQ_SCHEDULED_DELAY:-5", "AMQ_SCHEDULED_DELAY must not be a negative value"),
        ("AMQ_SCHEDULED_DELAY:1.5", "AMQ_SCHEDULED_DELAY must be an integer"),
        ("AMQ_SCHEDULED_PERIOD:x", "AMQ_SCHEDULED_PERIOD must be an integer"),
        ("AMQ_SCHEDULED_REPEAT:x", "AMQ_SCHEDULED_REPEAT must be an integer"),
        ("AMQ_SCHEDULED_REPEAT:1001\nAMQ_SCHEDULED_DELAY:1", "repeat value is too large"),
        ("AMQ_SCHEDULED_CRON:bogus cron", "expected 5 fields"),
        ("AMQ_SCHEDULED_CRON:61 * * * *", "minute 61 is not in 0-59"),
    ],
)
def test_bad_scheduling_headers_are_an_error_and_close(
    raw: Callable[[], RawClient], connect: Callable[..., Client], header: str, text: str
) -> None:
    bystander = connect()
    subscribe(bystander, "/queue/sched.bystander", "s")
    c = raw()
    c.connect()
    c.send(f"SEND\ndestination:/queue/sched.bad\nreceipt:r1\n{header}\n\nbody\x00".encode())
    command, headers = headers_of(c.frame())
    assert command == "ERROR"
    assert headers["receipt-id"] == "r1"
    assert text in headers["message"]
    assert c.closed()
    # Nothing was queued, and other clients are unaffected.
    bystander.send("/queue/sched.bystander", "fine")
    assert bystander.listener.next().body == "fine"


def test_bad_headers_are_refused_with_scheduling_off_too(
    broker_factory: Callable[..., BrokerThread],
) -> None:
    # ActiveMQ checks them when the message is built, whatever schedulerSupport says.
    off = broker_factory()
    c = RawClient(off.stomp_port)
    try:
        c.connect()
        c.send(b"SEND\ndestination:/queue/sched.bad\nAMQ_SCHEDULED_DELAY:abc\n\nx\x00")
        command, headers = headers_of(c.frame())
        assert command == "ERROR" and "must be an integer" in headers["message"]
        assert c.closed()
    finally:
        c.close()


def test_past_the_job_limit_a_scheduled_send_is_refused(
    broker_factory: Callable[..., BrokerThread],
) -> None:
    small = broker_factory(**ON, **{"broker.scheduler_max_jobs": 1})
    c = RawClient(small.stomp_port)
    try:
        c.connect()
        send = "SEND\ndestination:/queue/sched.full\nreceipt:{}\nAMQ_SCHEDULED_DELAY:60000\n\nx\x00"
        c.send(send.format("r1").encode())
        assert headers_of(c.frame()) == ("RECEIPT", {"receipt-id": "r1"})
        c.send(send.format("r2").encode())
        command, headers = headers_of(c.frame())
        assert command == "ERROR" and headers["receipt-id"] == "r2"
        assert "broker.scheduler_max_jobs" in headers["message"]
        # Not fatal: the connection goes on (as a full store's refusal).
        c.send(b"SEND\ndestination:/queue/sched.full\nreceipt:r3\n\nplain\x00")
        assert headers_of(c.frame()) == ("RECEIPT", {"receipt-id": "r3"})
    finally:
        c.close()


def test_persistent_jobs_survive_a_restart(tmp_path: Path) -> None:
    """A graceful restart: a persistent job due after the stop is delivered by the new
    broker, a repeating one goes on where it was, a non-persistent one is gone."""
    import stomp

    from tests.conftest import Collector

    data = tmp_path / "data"

    def connected(b: BrokerThread) -> tuple[Any, Collector]:
        conn = stomp.Connection12([("127.0.0.1", b.stomp_port)])
        listener = Collector()
        conn.set_listener("c", listener)
        conn.connect(wait=True)
        return conn, listener

    first = BrokerThread(data, **ON).start()
    try:
        conn, listener = connected(first)
        conn.subscribe("/queue/sched.restart.repeat", id="r", ack="auto")
        p = {"persistent": "true"}
        conn.send("/queue/sched.restart.soon", "due", headers={**p, "AMQ_SCHEDULED_DELAY": "1500"})
        conn.send("/queue/sched.restart.gone", "nonp", headers={"AMQ_SCHEDULED_DELAY": "1500"})
        conn.send(
            "/queue/sched.restart.repeat",
            "rep",
            headers={
                **p,
                "AMQ_SCHEDULED_DELAY": "100",
                "AMQ_SCHEDULED_PERIOD": "400",
                "AMQ_SCHEDULED_REPEAT": "4",
            },
            receipt="sent",
        )
        assert listener.receipt() == "sent"
        before = [listener.next().headers["message-id"], listener.next().headers["message-id"]]
        conn.unsubscribe("r")
        conn.disconnect()
    finally:
        first.stop()
    second = BrokerThread(data, **ON).start()
    try:
        conn, listener = connected(second)
        conn.subscribe("/queue/sched.restart.soon", id="s", ack="auto")
        conn.subscribe("/queue/sched.restart.repeat", id="r", ack="auto")
        conn.subscribe("/queue/sched.restart.gone", id="g", ack="auto")
        got = [listener.next() for _ in range(4)]
        soon = [m for m in got if m.body == "due"]
        rep = [m.headers["message-id"] for m in got if m.body == "rep"]
        assert len(soon) == 1 and len(rep) == 3
        # Five in all, each once: the two delivered before were not scheduled again.
        assert len(set(before + rep)) == 5
        assert wait_until(lambda: second.call(second.broker.core.scheduler.pending) == 0)
        assert listener.none_within(0.5)
        conn.disconnect()
    finally:
        second.stop()


def test_scheduler_metrics(connect: Callable[..., Client], broker: BrokerThread) -> None:
    from tests.daemon.test_metrics import scrape, value

    c = connect()
    subscribe(c, "/queue/sched.metrics", "s")
    c.send("/queue/sched.metrics", "a", headers={"AMQ_SCHEDULED_DELAY": "60000"})
    c.send("/queue/sched.metrics", "b", headers={"AMQ_SCHEDULED_DELAY": "100"}, receipt="r")
    assert c.listener.receipt() == "r"
    assert c.listener.next().body == "b"
    samples = scrape(broker)
    assert value(samples, "zonemq_scheduled_messages") == 1
    assert value(samples, "zonemq_scheduled_bytes") > 0
    assert value(samples, "zonemq_scheduled_delivered_total") == 1
