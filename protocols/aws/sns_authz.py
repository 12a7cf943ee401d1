"""SNS actions onto the authorization map (broker.auth), as authz.py does for SQS: which
operation each action is, on which topic (``topic://<name>``) or queue. Checked by the
listener before the action runs; a denial is SNS's AuthorizationError (HTTP 403) with
ActiveMQ's text.

- write: Publish, PublishBatch (on the topic); Subscribe with protocol sqs also needs
  write on the queue, since the subscription puts messages there.
- read: Subscribe, ConfirmSubscription, GetTopicAttributes, ListSubscriptionsByTopic,
  ListTagsForResource, and on a subscription's topic GetSubscriptionAttributes,
  SetSubscriptionAttributes, Unsubscribe (they act on what a consumer holds, as SQS's
  DeleteMessage is read). ListTopics and ListSubscriptions list only what the user may
  read.
- admin: CreateTopic (even when it exists), DeleteTopic, SetTopicAttributes,
  TagResource, UntagResource, Get/PutDataProtectionPolicy.
"""

from __future__ import annotations

from typing import Any

from broker.auth import ADMIN, READ, WRITE, Auth
from broker.core import QUEUE, TOPIC, Address
from protocols.aws.sns import SnsService
from protocols.aws.sns_wire import SnsError

# action -> (operation, how the topic is named: a parameter, or "sub:" + the parameter
# holding a subscription ARN)
ACTIONS: dict[str, tuple[str, str]] = {
    "Publish": (WRITE, "TopicArn"),
    "PublishBatch": (WRITE, "TopicArn"),
    "Subscribe": (READ, "TopicArn"),
    "ConfirmSubscription": (READ, "TopicArn"),
    "GetTopicAttributes": (READ, "TopicArn"),
    "ListSubscriptionsByTopic": (READ, "TopicArn"),
    "ListTagsForResource": (READ, "ResourceArn"),
    "GetSubscriptionAttributes": (READ, "sub:SubscriptionArn"),
    "SetSubscriptionAttributes": (READ, "sub:SubscriptionArn"),
    "Unsubscribe": (READ, "sub:SubscriptionArn"),
    "CreateTopic": (ADMIN, "Name"),
    "DeleteTopic": (ADMIN, "TopicArn"),
    "SetTopicAttributes": (ADMIN, "TopicArn"),
    "TagResource": (ADMIN, "ResourceArn"),
    "UntagResource": (ADMIN, "ResourceArn"),
    "GetDataProtectionPolicy": (ADMIN, "ResourceArn"),
    "PutDataProtectionPolicy": (ADMIN, "ResourceArn"),
}


def _topic(service: SnsService, how: str, p: dict[str, Any], region: str) -> str | None:
    """The core topic name the request (in `region`) names (None: nothing to check; the
    action answers its own error for a missing or unknown topic)."""
    if how.startswith("sub:"):
        sub = service.registry.subscriptions.get(str(p.get(how[4:]) or ""))
        return sub.topic if sub is not None else None
    value = p.get(how) or (p.get("TargetArn") if how == "TopicArn" else None)
    if not isinstance(value, str) or not value:
        return None
    if how == "Name":
        return service.registry.regions.key(region, value)
    return service.registry.regions.key_of_arn(value)


def authorize(
    auth: Auth, service: SnsService, user: str, action: str, p: dict[str, Any], region: str
) -> None:
    """Raise AuthorizationError unless `user` may run `action` with params `p` (a request
    in `region`); the map names core destinations (regions.py)."""
    if not auth.authorizing:
        return
    rule = ACTIONS.get(action)
    if rule is None:
        return
    op, how = rule
    name = _topic(service, how, p, region)
    if name is not None:
        _check(auth, user, Address(TOPIC, name), op)
    if action == "Subscribe" and p.get("Protocol") == "sqs":
        queue = service.sqs.registry.name_of_arn(str(p.get("Endpoint") or ""))
        if queue:
            _check(auth, user, Address(QUEUE, queue), WRITE)


def _check(auth: Auth, user: str, address: Address, op: str) -> None:
    denied = auth.check(user, address, op, "SNS")
    if denied is not None:
        raise SnsError("AuthorizationError", denied, 403)


def filter_list(
    auth: Auth, service: SnsService, user: str, action: str, result: dict[str, Any] | None
) -> dict[str, Any] | None:
    """ListTopics' and ListSubscriptions' results with only the topics `user` may read."""
    if not auth.authorizing or result is None:
        return result
    key_of_arn = service.registry.regions.key_of_arn

    def readable(arn: str) -> bool:
        key = key_of_arn(arn)
        return key is not None and auth.allowed(user, Address(TOPIC, key), READ)

    if action == "ListTopics":
        return {**result, "Topics": [t for t in result["Topics"] if readable(t["TopicArn"])]}
    if action == "ListSubscriptions":
        subs = [s for s in result["Subscriptions"] if readable(s["TopicArn"])]
        return {**result, "Subscriptions": subs}
    return result
