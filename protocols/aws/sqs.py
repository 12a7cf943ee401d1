"""SQS actions: one small handler per action, JSON-shaped params in, JSON-shaped result out.

SqsService routes every action (`actions`) and holds the message actions (send, receive,
delete, visibility, and their batches: the hot path, with no indirection); the queue
actions are in queue_actions.py, move tasks in moves.py.

Handlers never see the wire (wire.py converts Query requests to this shape) and raise
SqsError for AWS's error responses. A send answers only after the journal has the
message (the awaitable of PullQueue.send / Core.barrier). Receives are leases of the
core (broker/core/leases.py): the receipt handle names the queue, the message id and
the lease token, so a handle is unique per receive.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from broker.core import Core, CoreError, Message
from broker.core.leases import Lease, Leases, PullQueue
from protocols.aws import attributes as attrs
from protocols.aws import fifo
from protocols.aws.errors import SqsError, from_core, int_param, invalid, missing, no_queue
from protocols.aws.flow import SendGate
from protocols.aws.ids import message_id
from protocols.aws.md5 import md5_of_attributes, md5_of_body
from protocols.aws.moves import MoveTasks
from protocols.aws.queue_actions import QueueActions
from protocols.aws.queues import QueueRegistry, SqsQueue
from protocols.aws.resolve import Context, Resolver

SENDER_ID = "AWS.SQS.SenderId"
SEQUENCE_NUMBER = "AWS.SQS.SequenceNumber"
DEDUP_ID = "AWS.SQS.MessageDeduplicationId"
TRACE_HEADER = "AWS.SQS.AWSTraceHeader"

SYSTEM_ATTRIBUTES = (
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageDeduplicationId",
    "MessageGroupId",
    "AWSTraceHeader",
)
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Names the MessageIds of messages other protocols sent (uuid5 of their core id).
_ID_NAMESPACE = uuid.UUID("6b1d1f0e-8a53-4c47-9d0e-2f6f3b6c9a10")


def sqs_message_id(core_id: str) -> str:
    """The MessageId SQS shows for core message id `core_id`, in AWS's UUID form (code
    uses MessageIds as batch entry ids, which allow no ':'). The one place the mapping
    is written: a message SendMessage made has a UUID core id already (so STOMP's
    message-id is the same string); another protocol's "ID:..." id is named by a UUID
    derived from it, the same on every receive and after a restart."""
    if _UUID.fullmatch(core_id):
        return core_id
    return str(uuid.uuid5(_ID_NAMESPACE, core_id))


_GROUP_ID = re.compile(r"[!-~]{1,128}")
MAX_BATCH = 10


Handler = Callable[[dict[str, Any], Context], Awaitable[dict[str, Any]]]
# A validated send: the core message, its delay, the response fields, the FIFO dedup key.
Prepared = tuple[Message, float, dict[str, Any], tuple[str | None, str] | None]


class SqsService(Resolver):
    """The SQS actions over one broker's core."""

    def __init__(
        self,
        core: Core,
        leases: Leases,
        registry: QueueRegistry,
        *,
        send_block_timeout: float = 10.0,
        max_blocked_sends: int = 100,
    ) -> None:
        super().__init__(core, leases, registry)
        # Sends wait here while the store is over its limit (policy "block").
        self.gate = SendGate(core, send_block_timeout, max_blocked_sends)
        # The broker is stopping: nothing waits (stop_waiting).
        self.draining = False
        self.moves = MoveTasks(self)
        qa = self.queue_actions = QueueActions(self)
        self.actions: dict[str, Handler] = {
            "CreateQueue": qa.create_queue,
            "GetQueueUrl": qa.get_queue_url,
            "ListQueues": qa.list_queues,
            "DeleteQueue": qa.delete_queue,
            "GetQueueAttributes": qa.get_queue_attributes,
            "SetQueueAttributes": qa.set_queue_attributes,
            "PurgeQueue": qa.purge_queue,
            "SendMessage": self.send_message,
            "SendMessageBatch": self.send_message_batch,
            "ReceiveMessage": self.receive_message,
            "DeleteMessage": self.delete_message,
            "DeleteMessageBatch": self.delete_message_batch,
            "ChangeMessageVisibility": self.change_message_visibility,
            "ChangeMessageVisibilityBatch": self.change_message_visibility_batch,
            "TagQueue": qa.tag_queue,
            "UntagQueue": qa.untag_queue,
            "ListQueueTags": qa.list_queue_tags,
            "ListDeadLetterSourceQueues": qa.list_dead_letter_source_queues,
            "AddPermission": qa.add_permission,
            "RemovePermission": qa.remove_permission,
            "StartMessageMoveTask": self.moves.start,
            "CancelMessageMoveTask": self.moves.cancel,
            "ListMessageMoveTasks": self.moves.list,
        }

    def stop_waiting(self) -> None:
        """Broker stop, first step: nothing waits any more. Sends held back by the store
        limit are answered ServiceUnavailable (nothing stored), long polls return what
        they have and later receives do not wait; leases stay until `close`, so a
        delete or visibility change still in flight applies."""
        self.draining = True
        self.gate.close()
        self.leases.answer_waiters()

    def close(self) -> None:
        """Broker stop, last step: move tasks are cancelled, long polls answered, leases
        ended."""
        self.gate.close()
        self.moves.close()
        self.leases.close()

    def parse_handle(self, q: SqsQueue, handle: Any) -> str:
        """The lease token in a receipt handle of queue `q`."""
        try:
            name, token = base64.urlsafe_b64decode(str(handle)).decode().split("\n")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            name, token = "", ""
        if not name or not token:
            raise SqsError(
                "ReceiptHandleIsInvalid",
                f'The input receipt handle "{handle}" is not a valid receipt handle.',
            )
        if name != q.name:
            # A real handle, of another queue: AWS's text for that case.
            raise SqsError(
                "ReceiptHandleIsInvalid",
                f'The receipt handle "{handle}" is not valid for this queue.',
            )
        return token

    # -- sending --------------------------------------------------------------------------

    def _prepare(self, q: SqsQueue, e: dict[str, Any], ctx: Context) -> Prepared:
        """Validate one send: the core message, its delay, the response fields and the
        FIFO deduplication key."""
        body = e.get("MessageBody")
        if body is None or body == "":
            raise missing("MessageBody")
        body = str(body)
        if not attrs.valid_text(body):
            raise SqsError(
                "InvalidMessageContents",
                "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | "
                "#x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
            )
        user = attrs.parse_message_attributes(e.get("MessageAttributes"))
        system = self._system_attributes(e.get("MessageSystemAttributes"))
        size = len(body.encode()) + sum(a.size(n) for n, a in user.items())
        limit = q.int("MaximumMessageSize")
        if size > limit:
            raise invalid(
                f"One or more parameters are invalid. Reason: Message must be shorter than "
                f"{limit} bytes."
            )
        delay = float(q.int("DelaySeconds"))
        if e.get("DelaySeconds") is not None:
            given = int_param(
                e["DelaySeconds"], "DelaySeconds", 0, 900, "Must be between 0 and 900."
            )
            if not q.fifo:
                delay = given
            elif given:
                # AWS refuses only a positive per-message delay on a FIFO queue; 0 (which
                # code shared with standard queues passes) is accepted, and the queue's
                # own delay applies.
                raise invalid(
                    f"Value {e['DelaySeconds']} for parameter DelaySeconds is invalid. Reason: "
                    "The request include parameter that is not valid for this queue type."
                )
        group = e.get("MessageGroupId")
        dedup = e.get("MessageDeduplicationId")
        key: tuple[str | None, str] | None = None
        if group is not None and not _GROUP_ID.fullmatch(str(group)):
            raise invalid(f"Value {group} for parameter MessageGroupId is invalid.")
        if q.fifo:
            if not group:
                raise missing("MessageGroupId")
            if dedup is None:
                if q.get("ContentBasedDeduplication") != "true":
                    raise invalid(
                        "The queue should either have ContentBasedDeduplication enabled or "
                        "MessageDeduplicationId provided explicitly"
                    )
                dedup = fifo.content_dedup_id(body)
            elif not _GROUP_ID.fullmatch(str(dedup)):
                raise invalid(f"Value {dedup} for parameter MessageDeduplicationId is invalid.")
            scope = q.get("DeduplicationScope")
            key = (group if scope == "messageGroup" else None, str(dedup))
        elif dedup is not None:
            raise invalid(
                f"Value {dedup} for parameter MessageDeduplicationId is invalid. Reason: The "
                "request include parameter that is not valid for this queue type."
            )
        props = attrs.to_properties(user)
        props[SENDER_ID] = ctx.sender_id
        if system:
            props[TRACE_HEADER] = str(system["AWSTraceHeader"].value)
        if key is not None:
            props[DEDUP_ID] = key[1]
        msg = Message(body.encode(), properties=props, persistent=True, text=True, group_id=group)
        msg.id = message_id()
        result: dict[str, Any] = {"MD5OfMessageBody": md5_of_body(body)}
        if user:
            result["MD5OfMessageAttributes"] = md5_of_attributes(user)
        if system:
            result["MD5OfMessageSystemAttributes"] = md5_of_attributes(system)
        return msg, delay, result, key

    @staticmethod
    def _system_attributes(raw: Any) -> dict[str, attrs.Attribute]:
        if not raw:
            return {}
        out: dict[str, attrs.Attribute] = {}
        for name, spec in raw.items():
            if name != "AWSTraceHeader":
                raise invalid(f"Message system attribute name '{name}' is invalid.")
            if not isinstance(spec, dict) or spec.get("DataType") != "String":
                raise invalid(
                    f"Message system attribute '{name}' must contain a non-empty value of "
                    "type 'String'."
                )
            value = spec.get("StringValue")
            if not value:
                raise invalid(
                    f"Message system attribute '{name}' must contain a non-empty value of "
                    "type 'String'."
                )
            out[name] = attrs.Attribute("String", str(value))
        return out

    def _send(
        self, q: SqsQueue, pq: PullQueue, prepared: Prepared
    ) -> tuple[dict[str, Any], Awaitable[None] | None]:
        """Send one validated message (no await: the FIFO deduplication check and its
        record are one step)."""
        msg, delay, result, key = prepared
        now = self.core.now_ms()
        if key is not None:
            seen = q.dedup.seen(key, now)
            if seen is not None:
                result["MessageId"], result["SequenceNumber"] = seen
                return result, None
            seq = fifo.next_sequence_number()
            msg.properties[SEQUENCE_NUMBER] = seq
        done = pq.send(msg, delay)
        result["MessageId"] = msg.id
        if key is not None:
            result["SequenceNumber"] = seq
            q.dedup.record(key, now, msg.id, seq)
        return result, done

    async def send_message(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        q = self.queue(p, ctx)
        prepared = self._prepare(q, p, ctx)
        q = await self._space(q)
        result, done = self._send(q, self.pull(q), prepared)
        if done is not None:
            await done
        return result

    async def _space(self, q: SqsQueue) -> SqsQueue:
        """Wait while the store is full (SendGate); the queue again after a wait, since
        it may have been deleted meanwhile (QueueDoesNotExist then)."""
        gate = self.gate
        if not gate.waiting and not self.core.store_full:
            return q  # the hot path: no await
        await gate.space(q.address)
        found = self.registry.find(q.name)
        if found is None:
            raise no_queue()
        return found

    def _check_batch(self, entries: Any, kind: str) -> list[dict[str, Any]]:
        if not entries:
            raise SqsError(
                "EmptyBatchRequest", f"There should be at least one {kind} in the request."
            )
        if len(entries) > MAX_BATCH:
            raise SqsError(
                "TooManyEntriesInBatchRequest",
                f"Maximum number of entries per request are {MAX_BATCH}. "
                f"You have sent {len(entries)}.",
            )
        seen: set[str] = set()
        for e in entries:
            eid = str(e.get("Id", "")) if isinstance(e, dict) else ""
            if not _BATCH_ID.fullmatch(eid):
                raise SqsError(
                    "InvalidBatchEntryId",
                    "A batch entry id can only contain alphanumeric characters, hyphens and "
                    "underscores. It can be at most 80 letters long.",
                )
            if eid in seen:
                raise SqsError("BatchEntryIdsNotDistinct", f"Id {eid} repeated.")
            seen.add(eid)
        return entries

    async def send_message_batch(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        q = self.queue(p, ctx)
        entries = self._check_batch(p.get("Entries"), "SendMessageBatchRequestEntry")
        total = 0
        for e in entries:
            total += len(str(e.get("MessageBody") or "").encode())
            for name, spec in (e.get("MessageAttributes") or {}).items():
                if isinstance(spec, dict):
                    value = spec.get("StringValue") or spec.get("BinaryValue") or ""
                    total += len(name.encode()) + len(str(spec.get("DataType", "")).encode())
                    total += len(value) if isinstance(value, bytes) else len(str(value).encode())
        limit = q.int("MaximumMessageSize")
        if total > limit:
            raise SqsError(
                "BatchRequestTooLong",
                f"Batch requests cannot be longer than {limit} bytes. You have sent {total} bytes.",
            )
        ok: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        valid: list[tuple[str, Prepared]] = []
        for e in entries:
            try:
                valid.append((e["Id"], self._prepare(q, e, ctx)))
            except SqsError as err:
                failed.append(_failure(e["Id"], err))
        if valid:
            # The whole request waits (once) or is throttled, as SQS throttles a request.
            q = await self._space(q)
        pq = self.pull(q)
        waits = False
        for entry_id, prepared in valid:
            try:
                result, done = self._send(q, pq, prepared)
            except SqsError as err:
                failed.append(_failure(entry_id, err))
                continue
            except CoreError as exc:  # one entry refused by the core fails alone
                failed.append(_failure(entry_id, from_core(exc)))
                continue
            waits = waits or done is not None
            ok.append({"Id": entry_id, **result})
        if waits:
            done = self.core.barrier()
            if done is not None:
                await done
        return {"Successful": ok, "Failed": failed}

    # -- receiving ------------------------------------------------------------------------

    async def receive_message(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        q = self.queue(p, ctx)
        count = int_param(
            p.get("MaxNumberOfMessages", 1),
            "MaxNumberOfMessages",
            1,
            10,
            "Must be between 1 and 10, if provided.",
        )
        visibility = int_param(
            p.get("VisibilityTimeout", q.get("VisibilityTimeout")),
            "VisibilityTimeout",
            0,
            43200,
            "Must be >= 0 and <= 43200, if provided.",
        )
        wait = int_param(
            p.get("WaitTimeSeconds", q.get("ReceiveMessageWaitTimeSeconds")),
            "WaitTimeSeconds",
            0,
            20,
            "Must be >= 0 and <= 20, if provided.",
        )
        names = set(p.get("AttributeNames") or ()) | set(p.get("MessageSystemAttributeNames") or ())
        if "All" in names:
            names = set(SYSTEM_ATTRIBUTES)
        wanted = list(p.get("MessageAttributeNames") or ())
        if self.draining:
            wait = 0  # a receive accepted before the stop must not hold the drain
        leases = await self.pull(q).receive(count, visibility, wait)
        messages = [self._message_out(q, lease, names, wanted) for lease in leases]
        return {"Messages": messages} if messages else {}

    def _message_out(
        self, q: SqsQueue, lease: Lease, names: set[str], wanted: list[str]
    ) -> dict[str, Any]:
        msg = lease.msg
        body = msg.body.decode("utf-8", "replace")
        out: dict[str, Any] = {
            "MessageId": sqs_message_id(msg.id),
            "ReceiptHandle": self.handle(q, lease.token),
            "MD5OfBody": md5_of_body(body),
            "Body": body,
        }
        if names:
            system = self._system_values(msg, lease)
            chosen = {n: v for n, v in system.items() if n in names}
            if chosen:
                out["Attributes"] = chosen
        user = attrs.select(attrs.from_message(msg), wanted)
        if user:
            out["MD5OfMessageAttributes"] = md5_of_attributes(user)
            out["MessageAttributes"] = {n: a.to_wire() for n, a in user.items()}
        return out

    def _system_values(self, msg: Message, lease: Lease) -> dict[str, str]:
        props = msg.properties
        values = {
            "SenderId": str(props.get(SENDER_ID, self.account)),
            "SentTimestamp": str(msg.timestamp),
            "ApproximateReceiveCount": str(lease.receive_count),
            "ApproximateFirstReceiveTimestamp": str(lease.first_receive),
        }
        for name, key in (
            ("SequenceNumber", SEQUENCE_NUMBER),
            ("MessageDeduplicationId", DEDUP_ID),
            ("AWSTraceHeader", TRACE_HEADER),
        ):
            if key in props:
                values[name] = str(props[key])
        if msg.group_id is not None:
            values["MessageGroupId"] = msg.group_id
        return values

    # -- deleting and visibility ----------------------------------------------------------

    def _delete(self, q: SqsQueue, handle: Any) -> None:
        if not handle:
            raise missing("ReceiptHandle")
        token = self.parse_handle(q, handle)
        pq = self.pull(q)
        lease = pq.lease(token)
        if lease is None:
            return  # deleted already, or received again since: succeeds, as in SQS
        if not lease.active and q.fifo:
            raise invalid(
                f"Value {handle} for parameter ReceiptHandle is invalid. Reason: The receipt "
                "handle has expired."
            )
        pq.delete(lease)

    async def delete_message(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        q = self.queue(p, ctx)
        self._delete(q, p.get("ReceiptHandle"))
        await self._durable()
        return {}

    async def delete_message_batch(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        q = self.queue(p, ctx)
        entries = self._check_batch(p.get("Entries"), "DeleteMessageBatchRequestEntry")
        ok, failed = [], []
        for e in entries:
            try:
                self._delete(q, e.get("ReceiptHandle"))
            except SqsError as err:
                failed.append(_failure(e["Id"], err))
            except CoreError as exc:  # one entry refused by the core fails alone
                failed.append(_failure(e["Id"], from_core(exc)))
            else:
                ok.append({"Id": e["Id"]})
        await self._durable()
        return {"Successful": ok, "Failed": failed}

    def _change(self, q: SqsQueue, handle: Any, timeout: Any) -> None:
        if not handle:
            raise missing("ReceiptHandle")
        if timeout is None:
            raise missing("VisibilityTimeout")
        seconds = int_param(timeout, "VisibilityTimeout", 0, 43200, "Must be >= 0 and <= 43200.")
        token = self.parse_handle(q, handle)
        pq = self.pull(q)
        lease = pq.lease(token)
        if lease is None:
            raise invalid(
                f"Value {handle} for parameter ReceiptHandle is invalid. Reason: Message does "
                "not exist or is not available for visibility timeout change."
            )
        if not lease.active:
            # The handle's receive has ended (its visibility timeout passed): AWS answers
            # InvalidParameterValue, "The receipt handle has expired" (MessageNotInflight
            # is in SQS's model but not what it sends here).
            raise invalid(
                f"Value {handle} for parameter ReceiptHandle is invalid. Reason: The receipt "
                "handle has expired."
            )
        pq.change_visibility(lease, seconds)

    async def change_message_visibility(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        q = self.queue(p, ctx)
        self._change(q, p.get("ReceiptHandle"), p.get("VisibilityTimeout"))
        return {}

    async def change_message_visibility_batch(
        self, p: dict[str, Any], ctx: Context
    ) -> dict[str, Any]:
        q = self.queue(p, ctx)
        entries = self._check_batch(p.get("Entries"), "ChangeMessageVisibilityBatchRequestEntry")
        ok, failed = [], []
        for e in entries:
            try:
                self._change(q, e.get("ReceiptHandle"), e.get("VisibilityTimeout"))
            except SqsError as err:
                failed.append(_failure(e["Id"], err))
            except CoreError as exc:  # one entry refused by the core fails alone
                failed.append(_failure(e["Id"], from_core(exc)))
            else:
                ok.append({"Id": e["Id"]})
        return {"Successful": ok, "Failed": failed}

    async def _durable(self) -> None:
        done = self.core.barrier()
        if done is not None:
            await done


def _failure(entry_id: str, err: SqsError) -> dict[str, Any]:
    return {
        "Id": entry_id,
        "SenderFault": err.sender_fault,
        "Code": err.query_code,
        "Message": err.message,
    }
