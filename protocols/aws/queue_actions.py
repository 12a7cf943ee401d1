"""SQS queue actions: create, look up, list, delete, attributes, purge, tags, permissions
and dead-letter sources (the message actions are in sqs.py, move tasks in moves.py).

Every change to a queue's attributes or tags is written to the journal by the registry
(queues.py), and the action answers only once that record is durable, as a send does.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable
from typing import Any

from protocols.aws.errors import SqsError, int_param, invalid, missing, no_queue
from protocols.aws.queues import (
    DEFAULTS,
    FIFO_DEFAULTS,
    OPTIONAL,
    READ_ONLY,
    SqsQueue,
    valid_name,
)
from protocols.aws.resolve import Context, Resolver

MAX_TAGS = 50
MAX_PERMISSION_ACTIONS = 7
SHAREABLE_ACTIONS = frozenset(
    {
        "*",
        "SendMessage",
        "ReceiveMessage",
        "DeleteMessage",
        "ChangeMessageVisibility",
        "GetQueueAttributes",
        "GetQueueUrl",
    }
)
# Actions that exist but only a queue's owner may call (not shareable by AddPermission).
OWNER_ONLY_ACTIONS = frozenset(
    {
        "AddPermission",
        "RemovePermission",
        "CreateQueue",
        "DeleteQueue",
        "SetQueueAttributes",
        "ListQueues",
        "PurgeQueue",
        "ListDeadLetterSourceQueues",
        "TagQueue",
        "UntagQueue",
        "ListQueueTags",
        "StartMessageMoveTask",
        "CancelMessageMoveTask",
        "ListMessageMoveTasks",
    }
)


class QueueActions:
    """The queue-level SQS actions of one SqsService (which routes requests to them)."""

    def __init__(self, service: Resolver) -> None:
        self.service = service
        self.core = service.core
        self.leases = service.leases
        self.registry = service.registry
        self.account = service.account
        self._purged: dict[str, float] = {}

    async def create_queue(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        name = p.get("QueueName")
        if not name:
            raise missing("QueueName")
        raw_attrs = p.get("Attributes") or {}
        fifo_attr = str(raw_attrs.get("FifoQueue", "false")).lower() == "true"
        is_fifo = name.endswith(".fifo")
        if fifo_attr != is_fifo or not valid_name(name):
            if fifo_attr or is_fifo:
                raise invalid(
                    "The name of a FIFO queue can only include alphanumeric characters, "
                    "hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length."
                )
            raise invalid(
                "Can only include alphanumeric characters, hyphens, or underscores. "
                "1 to 80 in length"
            )
        checked = self.registry.check_attributes(
            raw_attrs, fifo=is_fifo, creating=True, region=ctx.region
        )
        checked.pop("FifoQueue", None)
        tags = self._check_tags(p.get("tags") or p.get("Tags") or {}, {})
        name = self.registry.regions.key(ctx.region, name)
        existing = self.registry.find(name)
        if existing is not None:
            for key, value in checked.items():
                if existing.get(key) != value:
                    raise SqsError(
                        "QueueNameExists",
                        "A queue already exists with the same name and a different value "
                        f"for attribute {key}",
                    )
            # The same promise as the call that created it: its record is durable.
            await _durable(self.core.barrier())
            return {"QueueUrl": self.service.url(ctx, name)}
        await _durable(self.registry.create(name, checked, tags))
        return {"QueueUrl": self.service.url(ctx, name)}

    async def get_queue_url(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        name = p.get("QueueName")
        if not name:
            raise missing("QueueName")
        owner = p.get("QueueOwnerAWSAccountId")
        q = self.registry.lookup(ctx.region, str(name))
        if (owner and owner != self.account) or q is None:
            raise no_queue()
        return {"QueueUrl": self.service.url(ctx, q.name)}

    async def list_queues(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        prefix = p.get("QueueNamePrefix") or ""
        name_of = self.registry.regions.name_of
        keys = [k for k in self.registry.names(ctx.region) if name_of(k).startswith(prefix)]
        return self._page(p, [self.service.url(ctx, k) for k in keys], "QueueUrls")

    def _page(self, p: dict[str, Any], items: list[str], key: str) -> dict[str, Any]:
        """MaxResults / NextToken pagination over a sorted list (token = next index)."""
        limit = p.get("MaxResults")
        token = p.get("NextToken")
        if limit is None:
            if token:
                raise invalid("MaxResults is a mandatory parameter when you provide a NextToken.")
            return {key: items[:1000]} if items else {}
        size = int_param(
            limit, "MaxResults", 1, 1000, "MaxResults must be an integer between 1 and 1000."
        )
        start = 0
        if token:
            try:
                start = int(base64.b64decode(token).decode())
            except (binascii.Error, ValueError, UnicodeDecodeError):
                raise invalid("Invalid NextToken value.") from None
        page = items[start : start + size]
        out: dict[str, Any] = {key: page} if page else {}
        if start + size < len(items):
            out["NextToken"] = base64.b64encode(str(start + size).encode()).decode()
        return out

    async def delete_queue(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        q = self.service.queue(p, ctx)
        self.leases.drop(q.address)
        self.core.delete(q.address)
        await _durable(self.registry.delete(q))
        return {}

    async def get_queue_attributes(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        q = self.service.queue(p, ctx)
        wanted = p.get("AttributeNames") or []
        known = self._attribute_names(q)
        if "All" in wanted:
            names = known
        else:
            names = []
            for name in wanted:
                if name not in known and name not in OPTIONAL:
                    raise SqsError("InvalidAttributeName", f"Unknown Attribute {name}.")
                names.append(name)
        values = self._attribute_values(q)
        out = {n: values[n] for n in names if n in values}
        return {"Attributes": out} if out else {}

    def _attribute_names(self, q: SqsQueue) -> list[str]:
        names = [*READ_ONLY, *DEFAULTS, *(n for n in OPTIONAL if n in q.attributes)]
        if q.fifo:
            names.extend(FIFO_DEFAULTS)
        return names

    def _attribute_values(self, q: SqsQueue) -> dict[str, str]:
        core_q = self.core.queues.get(q.address)
        pq = self.leases.queues.get(q.address)
        values = {name: q.get(name) for name in DEFAULTS}
        values.update({n: v for n, v in q.attributes.items() if n in OPTIONAL})
        if q.fifo:
            values.update({name: q.get(name) for name in FIFO_DEFAULTS})
        values["ApproximateNumberOfMessages"] = str(core_q.count if core_q else 0)
        values["ApproximateNumberOfMessagesNotVisible"] = str(
            core_q.inflight_count if core_q else 0
        )
        values["ApproximateNumberOfMessagesDelayed"] = str(len(pq.delayed) if pq else 0)
        values["CreatedTimestamp"] = str(q.created)
        values["LastModifiedTimestamp"] = str(q.modified)
        values["QueueArn"] = self.registry.arn(q.name)
        return values

    async def set_queue_attributes(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        q = self.service.queue(p, ctx)
        raw = p.get("Attributes")
        if raw is None:
            raise missing("Attributes")
        checked = self.registry.check_attributes(
            raw, fifo=q.fifo, creating=False, region=self.registry.regions.region_of(q.name)
        )
        done = self.registry.update(q, checked)
        pq = self.leases.queues.get(q.address)
        if pq is not None:
            pq.policy = q.policy
        await _durable(done)
        return {}

    async def purge_queue(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        q = self.service.queue(p, ctx)
        now = self.core.clock()
        last = self._purged.get(q.name)
        if last is not None and now - last < 60:
            raise SqsError(
                "PurgeQueueInProgress",
                f"Only one PurgeQueue operation on {self.registry.sqs_name(q)} is allowed "
                "every 60 seconds.",
            )
        self._purged[q.name] = now
        self.service.pull(q).purge()
        q.dedup.clear()
        await _durable(self.core.barrier())
        return {}

    # -- tags and permissions -------------------------------------------------------------

    def _check_tags(self, tags: Any, current: dict[str, str]) -> dict[str, str]:
        if not isinstance(tags, dict):
            raise invalid("Tags must be a map.")
        for key, value in tags.items():
            if not 1 <= len(str(key)) <= 128 or len(str(value)) > 256:
                raise invalid(f"Tag {key} is invalid.")
        if len({**current, **tags}) > MAX_TAGS:
            raise invalid(f"Too many tags added for queue. Maximum allowed is {MAX_TAGS}.")
        return {str(k): str(v) for k, v in tags.items()}

    async def tag_queue(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        q = self.service.queue(p, ctx)
        tags = p.get("Tags")
        if not tags:
            raise missing("Tags")
        q.tags.update(self._check_tags(tags, q.tags))
        await _durable(self.registry.save(q))
        return {}

    async def untag_queue(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        q = self.service.queue(p, ctx)
        keys = p.get("TagKeys")
        if not keys:
            raise missing("TagKeys")
        for key in keys:
            q.tags.pop(key, None)
        await _durable(self.registry.save(q))
        return {}

    async def list_queue_tags(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        q = self.service.queue(p, ctx)
        return {"Tags": dict(q.tags)} if q.tags else {}

    async def list_dead_letter_source_queues(
        self, p: dict[str, Any], ctx: Context
    ) -> dict[str, Any]:
        q = self.service.queue(p, ctx)
        arn = self.registry.arn(q.name)
        sources = []
        for name in self.registry.names(self.registry.regions.region_of(q.name)):
            other = self.registry.find(name)
            redrive = other.attributes.get("RedrivePolicy") if other else None
            if redrive and json.loads(redrive).get("deadLetterTargetArn") == arn:
                sources.append(self.service.url(ctx, name))
        out = self._page(p, sources, "queueUrls")
        out.setdefault("queueUrls", [])
        return out

    async def add_permission(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        # The actions another account may be given on a queue (the AddPermission
        # reference's valid values; the batch forms come with SendMessage, DeleteMessage
        # and ChangeMessageVisibility), at most seven, for 12-digit account ids.
        """Recorded in the queue's Policy attribute; not enforced (no IAM here)."""
        q = self.service.queue(p, ctx)
        label = p.get("Label")
        accounts = p.get("AWSAccountIds")
        actions = p.get("Actions")
        for value, name in ((label, "Label"), (accounts, "AWSAccountIds"), (actions, "Actions")):
            if not value:
                raise missing(name)
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,80}", str(label)):
            raise invalid(f"Value {label} for parameter Label is invalid.")
        if not isinstance(actions, list) or not isinstance(accounts, list):
            raise invalid("Actions and AWSAccountIds must be lists.")
        if len(actions) > MAX_PERMISSION_ACTIONS:
            # AWS: "An Amazon SQS policy can have a maximum of seven actions per
            # statement" (the AddPermission reference); the text is ours.
            raise SqsError(
                "OverLimit",
                f"{len(actions)} Actions were found, maximum allowed is {MAX_PERMISSION_ACTIONS}.",
            )
        for action in actions:
            name = str(action)
            if name not in SHAREABLE_ACTIONS:
                # The texts are ours (AWS's are not in its references).
                reason = (
                    "Only the queue owner is allowed to invoke this action."
                    if name in OWNER_ONLY_ACTIONS
                    else "Not a shareable action (a batch action comes with its single form)."
                )
                raise invalid(
                    f"Value SQS:{name} for parameter ActionName is invalid. Reason: {reason}"
                )
        for account in accounts:
            if not re.fullmatch(r"\d{12}", str(account)):
                raise invalid(
                    f"Value {account} for parameter AWSAccountIds is invalid. "
                    "Reason: An AWS account id is 12 digits."
                )
        policy = self._policy(q)
        if any(s.get("Sid") == label for s in policy["Statement"]):
            raise invalid(f"Value {label} for parameter Label is invalid. Reason: Already exists.")
        policy["Statement"].append(
            {
                "Sid": label,
                "Effect": "Allow",
                "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in accounts]},
                "Action": [f"SQS:{a}" for a in actions],
                "Resource": self.registry.arn(q.name),
            }
        )
        policy_text = json.dumps(policy, separators=(",", ":"))
        await _durable(self.registry.update(q, {"Policy": policy_text}))
        return {}

    async def remove_permission(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        q = self.service.queue(p, ctx)
        label = p.get("Label")
        if not label:
            raise missing("Label")
        policy = self._policy(q)
        kept = [s for s in policy["Statement"] if s.get("Sid") != label]
        if len(kept) == len(policy["Statement"]):
            raise invalid(
                f"Value {label} for parameter Label is invalid. "
                "Reason: can't find label on existing policy."
            )
        policy["Statement"] = kept
        text = json.dumps(policy, separators=(",", ":")) if kept else ""
        await _durable(self.registry.update(q, {"Policy": text}))
        return {}

    def _policy(self, q: SqsQueue) -> dict[str, Any]:
        text = q.attributes.get("Policy")
        policy = json.loads(text) if text else {}
        policy.setdefault("Version", "2012-10-17")
        policy.setdefault("Id", f"{self.registry.arn(q.name)}/SQSDefaultPolicy")
        policy.setdefault("Statement", [])
        return policy


async def _durable(done: Awaitable[None] | None) -> None:
    """Wait for a change's journal record (None: nothing to wait for)."""
    if done is not None:
        await done
