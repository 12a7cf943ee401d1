"""SQS queues over the core's queues: names, attributes, tags, and where they are kept.

Every core queue (kind "queue") whose name is a valid SQS name is an SQS queue, so a
queue a STOMP client created is visible to SQS with default attributes. The attributes
and tags SQS clients set live in a QueueRegistry; every change is written to the journal
as the queue's destination-metadata record (owner "sqs", an opaque JSON blob; see
broker/store/messages.py DEST_META), and the action answers only once that record is
durable (the awaitable the registry's changes return), like a send. At start the
registry is rebuilt from the recovered records, so attributes survive a restart or a
crash with the group commit covering them; the messages are in the journal too.

Upgrades: a data directory from before this kept them in ``<data_dir>/sqs/queues.json``;
`import_legacy` copies what the journal lacks into it once, and the listener then
renames the file ``queues.json.imported``.

Regions: queues are keyed by their core name, which says their region (regions.py, the
one mapping: ``orders`` in the default region, ``AWS.SQS.eu-west-1.orders`` in
eu-west-1); so are their records, and an SqsQueue's ``name`` is that key (receipt
handles, the core address), its SQS name ``sqs_name``.

Invariants: a registry entry exists for every queue created or changed through SQS; its
`attributes` hold only settable attributes explicitly given (defaults fill the rest);
`policy` is recomputed whenever they change; its journal record is rewritten whenever
it changes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from broker.core import QUEUE, Address, Core
from broker.core.leases import PullPolicy
from protocols.aws.errors import SqsError, invalid
from protocols.aws.fifo import Dedup
from protocols.aws.regions import Regions

log = logging.getLogger("zonemq.aws")

# The owner name of SQS's destination-metadata records in the journal.
OWNER = "sqs"
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


@runtime_checkable
class MetadataStore(Protocol):
    """Where the registry keeps its records: the broker's journal adapter
    (broker.store.messages.MessageStore), reached through the core."""

    def metadata(self, owner: str) -> dict[str, bytes]: ...

    def put_metadata(self, owner: str, name: str, blob: bytes) -> Awaitable[None] | None: ...

    def delete_metadata(self, owner: str, name: str) -> Awaitable[None] | None: ...


@dataclass
class SqsQueue:
    """SQS's view of one core queue."""

    # The core queue's name: the SQS name in its region (regions.py).
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
    """All SQS queue metadata of one broker (loop thread only).

    Changes return the durability awaitable of their journal record (None without a
    store, or when nothing is outstanding); handlers await it before answering."""

    def __init__(
        self,
        core: Core,
        store: MetadataStore | None,
        *,
        account: str,
        region: str,
        max_size: int,
    ) -> None:
        self.core = core
        self.store = store
        self.account = account
        self.region = region
        self.regions = Regions("sqs", account, region)
        self.max_size = max_size
        # By key: the core queue's name (regions.py).
        self.queues: dict[str, SqsQueue] = {}
        if store is not None:
            self._load(store.metadata(OWNER))

    def arn(self, key: str) -> str:
        """The ARN of core queue `key`, in its region."""
        return self.regions.arn(key)

    def name_of_arn(self, arn: str) -> str | None:
        """The key (core queue name) an SQS ARN of this account names, in the ARN's
        region; None if it names no queue of this account."""
        key = self.regions.key_of_arn(arn)
        return key if key is not None and self.valid_key(key) else None

    def valid_key(self, key: str) -> bool:
        """Whether core queue name `key` is an SQS queue of some region."""
        return valid_name(self.regions.name_of(key))

    def sqs_name(self, q: SqsQueue) -> str:
        return self.regions.name_of(q.name)

    # -- lookup ---------------------------------------------------------------------------

    def lookup(self, region: str, name: str) -> SqsQueue | None:
        """The queue a request in `region` names by its SQS name (None if it is none; a
        core name of another region given as a name is none: regions.plain)."""
        if not valid_name(name):
            return None
        return self.find(self.regions.key(region, name))

    def find(self, name: str) -> SqsQueue | None:
        """The queue of key `name` (regions.py), None if it is none."""
        q = self.queues.get(name)
        if q is not None:
            if Address(QUEUE, name) not in self.core.queues:
                # Deleted through another protocol or the admin API. Not awaited: a
                # lookup answers nothing about it, and a stale record is dropped again.
                del self.queues[name]
                self._forget(name)
                return None
            return q
        if self.valid_key(name) and Address(QUEUE, name) in self.core.queues:
            now = int(self.core.clock())
            q = SqsQueue(name, now, now)
            self._refresh(q)
            self.queues[name] = q
            return q
        return None

    def names(self, region: str | None = None) -> list[str]:
        """The keys of every SQS queue (of `region` only, if given), sorted by SQS name."""
        regions = self.regions
        found = []
        for a in self.core.queues:
            if a.kind != QUEUE:
                continue
            where, name = regions.split(a.name)
            if (region is None or where == region) and valid_name(name):
                found.append((name, a.name))
        return [key for _, key in sorted(found)]

    # -- changes --------------------------------------------------------------------------

    def create(
        self, name: str, attributes: dict[str, str], tags: dict[str, str]
    ) -> Awaitable[None] | None:
        now = int(self.core.clock())
        q = SqsQueue(name, now, now, dict(attributes), dict(tags))
        self._refresh(q)
        self.queues[name] = q
        self.core.set_own_limit(q.address)
        return self.save(q)

    def delete(self, q: SqsQueue) -> Awaitable[None] | None:
        self.queues.pop(q.name, None)
        return self._forget(q.name)

    def update(self, q: SqsQueue, attributes: dict[str, str]) -> Awaitable[None] | None:
        q.attributes.update(attributes)
        for key, value in attributes.items():
            if value == "" and key in OPTIONAL:
                q.attributes.pop(key, None)
        q.modified = int(self.core.clock())
        self._refresh(q)
        return self.save(q)

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
            if target is not None and self.regions.region_of(target) == self.regions.region_of(
                q.name
            ):
                policy.max_receives = int(spec["maxReceiveCount"])
                policy.dead_letter = Address(QUEUE, target)
        q.policy = policy

    # -- validation -----------------------------------------------------------------------

    def check_attributes(
        self, attributes: dict[str, Any], *, fifo: bool, creating: bool, region: str
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
                value = self._check_redrive(value, fifo, region)
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

    def _check_redrive(self, value: str, fifo: bool, region: str) -> str:
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
        if dlq is None or self.regions.region_of(dlq.name) != region:
            # AWS: "A dead-letter queue must be created using the same AWS account and
            # region as the source queue" (SDK developer guides); a DLQ of another region
            # exists nowhere the source queue looks.
            raise bad("Dead letter target does not exist.")
        if dlq.fifo != fifo:
            raise bad("Dead-letter target must be the same type of queue as the source queue.")
        return json.dumps(
            {"deadLetterTargetArn": spec["deadLetterTargetArn"], "maxReceiveCount": count},
            separators=(",", ":"),
        )

    # -- persistence ----------------------------------------------------------------------

    def save(self, q: SqsQueue) -> Awaitable[None] | None:
        """Write `q`'s record (after any change to its attributes or tags)."""
        if self.store is None:
            return None
        return self.store.put_metadata(OWNER, q.name, _encode(q))

    def _forget(self, name: str) -> Awaitable[None] | None:
        if self.store is None:
            return None
        return self.store.delete_metadata(OWNER, name)

    def _load(self, records: dict[str, bytes]) -> None:
        for name, blob in records.items():
            if Address(QUEUE, name) not in self.core.queues:
                # Deleted through another protocol while we were not looking (find()
                # would drop it at the first lookup); not brought back to life here.
                self._forget(name)
                continue
            try:
                q = _decode(name, json.loads(blob))
            except (ValueError, TypeError, AttributeError):
                log.warning("SQS queue %s: unreadable metadata record, using defaults", name)
                continue
            self.queues[name] = q
            # Already recorded with the queue (journal DEST flags); a no-op but for
            # queues that predate the flag.
            self.core.set_own_limit(q.address)
        for q in self.queues.values():
            self._refresh(q)

    def import_legacy(self, path: Path) -> Awaitable[None] | None:
        """Copy the queues of a pre-journal ``queues.json`` that the journal does not
        have into it (once, at start, before serving): the journal's record wins, since
        it can only be newer. Returns the durability awaitable of the copies."""
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text(encoding="utf-8"))
            for name, entry in data.items():
                if name in self.queues or Address(QUEUE, name) not in self.core.queues:
                    continue
                try:
                    q = _decode(name, entry)
                except (ValueError, TypeError, AttributeError):
                    continue
                self.queues[name] = q
                self.core.set_own_limit(q.address)
                self._refresh(q)
                self.save(q)
        return self.core.barrier()


def _encode(q: SqsQueue) -> bytes:
    entry = {
        "attributes": q.attributes,
        "tags": q.tags,
        "created": q.created,
        "modified": q.modified,
    }
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


def _decode(name: str, entry: dict[str, Any]) -> SqsQueue:
    return SqsQueue(
        name,
        int(entry.get("created", 0)),
        int(entry.get("modified", 0)),
        {str(k): str(v) for k, v in dict(entry.get("attributes", {})).items()},
        {str(k): str(v) for k, v in dict(entry.get("tags", {})).items()},
    )


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
