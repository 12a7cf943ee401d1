"""Amazon SNS over the broker core: the Query API (2010-03-31) on the SQS port.

Mapping. SNS topic ``news`` (default region) is the core topic ``news``: STOMP
``/topic/news``, AMQP ``topic://news``, ARN ``arn:aws:sns:<region>:<account>:news``;
another region's is ``AWS.SNS.<region>.news`` (regions.py); ``.fifo`` names are FIFO
topics (created with FifoTopic=true). Topics, subscriptions and their attributes and
tags are journal records (sns_topics.py), durable before the action answers.

Publish → the topic's subscribers, all at once:
  - STOMP/AMQP subscribers of the core topic: a text message, body = Message (the
    ``default`` text with MessageStructure=json), MessageAttributes as properties as
    SQS maps them (attributes.py: String → str, Binary → bytes, Number and other types
    as text with ``AWS.SQS.Types``), MessageGroupId → group_id. Not persistent (core
    topics journal nothing), as a STOMP send to a topic.
  - each ``sqs`` subscription: a persistent message on the queue its endpoint ARN names,
    the JSON envelope (sns_envelope.py) or, with RawMessageDelivery, the message itself
    with MessageAttributes as SQS message attributes; the ``sqs`` key of a
    MessageStructure=json message if present, else ``default``. Publish answers once the
    message is journaled on every subscribed queue (the awaitables of the sends). A FIFO
    topic (only FIFO queues may subscribe) passes MessageGroupId and the deduplication
    id on, so each queue keeps the topic's order per group; a repeated deduplication id
    within 5 minutes answers the first publish's MessageId and SequenceNumber and
    delivers nothing.
  - each confirmed ``http``/``https`` subscription: the same envelope (or the raw
    message), journaled on the subscription's own core queue before Publish answers,
    then POSTed with AWS's headers and retries (sns_http.py; the ``http``/``https`` key
    of a MessageStructure=json message if present). Pending subscriptions get nothing.
A STOMP/AMQP send to the core topic reaches the SNS subscriptions too: the topic has one
SNS consumer (auto-ack, no-local: it skips what SNS itself published) while it has
subscriptions, which relays each message as a publish (body as Message, properties as
MessageAttributes as SQS would show them). Such a relay is at most once: the sender's
message was never durable (core topics are not), and nothing waits for the queues' records.
A FIFO topic relays only messages with a group id (JMSXGroupID), deduplicated by body
with ContentBasedDeduplication, else by message id.

Checked against the references (botocore's sns 2010-03-31 model, the SNS API reference
and developer guide, and AWS's own validator; each with a test): request and response
shapes (non-flattened Query lists/maps, XML in SNS's namespace, ResponseMetadata);
error codes and statuses of the model (NotFound 404, InvalidParameter and
ParameterValueInvalid 400, AuthorizationError 403, ResourceNotFound 404,
TagLimitExceeded, the PublishBatch request errors); topic names (256, ``.fifo`` with
FifoTopic); idempotent CreateTopic; ListTopics / ListSubscriptions(ByTopic) pages of
100 with NextToken; GetTopicAttributes' members; Publish limits (256 KiB, Subject,
10 attributes, types String/Number/Binary/String.Array, MessageStructure json with
``default``); FIFO rules (group id required, dedup id or content-based, 5-minute
window, SequenceNumber); PublishBatch (10 entries, distinct ids, per-entry Failed with
Code/Message/SenderFault); the notification envelope and its signature (SignatureVersion
1 and 2, verified by a verifier written from AWS's steps and by npm ``sns-validator``);
the FIFO envelope without signature fields; HTTP/S confirmation and notification
headers and bodies.

Knowingly different or missing:
- Subscribe takes protocols ``sqs``, ``http`` and ``https``; the other AWS protocols
  (email, email-json, sms, lambda, application, firehose) answer InvalidParameter "not
  supported". What HTTP/S delivery leaves out is in sns_http.py.
- Filter policies are checked to be JSON objects and stored; they are applied only
  where protocols/aws/snsfilter.py exists (sns_topics.compile_filter).
- RedrivePolicy is applied to HTTP/S deliveries whose retries are spent; a message for
  an SQS queue that no longer exists is dropped, not sent to the subscription's DLQ.
  DeliveryPolicy is refused on sqs subscriptions (AWS applies it to HTTP/S only).
- Get/PutDataProtectionPolicy, and CreateTopic with DataProtectionPolicy, answer
  InvalidParameter "not supported"; AddPermission/RemovePermission are SQS's actions
  on this port; the topic Policy is stored, never enforced (as for SQS).
- Some error texts are written here where AWS's were not found (marked in the code).
- The UnsubscribeURL is this port's Query API: with users configured it needs a
  signature, which AWS's does not.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from broker.core import TOPIC, Address, Core, Message
from broker.core.queue import Subscription
from protocols.aws import attributes as attrs
from protocols.aws import fifo, ids
from protocols.aws.resolve import Context
from protocols.aws.sns_envelope import Notification, Signer, envelope
from protocols.aws.sns_http import HttpDeliveries, content_type, new_token, retry_delays
from protocols.aws.sns_topics import (
    MAX_TAGS,
    SnsSubscription,
    SnsTopic,
    TopicRegistry,
    valid_topic_name,
)
from protocols.aws.sns_wire import SnsError, invalid
from protocols.aws.sqs import SENDER_ID, SqsService

log = logging.getLogger("zonemq.aws")

# Messages SNS itself puts on a core topic carry this origin, so the topic's SNS
# consumer (no-local) does not relay them back to the subscriptions.
SNS_ORIGIN = "aws.sns"
MAX_MESSAGE = 262144
MAX_ATTRIBUTES = 10
MAX_BATCH = 10
PAGE = 100
_SUBJECT = re.compile(r"[ -~]{1,100}")
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_GROUP_ID = re.compile(r"[!-~]{1,128}")
_TYPE = re.compile(r"(String|Number|Binary)(\.[A-Za-z0-9_.\-]+)?")

Handler = Callable[[dict[str, Any], Context], Awaitable[dict[str, Any] | None]]


class _Prepared:
    """A validated publish: what every subscriber gets."""

    __slots__ = ("attributes", "dedup", "group", "structure", "subject", "text")

    def __init__(
        self,
        text: str,
        subject: str | None,
        attributes: list[tuple[str, str, str | bytes]],
        structure: dict[str, str] | None,
        group: str | None,
        dedup: str | None,
    ) -> None:
        self.text = text
        self.subject = subject
        self.attributes = attributes
        self.structure = structure
        self.group = group
        self.dedup = dedup

    def for_protocol(self, protocol: str) -> str:
        s = self.structure
        return s.get(protocol, s["default"]) if s is not None else self.text


class _Relay:
    """The SNS consumer of one core topic: hands STOMP/AMQP sends to the service, on
    the next loop turn (the core must not be re-entered from a delivery)."""

    def __init__(self, service: SnsService, name: str) -> None:
        self.service = service
        self.name = name

    def deliver(self, sub: Subscription, msg: Message) -> None:
        self.service.loop.call_soon(self.service.relay, self.name, msg)

    def slow(self, sub: Subscription) -> None:  # auto-ack: never behind
        pass


class SnsService:
    """The SNS actions over one broker's core and its SQS service."""

    def __init__(
        self,
        core: Core,
        sqs: SqsService,
        registry: TopicRegistry,
        signer: Signer,
        *,
        pending_expiry: float = 259200.0,
        token_expiry: float = 259200.0,
    ) -> None:
        self.core = core
        # Seconds: an unconfirmed subscription's life, an unsubscribe token's validity.
        self.pending_expiry = pending_expiry
        self.token_expiry = token_expiry
        self.sqs = sqs
        self.registry = registry
        self.signer = signer
        self.account = registry.account
        self.loop = asyncio.get_running_loop()
        # Where notifications relayed from other protocols point (no request to take
        # the host from): set by the listener once bound.
        self.base_url = "http://127.0.0.1"
        self._relays: dict[str, Subscription] = {}
        self.http = HttpDeliveries(core, registry, signer, self._to_dead_letter_queue)
        self.actions: dict[str, Handler] = {
            "CreateTopic": self.create_topic,
            "DeleteTopic": self.delete_topic,
            "ListTopics": self.list_topics,
            "GetTopicAttributes": self.get_topic_attributes,
            "SetTopicAttributes": self.set_topic_attributes,
            "Subscribe": self.subscribe,
            "ConfirmSubscription": self.confirm_subscription,
            "Unsubscribe": self.unsubscribe,
            "ListSubscriptions": self.list_subscriptions,
            "ListSubscriptionsByTopic": self.list_subscriptions_by_topic,
            "GetSubscriptionAttributes": self.get_subscription_attributes,
            "SetSubscriptionAttributes": self.set_subscription_attributes,
            "Publish": self.publish,
            "PublishBatch": self.publish_batch,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags_for_resource,
            "GetDataProtectionPolicy": self.data_protection_policy,
            "PutDataProtectionPolicy": self.data_protection_policy,
        }
        now = core.now_ms()
        for t in registry.topics.values():
            self._watch(t)
            for sub in t.subscriptions.values():
                if sub.pending and not sub.expires:  # recorded before deadlines existed
                    sub.expires = now + int(pending_expiry * 1000)
                if sub.protocol in HTTP:
                    self.http.watch(sub)
        # One timer sweeps expired pending subscriptions and restore tokens; a fraction
        # of the shorter life, so a deadline is kept to within a quarter of it.
        self._sweep_every = max(0.05, min(60.0, pending_expiry / 4, token_expiry / 4))
        self._sweep_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self._sweep_every, self._sweep
        )
        self._sweeps: set[asyncio.Task[None]] = set()

    def _sweep(self) -> None:
        changed = self.registry.expire(self.core.now_ms())
        for t, done in changed:
            if not t.subscriptions:
                self._unwatch(t.name)
            if done is not None:
                task = self.loop.create_task(_awaited(done))
                self._sweeps.add(task)
                task.add_done_callback(self._sweeps.discard)
        self._sweep_timer = self.loop.call_later(self._sweep_every, self._sweep)

    async def close(self) -> None:
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        for sub in self._relays.values():
            sub.close()
        self._relays.clear()
        await self.http.close()

    # -- topics -------------------------------------------------------------------------

    async def create_topic(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        name = str(p.get("Name") or "")
        raw = p.get("Attributes") or {}
        if not isinstance(raw, dict):
            raise invalid("Attributes")
        if p.get("DataProtectionPolicy"):
            raise _no_data_protection()
        fifo_attr = str(raw.get("FifoTopic", "false")).lower() == "true"
        if fifo_attr and not (name.endswith(".fifo") and valid_topic_name(name, True)):
            raise invalid(
                "Fifo Topic names must end with .fifo and must be made up of only uppercase "
                "and lowercase ASCII letters, numbers, underscores, and hyphens, and must be "
                "between 1 and 256 characters long."
            )
        if not fifo_attr and not valid_topic_name(name, False):
            raise invalid("Topic Name")
        checked: dict[str, str] = {}
        for key, value in raw.items():
            text = self.registry.check_topic_attribute(key, value, fifo=fifo_attr, creating=True)
            if key == "FifoTopic":
                text = text.lower()
                if text == "false":
                    continue
            checked[key] = text
        tags = _tags(p.get("Tags"))
        name = self.registry.regions.key(ctx.region, name)
        existing = self.registry.topics.get(name)
        if existing is not None:
            # Idempotent with the same attributes (AWS compares what is given with what
            # the topic has) and tags.
            for key, value in checked.items():
                if existing.attributes.get(key, _default(key)) != value:
                    raise invalid(
                        "Attributes Reason: Topic already exists with different attributes"
                    )
            for key, value in tags.items():
                if existing.tags.get(key) != value:
                    raise invalid("Tags Reason: Topic already exists with different tags")
            return {"TopicArn": self.registry.arn(name)}
        _, done = self.registry.create(name, checked, tags, self.core.now_ms())
        if done is not None:
            await done
        return {"TopicArn": self.registry.arn(name)}

    async def delete_topic(self, p: dict[str, Any], ctx: Context) -> None:
        try:
            t = self.registry.topic_of_arn(_required(p, "TopicArn"), ctx.region)
        except SnsError as exc:
            if exc.code == "NotFound":
                return None  # AWS: deleting a topic that does not exist succeeds
            raise
        for sub in t.subscriptions.values():
            if sub.protocol in HTTP:
                self.http.forget(sub)
        done = self.registry.delete(t)
        self._unwatch(t.name)
        if done is not None:
            await done
        return None

    async def list_topics(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        page, token = _page(self.registry.names(ctx.region), p.get("NextToken"))
        return {
            "Topics": [{"TopicArn": self.registry.arn(n)} for n in page],
            "NextToken": token,
        }

    async def get_topic_attributes(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        t = self.registry.topic_of_arn(_required(p, "TopicArn"), ctx.region)
        return {"Attributes": self.registry.topic_attributes(t)}

    async def set_topic_attributes(self, p: dict[str, Any], ctx: Context) -> None:
        t = self.registry.topic_of_arn(_required(p, "TopicArn"), ctx.region)
        name = str(_required(p, "AttributeName"))
        value = self.registry.check_topic_attribute(
            name, p.get("AttributeValue", ""), fifo=t.fifo, creating=False
        )
        if value == "" and name not in ("DisplayName",):
            t.attributes.pop(name, None)
        else:
            t.attributes[name] = value
        done = self.registry.save(t)
        if done is not None:
            await done
        return None

    # -- subscriptions ------------------------------------------------------------------

    async def subscribe(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        t = self.registry.topic_of_arn(_required(p, "TopicArn"), ctx.region)
        protocol = str(_required(p, "Protocol"))
        endpoint = str(p.get("Endpoint") or "")
        if protocol in ("email", "email-json", "sms", "lambda", "application", "firehose"):
            raise invalid(f"Protocol Reason: {protocol} subscriptions are not supported")
        if protocol in HTTP:
            if t.fifo:
                raise invalid(
                    "Endpoint Reason: FIFO SNS Topics currently only support FIFO SQS Queues "
                    "as endpoints"
                )
            if not _valid_url(endpoint, protocol):
                raise invalid("Endpoint")
        elif protocol != "sqs":
            raise invalid(f"Amazon SNS does not support this protocol string: {protocol}")
        else:
            # Resolved in the ARN's region: AWS delivers SNS to SQS across regions.
            queue = self.sqs.registry.name_of_arn(endpoint)
            if not endpoint or queue is None:
                raise invalid("SQS endpoint ARN")
            if t.fifo != queue.endswith(".fifo"):
                raise invalid(
                    "Endpoint Reason: FIFO SNS Topics currently only support FIFO SQS Queues "
                    "as endpoints"
                    if t.fifo
                    else "Endpoint Reason: Please use FIFO SNS topic"
                )
        raw = p.get("Attributes") or {}
        if not isinstance(raw, dict):
            raise invalid("Attributes")
        checked = {
            k: self.registry.check_subscription_attribute(
                k, v, protocol=protocol, topic=t, subscribing=True
            )
            for k, v in raw.items()
        }
        for sub in t.subscriptions.values():
            if sub.protocol == protocol and sub.endpoint == endpoint:
                # AWS answers the existing subscription (same attributes) or refuses.
                if checked and any(sub.attributes.get(k, "") != v for k, v in checked.items()):
                    raise invalid(
                        "Attributes Reason: Subscription already exists with different attributes"
                    )
                if sub.pending:
                    self.http.confirm_request(t, sub, ctx.base_url)  # sent again
                return {"SubscriptionArn": self._shown_arn(sub, p)}
        token = new_token() if protocol in HTTP else None
        sub, done = self.registry.subscribe(t, protocol, endpoint, checked, token)
        if token is not None:
            sub.expires = self.core.now_ms() + int(self.pending_expiry * 1000)
        self._watch(t)
        if done is not None:
            await done
        if sub.pending:
            self.http.confirm_request(t, sub, ctx.base_url)
        # sqs subscriptions are confirmed at once; ReturnSubscriptionArn matters only
        # for pending ones.
        return {"SubscriptionArn": self._shown_arn(sub, p)}

    @staticmethod
    def _shown_arn(sub: SnsSubscription, p: dict[str, Any]) -> str:
        if sub.pending and str(p.get("ReturnSubscriptionArn", "false")).lower() != "true":
            return "pending confirmation"
        return sub.arn

    async def confirm_subscription(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        # The ARN's region: the SubscribeURL is an unsigned GET (sns_topics.topic_of_arn).
        t = self.registry.topic_of_arn(_required(p, "TopicArn"), None)
        token = str(_required(p, "Token"))
        now = self.core.now_ms()
        restored = t.restorable.get(token)
        if restored is not None and not 0 < restored.expires <= now:
            return await self._restore(t, restored)
        for sub in t.subscriptions.values():
            if sub.token == token and not 0 < sub.expires <= now:
                break
        else:
            raise invalid("Token")
        sub.token = None
        sub.expires = 0
        if str(p.get("AuthenticateOnUnsubscribe", "false")).lower() == "true":
            sub.attributes["AuthenticateOnUnsubscribe"] = "true"
        done = self.registry.save(t)
        self.http.watch(sub)
        if done is not None:
            await done
        return {"SubscriptionArn": sub.arn}

    async def _restore(self, t: SnsTopic, sub: SnsSubscription) -> dict[str, Any]:
        """ConfirmSubscription with an UnsubscribeConfirmation's token: the subscription
        is back (its ARN and attributes), unless the endpoint subscribed again since."""
        for other in t.subscriptions.values():
            if other.protocol == sub.protocol and other.endpoint == sub.endpoint:
                t.restorable.pop(sub.token or "", None)
                done = self.registry.save(t)
                if done is not None:
                    await done
                return {"SubscriptionArn": other.arn}
        done = self.registry.restore(t, sub)
        self.registry.compile_filter(sub)
        self._watch(t)
        self.http.watch(sub)
        if done is not None:
            await done
        return {"SubscriptionArn": sub.arn}

    async def unsubscribe(self, p: dict[str, Any], ctx: Context) -> None:
        # The ARN's region, as ConfirmSubscription: the UnsubscribeURL is unsigned.
        sub = self.registry.subscription_of_arn(_required(p, "SubscriptionArn"), None)
        # A confirmed http/https endpoint is told, with a token that restores it (AWS).
        told = sub.protocol in HTTP and not sub.pending
        if sub.protocol in HTTP:
            self.http.forget(sub)
        done = self.registry.unsubscribe(
            sub,
            restore_token=new_token() if told else None,
            expires=self.core.now_ms() + int(self.token_expiry * 1000),
        )
        t = self.registry.topics.get(sub.topic)
        if t is not None and not t.subscriptions:
            self._unwatch(t.name)
        if done is not None:
            await done
        if told and t is not None:
            self.http.unsubscribed(t, sub, ctx.base_url)
        return None

    def _listing(self, subs: list[SnsSubscription]) -> list[dict[str, str]]:
        return [
            {
                "SubscriptionArn": "PendingConfirmation" if s.pending else s.arn,
                "Owner": s.owner,
                "Protocol": s.protocol,
                "Endpoint": s.endpoint,
                "TopicArn": self.registry.arn(s.topic),
            }
            for s in subs
        ]

    async def list_subscriptions(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        of = self.registry.regions.region_of
        subs = sorted(
            (s for s in self.registry.subscriptions.values() if of(s.topic) == ctx.region),
            key=lambda s: s.arn,
        )
        page, token = _page(subs, p.get("NextToken"))
        return {"Subscriptions": self._listing(page), "NextToken": token}

    async def list_subscriptions_by_topic(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        t = self.registry.topic_of_arn(_required(p, "TopicArn"), ctx.region)
        subs = sorted(t.subscriptions.values(), key=lambda s: s.arn)
        page, token = _page(subs, p.get("NextToken"))
        return {"Subscriptions": self._listing(page), "NextToken": token}

    async def get_subscription_attributes(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        sub = self.registry.subscription_of_arn(_required(p, "SubscriptionArn"), ctx.region)
        out = {
            "ConfirmationWasAuthenticated": "false" if sub.protocol in HTTP else "true",
            "PendingConfirmation": "true" if sub.pending else "false",
            "Owner": sub.owner,
            "RawMessageDelivery": "false",
            "TopicArn": self.registry.arn(sub.topic),
            "Endpoint": sub.endpoint,
            "Protocol": sub.protocol,
            "SubscriptionPrincipal": f"arn:aws:iam::{self.account}:root",
            "SubscriptionArn": sub.arn,
        }
        for key, value in sub.attributes.items():
            if value != "":
                out[key] = value
        if sub.protocol in HTTP:
            out["EffectiveDeliveryPolicy"] = self._effective_delivery(sub)
        if "FilterPolicy" in out:
            out.setdefault("FilterPolicyScope", "MessageAttributes")
        return {"Attributes": out}

    async def set_subscription_attributes(self, p: dict[str, Any], ctx: Context) -> None:
        sub = self.registry.subscription_of_arn(_required(p, "SubscriptionArn"), ctx.region)
        t = self.registry.topics[sub.topic]
        name = str(_required(p, "AttributeName"))
        value = self.registry.check_subscription_attribute(
            name, p.get("AttributeValue", ""), protocol=sub.protocol, topic=t
        )
        before = dict(sub.attributes)
        if value == "":
            sub.attributes.pop(name, None)
        else:
            sub.attributes[name] = value
        if name in ("FilterPolicy", "FilterPolicyScope"):
            try:
                self.registry.compile_filter(sub)
            except SnsError:
                sub.attributes = before
                raise
        done = self.registry.save(t)
        if done is not None:
            await done
        return None

    # -- tags ---------------------------------------------------------------------------

    def _tagged(self, p: dict[str, Any], ctx: Context) -> SnsTopic:
        arn = _required(p, "ResourceArn")
        try:
            return self.registry.topic_of_arn(arn, ctx.region)
        except SnsError as exc:
            if exc.code == "NotFound":
                raise SnsError("ResourceNotFound", "Resource does not exist", 404) from None
            raise

    async def tag_resource(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        t = self._tagged(p, ctx)
        tags = _tags(_required(p, "Tags"))
        if len({**t.tags, **tags}) > MAX_TAGS:
            raise SnsError(
                "TagLimitExceeded", "Could not complete request: tag quota of per resource exceeded"
            )
        t.tags.update(tags)
        done = self.registry.save(t)
        if done is not None:
            await done
        return {}

    async def untag_resource(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        t = self._tagged(p, ctx)
        keys = _required(p, "TagKeys")
        if not isinstance(keys, list):
            raise invalid("TagKeys")
        for key in keys:
            t.tags.pop(str(key), None)
        done = self.registry.save(t)
        if done is not None:
            await done
        return {}

    async def list_tags_for_resource(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        t = self._tagged(p, ctx)
        return {"Tags": [{"Key": k, "Value": v} for k, v in sorted(t.tags.items())]}

    async def data_protection_policy(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        raise _no_data_protection()

    # -- publishing ---------------------------------------------------------------------

    def _target(self, p: dict[str, Any], ctx: Context) -> SnsTopic:
        if p.get("PhoneNumber"):
            raise invalid("PhoneNumber Reason: SMS is not supported")
        arn = p.get("TopicArn") or p.get("TargetArn")
        if not arn:
            raise invalid("TopicArn or TargetArn Reason: no value for required parameter")
        return self.registry.topic_of_arn(arn, ctx.region)

    def _prepare(self, t: SnsTopic, e: dict[str, Any]) -> _Prepared:
        text = e.get("Message")
        if text is None or text == "":
            raise invalid("Empty message")
        text = str(text)
        subject = e.get("Subject")
        if subject is not None:
            subject = str(subject)
            if not _SUBJECT.fullmatch(subject) or not subject[0].isprintable():
                raise invalid("Subject")
        attributes = _message_attributes(e.get("MessageAttributes"))
        size = len(text.encode()) + sum(
            len(n.encode()) + len(ty.encode()) + len(v if isinstance(v, bytes) else v.encode())
            for n, ty, v in attributes
        )
        if size > MAX_MESSAGE:
            raise invalid("Message too long")
        structure = None
        how = e.get("MessageStructure")
        if how is not None:
            if how != "json":
                raise invalid("MessageStructure")
            structure = _structure(text)
        group = e.get("MessageGroupId")
        dedup = e.get("MessageDeduplicationId")
        if t.fifo:
            if not group:
                raise invalid("The MessageGroupId parameter is required for FIFO topics")
            if not _GROUP_ID.fullmatch(str(group)):
                raise invalid(f"MessageGroupId Reason: {group} is not a valid value")
            if dedup is None:
                if not t.content_dedup:
                    raise invalid(
                        "The topic should either have ContentBasedDeduplication enabled or "
                        "MessageDeduplicationId provided explicitly"
                    )
                dedup = fifo.content_dedup_id(text)
            elif not _GROUP_ID.fullmatch(str(dedup)):
                raise invalid(f"MessageDeduplicationId Reason: {dedup} is not a valid value")
        else:
            if dedup is not None:
                raise invalid(
                    "MessageDeduplicationId Reason: The request includes "
                    "MessageDeduplicationId parameter that is not valid for this topic type"
                )
            if group is not None and not _GROUP_ID.fullmatch(str(group)):
                raise invalid(f"MessageGroupId Reason: {group} is not a valid value")
        return _Prepared(
            text,
            subject,
            attributes,
            structure,
            str(group) if group else None,
            str(dedup) if dedup is not None else None,
        )

    def _publish(
        self, t: SnsTopic, m: _Prepared, base_url: str, waits: list[Awaitable[None]]
    ) -> dict[str, Any]:
        """Deliver one validated publish to every subscriber (no await); the journal
        awaitables of its queue sends are appended to `waits`."""
        now = self.core.now_ms()
        seq: str | None = None
        if t.fifo:
            assert m.dedup is not None
            seen = t.dedup.seen((None, m.dedup), now)
            if seen is not None:
                return {"MessageId": seen[0], "SequenceNumber": seen[1]}
            seq = fifo.next_sequence_number()
        message_id = ids.message_id()
        address = Address(TOPIC, t.name)
        if self.core.has_subscribers(address):
            self.core.send(
                address,
                Message(
                    m.for_protocol("default").encode(),
                    properties=attrs.to_properties(
                        {n: attrs.Attribute(ty, v) for n, ty, v in m.attributes}
                    ),
                    text=True,
                    group_id=m.group,
                    origin=SNS_ORIGIN,
                ),
            )
        self._fan_out(t, m, message_id, now, base_url, waits)
        result: dict[str, Any] = {"MessageId": message_id}
        if seq is not None:
            assert m.dedup is not None
            t.dedup.record((None, m.dedup), now, message_id, seq)
            result["SequenceNumber"] = seq
        return result

    def _fan_out(
        self,
        t: SnsTopic,
        m: _Prepared,
        message_id: str,
        now: int,
        base_url: str,
        waits: list[Awaitable[None]],
    ) -> None:
        if not t.subscriptions:
            return
        wire_attrs = tuple(
            (n, ty, base64.b64encode(v).decode("ascii") if isinstance(v, bytes) else v)
            for n, ty, v in m.attributes
        )
        notification = Notification(
            message_id, self.registry.arn(t.name), m.text, now, m.subject, wire_attrs
        )
        filter_attrs = {n: (ty, v) for n, ty, v in wire_attrs}
        parts: dict[tuple[str, bool], tuple[str, str]] = {}
        for sub in t.subscriptions.values():
            if sub.pending:
                continue
            text = m.for_protocol(sub.protocol)
            matcher = sub.matcher
            if matcher is not None and not matcher(filter_attrs, text):
                continue
            if sub.protocol in HTTP:
                body = (
                    text
                    if sub.raw
                    else envelope(
                        notification,
                        text,
                        signer=self.signer,
                        signature_version=t.signature_version,
                        base_url=base_url,
                        subscription_arn=sub.arn,
                        parts=parts,
                    )
                )
                done = self.http.enqueue(sub, message_id, body)
                if done is not None:
                    waits.append(done)
                continue
            name = self.sqs.registry.name_of_arn(sub.endpoint)
            q = self.sqs.registry.find(name) if name else None
            if q is None:
                log.debug("SNS %s: queue %s does not exist; message dropped", sub.arn, name)
                continue
            if sub.raw:
                body = text
                props = attrs.to_properties(
                    {n: attrs.Attribute(ty, v) for n, ty, v in m.attributes}
                )
            else:
                body = envelope(
                    notification,
                    text,
                    signer=None if t.fifo else self.signer,
                    signature_version=t.signature_version,
                    base_url=base_url,
                    subscription_arn=sub.arn,
                    parts=parts,
                )
                props = {}
            props[SENDER_ID] = self.account
            key = None
            if q.fifo:
                assert m.dedup is not None
                scope = q.get("DeduplicationScope")
                key = (m.group if scope == "messageGroup" else None, m.dedup)
                props["AWS.SQS.MessageDeduplicationId"] = m.dedup
            msg = Message(
                body.encode(), properties=props, persistent=True, text=True, group_id=m.group
            )
            try:
                _, done = self.sqs._send(
                    q, self.sqs.pull(q), (msg, float(q.int("DelaySeconds")), {}, key)
                )
            except Exception:  # one queue refusing (store full) must not fail the others
                log.warning("SNS %s: delivery to %s refused", sub.arn, name, exc_info=True)
                continue
            if done is not None:
                waits.append(done)

    async def publish(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        t = self._target(p, ctx)
        m = self._prepare(t, p)
        waits: list[Awaitable[None]] = []
        result = self._publish(t, m, ctx.base_url, waits)
        for done in waits:
            await done
        return result

    async def publish_batch(self, p: dict[str, Any], ctx: Context) -> dict[str, Any]:
        t = self.registry.topic_of_arn(_required(p, "TopicArn"), ctx.region)
        entries = p.get("PublishBatchRequestEntries")
        if not entries:
            raise SnsError("EmptyBatchRequest", "The batch request doesn't contain any entries")
        if not isinstance(entries, list):
            raise invalid("PublishBatchRequestEntries")
        if len(entries) > MAX_BATCH:
            raise SnsError(
                "TooManyEntriesInBatchRequest",
                "The batch request contains more entries than permissible",
            )
        seen: set[str] = set()
        total = 0
        for e in entries:
            eid = str(e.get("Id", "")) if isinstance(e, dict) else ""
            if not _BATCH_ID.fullmatch(eid):
                raise SnsError(
                    "InvalidBatchEntryId",
                    "The Id of a batch entry in a batch request doesn't abide by the specification",
                )
            if eid in seen:
                raise SnsError(
                    "BatchEntryIdsNotDistinct",
                    "Two or more batch entries in the request have the same Id",
                )
            seen.add(eid)
            total += len(str(e.get("Message") or "").encode())
        if total > MAX_MESSAGE:
            raise SnsError(
                "BatchRequestTooLong",
                "The length of all the messages put together is more than the limit",
            )
        ok: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        waits: list[Awaitable[None]] = []
        for e in entries:
            try:
                m = self._prepare(t, e)
                result = self._publish(t, m, ctx.base_url, waits)
            except SnsError as err:
                failed.append(
                    {
                        "Id": e["Id"],
                        "Code": err.code,
                        "Message": err.message,
                        "SenderFault": err.sender_fault,
                    }
                )
                continue
            ok.append({"Id": e["Id"], **result})
        for done in waits:
            await done
        return {"Successful": ok, "Failed": failed}

    def _effective_delivery(self, sub: SnsSubscription) -> str:
        t = self.registry.topics[sub.topic]
        delays = retry_delays(t, sub)
        return json.dumps(
            {
                "healthyRetryPolicy": {"numRetries": len(delays)},
                "requestPolicy": {"headerContentType": content_type(t, sub)},
                **json.loads(sub.attributes.get("DeliveryPolicy") or "{}"),
            },
            separators=(",", ":"),
        )

    def _to_dead_letter_queue(self, t: SnsTopic, sub: SnsSubscription, body: bytes) -> bool:
        """A message out of retries, to the subscription's RedrivePolicy queue (False:
        none, or it does not exist)."""
        redrive = sub.attributes.get("RedrivePolicy")
        if not redrive:
            return False
        name = self.sqs.registry.name_of_arn(json.loads(redrive)["deadLetterTargetArn"])
        q = self.sqs.registry.find(name) if name else None
        if q is None:
            return False
        props: dict[str, Any] = {SENDER_ID: self.account}
        msg = Message(body, properties=props, persistent=True, text=True)
        self.sqs._send(q, self.sqs.pull(q), (msg, 0.0, {}, None))
        return True

    # -- messages from other protocols --------------------------------------------------

    def _watch(self, t: SnsTopic) -> None:
        """Give the core topic an SNS consumer while `t` has subscriptions."""
        if not t.subscriptions or t.name in self._relays:
            return
        self._relays[t.name] = self.core.subscribe(
            Address(TOPIC, t.name), _Relay(self, t.name), no_local=True, origin=SNS_ORIGIN
        )

    def _unwatch(self, name: str) -> None:
        sub = self._relays.pop(name, None)
        if sub is not None:
            sub.close()

    def relay(self, name: str, msg: Message) -> None:
        """A STOMP/AMQP send to core topic `name`, published to its SNS subscriptions."""
        t = self.registry.topics.get(name)
        if t is None or not t.subscriptions:
            return
        text = msg.body.decode("utf-8", errors="replace")
        found = attrs.from_message(msg)
        attributes: list[tuple[str, str, str | bytes]] = [
            (n, a.data_type, a.value) for n, a in found.items()
        ][:MAX_ATTRIBUTES]
        dedup = None
        if t.fifo:
            if not msg.group_id:
                log.info("SNS FIFO topic %s: a message without a group id is not relayed", name)
                return
            dedup = fifo.content_dedup_id(text) if t.content_dedup else msg.id
            if t.dedup.seen((None, dedup), self.core.now_ms()) is not None:
                return
            t.dedup.record((None, dedup), self.core.now_ms(), msg.id, fifo.next_sequence_number())
        m = _Prepared(text, None, attributes, None, msg.group_id, dedup)
        self._fan_out(t, m, ids.message_id(), self.core.now_ms(), self.base_url, [])


# -- validation helpers --------------------------------------------------------------------


async def _awaited(done: Awaitable[None]) -> None:
    await done


HTTP = ("http", "https")


def _valid_url(url: str, scheme: str) -> bool:
    parsed = urlsplit(url)
    return parsed.scheme == scheme and bool(parsed.hostname)


def _required(p: dict[str, Any], name: str) -> Any:
    value = p.get(name)
    if value is None or value == "":
        raise invalid(f"{name} Reason: no value for required parameter")
    return value


def _default(key: str) -> str:
    return {"SignatureVersion": "1", "ContentBasedDeduplication": "false"}.get(key, "")


def _no_data_protection() -> SnsError:
    # Written here: AWS has no text for a service without the feature.
    return invalid("DataProtectionPolicy Reason: data protection policies are not supported")


def _tags(raw: Any) -> dict[str, str]:
    if not raw:
        return {}
    if not isinstance(raw, list):
        raise invalid("Tags")
    out: dict[str, str] = {}
    for tag in raw:
        if not isinstance(tag, dict) or "Key" not in tag:
            raise invalid("Tags Reason: each tag needs a Key")
        key, value = str(tag["Key"]), str(tag.get("Value", ""))
        if not 1 <= len(key) <= 128 or key.lower().startswith("aws:"):
            raise invalid(f"Tags Reason: invalid tag key {key!r}")
        if len(value) > 256:
            raise invalid(f"Tags Reason: the value of tag {key!r} is longer than 256")
        out[key] = value
    if len(out) > MAX_TAGS:
        raise SnsError(
            "TagLimitExceeded", "Could not complete request: tag quota of per resource exceeded"
        )
    return out


def _page(items: list[Any], token: Any) -> tuple[list[Any], str | None]:
    start = 0
    if token:
        try:
            start = int(base64.b64decode(str(token), validate=True).decode())
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise invalid("NextToken") from None
        if start < 0:
            raise invalid("NextToken")
    page = items[start : start + PAGE]
    more = start + PAGE < len(items)
    return page, base64.b64encode(str(start + PAGE).encode()).decode() if more else None


def _structure(text: str) -> dict[str, str]:
    try:
        spec = json.loads(text)
    except ValueError:
        raise invalid("Message Structure - JSON message body failed to parse") from None
    if not isinstance(spec, dict):
        raise invalid("Message Structure - JSON message body failed to parse")
    if "default" not in spec:
        raise invalid("Message Structure - No default entry in JSON message body")
    out: dict[str, str] = {}
    for key, value in spec.items():
        if not isinstance(value, str):
            raise invalid(f"Message Structure - {key} value must be a string")
        out[key] = value
    return out


def _message_attributes(raw: Any) -> list[tuple[str, str, str | bytes]]:
    """SNS MessageAttributes as (name, DataType, value), AWS's checks: a bad attribute is
    ParameterValueInvalid (boto3's InvalidParameterValueException), its text without
    the "Invalid parameter: " prefix, as AWS answers."""
    if not raw:
        return []
    if not isinstance(raw, dict):
        raise invalid("MessageAttributes")
    if len(raw) > MAX_ATTRIBUTES:
        raise _bad_value(
            f"Number of message attributes [{len(raw)}] exceeds the allowed maximum "
            f"[{MAX_ATTRIBUTES}]."
        )
    out: list[tuple[str, str, str | bytes]] = []
    for name, spec in raw.items():
        try:
            attrs.check_name(name)
        except Exception:
            raise _bad_value(f"The message attribute name '{name}' is invalid.") from None
        spec = spec if isinstance(spec, dict) else {}
        data_type = str(spec.get("DataType") or "")
        if not data_type:
            raise _bad_value(f"The message attribute '{name}' must contain a non-empty data type.")
        m = _TYPE.fullmatch(data_type)
        if m is None or len(data_type) > 256:
            raise _bad_value(
                f"The message attribute '{name}' has an invalid message attribute type, the "
                "set of supported type prefixes is Binary, Number, and String."
            )
        base = m.group(1)
        if base == "Binary":
            value = spec.get("BinaryValue")
            if not value:
                raise _bad_value(
                    f"The message attribute '{name}' must contain non-empty message attribute "
                    "value for message attribute type 'Binary'."
                )
            if isinstance(value, str):
                try:
                    value = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    raise _bad_value(
                        f"The message attribute '{name}' has an invalid binary value."
                    ) from None
            out.append((name, data_type, bytes(value)))
            continue
        value = spec.get("StringValue")
        if value is None or value == "":
            raise _bad_value(
                f"The message attribute '{name}' must contain non-empty message attribute "
                f"value for message attribute type '{base}'."
            )
        value = str(value)
        if base == "Number":
            try:
                number = Decimal(value)
            except InvalidOperation:
                number = None
            if number is None or not number.is_finite():
                raise _bad_value(f"Could not cast message attribute '{name}' value to number.")
        elif data_type == "String.Array":
            try:
                items = json.loads(value)
            except ValueError:
                items = None
            if not isinstance(items, list) or any(isinstance(i, dict | list) for i in items):
                raise _bad_value(
                    f"The message attribute '{name}' with type 'String.Array' has an invalid "
                    "value: it must be a JSON array of strings, numbers, true, false or null."
                )
        elif not attrs.valid_text(value):
            raise _bad_value(
                f"The message attribute '{name}' contains characters outside the allowed set."
            )
        out.append((name, data_type, value))
    return out


def _bad_value(message: str) -> SnsError:
    return SnsError("ParameterValueInvalid", message)
