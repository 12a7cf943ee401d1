"""SNS topics and subscriptions: their attributes, validation (AWS's rules and texts) and
journal records.

A topic's state (explicitly set attributes, tags, creation time, its subscriptions with
their attributes, the count of deleted subscriptions) is one destination-metadata record
(broker/store/messages.py DEST_META, owner "sns", keyed by the topic name, an opaque JSON
blob), rewritten on every change; each change returns the record's durability awaitable
and the action answers only once it completes. At start the registry is rebuilt from the
recovered records. The core topic itself (``Address(TOPIC, name)``) keeps nothing: core
topics are created on use.

Regions: topics are keyed by their core topic's name, which says their region
(regions.py: ``news`` in the default region, ``AWS.SNS.eu-west-1.news`` in eu-west-1),
and so are their records; an SnsTopic's ``name`` is that key, its ARN has the region.

Invariants: every subscription is in `subscriptions` by ARN and in its topic's
`subscriptions`; a topic's record is rewritten whenever it or one of its subscriptions
changes; `attributes` hold only what was explicitly set (defaults fill the rest).

Filter policies are stored verbatim once checked to be a JSON object. Applying them is
protocols/aws/snsfilter.py (``compile_policy(text, scope).matches(attributes, body)``);
`compile_filter` is the one place that calls it, and without that module every message
matches.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from protocols.aws.fifo import Dedup
from protocols.aws.queues import MetadataStore
from protocols.aws.regions import Regions
from protocols.aws.sns_wire import SnsError, invalid

try:  # the filter-policy language is its own module (merged separately)
    from protocols.aws import snsfilter  # type: ignore[attr-defined,unused-ignore]
except ImportError:  # pragma: no cover - depends on the branch
    snsfilter = None

log = logging.getLogger("zonemq.aws")

OWNER = "sns"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}")
MAX_TAGS = 50

# Settable topic attributes (CreateTopic / SetTopicAttributes), from the API reference.
_FEEDBACK = tuple(
    f"{proto}{kind}"
    for proto in ("Application", "Firehose", "HTTP", "Lambda", "SQS")
    for kind in ("SuccessFeedbackRoleArn", "SuccessFeedbackSampleRate", "FailureFeedbackRoleArn")
)
TOPIC_SETTABLE = frozenset(
    {"DeliveryPolicy", "DisplayName", "Policy", "TracingConfig", "KmsMasterKeyId"}
    | {"SignatureVersion", *_FEEDBACK}
)
FIFO_SETTABLE = frozenset({"ContentBasedDeduplication", "FifoThroughputScope", "ArchivePolicy"})
SUBSCRIPTION_SETTABLE = frozenset(
    {
        "DeliveryPolicy",
        "FilterPolicy",
        "FilterPolicyScope",
        "RawMessageDelivery",
        "RedrivePolicy",
        "SubscriptionRoleArn",
    }
)
_CHOICES = {
    "SignatureVersion": ("1", "2"),
    "TracingConfig": ("PassThrough", "Active"),
    "ContentBasedDeduplication": ("true", "false"),
    "FifoThroughputScope": ("Topic", "MessageGroup"),
    "FifoTopic": ("true", "false"),
}
_DEFAULT_DELIVERY = (
    '{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":20,"maxDelayTarget":20,'
    '"numRetries":3,"numMaxDelayRetries":0,"numNoDelayRetries":0,"numMinDelayRetries":0,'
    '"backoffFunction":"linear"},"disableSubscriptionOverrides":false,'
    '"defaultRequestPolicy":{"headerContentType":"text/plain; charset=UTF-8"}}}'
)
_POLICY_ACTIONS = [
    "SNS:GetTopicAttributes",
    "SNS:SetTopicAttributes",
    "SNS:AddPermission",
    "SNS:RemovePermission",
    "SNS:DeleteTopic",
    "SNS:Subscribe",
    "SNS:ListSubscriptionsByTopic",
    "SNS:Publish",
]

# AWS's default HTTP/S retry policy (the topic's EffectiveDeliveryPolicy).
DEFAULT_RETRY: dict[str, Any] = {
    "minDelayTarget": 20,
    "maxDelayTarget": 20,
    "numRetries": 3,
    "numNoDelayRetries": 0,
    "numMinDelayRetries": 0,
    "numMaxDelayRetries": 0,
    "backoffFunction": "linear",
}
_RETRY_KEYS = frozenset(DEFAULT_RETRY)
_BACKOFF = ("linear", "arithmetic", "geometric", "exponential")

# A compiled filter: (attributes name -> (DataType, value), body) -> matches.
Matcher = Callable[[Mapping[str, tuple[str, str]], str], bool]


def valid_topic_name(name: str, fifo: bool) -> bool:
    base = name[:-5] if fifo and name.endswith(".fifo") else name
    return bool(_NAME.fullmatch(base)) and len(name) <= 256


@dataclass
class SnsSubscription:
    """One subscription of a topic (protocol ``sqs``: the endpoint is a queue ARN)."""

    arn: str
    topic: str
    protocol: str
    endpoint: str
    owner: str
    attributes: dict[str, str] = field(default_factory=dict)
    matcher: Matcher | None = None
    # http/https: the confirmation token while the subscription is pending (None once
    # confirmed, and for sqs).
    token: str | None = None
    # Epoch ms past which `token` is void: a pending subscription is then deleted, an
    # unsubscribed one (`SnsTopic.restorable`) can no longer be restored. 0: never.
    expires: int = 0

    @property
    def pending(self) -> bool:
        return self.token is not None

    @property
    def raw(self) -> bool:
        return self.attributes.get("RawMessageDelivery") == "true"


@dataclass
class SnsTopic:
    """One SNS topic: the SNS view of the core topic of the same name."""

    name: str
    created: int
    attributes: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    subscriptions: dict[str, SnsSubscription] = field(default_factory=dict)
    deleted: int = 0
    dedup: Dedup = field(default_factory=Dedup)
    # Unsubscribed http/https subscriptions by the token of their UnsubscribeConfirmation:
    # ConfirmSubscription with it restores them until their `expires`.
    restorable: dict[str, SnsSubscription] = field(default_factory=dict)

    @property
    def fifo(self) -> bool:
        return self.attributes.get("FifoTopic") == "true"

    @property
    def content_dedup(self) -> bool:
        return self.attributes.get("ContentBasedDeduplication") == "true"

    @property
    def signature_version(self) -> str:
        return self.attributes.get("SignatureVersion", "1")


class TopicRegistry:
    """Every SNS topic and subscription of one broker (loop thread only)."""

    def __init__(self, store: MetadataStore | None, *, account: str, region: str) -> None:
        self.store = store
        self.account = account
        self.region = region
        self.regions = Regions("sns", account, region)
        # By key: the core topic's name (regions.py).
        self.topics: dict[str, SnsTopic] = {}
        self.subscriptions: dict[str, SnsSubscription] = {}
        if store is not None:
            self._load(store.metadata(OWNER))

    # -- names --------------------------------------------------------------------------

    def arn(self, key: str) -> str:
        """The ARN of topic `key` (a core topic name), in its region."""
        return self.regions.arn(key)

    def names(self, region: str) -> list[str]:
        """The keys of `region`'s topics, sorted by ARN (as ListTopics pages them)."""
        of = self.regions.region_of
        return sorted((k for k in self.topics if of(k) == region), key=self.arn)

    def topic_of_arn(self, arn: Any, region: str | None) -> SnsTopic:
        """The topic an ARN names for a request in `region`, or NotFound; InvalidParameter
        for a malformed one, or one of another region (AWS: "You can publish messages
        only to topics and endpoints in the same Amazon Web Services Region"; a client
        of another region is answered "Invalid parameter: TopicArn"). `region` None: the
        ARN's own (the SubscribeURL and UnsubscribeURL, unsigned GETs, whose host on AWS
        is the topic's regional endpoint)."""
        text = str(arn or "")
        if not text.startswith("arn:") or text.split(":")[2:3] != ["sns"] or text.count(":") != 5:
            raise invalid("TopicArn")
        if region is not None and text.split(":")[3] != region:
            raise invalid("TopicArn")
        key = self.regions.key_of_arn(text)
        topic = self.topics.get(key) if key is not None else None
        if topic is None:
            raise SnsError("NotFound", "Topic does not exist", 404)
        return topic

    def subscription_of_arn(self, arn: Any, region: str | None) -> SnsSubscription:
        """The subscription an ARN names for a request in `region` (another region's is
        not found there; the text for that case is ours); None: the ARN's own region."""
        text = str(arn or "")
        if not text.startswith("arn:") or text.split(":")[2:3] != ["sns"] or text.count(":") != 6:
            raise invalid("SubscriptionId")
        sub = self.subscriptions.get(text)
        if sub is None or region not in (None, self.regions.region_of(sub.topic)):
            raise SnsError("NotFound", "Subscription does not exist", 404)
        return sub

    # -- attributes ---------------------------------------------------------------------

    def topic_attributes(self, t: SnsTopic) -> dict[str, str]:
        """What GetTopicAttributes returns: AWS's members, set values over defaults."""
        arn = self.arn(t.name)
        out = {
            "Policy": t.attributes.get("Policy") or self._default_policy(arn),
            "Owner": self.account,
            "SubscriptionsPending": str(sum(s.pending for s in t.subscriptions.values())),
            "TopicArn": arn,
            "EffectiveDeliveryPolicy": t.attributes.get("DeliveryPolicy") or _DEFAULT_DELIVERY,
            "SubscriptionsConfirmed": str(sum(not s.pending for s in t.subscriptions.values())),
            "DisplayName": t.attributes.get("DisplayName", ""),
            "SubscriptionsDeleted": str(t.deleted),
        }
        if t.fifo:
            out["FifoTopic"] = "true"
            out["ContentBasedDeduplication"] = t.attributes.get(
                "ContentBasedDeduplication", "false"
            )
            out["FifoThroughputScope"] = t.attributes.get("FifoThroughputScope", "Topic")
        for key, value in t.attributes.items():
            if key not in out and key != "FifoTopic":
                out[key] = value
        return out

    def _default_policy(self, arn: str) -> str:
        return json.dumps(
            {
                "Version": "2008-10-17",
                "Id": "__default_policy_ID",
                "Statement": [
                    {
                        "Sid": "__default_statement_ID",
                        "Effect": "Allow",
                        "Principal": {"AWS": "*"},
                        "Action": _POLICY_ACTIONS,
                        "Resource": arn,
                        "Condition": {"StringEquals": {"AWS:SourceOwner": self.account}},
                    }
                ],
            },
            separators=(",", ":"),
        )

    @staticmethod
    def check_topic_attribute(name: str, value: Any, *, fifo: bool, creating: bool) -> str:
        """One settable topic attribute as text, or InvalidParameter (AWS's texts)."""
        text = _as_text(value)
        if name == "FifoTopic":
            if not creating:
                raise invalid("AttributeName")
        elif name in FIFO_SETTABLE:
            if not fifo:
                if name == "ContentBasedDeduplication":
                    raise invalid(
                        "ContentBasedDeduplication Reason: Content based deduplication can "
                        "only be set for FIFO topics"
                    )
                raise invalid(f"{name} Reason: {name} can only be set for FIFO topics")
        elif name not in TOPIC_SETTABLE:
            raise invalid("AttributeName")
        choices = _CHOICES.get(name)
        if choices is not None and text not in choices:
            raise invalid(
                f"Attributes Reason: {name}: Invalid value [{text}]. Must be one of "
                f"[{', '.join(choices)}]"
            )
        if name == "DisplayName" and len(text) > 100:
            raise invalid("DisplayName Reason: must be at most 100 characters long")
        if name in ("Policy", "DeliveryPolicy", "ArchivePolicy") and text:
            _json_object(name, text)
            if name == "DeliveryPolicy":
                try:
                    check_topic_delivery_policy(text)
                except ValueError as exc:  # texts ours (AWS's not found)
                    raise invalid(f"DeliveryPolicy: {exc}") from None
        return text

    def check_subscription_attribute(
        self, name: str, value: Any, *, protocol: str, topic: SnsTopic, subscribing: bool = False
    ) -> str:
        """One settable subscription attribute as text, or InvalidParameter; a filter
        policy's text names the Attributes parameter when `subscribing` (Subscribe's
        form, as AWS words it)."""
        text = _as_text(value)
        if name not in SUBSCRIPTION_SETTABLE:
            raise invalid("AttributeName")
        if name == "RawMessageDelivery":
            if text.lower() not in ("true", "false"):
                raise invalid(
                    f"Attributes Reason: RawMessageDelivery: Invalid value [{text}]. "
                    "Must be true or false."
                )
            return text.lower()
        if name == "FilterPolicyScope":
            if text not in ("MessageAttributes", "MessageBody"):
                raise invalid(
                    f"Attributes Reason: FilterPolicyScope: Invalid value [{text}]. Please use "
                    "either MessageBody or MessageAttributes"
                )
            return text
        if name == "FilterPolicy":
            if text:
                where = "Attributes Reason: FilterPolicy" if subscribing else "FilterPolicy"
                try:
                    spec = json.loads(text)
                except ValueError:
                    raise invalid(f"{where}: failed to parse JSON.") from None
                if not isinstance(spec, dict):
                    raise invalid(f"{where}: Filter policy must be a JSON object")
            return text
        if name == "RedrivePolicy":
            if text:
                spec = _json_object("RedrivePolicy", text)
                target = spec.get("deadLetterTargetArn")
                if not isinstance(target, str) or not target:
                    raise invalid("RedrivePolicy: deadLetterTargetArn is missing")
                parts = target.split(":")
                if len(parts) != 6 or parts[:3] != ["arn", "aws", "sqs"]:
                    raise invalid(f"RedrivePolicy: deadLetterTargetArn is an invalid arn: {target}")
                if topic.fifo and not target.endswith(".fifo"):
                    raise invalid(
                        "RedrivePolicy: must use a FIFO queue as DLQ for a FIFO subscription"
                    )
            return text
        if name == "DeliveryPolicy":
            if protocol not in ("http", "https"):
                raise invalid(
                    "DeliveryPolicy: Delivery policy can only be set for HTTP/S subscriptions"
                )
            if text:
                try:
                    check_delivery_policy(text)
                except ValueError as exc:  # texts ours (AWS's not found)
                    raise invalid(f"DeliveryPolicy: {exc}") from None
            return text
        return text

    def compile_filter(self, sub: SnsSubscription, *, subscribing: bool = False) -> None:
        """Compile the subscription's FilterPolicy (InvalidParameter with the filter
        module's text: SetSubscriptionAttributes' form, or Subscribe's when
        `subscribing`); without protocols/aws/snsfilter.py every message matches."""
        text = sub.attributes.get("FilterPolicy")
        if not text or snsfilter is None:
            sub.matcher = None
            return
        scope = sub.attributes.get("FilterPolicyScope", "MessageAttributes")
        try:
            sub.matcher = snsfilter.compile_policy(text, scope).matches
        except snsfilter.FilterPolicyError as exc:
            message = exc.for_subscribe() if subscribing else str(exc)
            if message.startswith("Invalid parameter: "):
                raise SnsError("InvalidParameter", message) from None
            raise invalid(message) from None

    # -- changes ------------------------------------------------------------------------

    def create(
        self, name: str, attributes: dict[str, str], tags: dict[str, str], now: int
    ) -> tuple[SnsTopic, Awaitable[None] | None]:
        t = SnsTopic(name, now, dict(attributes), dict(tags))
        self.topics[name] = t
        return t, self.save(t)

    def delete(self, t: SnsTopic) -> Awaitable[None] | None:
        self.topics.pop(t.name, None)
        for arn in t.subscriptions:
            self.subscriptions.pop(arn, None)
        t.subscriptions.clear()
        if self.store is None:
            return None
        return self.store.delete_metadata(OWNER, t.name)

    def subscribe(
        self,
        t: SnsTopic,
        protocol: str,
        endpoint: str,
        attributes: dict[str, str],
        token: str | None = None,
    ) -> tuple[SnsSubscription, Awaitable[None] | None]:
        sub = SnsSubscription(
            f"{self.arn(t.name)}:{uuid.uuid4()}", t.name, protocol, endpoint, self.account,
            dict(attributes), token=token,
        )  # fmt: skip
        self.compile_filter(sub, subscribing=True)
        t.subscriptions[sub.arn] = sub
        self.subscriptions[sub.arn] = sub
        return sub, self.save(t)

    def unsubscribe(
        self, sub: SnsSubscription, *, restore_token: str | None = None, expires: int = 0
    ) -> Awaitable[None] | None:
        """Delete `sub`; with `restore_token` it is kept in its topic's `restorable`
        (until `expires`) for an UnsubscribeConfirmation's token to bring back."""
        self.subscriptions.pop(sub.arn, None)
        t = self.topics.get(sub.topic)
        if t is None or t.subscriptions.pop(sub.arn, None) is None:
            return None
        t.deleted += 1
        if restore_token is not None:
            sub.token, sub.expires = restore_token, expires
            t.restorable[restore_token] = sub
        return self.save(t)

    def restore(self, t: SnsTopic, sub: SnsSubscription) -> Awaitable[None] | None:
        """Bring back an unsubscribed subscription (confirmed, same ARN and attributes)."""
        t.restorable.pop(sub.token or "", None)
        sub.token, sub.expires = None, 0
        t.subscriptions[sub.arn] = sub
        self.subscriptions[sub.arn] = sub
        return self.save(t)

    def expire(self, now: int) -> list[tuple[SnsTopic, Awaitable[None] | None]]:
        """Delete pending subscriptions and restore tokens past their `expires`; the
        topics changed, with their records' awaitables."""
        changed: list[tuple[SnsTopic, Awaitable[None] | None]] = []
        for t in list(self.topics.values()):
            gone = [s for s in t.subscriptions.values() if s.pending and 0 < s.expires <= now]
            spent = [k for k, s in t.restorable.items() if 0 < s.expires <= now]
            if not gone and not spent:
                continue
            for sub in gone:
                t.subscriptions.pop(sub.arn, None)
                self.subscriptions.pop(sub.arn, None)
                t.deleted += 1
            for key in spent:
                del t.restorable[key]
            changed.append((t, self.save(t)))
        return changed

    def save(self, t: SnsTopic) -> Awaitable[None] | None:
        if self.store is None:
            return None
        return self.store.put_metadata(OWNER, t.name, _encode(t))

    def _load(self, records: dict[str, bytes]) -> None:
        for name, blob in records.items():
            try:
                t = _decode(name, json.loads(blob))
            except (ValueError, TypeError, AttributeError, KeyError):
                log.warning("SNS topic %s: unreadable metadata record, skipped", name)
                continue
            self.topics[name] = t
            for sub in t.subscriptions.values():
                try:
                    self.compile_filter(sub)
                except SnsError as exc:
                    log.warning("SNS subscription %s: filter policy refused: %s", sub.arn, exc)
                self.subscriptions[sub.arn] = sub


def check_delivery_policy(text: str) -> None:
    """A subscription's DeliveryPolicy (JSON object; healthyRetryPolicy in AWS's ranges),
    or ValueError with the reason (texts ours: AWS's were not found)."""
    try:
        spec = json.loads(text)
    except ValueError:
        raise ValueError("failed to parse JSON.") from None
    if not isinstance(spec, dict):
        raise ValueError("must be a JSON object")
    retry = spec.get("healthyRetryPolicy")
    if retry is not None:
        _check_retry(retry, "healthyRetryPolicy")
    throttle = spec.get("throttlePolicy")
    if throttle is not None:
        _check_throttle(throttle, "throttlePolicy")
    request = spec.get("requestPolicy")
    if request is not None and (
        not isinstance(request, dict) or not isinstance(request.get("headerContentType", ""), str)
    ):
        raise ValueError("requestPolicy.headerContentType must be a string")


def _check_throttle(throttle: Any, where: str) -> None:
    # AWS's documented shape: {"maxReceivesPerSecond": int}, the rate at least 1.
    if not isinstance(throttle, dict):
        raise ValueError(f"{where} must be a JSON object")
    for key in throttle:
        if key != "maxReceivesPerSecond":
            raise ValueError(f"{where}: unknown key {key}")
    rate = throttle.get("maxReceivesPerSecond")
    if rate is not None and (not isinstance(rate, int) or isinstance(rate, bool) or rate < 1):
        raise ValueError(f"{where}.maxReceivesPerSecond must be an integer of at least 1")


def _check_retry(retry: Any, where: str) -> None:
    if not isinstance(retry, dict):
        raise ValueError(f"{where} must be a JSON object")
    for key, value in retry.items():
        if key not in _RETRY_KEYS:
            raise ValueError(f"{where}: unknown key {key}")
        if key == "backoffFunction":
            if value not in _BACKOFF:
                raise ValueError(f"{where}.backoffFunction must be one of {', '.join(_BACKOFF)}")
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{where}.{key} must be a non-negative integer")
    full = {**DEFAULT_RETRY, **retry}
    if not 1 <= full["minDelayTarget"] <= full["maxDelayTarget"] <= 3600:
        raise ValueError(f"{where}: need 1 <= minDelayTarget <= maxDelayTarget <= 3600")
    if full["numRetries"] > 100:
        raise ValueError(f"{where}.numRetries must be at most 100")
    phases = full["numNoDelayRetries"] + full["numMinDelayRetries"] + full["numMaxDelayRetries"]
    if phases > full["numRetries"]:
        raise ValueError(f"{where}: the retry phases add up to more than numRetries")


def check_topic_delivery_policy(text: str) -> None:
    """A topic's DeliveryPolicy: ``{"http": {"defaultHealthyRetryPolicy": {...},
    "disableSubscriptionOverrides": bool, "defaultThrottlePolicy": {...},
    "defaultRequestPolicy": {...}}}``."""
    spec = json.loads(text)
    http = spec.get("http") if isinstance(spec, dict) else None
    if http is None:
        return
    if not isinstance(http, dict):
        raise ValueError("http must be a JSON object")
    retry = http.get("defaultHealthyRetryPolicy")
    if retry is not None:
        _check_retry(retry, "http.defaultHealthyRetryPolicy")
    throttle = http.get("defaultThrottlePolicy")
    if throttle is not None:
        _check_throttle(throttle, "http.defaultThrottlePolicy")
    if not isinstance(http.get("disableSubscriptionOverrides", False), bool):
        raise ValueError("http.disableSubscriptionOverrides must be true or false")


def _json_object(name: str, text: str) -> dict[str, Any]:
    try:
        spec = json.loads(text)
    except ValueError:
        raise invalid(f"{name}: failed to parse JSON.") from None
    if not isinstance(spec, dict):
        raise invalid(f"{name}: must be a JSON object")
    return spec


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _encode(t: SnsTopic) -> bytes:
    entry: dict[str, Any] = {
        "created": t.created,
        "attributes": t.attributes,
        "tags": t.tags,
        "deleted": t.deleted,
        "subscriptions": [
            {
                "arn": s.arn,
                "protocol": s.protocol,
                "endpoint": s.endpoint,
                "owner": s.owner,
                "attributes": s.attributes,
                "token": s.token,
                "expires": s.expires,
            }
            for s in (*t.subscriptions.values(), *t.restorable.values())
        ],
    }
    if t.restorable:
        entry["restorable"] = sorted(s.arn for s in t.restorable.values())
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


def _decode(name: str, entry: dict[str, Any]) -> SnsTopic:
    t = SnsTopic(
        name,
        int(entry.get("created", 0)),
        {str(k): str(v) for k, v in dict(entry.get("attributes", {})).items()},
        {str(k): str(v) for k, v in dict(entry.get("tags", {})).items()},
        deleted=int(entry.get("deleted", 0)),
    )
    restorable = set(entry.get("restorable", ()))
    for s in entry.get("subscriptions", []):
        sub = SnsSubscription(
            str(s["arn"]), name, str(s["protocol"]), str(s["endpoint"]), str(s["owner"]),
            {str(k): str(v) for k, v in dict(s.get("attributes", {})).items()},
            token=s.get("token"), expires=int(s.get("expires") or 0),
        )  # fmt: skip
        if sub.arn in restorable and sub.token:
            t.restorable[sub.token] = sub
        else:
            t.subscriptions[sub.arn] = sub
    return t
