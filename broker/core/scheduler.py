"""Scheduled delivery (ActiveMQ's job scheduler): messages held until they are due.

A protocol maps its way of asking (STOMP headers, AMQP annotations) onto the message
properties ActiveMQ uses, AMQ_SCHEDULED_DELAY / _PERIOD / _REPEAT (ms, ms, a count) and
AMQ_SCHEDULED_CRON (broker/core/cron.py), calls `schedule_of(properties)` (which
checks and types them as ActiveMQ does, whether or not scheduling is on) and, when that
returns a Schedule, `Core.schedule` instead of `Core.send`. The semantics are
ActiveMQ 5.17's (SchedulerBroker, JobSchedulerImpl):

- a message with DELAY, PERIOD or CRON is held; REPEAT alone schedules nothing;
- no CRON: the first delivery is DELAY after the send (PERIOD if there is no DELAY),
  then REPEAT more, each PERIOD after the previous one: REPEAT + 1 deliveries;
- CRON, no REPEAT: a delivery at every time the entry falls due, for ever;
- CRON with REPEAT: at every time the entry falls due a series starts, REPEAT + 1
  deliveries DELAY (or PERIOD) after it and PERIOD apart; the cron job itself delivers
  nothing;
- each delivery carries `scheduledJobId` (the message's id, as ActiveMQ's job ids)
  and none of the AMQ_SCHEDULED_* properties (the held message keeps them: BROWSE
  shows them);
  it keeps the message id unless the job repeats or has a cron entry (then every
  delivery gets a new one); a message with a time to live gets its timestamp and
  expiration moved to the delivery (the TTL counts from then);
- a message that already has `scheduledJobId` is not scheduled again (ActiveMQ's rule,
  so a delivered copy sent on is not held twice);
- in a transaction the job is created at commit; an abort drops it.

With `scheduler_support` off (ActiveMQ's default, schedulerSupport="false") the
properties are still checked, and the message is sent at once with them.

Management (`manage`, ActiveMQ's SchedulerBroker): with scheduler support on, a message
sent to a destination whose name starts with ActiveMQ.Scheduler.Management (any case,
queue or topic) is never delivered; its AMQ_SCHEDULER_ACTION says what to do. BROWSE
(with a reply-to) sends each job's message there, non-persistent, with a new id, type
"Advisory", `scheduledJobId`, its `originalDestination` and its AMQ_SCHEDULED_*
properties (compared live with ActiveMQ 5.17.2, bench.compare_configured); REMOVE removes the job
named by `scheduledJobId`; REMOVEALL removes every job. BROWSE and REMOVEALL with both
ACTION_START_TIME and ACTION_END_TIME take only the jobs next due within them
(inclusive). A removal of a journaled job is journaled (its "done" record).

Journaled jobs (a persistent message for a queue or a topic, when the core persists)
are written as records of their own (broker/store/scheduled.py): created, moved to
their next due time, done. A non-persistent message's job is held in memory only.

Bounded: every job is in memory, body included, at most `max_jobs` of them and
`max_bytes` of their messages' `size`; a send that would pass either is refused
(CoreError STORE_FULL, naming the setting). Jobs created by the scheduler itself (a cron
entry's series) and jobs recovered at start are never refused.

One timer: jobs sit on a heap by due time and the Core's `call_later` is armed for the
earliest only (re-armed when a sooner job arrives). An entry made stale by a reschedule
is skipped when popped. At most `_BURST` jobs fire per timer callback, so a backlog due
at once (after a restart) does not hold the event loop.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.core.cron import Cron, CronError
from broker.core.errors import INVALID, STORE_FULL, CoreError
from broker.core.message import QUEUE, TOPIC, Address, Message, PropertyValue

if TYPE_CHECKING:
    from broker.core.core import Core

log = logging.getLogger("zonemq.scheduler")

DELAY = "AMQ_SCHEDULED_DELAY"
PERIOD = "AMQ_SCHEDULED_PERIOD"
REPEAT = "AMQ_SCHEDULED_REPEAT"
CRON = "AMQ_SCHEDULED_CRON"
JOB_ID = "scheduledJobId"
MANAGEMENT = "activemq.scheduler.management"
ACTION = "AMQ_SCHEDULER_ACTION"
START_TIME = "ACTION_START_TIME"
END_TIME = "ACTION_END_TIME"
SCHEDULE_KEYS = (DELAY, PERIOD, REPEAT, CRON)
# ActiveMQ's maxSchedulerRepeatAllowed default.
MAX_REPEAT = 1000
_LONG = (-(2**63), 2**63 - 1)
_INT = (-(2**31), 2**31 - 1)
# Java's Long.valueOf / Integer.valueOf: an optional sign and decimal digits, nothing else.
_JAVA_INTEGER = re.compile(r"[+-]?[0-9]+\Z")
_BURST = 1000


class ScheduleError(CoreError):
    """Scheduling properties ActiveMQ refuses (the text is what was wrong)."""

    def __init__(self, message: str) -> None:
        super().__init__(INVALID, message)


@dataclass(frozen=True, slots=True)
class Schedule:
    """What a message asks for: first delivery after `delay` ms (or `period` ms),
    `repeat` more `period` ms apart; with `cron`, a series at every time it falls due."""

    delay: int = 0
    period: int = 0
    repeat: int = 0
    cron: Cron | None = None


def _integer(props: dict[str, PropertyValue], name: str, bounds: tuple[int, int]) -> int:
    value = props[name]
    if type(value) is int:
        number = value
    elif isinstance(value, str) and _JAVA_INTEGER.match(value):
        number = int(value)
    else:
        raise ScheduleError(f"{name} must be an integer, got {value!r}")
    if not bounds[0] <= number <= bounds[1]:
        raise ScheduleError(f"{name} is out of range: {value!r}")
    if number < 0:
        raise ScheduleError(f"{name} must not be a negative value")
    props[name] = number
    return number


def schedule_of(props: dict[str, PropertyValue]) -> Schedule | None:
    """The Schedule the AMQ_SCHEDULED_* properties of a message ask for, or None.

    Checks them as ActiveMQ's message does when they are set (ScheduleError: not an
    integer, negative, a bad cron entry, a repeat over 1000) and stores the numbers as
    ints (ActiveMQ's Long / Integer properties)."""
    if DELAY not in props and PERIOD not in props and REPEAT not in props and CRON not in props:
        return None
    delay = _integer(props, DELAY, _LONG) if DELAY in props else None
    period = _integer(props, PERIOD, _LONG) if PERIOD in props else None
    repeat = _integer(props, REPEAT, _INT) if REPEAT in props else 0
    cron: Cron | None = None
    if CRON in props:
        entry = props[CRON]
        if not isinstance(entry, str):
            raise ScheduleError(f"{CRON} must be a string, got {entry!r}")
        try:
            cron = Cron(entry)
        except CronError as exc:
            raise ScheduleError(str(exc)) from None
    if repeat > MAX_REPEAT:
        raise ScheduleError(f"The scheduled repeat value is too large (at most {MAX_REPEAT})")
    if JOB_ID in props or (delay is None and period is None and cron is None):
        return None
    return Schedule(delay or 0, period or 0, repeat, cron)


def _bound(value: Any) -> int | None:
    """ACTION_START_TIME / _END_TIME as a number of ms (a long property or its text, as
    ActiveMQ's TypeConversionSupport reads it); None when absent or not a number."""
    if type(value) is int:
        return value
    if type(value) is tuple and type(value[1]) is int:
        return value[1]  # type: ignore[no-any-return]
    if isinstance(value, str) and _JAVA_INTEGER.match(value):
        return int(value)
    return None


class Job:
    """One scheduled message: where it goes, when next, what is left of its schedule.
    `count` rises with every reschedule (replay keeps the highest)."""

    __slots__ = (
        "address",
        "count",
        "cron",
        "delay",
        "due",
        "fresh_ids",
        "id",
        "journaled",
        "msg",
        "period",
        "repeat",
        "seq",
    )

    def __init__(
        self,
        job_id: str,
        address: Address,
        msg: Message,
        *,
        due: int,
        delay: int,
        period: int,
        repeat: int,
        cron: Cron | None,
        fresh_ids: bool,
        journaled: bool,
        count: int = 0,
    ) -> None:
        self.id = job_id
        self.address = address
        self.msg = msg
        self.due = due
        self.delay = delay
        self.period = period
        self.repeat = repeat
        self.cron = cron
        self.fresh_ids = fresh_ids
        self.journaled = journaled
        self.count = count
        self.seq = 0

    def __repr__(self) -> str:
        return f"<Job {self.id} to {self.address} due {self.due} repeat {self.repeat}>"


class Scheduler:
    """The broker's scheduled messages (module docstring); owned by the Core."""

    def __init__(
        self,
        core: Core,
        *,
        enabled: bool,
        max_jobs: int,
        max_bytes: int,
        call_later: Callable[[float, Callable[[], None]], Any] | None,
    ) -> None:
        self.core = core
        self.enabled = enabled
        self.max_jobs = max_jobs
        self.max_bytes = max_bytes
        self._call_later = call_later
        self.jobs: dict[str, Job] = {}
        # Bytes (Message.size) of the jobs' messages, for max_bytes.
        self.bytes = 0
        self.delivered = 0
        self._heap: list[tuple[int, int, Job]] = []
        self._seqs = itertools.count(1)
        self._timer: Any = None
        self._timer_due = 0
        # While `_run` fires jobs it re-arms once at the end, not per reschedule.
        self._running = False

    # -- creating jobs --------------------------------------------------------------------

    def check_room(self, msg: Message) -> None:
        """Refuse (CoreError STORE_FULL) a new job past max_jobs or max_bytes."""
        if len(self.jobs) >= self.max_jobs:
            raise CoreError(
                STORE_FULL,
                f"Job scheduler is full: {len(self.jobs)} scheduled messages, limit "
                f"{self.max_jobs} (broker.scheduler_max_jobs)",
            )
        if self.bytes + msg.size > self.max_bytes:
            raise CoreError(
                STORE_FULL,
                f"Job scheduler is full: {self.bytes} bytes of scheduled messages, limit "
                f"{self.max_bytes} (broker.scheduler_max_bytes)",
            )

    def journals(self, address: Address, msg: Message) -> bool:
        """Is the job of `msg` for `address` written to the journal?"""
        return (
            msg.persistent
            and self.core.records.persists
            and (address.kind == QUEUE or address.kind == TOPIC)
        )

    def add(self, address: Address, msg: Message, schedule: Schedule) -> Job:
        """Hold `msg` (its id and timestamp set) for `address` as `schedule` says."""
        now = self.core.now_ms()
        # The AMQ_SCHEDULED_* properties stay on the held message (BROWSE shows them,
        # as ActiveMQ's); `_deliver` takes them off each delivery.
        due = schedule.cron.next_after(now) if schedule.cron is not None else now
        if schedule.cron is None:
            # ActiveMQ: the delay if there is one, else the period (cron: see `_fire`).
            due += schedule.delay if schedule.delay > 0 else schedule.period
        # ActiveMQ's job id is the message's id (its scheduledJobId equals the
        # message-id of a first delivery); a fresh one should that be taken.
        job_id = msg.id if msg.id and msg.id not in self.jobs else self.core.next_id()
        job = Job(
            job_id,
            address,
            msg,
            due=due,
            delay=schedule.delay,
            period=schedule.period,
            repeat=schedule.repeat,
            cron=schedule.cron,
            fresh_ids=schedule.repeat != 0 or schedule.cron is not None,
            journaled=self.journals(address, msg),
        )
        self._hold(job)
        if job.journaled:
            self.core.records.job_added(job)
        return job

    def _hold(self, job: Job) -> None:
        self.jobs[job.id] = job
        self.bytes += job.msg.size
        self._push(job)

    def _push(self, job: Job) -> None:
        job.seq = next(self._seqs)
        heapq.heappush(self._heap, (job.due, job.seq, job))
        if not self._running and (self._timer is None or job.due < self._timer_due):
            self._arm()

    def restore(self, jobs: list[Job]) -> None:
        """Jobs recovered from the journal; overdue ones fire as soon as the loop runs."""
        for job in jobs:
            self._hold(job)

    # -- the timer ------------------------------------------------------------------------

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        heap = self._heap
        while heap and not self._current(heap[0]):
            heapq.heappop(heap)
        if not heap or self._call_later is None:
            return
        due = heap[0][0]
        self._timer_due = due
        self._timer = self._call_later(max(0, due - self.core.now_ms()) / 1000, self._run)

    def _current(self, entry: tuple[int, int, Job]) -> bool:
        job = entry[2]
        return job.seq == entry[1] and self.jobs.get(job.id) is job

    def _run(self) -> None:
        self._timer = None
        now = self.core.now_ms()
        heap = self._heap
        fired = 0
        self._running = True
        try:
            while heap and heap[0][0] <= now and fired < _BURST:
                entry = heapq.heappop(heap)
                if self._current(entry):
                    self._fire(entry[2], now)
                    fired += 1
        finally:
            self._running = False
            self._arm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- firing ---------------------------------------------------------------------------

    def _fire(self, job: Job, now: int) -> None:
        if job.cron is not None:
            if job.repeat > 0:
                self._series(job, now)
            else:
                self._deliver(job, now, last=False)
            self._reschedule(job, job.cron.next_after(now), job.repeat)
        elif job.repeat > 0:
            self._deliver(job, now, last=False)
            self._reschedule(job, now + job.period, job.repeat - 1)
        else:
            del self.jobs[job.id]
            self.bytes -= job.msg.size
            self._deliver(job, now, last=True)
            # After the delivery's own record: a crash between the two delivers again
            # rather than never.
            if job.journaled:
                self.core.records.job_done(job)

    def _series(self, job: Job, now: int) -> None:
        """A cron entry with a repeat fell due: a new job of repeat + 1 deliveries."""
        series = Job(
            self.core.next_id(),
            job.address,
            job.msg.copy(),
            due=now + (job.delay if job.delay > 0 else job.period),
            delay=job.delay,
            period=job.period,
            repeat=job.repeat,
            cron=None,
            fresh_ids=True,
            journaled=job.journaled,
        )
        self._hold(series)
        if series.journaled:
            self.core.records.job_added(series)

    def _reschedule(self, job: Job, due: int, repeat: int) -> None:
        job.due = due
        job.repeat = repeat
        job.count += 1
        self._push(job)
        if job.journaled:
            self.core.records.job_moved(job)

    def _deliver(self, job: Job, now: int, *, last: bool) -> None:
        msg = job.msg if last else job.msg.copy()
        if job.fresh_ids:
            msg.id = self.core.next_id()
        props = msg.properties
        for key in SCHEDULE_KEYS:
            props.pop(key, None)
        props[JOB_ID] = job.id
        if msg.expiration > 0 and msg.timestamp > 0:
            # ActiveMQ: the time to live counts from the delivery, never shortened.
            expiration = now + msg.expiration - msg.timestamp
            if expiration > msg.expiration:
                msg.expiration = expiration
                msg.timestamp = now
        try:
            self.core.send(job.address, msg)
        except CoreError as exc:
            # Nobody waits for this send: say why it was lost (e.g. its temporary
            # destination has gone), the schedule goes on.
            log.warning("scheduled message %s of job %s not delivered: %s", msg.id, job.id, exc)
            return
        self.delivered += 1

    def pending(self) -> int:
        return len(self.jobs)

    # -- management (ActiveMQ.Scheduler.Management) ---------------------------------------

    @staticmethod
    def is_management(address: Address) -> bool:
        name = address.name
        return len(name) >= len(MANAGEMENT) and name[: len(MANAGEMENT)].lower() == MANAGEMENT

    def jobs_due(self, start: int | None = None, end: int | None = None) -> list[Job]:
        """The jobs in due order; with both bounds, those next due within them."""
        jobs = sorted(self.jobs.values(), key=lambda j: (j.due, j.id))
        if start is None or end is None:
            return jobs
        return [j for j in jobs if start <= j.due <= end]

    def remove(self, job_id: str) -> bool:
        """Drop a job (False if there is none by that id)."""
        job = self.jobs.pop(job_id, None)
        if job is None:
            return False
        # Its heap entry is skipped as stale when it comes up (`_current`).
        self.bytes -= job.msg.size
        if job.journaled:
            self.core.records.job_done(job)
        return True

    def manage(self, msg: Message) -> None:
        """Carry out the AMQ_SCHEDULER_ACTION of a message sent to the management
        destination (module docstring); the message itself goes nowhere."""
        props = msg.properties
        action = props.get(ACTION)
        if not isinstance(action, str):
            return
        start, end = _bound(props.get(START_TIME)), _bound(props.get(END_TIME))
        if action == "BROWSE" and msg.reply_to is not None:
            for job in self.jobs_due(start, end):
                self._send_browsed(job, msg.reply_to)
        job_id = props.get(JOB_ID)
        if action == "REMOVE" and isinstance(job_id, str):
            self.remove(job_id)
        elif action == "REMOVEALL":
            for job in self.jobs_due(start, end):
                self.remove(job.id)

    def _send_browsed(self, job: Job, reply_to: Address) -> None:
        copy = job.msg.copy()
        copy.id = self.core.next_id()
        copy.persistent = False
        copy.type = "Advisory"  # ActiveMQ's AdvisorySupport.ADIVSORY_MESSAGE_TYPE
        copy.properties[JOB_ID] = job.id
        copy.properties["originalDestination"] = str(job.address)
        try:
            self.core.send(reply_to, copy)
        except CoreError as exc:
            log.warning("browsed job %s not sent to %s: %s", job.id, reply_to, exc)

    def schedule_send(
        self, address: Address, msg: Message, schedule: Schedule
    ) -> Awaitable[None] | None:
        """`Core.schedule` without a transaction: create the job now."""
        self.check_room(msg)
        job = self.add(address, msg, schedule)
        return self.core.records.barrier() if job.journaled else None
