"""SQS actions onto the authorization map (broker.auth): which operation each action is,
on which queues. Checked by the listener before the action runs; a denial is AWS's
AccessDenied (HTTP 403) with ActiveMQ's text.

- write: SendMessage, SendMessageBatch.
- read: ReceiveMessage, DeleteMessage(Batch), ChangeMessageVisibility(Batch) (they act
  on messages a consumer holds), GetQueueUrl, GetQueueAttributes, ListQueueTags,
  ListDeadLetterSourceQueues, ListMessageMoveTasks; ListQueues lists only the queues
  the user may read.
- admin: CreateQueue (even when the queue exists: SQS cannot tell an idempotent create
  from a new one before it runs), DeleteQueue, SetQueueAttributes, PurgeQueue,
  TagQueue, UntagQueue, AddPermission, RemovePermission, and the move tasks
  (StartMessageMoveTask on its source and destination, CancelMessageMoveTask on its
  source).

SQS never creates a queue on first use, so `created` is never set here.
"""

from __future__ import annotations

from typing import Any

from broker.auth import ADMIN, READ, WRITE, Auth
from broker.core import QUEUE, Address
from protocols.aws.errors import SqsError
from protocols.aws.sqs import SqsService

# action -> (operation, the parameters naming its queues: "QueueUrl", "QueueName" or an
# ARN parameter). ListQueues is filtered instead (`filter_list`).
ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "SendMessage": (WRITE, ("QueueUrl",)),
    "SendMessageBatch": (WRITE, ("QueueUrl",)),
    "ReceiveMessage": (READ, ("QueueUrl",)),
    "DeleteMessage": (READ, ("QueueUrl",)),
    "DeleteMessageBatch": (READ, ("QueueUrl",)),
    "ChangeMessageVisibility": (READ, ("QueueUrl",)),
    "ChangeMessageVisibilityBatch": (READ, ("QueueUrl",)),
    "GetQueueUrl": (READ, ("QueueName",)),
    "GetQueueAttributes": (READ, ("QueueUrl",)),
    "ListQueueTags": (READ, ("QueueUrl",)),
    "ListDeadLetterSourceQueues": (READ, ("QueueUrl",)),
    "ListMessageMoveTasks": (READ, ("SourceArn",)),
    "CreateQueue": (ADMIN, ("QueueName",)),
    "DeleteQueue": (ADMIN, ("QueueUrl",)),
    "SetQueueAttributes": (ADMIN, ("QueueUrl",)),
    "PurgeQueue": (ADMIN, ("QueueUrl",)),
    "TagQueue": (ADMIN, ("QueueUrl",)),
    "UntagQueue": (ADMIN, ("QueueUrl",)),
    "AddPermission": (ADMIN, ("QueueUrl",)),
    "RemovePermission": (ADMIN, ("QueueUrl",)),
    "StartMessageMoveTask": (ADMIN, ("SourceArn", "DestinationArn")),
    "CancelMessageMoveTask": (ADMIN, ("TaskHandle",)),
}


def _name(service: SqsService, parameter: str, value: Any, region: str) -> str | None:
    """The core queue name a parameter value names, in the request's `region` for a
    name or URL (None: nothing to check; the action itself then answers with its own
    error for a missing or unknown queue)."""
    if not isinstance(value, str) or not value:
        return None
    if parameter == "QueueUrl":
        value = value.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    if parameter in ("QueueName", "QueueUrl"):
        return service.registry.regions.key(region, value) if value else None
    if parameter == "TaskHandle":
        task = service.moves.by_handle.get(value)
        value = task.source_arn if task is not None else ""
    return service.registry.name_of_arn(value)


def authorize(
    auth: Auth, service: SqsService, user: str, action: str, p: dict[str, Any], region: str
) -> None:
    """Raise AccessDenied unless `user` may run `action` with params `p` (a request in
    `region`); the map names core queues (regions.py)."""
    if not auth.authorizing:
        return
    rule = ACTIONS.get(action)
    if rule is None:
        return
    op, parameters = rule
    for parameter in parameters:
        name = _name(service, parameter, p.get(parameter), region)
        if name is None:
            continue
        denied = auth.check(user, Address(QUEUE, name), op, "SQS")
        if denied is not None:
            raise SqsError("AccessDenied", denied)


def filter_list(
    auth: Auth, service: SqsService, user: str, result: dict[str, Any], region: str
) -> dict[str, Any]:
    """ListQueues' result (a request in `region`) with only the queues `user` may read."""
    if not auth.authorizing or "QueueUrls" not in result:
        return result
    key = service.registry.regions.key
    urls = [
        u
        for u in result["QueueUrls"]
        if auth.allowed(user, Address(QUEUE, key(region, u.rstrip("/").rsplit("/", 1)[-1])), READ)
    ]
    return {**result, "QueueUrls": urls}
