"""Scheduled jobs as journal records (broker/core/scheduler.py says what a job is).

  JOB       (job id, count, due, delay, period, repeat, cron, fresh ids, message fields)
            a job created (message fields as in an ADD, the destination as its queue)
  JOB_NEXT  (job id, count, due, repeat)   the job moved to its next due time
  JOB_DONE  (job id,)                      the job delivered its last message

Replay is keyed by job id and does not depend on record order: a job's state is its
JOB record with the JOB_NEXT of the highest `count` applied (compaction may copy a JOB
forward past its JOB_NEXT); a JOB_DONE ends the job, and a done id never comes back.
Liveness: a JOB is live until its job is done, the latest JOB_NEXT of a live job is
live, everything else (older JOB_NEXTs, JOB_DONE) is dead: JOB_DONE is written after
the JOB and JOB_NEXTs it ends, and segments go oldest first, so it outlives them.

Ownership: MessageStore's; used only from the event loop thread.
"""

from __future__ import annotations

import marshal
from collections.abc import Callable
from typing import Any

from broker.core.cron import Cron, CronError
from broker.core.message import Address, Message
from broker.core.scheduler import Job
from broker.store.format import RecordRef

JOB = 20
JOB_NEXT = 21
JOB_DONE = 22
TYPES = (JOB, JOB_NEXT, JOB_DONE)

_MARSHAL_VERSION = 4

Append = Callable[[int, Any, bool], RecordRef]
Release = Callable[[RecordRef], None]
ToTuple = Callable[[Address, int, Message], tuple[Any, ...]]
FromTuple = Callable[[tuple[Any, ...]], tuple[Address, int, Message]]


class ScheduledRecords:
    """The live records of the journaled jobs, their replay and their compaction."""

    def __init__(
        self, append: Append, release: Release, to_tuple: ToTuple, from_tuple: FromTuple
    ) -> None:
        self._append = append
        self._release = release
        self._to_tuple = to_tuple
        self._from_tuple = from_tuple
        # job id -> its live JOB record, and its latest live JOB_NEXT record.
        self.jobs: dict[str, RecordRef] = {}
        self.nexts: dict[str, RecordRef] = {}

    # -- the scheduler's events -----------------------------------------------------------

    def added(self, job: Job) -> None:
        cron = job.cron.entry if job.cron is not None else None
        value = (
            job.id,
            job.count,
            job.due,
            job.delay,
            job.period,
            job.repeat,
            cron,
            job.fresh_ids,
            self._to_tuple(job.address, 0, job.msg),
        )
        self.jobs[job.id] = self._append(JOB, value, True)

    def moved(self, job: Job) -> None:
        old = self.nexts.get(job.id)
        ref = self._append(JOB_NEXT, (job.id, job.count, job.due, job.repeat), True)
        self.nexts[job.id] = ref
        if old is not None:
            self._release(old)

    def done(self, job: Job) -> None:
        ref = self.jobs.pop(job.id, None)
        if ref is None:
            return
        self._append(JOB_DONE, (job.id,), False)
        self._release(ref)
        nxt = self.nexts.pop(job.id, None)
        if nxt is not None:
            self._release(nxt)

    # -- replay ---------------------------------------------------------------------------

    def replayer(self) -> _Replay:
        return _Replay(self)

    # -- compaction -----------------------------------------------------------------------

    def live(self, rtype: int, payload: bytes, ref: RecordRef) -> bool:
        if rtype == JOB_DONE:
            return False
        job_id = marshal.loads(payload)[0]
        table = self.jobs if rtype == JOB else self.nexts
        return table.get(job_id) == ref

    def remap(self, mapping: dict[RecordRef, RecordRef]) -> None:
        for table in (self.jobs, self.nexts):
            for job_id, ref in table.items():
                new = mapping.get(ref)
                if new is not None:
                    table[job_id] = new


class _Replay:
    """One replay's state: feed it every job record (`record`), then `finish`."""

    def __init__(self, owner: ScheduledRecords) -> None:
        self.owner = owner
        self.created: dict[str, tuple[RecordRef, tuple[Any, ...]]] = {}
        self.next: dict[str, tuple[RecordRef, tuple[Any, ...]]] = {}
        self.done: set[str] = set()
        # Records to release once the scan is over (the journal counts every replayed
        # record as live until told otherwise).
        self.dead: list[RecordRef] = []

    def record(self, rtype: int, t: tuple[Any, ...], ref: RecordRef) -> None:
        job_id = t[0]
        if rtype == JOB_DONE:
            self.dead.append(ref)
            self.done.add(job_id)
            for table in (self.created, self.next):
                old = table.pop(job_id, None)
                if old is not None:
                    self.dead.append(old[0])
            return
        if job_id in self.done:
            self.dead.append(ref)
            return
        table = self.created if rtype == JOB else self.next
        old = table.get(job_id)
        if old is not None and rtype == JOB_NEXT and old[1][1] > t[1]:
            self.dead.append(ref)  # an older move than the one we have
            return
        if old is not None:
            self.dead.append(old[0])  # a compaction copy, or a later move
        table[job_id] = (ref, t)

    def finish(self) -> tuple[list[Job], list[RecordRef]]:
        """The recovered jobs (in creation order) and the records to release."""
        owner = self.owner
        jobs: list[Job] = []
        for job_id, (ref, t) in self.created.items():
            _id, count, due, delay, period, repeat, entry, fresh, fields = t
            nxt = self.next.pop(job_id, None)
            if nxt is not None and nxt[1][1] > count:
                _id, count, due, repeat = nxt[1]
            elif nxt is not None:
                self.dead.append(nxt[0])
                nxt = None
            try:
                cron = Cron(entry) if entry else None
            except CronError:  # pragma: no cover - it was checked when the job was made
                cron = None
            address, _seq, msg = self._from(fields)
            jobs.append(
                Job(
                    job_id,
                    address,
                    msg,
                    due=due,
                    delay=delay,
                    period=period,
                    repeat=repeat,
                    cron=cron,
                    fresh_ids=fresh,
                    journaled=True,
                    count=count,
                )
            )
            owner.jobs[job_id] = ref
            if nxt is not None:
                owner.nexts[job_id] = nxt[0]
        # A move whose JOB record is gone cannot happen (the JOB is older and outlives
        # it); if one is found, it holds nothing.
        self.dead.extend(ref for ref, _t in self.next.values())
        return jobs, self.dead

    def _from(self, fields: tuple[Any, ...]) -> tuple[Address, int, Message]:
        return self.owner._from_tuple(fields)
