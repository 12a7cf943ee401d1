"""Scheduled jobs in the journal (record types 20-22, broker/store/scheduled.py): the real
MessageStore on a real journal under a Core with scheduling on. Jobs come back after a
restart as they were left (due time, repeats left), through compaction (which copies a
job's record past its latest move), and a finished job never comes back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from broker.core import QUEUE, Address, Core, CoreLimits, Message, schedule_of
from broker.store import Journal
from broker.store.messages import MessageStore
from broker.store.scheduled import JOB, JOB_DONE, JOB_NEXT
from tests.core.fakes import RecordingConsumer

SEGMENT = 65536
Q = Address(QUEUE, "sched.store")
CHURN = Address(QUEUE, "sched.churn")


class Node:
    """A journal, its MessageStore and a Core with scheduling on, as the broker has them."""

    def __init__(self, directory: Path) -> None:
        self.journal = Journal(directory, segment_size=SEGMENT, fsync="never")
        self.store = MessageStore(self.journal)
        self.recovered = self.store.recover()
        loop = asyncio.get_running_loop()
        self.core = Core(
            CoreLimits(scheduler_support=True), call_later=loop.call_later, store=self.store
        )
        self.core.restore(self.recovered.queues, self.recovered.flags)
        self.core.scheduler.restore(self.recovered.jobs)

    def schedule(self, body: bytes, **props: str) -> None:
        msg = Message(body, persistent=True, properties=dict(props))
        schedule = schedule_of(msg.properties)
        assert schedule is not None
        self.core.schedule(Q, msg, schedule)

    async def close(self) -> None:
        await durable(self.core)
        self.core.close()
        await self.journal.close()


async def durable(core: Core) -> None:
    done = core.barrier()
    if done is not None:
        await done


def record_types(directory: Path) -> list[int]:
    j = Journal(directory, segment_size=SEGMENT, fsync="never")
    types = [r.rtype for r in j.open()]
    return types


async def test_jobs_survive_restarts_where_they_were(tmp_path: Path) -> None:
    d = tmp_path / "journal"
    node = Node(d)
    node.schedule(b"later", AMQ_SCHEDULED_DELAY="3600000")
    node.schedule(
        b"repeat",
        AMQ_SCHEDULED_DELAY="10",
        AMQ_SCHEDULED_PERIOD="3600000",
        AMQ_SCHEDULED_REPEAT="5",
    )
    node.schedule(b"cron", AMQ_SCHEDULED_CRON="0 0 1 1 *")
    got = RecordingConsumer()
    node.core.subscribe(Q, got)
    for _ in range(200):
        if got.got:
            break
        await asyncio.sleep(0.01)
    assert [m.body for m in got.got] == [b"repeat"]  # the first of six
    before = {j.msg.body: (j.id, j.due, j.repeat) for j in node.core.scheduler.jobs.values()}
    assert before[b"repeat"][2] == 4
    await node.close()

    again = Node(d)
    jobs = again.core.scheduler.jobs.values()
    assert {j.msg.body: (j.id, j.due, j.repeat) for j in jobs} == before
    cron = next(j for j in jobs if j.msg.body == b"cron")
    assert cron.cron is not None and cron.cron.entry == "0 0 1 1 *"
    # The delivered copy was consumed; it is not scheduled again.
    assert again.recovered.queues.get(Q, []) == []
    await again.close()


async def test_compaction_keeps_live_jobs_and_drops_finished_ones(tmp_path: Path) -> None:
    d = tmp_path / "journal"
    node = Node(d)
    node.schedule(
        b"kept" * 100,
        AMQ_SCHEDULED_DELAY="10",
        AMQ_SCHEDULED_PERIOD="3600000",
        AMQ_SCHEDULED_REPEAT="3",
    )
    node.schedule(b"done", AMQ_SCHEDULED_DELAY="10")
    got = RecordingConsumer()
    node.core.subscribe(Q, got)
    for _ in range(200):
        if len(got.got) == 2:
            break
        await asyncio.sleep(0.01)
    assert sorted(m.body[:4] for m in got.got) == [b"done", b"kept"]
    # Fill several segments with messages consumed at once, so the job's records sit
    # in old segments that compaction copies forward.
    churn = RecordingConsumer()
    node.core.subscribe(CHURN, churn)
    for i in range(600):
        node.core.send(CHURN, Message(b"c" * 500, persistent=True, properties={"i": i}))
        if i % 50 == 0:
            await durable(node.core)
    await durable(node.core)
    moved = 0
    for _ in range(5):
        moved += await node.store.compact()
    assert moved >= 2  # the job's JOB and JOB_NEXT were copied
    first = min(int(p.stem, 16) for p in d.glob("*.zjournal"))
    assert first > 1, "the oldest segments should be gone"
    await node.close()

    types = record_types(d)
    # Copies of the live job's records (a copy made by one pass may itself be copied
    # by the next before its segment goes); the finished job left nothing behind.
    assert JOB in types and JOB_NEXT in types
    assert JOB_DONE not in types
    again = Node(d)
    [job] = again.core.scheduler.jobs.values()
    assert job.msg.body == b"kept" * 100 and job.repeat == 2
    await again.close()
