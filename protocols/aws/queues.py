"""SQS queues over the core's queues: names, attributes, tags, and where they are kept.

Every core queue (kind "queue") whose name is a valid SQS name is an SQS queue, so a
queue a STOMP client created is visible to SQS with default attributes. The attributes
and tags SQS clients set live in a QueueRegistry, saved as JSON in
``<data_dir>/sqs/queues.json`` on every change (atomic replace, fsynced), so they survive
a restart; the messages themselves are in the journal like any queue's.

Invariants: a registry entry exists for every queue created or changed through SQS; its
`attributes` hold only settable attributes explicitly given (defaults fill the rest);
`policy` is recomputed whenever they change.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.core import QUEUE, Address, Core
from broker.core.leases import PullPolicy
from protocols.aws.errors import SqsError, invalid
from protocols.aws.fifo import Dedup

# Where a redriven message records the queue it was dead-lettered from (move tasks).
DEAD_LETTER_SOURCE = "AWS.SQS.DeadLetterSourceQueue"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")

# Settable attribute -> default (as SQS reports it).
DEFAULTS: dict[str, str] = {
    "DelaySeconds": "0",
    "MaximumMessageSize": "1048576",
    "MessageRetentionPeriod": "345600",
    "ReceiveMessageWaitTimeSeconds": "0",
    "VisibilityTimeout": "30",
    "SqsManagedSseEnabled": "false",
}
FIFO_DEFAULTS: dict[str, str] = {
    "FifoQueue": "true",
    "ContentBasedDeduplication": "false",
    "DeduplicationScope": "queue",
    "FifoThroughputLimit": "perQueue",
}
# Settable attributes without a default (reported only when set).
OPTIONAL = (
    "Policy",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
)
READ_ONLY = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
)
_RANGES = {
    "DelaySeconds": (0, 900),
    "MaximumMessageSize": (1024, 1048576),
    "MessageRetentionPeriod": (60, 1209600),
    "ReceiveMessageWaitTimeSeconds": (0, 20),
    "VisibilityTimeout": (0, 43200),
    "KmsDataKeyReusePeriodSeconds": (60, 86400),
}
_CHOICES = {
    "SqsManagedSseEnabled": ("true", "false"),
    "ContentBasedDeduplication": ("true", "false"),
    "DeduplicationScope": ("messageGroup", "queue"),
    "FifoThroughputLimit": ("perQueue", "perMessageGroupId"),
}


def valid_name(name: str) -> bool:
    base = name[:-5] if name.endswith(".fifo") else name
    return bool(_NAME.fullmatch(base)) and len(name) <= 80


@dataclass
class SqsQueue:
    """SQS's view of one core queue."""

    name: str
    created: int
    modified: int
    attributes: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    dedup: Dedup = field(default_factory=Dedup)
    policy: PullPolicy = field(default_factory=PullPolicy)

    @property
    def fifo(self) -> bool:
        return self.name.endswith(".fifo")

    @property
    def address(self) -> Address:
        return Address(QUEUE, self.name)

    def get(self, attribute: str) -> str:
        value = self.attributes.get(attribute)
        if value is not None:
            return value
        if self.fifo and attribute in FIFO_DEFAULTS:
            return FIFO_DEFAULTS[attribute]
        return DEFAULTS.get(attribute, "")

    def int(self, attribute: str) -> int:
        return int(self.get(attribute))


class QueueRegistry:
    """All SQS queue metadata of one broker (loop thread only)."""

    def __init__(
        self, core: Core, path: Path | None, *, account: str, region: str, max_size: int
    ) -> None:
        self.core = core
        self.path = path
        self.account = account
        self.region = region
        self.max_size = max_size
        self.queues: dict[str, SqsQueue] = {}
        if path is not None and path.exists():
            self._load(path)

    def arn(self, name: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{name}"

    def name_of_arn(self, arn: str) -> str | None:
        prefix = f"arn:aws:sqs:{self.region}:{self.account}:"
        return arn[len(prefix) :] if arn.startswith(prefix) else None

    # -- lookup ---------------------------------------------------------------------------

    def find(self, name: str) -> SqsQueue | None:
        q = self.queues.get(name)
        if q is not None:
            if Address(QUEUE, name) not in self.core.queues:
                # Deleted through another protocol or the admin API.
                del self.queues[name]
                self.save()
                return None
            return q
        if valid_name(name) and Address(QUEUE, name) in self.core.queues:
            now = int(self.core.clock())
            q = SqsQueue(name, now, now)
            self._refresh(q)
            self.queues[name] = q
            return q
        return None

    def names(self) -> list[str]:
        found = {a.name for a in self.core.queues if a.kind == QUEUE and valid_name(a.name)}
        return sorted(found)

    # -- changes --------------------------------------------------------------------------

    def create(self, name: str, attributes: dict[str, str], tags: dict[str, str]) -> SqsQueue:
        now = int(self.core.clock())
        q = SqsQueue(name, now, now, dict(attributes), dict(tags))
        self._refresh(q)
        self.queues[name] = q
        self.core.set_own_limit(q.address)
        self.save()
        return q

    def delete(self, q: SqsQueue) -> None:
        self.queues.pop(q.name, None)
        self.save()

    def update(self, q: SqsQueue, attributes: dict[str, str]) -> None:
        q.attributes.update(attributes)
        for key, value in attributes.items():
            if value == "" and key in OPTIONAL:
                q.attributes.pop(key, None)
        q.modified = int(self.core.clock())
        self._refresh(q)
        self.save()

    def _refresh(self, q: SqsQueue) -> None:
        policy = PullPolicy(
            retention_ms=q.int("MessageRetentionPeriod") * 1000,
            grouped=q.fifo,
            origin_property=DEAD_LETTER_SOURCE,
        )
        redrive = q.attributes.get("RedrivePolicy")
        if redrive:
            spec = json.loads(redrive)
            target = self.name_of_arn(spec["deadLetterTargetArn"])
            if target is not None:
                policy.max_receives = int(spec["maxReceiveCount"])
                policy.dead_letter = Address(QUEUE, target)
        q.policy = policy

    # -- validation -----------------------------------------------------------------------

    def check_attributes(
        self, attributes: dict[str, Any], *, fifo: bool, creating: bool
    ) -> dict[str, str]:
        """Validate settable attributes (AWS's codes) and return them as strings."""
        out: dict[str, str] = {}
        for name, raw in attributes.items():
            value = _as_text(raw)
            settable = name in DEFAULTS or name in OPTIONAL
            if name in FIFO_DEFAULTS:
                settable = fifo and (name != "FifoQueue" or creating)
                if name == "FifoQueue" and creating and not fifo and value == "false":
                    settable = True
            if not settable:
                raise SqsError("InvalidAttributeName", f"Unknown Attribute {name}.")
            if name in _RANGES:
                lo, hi = _RANGES[name]
                if name == "MaximumMessageSize":
                    hi = self.max_size
                try:
                    number = int(value)
                except ValueError:
                    number = None
                if number is None or not lo <= number <= hi:
                    raise SqsError(
                        "InvalidAttributeValue", f"Invalid value for the parameter {name}."
                    )
                value = str(number)
            elif value not in _CHOICES.get(name, (value,)) or (
                name == "FifoQueue" and value not in ("true", "false")
            ):
                raise SqsError("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
            elif name == "RedrivePolicy" and value:
                value = self._check_redrive(value, fifo)
            elif name in ("Policy", "RedriveAllowPolicy") and value:
                try:
                    json.loads(value)
                except ValueError:
                    raise SqsError(
                        "InvalidAttributeValue", f"Invalid value for the parameter {name}."
                    ) from None
            out[name] = value
        if out.get("FifoThroughputLimit") == "perMessageGroupId" and (
            out.get("DeduplicationScope", "queue") != "messageGroup"
        ):
            raise invalid(
                "The perMessageGroupId value is allowed only when the value for "
                "DeduplicationScope is messageGroup."
            )
        return out

    def _check_redrive(self, value: str, fifo: bool) -> str:
        def bad(reason: str) -> SqsError:
            return invalid(
                f"Value {value} for parameter RedrivePolicy is invalid. Reason: {reason}"
            )

        try:
            spec = json.loads(value)
        except ValueError:
            raise bad("Redrive policy is not a valid JSON map.") from None
        if not isinstance(spec, dict) or "deadLetterTargetArn" not in spec:
            raise bad("Redrive policy does not contain mandatory attribute: deadLetterTargetArn.")
        if "maxReceiveCount" not in spec:
            raise bad("Redrive policy does not contain mandatory attribute: maxReceiveCount.")
        try:
            count = int(spec["maxReceiveCount"])
        except (TypeError, ValueError):
            count = 0
        if not 1 <= count <= 1000:
            raise bad("Invalid value for maxReceiveCount: must be an integer from 1 to 1000.")
        target = self.name_of_arn(str(spec["deadLetterTargetArn"]))
        dlq = self.find(target) if target else None
        if dlq is None:
            raise bad("Dead letter target does not exist.")
        if dlq.fifo != fifo:
            raise bad("Dead-letter target must be the same type of queue as the source queue.")
        return json.dumps(
            {"deadLetterTargetArn": spec["deadLetterTargetArn"], "maxReceiveCount": count},
            separators=(",", ":"),
        )

    # -- persistence ----------------------------------------------------------------------

    def save(self) -> None:
        if self.path is None:
            return
        data = {
            q.name: {
                "attributes": q.attributes,
                "tags": q.tags,
                "created": q.created,
                "modified": q.modified,
            }
            for q in self.queues.values()
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def _load(self, path: Path) -> None:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text(encoding="utf-8"))
            for name, entry in data.items():
                q = SqsQueue(
                    name,
                    int(entry.get("created", 0)),
                    int(entry.get("modified", 0)),
                    dict(entry.get("attributes", {})),
                    dict(entry.get("tags", {})),
                )
                self.queues[name] = q
                self.core.set_own_limit(q.address)
            for q in self.queues.values():
                self._refresh(q)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
