"""Message move tasks (StartMessageMoveTask, CancelMessageMoveTask, ListMessageMoveTasks):
DLQ redrive as a background task on the broker's event loop.

A task moves the messages waiting in a dead-letter queue (the source: a queue named as
``deadLetterTargetArn`` by some queue's RedrivePolicy) to DestinationArn, or, without
one, each back to the queue it was dead-lettered from (recorded at redrive in property
``AWS.SQS.DeadLetterSourceQueue``; a message without it, e.g. one sent to the DLQ
directly, goes to the DLQ's only source queue, and the task fails if there are several).
Each message moves by Core.move (PullQueue.move_out): one journal transaction; body,
attributes and SentTimestamp kept, receive count reset, and a new MessageId (the
journal never takes a message id back on a queue it has left). ApproximateNumberOfMessagesToMove
is the number waiting when the task starts; the task completes when it has moved that
many or the source has nothing left waiting (in-flight messages are not moved).
MaxNumberOfMessagesPerSecond paces the moves; without it the task moves in batches,
yielding to the loop between them.

Ownership: tasks are asyncio tasks on the loop; everything they touch is loop-only, and
nothing awaits between taking a message and moving it. Task records are in memory (the
10 most recent per source); a broker stop cancels running tasks, and a restart forgets
them (the messages moved so far stay moved).
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

from broker.core import QUEUE, Address, CoreError, Message
from protocols.aws.errors import SqsError, from_core, invalid, missing
from protocols.aws.queues import DEAD_LETTER_SOURCE as ORIGIN
from protocols.aws.resolve import Resolver

MAX_RATE = 500
_BATCH = 100
_KEEP = 10

RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
CANCELLING = "CANCELLING"
CANCELLED = "CANCELLED"
FAILED = "FAILED"


@dataclass
class MoveTask:
    """One message move task and its progress."""

    handle: str
    source_arn: str
    destination_arn: str | None
    rate: int | None
    to_move: int
    started: int
    status: str = RUNNING
    moved: int = 0
    failure: str = ""
    runner: asyncio.Task[None] | None = None

    def entry(self) -> dict[str, Any]:
        """The task as a ListMessageMoveTasksResultEntry."""
        out: dict[str, Any] = {}
        if self.status == RUNNING:
            out["TaskHandle"] = self.handle
        out["Status"] = self.status
        out["SourceArn"] = self.source_arn
        if self.destination_arn is not None:
            out["DestinationArn"] = self.destination_arn
        if self.rate is not None:
            out["MaxNumberOfMessagesPerSecond"] = self.rate
        out["ApproximateNumberOfMessagesMoved"] = self.moved
        out["ApproximateNumberOfMessagesToMove"] = self.to_move
        if self.status == FAILED:
            out["FailureReason"] = self.failure
        out["StartedTimestamp"] = self.started
        return out


class MoveTasks:
    """The move tasks of one SQS service."""

    def __init__(self, service: Resolver) -> None:
        self.service = service
        self.registry = service.registry
        # source ARN -> its tasks, most recent first.
        self.by_source: dict[str, list[MoveTask]] = {}
        self.by_handle: dict[str, MoveTask] = {}

    # -- actions --------------------------------------------------------------------------

    async def start(self, p: dict[str, Any], ctx: object) -> dict[str, Any]:
        source_arn = p.get("SourceArn")
        if not source_arn:
            raise missing("SourceArn")
        source_arn = str(source_arn)
        source = self._queue_of(source_arn, "SourceArn")
        if not self._sources_of(source_arn):
            raise invalid("Source queue must be configured as a Dead Letter Queue.")
        destination_arn = p.get("DestinationArn")
        if destination_arn:
            destination_arn = str(destination_arn)
            self._queue_of(destination_arn, "DestinationArn")
            if destination_arn == source_arn:
                raise invalid("Source and destination queues must be different.")
        else:
            destination_arn = None
        rate = p.get("MaxNumberOfMessagesPerSecond")
        if rate is not None:
            rate = _rate(rate)
        if any(t.status in (RUNNING, CANCELLING) for t in self.by_source.get(source_arn, ())):
            raise invalid(
                "There is already a task running. Only one active task is allowed for a "
                "source queue arn at a given time."
            )
        pq = self.service.pull(source)
        handle = base64.b64encode(
            json.dumps({"taskId": str(uuid.uuid4()), "sourceArn": source_arn}).encode()
        ).decode("ascii")
        task = MoveTask(
            handle,
            source_arn,
            destination_arn,
            rate,
            pq.queue.count,
            self.service.core.now_ms(),
        )
        tasks = self.by_source.setdefault(source_arn, [])
        tasks.insert(0, task)
        for old in tasks[_KEEP:]:
            self.by_handle.pop(old.handle, None)
        del tasks[_KEEP:]
        self.by_handle[handle] = task
        task.runner = asyncio.get_running_loop().create_task(self._run(task))
        task.runner.add_done_callback(lambda runner: self._ended(task, runner))
        return {"TaskHandle": handle}

    async def cancel(self, p: dict[str, Any], ctx: object) -> dict[str, Any]:
        handle = p.get("TaskHandle")
        if not handle:
            raise missing("TaskHandle")
        task = self.by_handle.get(str(handle))
        if task is None or task.status != RUNNING:
            raise SqsError("ResourceNotFoundException", "Task does not exist.")
        task.status = CANCELLING
        if task.runner is not None:
            task.runner.cancel()
        return {"ApproximateNumberOfMessagesMoved": task.moved}

    async def list(self, p: dict[str, Any], ctx: object) -> dict[str, Any]:
        source_arn = p.get("SourceArn")
        if not source_arn:
            raise missing("SourceArn")
        self._queue_of(str(source_arn), "SourceArn")
        limit = p.get("MaxResults")
        size = 1
        if limit is not None:
            try:
                size = int(limit)
            except (TypeError, ValueError):
                size = 0
            if isinstance(limit, bool) or not 1 <= size <= _KEEP:
                raise invalid(
                    f"Value {limit} for parameter MaxResults is invalid. Reason: Must be "
                    f"between 1 and {_KEEP}."
                )
        tasks = self.by_source.get(str(source_arn), [])
        return {"Results": [t.entry() for t in tasks[:size]]}

    def close(self) -> None:
        """Broker stop: cancel running tasks."""
        for tasks in self.by_source.values():
            for task in tasks:
                if task.runner is not None and not task.runner.done():
                    task.status = CANCELLING
                    task.runner.cancel()

    # -- the background task --------------------------------------------------------------

    async def _run(self, task: MoveTask) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / task.rate if task.rate else 0.0
        due = loop.time()
        try:
            while task.moved < task.to_move and self._move_one(task):
                if task.moved >= task.to_move:
                    break
                if interval:
                    due += interval
                    await asyncio.sleep(max(0.0, due - loop.time()))
                elif task.moved % _BATCH == 0:
                    await asyncio.sleep(0)
        except _Failed as exc:
            task.status = FAILED
            task.failure = str(exc)
            return
        except CoreError as exc:
            # The core refused a move: the task fails with the SQS reading of why,
            # rather than the runner dying and the task showing RUNNING for ever.
            task.status = FAILED
            task.failure = from_core(exc).message
            return
        task.status = COMPLETED

    @staticmethod
    def _ended(task: MoveTask, runner: asyncio.Task[None]) -> None:
        """Done callback: a cancelled runner (even one that never started) is CANCELLED."""
        if runner.cancelled():
            task.status = CANCELLED

    def _move_one(self, task: MoveTask) -> bool:
        """Move the next waiting message; False when the source has none left."""
        source = self.registry.find(self.registry.name_of_arn(task.source_arn) or "")
        if source is None:
            raise _Failed("The source queue does not exist any more.")
        pq = self.service.pull(source)
        msg = pq.take_pending()
        if msg is None:
            return False
        try:
            target = self._target(task, msg)
        except _Failed:
            pq.queue.push_front([msg])
            raise
        copy = msg.copy()
        copy.properties.pop(ORIGIN, None)
        # A new id: the journal never takes a message id back on a queue it has left.
        copy.id = self.service.core.next_id()
        pq.move_out(msg, copy, target)
        task.moved += 1
        return True

    def _target(self, task: MoveTask, msg: Message) -> Address:
        """Where `msg` goes: DestinationArn, else the queue it was dead-lettered from."""
        if task.destination_arn is not None:
            name = self.registry.name_of_arn(task.destination_arn)
            if name is None or self.registry.find(name) is None:
                raise _Failed("The destination queue does not exist any more.")
            return Address(QUEUE, name)
        origin = msg.properties.get(ORIGIN)
        if isinstance(origin, str) and self.registry.find(origin) is not None:
            return Address(QUEUE, origin)
        sources = self._sources_of(task.source_arn)
        if len(sources) == 1:
            return Address(QUEUE, sources[0])
        raise _Failed(
            f"The original source queue of message {msg.id} is unknown and the "
            "dead-letter queue has several source queues."
        )

    # -- helpers --------------------------------------------------------------------------

    def _queue_of(self, arn: str, parameter: str) -> Any:
        name = self.registry.name_of_arn(arn)
        q = self.registry.find(name) if name else None
        if q is None:
            raise SqsError(
                "ResourceNotFoundException",
                f"The resource that you specified for the {parameter} parameter doesn't exist.",
            )
        return q

    def _sources_of(self, dlq_arn: str) -> list[str]:
        """Names of the queues whose RedrivePolicy targets `dlq_arn`."""
        out = []
        for name in self.registry.names():
            q = self.registry.find(name)
            redrive = q.attributes.get("RedrivePolicy") if q else None
            if redrive and json.loads(redrive).get("deadLetterTargetArn") == dlq_arn:
                out.append(name)
        return out


class _Failed(Exception):
    """The task cannot go on (its message is the FailureReason)."""


def _rate(value: Any) -> int:
    try:
        rate = int(value)
    except (TypeError, ValueError):
        rate = 0
    if isinstance(value, bool) or not 1 <= rate <= MAX_RATE:
        raise invalid(
            f"Value {value} for parameter MaxNumberOfMessagesPerSecond is invalid. Reason: "
            f"Must be between 1 and {MAX_RATE}."
        )
    return rate
