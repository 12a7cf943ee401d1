"""Scheduled delivery in the core (broker/core/scheduler.py, broker/core/cron.py), on a
fake clock: ActiveMQ's delay / period / repeat / cron semantics, the one timer, the
bounds, transactions and the records a journaled job writes."""

from __future__ import annotations

import datetime as dt

import pytest

from broker.core import Address, Core, CoreError, Message, ScheduleError, schedule_of
from broker.core.cron import Cron, CronError
from broker.core.scheduler import JOB_ID, Schedule
from tests.core.conftest import MakeCore
from tests.core.fakes import FakeLoop, MemoryStore, RecordingConsumer

Q = Address("queue", "sched.q")
T = Address("topic", "sched.t")


def _on(make_core: MakeCore, store: MemoryStore | None = None, **limits: object) -> Core:
    return make_core(store, scheduler_support=True, **limits)


def _send(core: Core, props: dict, *, address: Address = Q, persistent: bool = False) -> str:
    msg = Message(b"x", properties=dict(props), persistent=persistent)
    schedule = schedule_of(msg.properties)
    assert schedule is not None
    core.schedule(address, msg, schedule)
    return msg.id


def _listen(core: Core, address: Address = Q) -> RecordingConsumer:
    consumer = RecordingConsumer()
    core.subscribe(address, consumer)
    return consumer


def test_a_delayed_message_arrives_when_due_and_not_before(
    make_core: MakeCore, clock: FakeLoop
) -> None:
    core = _on(make_core)
    got = _listen(core)
    mid = _send(core, {"AMQ_SCHEDULED_DELAY": "3000", "colour": "red"})
    clock.advance(2.999)
    assert got.got == []
    clock.advance(0.001)
    [msg] = got.got
    # ActiveMQ: the same message id, scheduledJobId added, AMQ_SCHEDULED_* removed.
    assert msg.id == mid
    assert msg.properties["colour"] == "red"
    assert msg.properties[JOB_ID]
    assert not any(k.startswith("AMQ_SCHEDULED_") for k in msg.properties)
    assert core.scheduler.pending() == 0


def test_period_and_repeat_deliver_repeat_plus_one_copies_with_fresh_ids(
    make_core: MakeCore, clock: FakeLoop
) -> None:
    core = _on(make_core)
    got = _listen(core)
    mid = _send(
        core,
        {"AMQ_SCHEDULED_DELAY": "1000", "AMQ_SCHEDULED_PERIOD": "500", "AMQ_SCHEDULED_REPEAT": "2"},
    )
    times = []
    for _ in range(32):
        before = len(got.got)
        clock.advance(0.125)
        if len(got.got) > before:
            times.append(round(clock.now - 1_000_000.0, 1))
    assert times == [1.0, 1.5, 2.0]
    ids = [m.id for m in got.got]
    assert len(set(ids)) == 3 and mid not in ids
    assert len({m.properties[JOB_ID] for m in got.got}) == 1


def test_period_alone_is_the_first_delay(make_core: MakeCore, clock: FakeLoop) -> None:
    core = _on(make_core)
    got = _listen(core)
    _send(core, {"AMQ_SCHEDULED_PERIOD": "2000"})
    clock.advance(1.9)
    assert got.got == []
    clock.advance(0.1)
    assert len(got.got) == 1
    clock.advance(10)
    assert len(got.got) == 1


def test_repeat_alone_schedules_nothing(make_core: MakeCore) -> None:
    assert schedule_of({"AMQ_SCHEDULED_REPEAT": "3"}) is None
    # ... and a message already delivered by a job is not scheduled again.
    assert schedule_of({"AMQ_SCHEDULED_DELAY": "5", JOB_ID: "ID:x"}) is None


def test_one_timer_whatever_the_number_of_jobs(make_core: MakeCore, clock: FakeLoop) -> None:
    core = _on(make_core)
    got = _listen(core)
    base = clock.pending
    for i in range(500):
        _send(core, {"AMQ_SCHEDULED_DELAY": str(1000 + (i * 7919) % 5000)})
    assert clock.pending == base + 1
    clock.advance(10)
    assert len(got.got) == 500
    assert clock.pending == base


def test_a_sooner_job_rearms_the_timer(make_core: MakeCore, clock: FakeLoop) -> None:
    core = _on(make_core)
    got = _listen(core)
    _send(core, {"AMQ_SCHEDULED_DELAY": "5000"})
    _send(core, {"AMQ_SCHEDULED_DELAY": "1000"})
    clock.advance(1.0)
    assert len(got.got) == 1
    clock.advance(4.0)
    assert len(got.got) == 2


def test_scheduler_support_off_delivers_at_once_with_the_headers(core: Core) -> None:
    got = _listen(core)
    _send(core, {"AMQ_SCHEDULED_DELAY": "3000"})
    [msg] = got.got
    # Typed as ActiveMQ types it (a Long), kept on the message.
    assert msg.properties["AMQ_SCHEDULED_DELAY"] == 3000
    assert JOB_ID not in msg.properties


@pytest.mark.parametrize(
    ("props", "text"),
    [
        ({"AMQ_SCHEDULED_DELAY": "abc"}, "AMQ_SCHEDULED_DELAY must be an integer"),
        ({"AMQ_SCHEDULED_DELAY": "1.5"}, "must be an integer"),
        ({"AMQ_SCHEDULED_DELAY": ""}, "must be an integer"),
        ({"AMQ_SCHEDULED_DELAY": " 5"}, "must be an integer"),
        ({"AMQ_SCHEDULED_DELAY": "-5"}, "must not be a negative value"),
        ({"AMQ_SCHEDULED_PERIOD": "-1"}, "AMQ_SCHEDULED_PERIOD must not be a negative value"),
        ({"AMQ_SCHEDULED_REPEAT": "x"}, "AMQ_SCHEDULED_REPEAT must be an integer"),
        ({"AMQ_SCHEDULED_REPEAT": "2147483648"}, "out of range"),
        ({"AMQ_SCHEDULED_DELAY": "9223372036854775808"}, "out of range"),
        ({"AMQ_SCHEDULED_DELAY": 1.5}, "must be an integer"),
        ({"AMQ_SCHEDULED_DELAY": True}, "must be an integer"),
        ({"AMQ_SCHEDULED_DELAY": "1", "AMQ_SCHEDULED_REPEAT": "1001"}, "too large"),
        ({"AMQ_SCHEDULED_CRON": "bogus cron"}, "expected 5 fields"),
        ({"AMQ_SCHEDULED_CRON": 5}, "must be a string"),
    ],
)
def test_bad_scheduling_properties_are_refused(props: dict, text: str) -> None:
    with pytest.raises(ScheduleError) as info:
        schedule_of(dict(props))
    assert text in info.value.message
    assert info.value.code == "invalid"


def test_a_transaction_schedules_at_commit_and_an_abort_drops(
    make_core: MakeCore, clock: FakeLoop
) -> None:
    core = _on(make_core)
    got = _listen(core)

    def send_in(tx: object) -> None:
        msg = Message(b"tx", properties={"AMQ_SCHEDULED_DELAY": "1000"})
        schedule = schedule_of(msg.properties)
        assert schedule is not None
        assert core.schedule(Q, msg, schedule, tx=tx) is None  # type: ignore[arg-type]

    aborted = core.begin()
    send_in(aborted)
    aborted.abort()
    committed = core.begin()
    send_in(committed)
    clock.advance(5)
    assert core.scheduler.pending() == 0 and got.got == []
    committed.commit()
    assert core.scheduler.pending() == 1
    # The delay counts from the commit, not from the send.
    clock.advance(0.999)
    assert got.got == []
    clock.advance(0.001)
    assert len(got.got) == 1
    clock.advance(10)
    assert len(got.got) == 1


def test_past_the_job_limit_a_scheduled_send_is_refused(
    make_core: MakeCore, clock: FakeLoop
) -> None:
    core = _on(make_core, scheduler_max_jobs=2)
    got = _listen(core)
    _send(core, {"AMQ_SCHEDULED_DELAY": "1000"})
    _send(core, {"AMQ_SCHEDULED_DELAY": "1000"})
    with pytest.raises(CoreError) as info:
        _send(core, {"AMQ_SCHEDULED_DELAY": "1000"})
    assert info.value.code == "store-full"
    assert "broker.scheduler_max_jobs" in info.value.message
    # A plain send is not limited by the scheduler, and the held ones still come.
    core.send(Q, Message(b"now"))
    clock.advance(1)
    assert len(got.got) == 3
    _send(core, {"AMQ_SCHEDULED_DELAY": "1000"})  # room again


def test_past_the_byte_limit_a_scheduled_send_is_refused(make_core: MakeCore) -> None:
    core = _on(make_core, scheduler_max_bytes=1000)
    msg = Message(b"y" * 2000, properties={"AMQ_SCHEDULED_DELAY": "10"})
    with pytest.raises(CoreError) as info:
        core.schedule(Q, msg, Schedule(delay=10))
    assert "broker.scheduler_max_bytes" in info.value.message


def test_a_time_to_live_counts_from_the_delivery(make_core: MakeCore, clock: FakeLoop) -> None:
    core = _on(make_core)
    got = _listen(core)
    now = core.now_ms()
    msg = Message(b"ttl", properties={"AMQ_SCHEDULED_DELAY": "60000"}, expiration=now + 10_000)
    schedule = schedule_of(msg.properties)
    assert schedule is not None
    core.schedule(Q, msg, schedule)
    clock.advance(60)
    [delivered] = got.got
    assert delivered.timestamp == now + 60_000
    assert delivered.expiration == now + 70_000


def test_to_a_topic(make_core: MakeCore, clock: FakeLoop) -> None:
    core = _on(make_core)
    a, b = _listen(core, T), _listen(core, T)
    _send(core, {"AMQ_SCHEDULED_DELAY": "100"}, address=T)
    clock.advance(0.1)
    assert len(a.got) == len(b.got) == 1


def test_a_temporary_queue_gone_before_the_job_is_due(make_core: MakeCore, clock: FakeLoop) -> None:
    core = _on(make_core)
    owner = object()
    temp = Address("temp-queue", "c1:reply")
    core.create_temporary(temp, owner)
    _send(core, {"AMQ_SCHEDULED_DELAY": "100"}, address=temp)
    core.delete_owned(owner)
    clock.advance(1)  # logged and dropped, nothing raised
    assert core.scheduler.pending() == 0
    with pytest.raises(CoreError):  # and once gone, the sender is told at once
        _send(core, {"AMQ_SCHEDULED_DELAY": "100"}, address=temp)


def test_journaled_jobs_write_added_moved_done_records(
    make_core: MakeCore, store: MemoryStore, clock: FakeLoop
) -> None:
    core = _on(make_core, store)
    _listen(core)
    _send(
        core,
        {"AMQ_SCHEDULED_DELAY": "100", "AMQ_SCHEDULED_PERIOD": "100", "AMQ_SCHEDULED_REPEAT": "1"},
        persistent=True,
    )
    _send(core, {"AMQ_SCHEDULED_DELAY": "100"})  # not persistent: memory only
    clock.advance(1)
    ops = [c[0] for c in store.ops("job_added", "job_moved", "job_done", "add")]
    # The delivery's ADD comes before the record that moves or ends its job.
    assert ops == ["job_added", "add", "job_moved", "add", "job_done"]


# -- cron ---------------------------------------------------------------------------------


def _ms(*args: int) -> int:
    return int(dt.datetime(*args).timestamp()) * 1000


@pytest.mark.parametrize(
    ("entry", "after", "due"),
    [
        ("* * * * *", (2026, 3, 1, 10, 0, 30), (2026, 3, 1, 10, 1)),
        ("* * * * *", (2026, 3, 1, 10, 0, 0), (2026, 3, 1, 10, 1)),
        ("*/15 * * * *", (2026, 3, 1, 10, 16), (2026, 3, 1, 10, 30)),
        ("0 * * * *", (2026, 3, 1, 10, 0), (2026, 3, 1, 11, 0)),
        ("30 2 * * *", (2026, 3, 1, 10, 0), (2026, 3, 2, 2, 30)),
        ("0 0 1 * *", (2026, 12, 15, 0, 0), (2027, 1, 1, 0, 0)),
        ("0 9 * * 1", (2026, 3, 1, 10, 0), (2026, 3, 2, 9, 0)),  # 1 March 2026 is a Sunday
        ("0 9 * * 0", (2026, 3, 1, 8, 0), (2026, 3, 1, 9, 0)),
        ("0 0 29 2 *", (2026, 3, 1, 0, 0), (2028, 2, 29, 0, 0)),
        ("0 12 15 * 5", (2026, 3, 1, 0, 0), (2026, 3, 6, 12, 0)),  # either day field
        ("5,10 1-2 * * ?", (2026, 3, 1, 1, 7), (2026, 3, 1, 1, 10)),
        ("1-30/5 * * * *", (2026, 3, 1, 1, 0), (2026, 3, 1, 1, 5)),  # ActiveMQ's steps
    ],
)
def test_cron_next_time(entry: str, after: tuple[int, ...], due: tuple[int, ...]) -> None:
    assert Cron(entry).next_after(_ms(*after)) == _ms(*due)


@pytest.mark.parametrize(
    ("entry", "text"),
    [
        ("* * * *", "expected 5 fields"),
        ("* * * * * *", "expected 5 fields"),
        ("61 * * * *", "minute 61 is not in 0-59"),
        ("* 24 * * *", "hour 24"),
        ("* * 0 * *", "day of month 0"),
        ("* * * 13 *", "month 13"),
        ("* * * * 7", "day of week 7"),
        ("a * * * *", "is not a number"),
        ("*/0 * * * *", "step must not be 0"),
        ("5/15 * * * *", "matches nothing"),
        ("10-5 * * * *", "matches nothing"),
        ("0 0 30 2 *", "never falls due"),
    ],
)
def test_bad_cron_entries(entry: str, text: str) -> None:
    with pytest.raises(CronError) as info:
        Cron(entry)
    assert text in str(info.value)


def test_cron_delivers_at_every_match(make_core: MakeCore, clock: FakeLoop) -> None:
    clock.now = _ms(2026, 3, 1, 10, 0, 30) / 1000
    core = _on(make_core)
    got = _listen(core)
    _send(core, {"AMQ_SCHEDULED_CRON": "* * * * *"})
    clock.advance(29.9)
    assert got.got == []
    clock.advance(0.1)
    clock.advance(120)
    assert len(got.got) == 3
    assert len({m.id for m in got.got}) == 3
    assert core.scheduler.pending() == 1  # a cron job never ends


def test_cron_with_repeat_starts_a_series_at_every_match(
    make_core: MakeCore, clock: FakeLoop
) -> None:
    clock.now = _ms(2026, 3, 1, 10, 0, 30) / 1000
    core = _on(make_core)
    got = _listen(core)
    _send(
        core,
        {
            "AMQ_SCHEDULED_CRON": "* * * * *",
            "AMQ_SCHEDULED_DELAY": "1000",
            "AMQ_SCHEDULED_PERIOD": "1000",
            "AMQ_SCHEDULED_REPEAT": "2",
        },
    )
    times: list[float] = []
    for _ in range(600):
        before = len(got.got)
        clock.advance(0.25)
        times += [round(clock.now - _ms(2026, 3, 1, 10, 0) / 1000, 1)] * (len(got.got) - before)
    # At 10:01 and 10:02 a series of 3, the first 1 s after the match, then 1 s apart;
    # the cron match itself delivers nothing.
    assert times == [61.0, 62.0, 63.0, 121.0, 122.0, 123.0]


def test_a_backlog_due_at_once_fires_in_bounded_bursts(
    make_core: MakeCore, clock: FakeLoop
) -> None:
    core = _on(make_core)
    got = _listen(core)
    for _ in range(2500):
        _send(core, {"AMQ_SCHEDULED_DELAY": "10"})
    clock.now += 1.0  # due, without running the timer
    core.scheduler._run()  # what the timer calls: one burst
    assert len(got.got) == 1000
    clock.advance(0)  # the rest, in later loop turns
    assert len(got.got) == 2500
