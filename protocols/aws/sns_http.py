"""SNS delivery to HTTP/HTTPS endpoints: the subscription confirmation, notifications with
AWS's headers, retries per the delivery policy, the subscription's DLQ.

Each confirmed http/https subscription owns a durable core queue, ``AWS.SNS.<the
subscription's id>`` (not a valid SQS name, so SQS never lists it): Publish puts the
notification there persistently and answers once that record is durable, as for an SQS
subscription, so a restart or SIGKILL loses no delivery owed to the endpoint. A
`Courier` per subscription consumes its queue (client-individual acks, at most
`IN_FLIGHT` POSTs at once) and acknowledges a message only after a 2xx answer; a slow or
dead endpoint therefore holds only its own queue (paged to disk past the memory limit by
the core, as any queue) and never the publisher or other subscriptions.

POST (AWS's "HTTP/HTTPS headers" and "HTTP/HTTPS notification JSON format"): headers
``x-amz-sns-message-type``, ``x-amz-sns-message-id``, ``x-amz-sns-topic-arn``,
``x-amz-sns-subscription-arn`` (not on a confirmation), ``x-amz-sns-rawdelivery: true``
with RawMessageDelivery, ``Content-Type: text/plain; charset=UTF-8`` (or the delivery
policy's ``requestPolicy.headerContentType``), ``User-Agent: Amazon Simple Notification
Service Agent``; the body is the signed JSON document (sns_envelope.py) or the raw
message. Only a 2xx answer within 15 s is a delivery; any other status, a refused
connection or no answer in time is retried.

Retries (AWS's "Amazon SNS message delivery retries"; the subscription's DeliveryPolicy
``healthyRetryPolicy`` unless the topic's ``http.disableSubscriptionOverrides``, else the
topic's ``http.defaultHealthyRetryPolicy``, default 3 retries 20 s apart): after the
first attempt, ``numNoDelayRetries`` at once, ``numMinDelayRetries`` after
``minDelayTarget``, the backoff phase (what is left of ``numRetries`` after the other
phases) from ``minDelayTarget`` to ``maxDelayTarget`` by ``backoffFunction`` (linear
and arithmetic: evenly spaced; geometric and exponential: a constant ratio: AWS does
not publish its curves, these are ours), then ``numMaxDelayRetries`` after
``maxDelayTarget``. Exhausted, the message goes to the subscription's RedrivePolicy
queue (an SQS queue; its body the POST body) or is dropped (logged).

Confirmation: Subscribe with http/https makes a pending subscription with a token and
POSTs a SubscriptionConfirmation (signed) with ``SubscribeURL`` = this port's
``?Action=ConfirmSubscription&TopicArn=...&Token=...``; ConfirmSubscription (or a GET of
that URL) confirms it. Publishes are not delivered to a pending subscription. The
confirmation POST is retried under the same policy but not journaled (a restart does not
resend it; Subscribe again resends it).

Unsubscribe of a confirmed http/https subscription POSTs an UnsubscribeConfirmation
(AWS's "HTTP/HTTPS unsubscribe confirmation JSON format": Type, MessageId, Token,
TopicArn, Message, SubscribeURL, Timestamp, SignatureVersion, Signature, SigningCertURL,
signed over the same fields as a SubscriptionConfirmation; the header
``x-amz-sns-subscription-arn`` names the subscription). Its token restores the
subscription (same ARN and attributes) through ConfirmSubscription or the SubscribeURL
until ``listeners.aws.sns_token_expiry`` (3 days). A pending subscription is deleted
``listeners.aws.sns_pending_expiry`` (3 days) after Subscribe; its token is void then.
Both are kept in the topic's record, so a restart keeps them and their deadlines.

Throttle (the subscription's DeliveryPolicy ``throttlePolicy.maxReceivesPerSecond``,
under the same override rule the topic's ``http.defaultThrottlePolicy``): the courier
spaces its POSTs (retries included: each is a request the endpoint receives) at least
1/rate seconds apart. What waits is the subscription's own durable queue: the courier
holds at most `IN_FLIGHT` messages (its prefetch), each waiting for its turn, so neither
the publisher nor other subscriptions wait and memory stays bounded; a policy changed by
SetSubscriptionAttributes applies from the next POST.

Knowingly different: Subscribe again of a pending subscription resends the confirmation
with the same token and does not push its deadline back; HTTPS endpoints must present a
certificate the broker's default trust store accepts (as AWS requires a trusted CA).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from broker.core import QUEUE, Address, Core, Message
from broker.core.queue import INDIVIDUAL, Subscription
from protocols.aws.sns_envelope import Signer, sign_fields, timestamp
from protocols.aws.sns_topics import DEFAULT_RETRY, SnsSubscription, SnsTopic, TopicRegistry

log = logging.getLogger("zonemq.aws")

IN_FLIGHT = 10
TIMEOUT = 15.0
USER_AGENT = "Amazon Simple Notification Service Agent"
CONTENT_TYPE = "text/plain; charset=UTF-8"
MESSAGE_ID = "AWS.SNS.MessageId"
RAW = "AWS.SNS.Raw"


def queue_of(sub: SnsSubscription) -> Address:
    """The core queue holding what `sub` is owed."""
    return Address(QUEUE, f"AWS.SNS.{sub.arn.rsplit(':', 1)[1]}")


def retry_delays(topic: SnsTopic, sub: SnsSubscription) -> list[float]:
    """The waits before each retry, per the effective delivery policy."""
    policy: dict[str, Any] = dict(DEFAULT_RETRY)
    topic_http: dict[str, Any] = {}
    try:
        topic_http = json.loads(topic.attributes.get("DeliveryPolicy") or "{}").get("http", {})
        policy.update(topic_http.get("defaultHealthyRetryPolicy") or {})
    except (ValueError, AttributeError):
        pass
    if not topic_http.get("disableSubscriptionOverrides"):
        try:
            own = json.loads(sub.attributes.get("DeliveryPolicy") or "{}")
            policy.update(own.get("healthyRetryPolicy") or {})
        except (ValueError, AttributeError):
            pass
    lo, hi = float(policy["minDelayTarget"]), float(policy["maxDelayTarget"])
    no_delay, at_min, at_max = (
        policy["numNoDelayRetries"],
        policy["numMinDelayRetries"],
        policy["numMaxDelayRetries"],
    )
    backoff = max(0, policy["numRetries"] - no_delay - at_min - at_max)
    delays = [0.0] * no_delay + [lo] * at_min
    for k in range(1, backoff + 1):
        frac = k / backoff if backoff > 1 else 1.0
        if policy["backoffFunction"] in ("geometric", "exponential") and lo > 0:
            delays.append(lo * (hi / lo) ** frac)
        else:
            delays.append(lo + (hi - lo) * frac)
    delays += [hi] * at_max
    return delays


def max_receives(topic: SnsTopic, sub: SnsSubscription) -> int | None:
    """The effective maxReceivesPerSecond (None: no throttle); the policies were checked
    when set, so a bad one here can only be a record older than the check."""
    rate: Any = None
    try:
        topic_http = json.loads(topic.attributes.get("DeliveryPolicy") or "{}").get("http", {})
        rate = (topic_http.get("defaultThrottlePolicy") or {}).get("maxReceivesPerSecond")
        if not topic_http.get("disableSubscriptionOverrides"):
            own = json.loads(sub.attributes.get("DeliveryPolicy") or "{}")
            rate = (own.get("throttlePolicy") or {}).get("maxReceivesPerSecond", rate)
    except (ValueError, AttributeError):
        return None
    return rate if isinstance(rate, int) and not isinstance(rate, bool) and rate >= 1 else None


def content_type(topic: SnsTopic, sub: SnsSubscription) -> str:
    for source in (sub.attributes.get("DeliveryPolicy"), topic.attributes.get("DeliveryPolicy")):
        try:
            spec = json.loads(source or "{}")
        except ValueError:
            continue
        request = spec.get("requestPolicy") or spec.get("http", {}).get("defaultRequestPolicy")
        if isinstance(request, dict) and request.get("headerContentType"):
            return str(request["headerContentType"])
    return CONTENT_TYPE


class Courier:
    """The delivery worker of one confirmed http/https subscription."""

    def __init__(self, http: HttpDeliveries, sub: SnsSubscription) -> None:
        self.http = http
        self.sub = sub
        self.tasks: set[asyncio.Task[None]] = set()
        # The loop time before which the throttle gives out no further POST.
        self._next_post = 0.0
        address = queue_of(sub)
        http.core.set_own_limit(address)
        self.core_sub: Subscription = http.core.subscribe(
            address, self, ack_mode=INDIVIDUAL, prefetch=IN_FLIGHT
        )

    def deliver(self, sub: Subscription, msg: Message) -> None:
        task = self.http.loop.create_task(self._post(msg))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def slow(self, sub: Subscription) -> None:  # a queue subscription is never "slow"
        pass

    def stop(self) -> None:
        """Detach: messages in flight go back to the queue (delivered after a restart)."""
        for task in list(self.tasks):
            task.cancel()
        self.core_sub.close()

    async def _pace(self) -> None:
        """Wait for this POST's turn under the throttle: turns are handed out in call
        order, so concurrent deliveries keep their queue order."""
        topic = self.http.registry.topics.get(self.sub.topic)
        rate = max_receives(topic, self.sub) if topic is not None else None
        if rate is None:
            return
        now = self.http.loop.time()
        turn = max(now, self._next_post)
        self._next_post = turn + 1.0 / rate
        if turn > now:
            await asyncio.sleep(turn - now)

    async def _post(self, msg: Message) -> None:
        http = self.http
        topic = http.registry.topics.get(self.sub.topic)
        if topic is None:
            return
        props = msg.properties
        headers = {
            "x-amz-sns-message-type": "Notification",
            "x-amz-sns-message-id": str(props.get(MESSAGE_ID, msg.id)),
            "x-amz-sns-topic-arn": http.registry.arn(topic.name),
            "x-amz-sns-subscription-arn": self.sub.arn,
            "Content-Type": content_type(topic, self.sub),
            "User-Agent": USER_AGENT,
        }
        if props.get(RAW):
            headers["x-amz-sns-rawdelivery"] = "true"
        body = msg.body
        delays = retry_delays(topic, self.sub)
        if await http.attempts(self.sub.endpoint, body, headers, delays, self._pace):
            self.core_sub.ack(msg.id)
            return
        http.exhausted(topic, self.sub, body)
        self.core_sub.ack(msg.id)


class HttpDeliveries:
    """Every http/https subscription's courier, the confirmations, one HTTP client."""

    def __init__(
        self, core: Core, registry: TopicRegistry, signer: Signer, send_to_dlq: Any
    ) -> None:
        self.core = core
        self.registry = registry
        self.signer = signer
        self.loop = asyncio.get_running_loop()
        # (topic, subscription, body) -> None: a message out of retries, to its DLQ.
        self._send_to_dlq = send_to_dlq
        self.couriers: dict[str, Courier] = {}
        self._session: aiohttp.ClientSession | None = None
        self._confirmations: set[asyncio.Task[bool]] = set()

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=IN_FLIGHT),
            )
        return self._session

    async def close(self) -> None:
        for courier in self.couriers.values():
            courier.stop()
        self.couriers.clear()
        for task in list(self._confirmations):
            task.cancel()
        if self._session is not None:
            await self._session.close()

    def watch(self, sub: SnsSubscription) -> None:
        """Start delivering to a confirmed subscription."""
        if sub.arn not in self.couriers and not sub.pending:
            self.couriers[sub.arn] = Courier(self, sub)

    def forget(self, sub: SnsSubscription) -> None:
        """The subscription is gone: its courier stops and its queue is deleted."""
        courier = self.couriers.pop(sub.arn, None)
        if courier is not None:
            courier.stop()
        self.core.delete(queue_of(sub))

    def enqueue(self, sub: SnsSubscription, message_id: str, body: str) -> Awaitable[None] | None:
        """Owe `body` to `sub`; the journal awaitable of the record."""
        props: dict[str, str | int | float | bool | bytes] = {MESSAGE_ID: message_id}
        if sub.raw:
            props[RAW] = True
        msg = Message(body.encode(), properties=props, persistent=True, text=True)
        return self.core.send(queue_of(sub), msg)

    async def attempts(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        delays: list[float],
        pace: Callable[[], Awaitable[None]] | None = None,
    ) -> bool:
        """POST until a 2xx answer or the retries run out; `pace` is awaited before each
        POST (the subscription's throttle)."""
        for attempt in range(len(delays) + 1):
            if attempt:
                await asyncio.sleep(delays[attempt - 1])
            if pace is not None:
                await pace()
            try:
                async with self.session().post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        return True
                    log.debug("SNS POST %s: HTTP %d", url, resp.status)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.debug("SNS POST %s failed: %r", url, exc)
        return False

    def exhausted(self, topic: SnsTopic, sub: SnsSubscription, body: bytes) -> None:
        if not self._send_to_dlq(topic, sub, body):
            log.warning("SNS %s: delivery to %s failed after its retries; dropped", sub.arn,
                        sub.endpoint)  # fmt: skip

    # -- confirmation ---------------------------------------------------------------------

    def confirm_request(self, topic: SnsTopic, sub: SnsSubscription, base_url: str) -> None:
        """POST the SubscriptionConfirmation of a pending subscription (in the background)."""
        arn = self.registry.arn(topic.name)
        assert sub.token is not None
        message = (
            f"You have chosen to subscribe to the topic {arn}.\nTo confirm the "
            "subscription, visit the SubscribeURL included in this message."
        )
        self._confirmation("SubscriptionConfirmation", topic, sub, message, base_url)

    def unsubscribed(self, topic: SnsTopic, sub: SnsSubscription, base_url: str) -> None:
        """POST the UnsubscribeConfirmation of a subscription just deleted, whose
        `token` (ConfirmSubscription, or a GET of the SubscribeURL) restores it."""
        assert sub.token is not None
        message = (
            f"You have chosen to deactivate subscription {sub.arn}.\nTo cancel this "
            "operation and restore the subscription, visit the SubscribeURL included in "
            "this message."
        )
        self._confirmation("UnsubscribeConfirmation", topic, sub, message, base_url)

    def _confirmation(
        self, kind: str, topic: SnsTopic, sub: SnsSubscription, message: str, base_url: str
    ) -> None:
        arn = self.registry.arn(topic.name)
        token = sub.token
        assert token is not None
        fields = {
            "Type": kind,
            "MessageId": str(uuid.uuid4()),
            "Token": token,
            "TopicArn": arn,
            "Message": message,
            "SubscribeURL": f"{base_url}/?Action=ConfirmSubscription&TopicArn={arn}&Token={token}",
            "Timestamp": timestamp(self.core.now_ms()),
        }
        version = topic.signature_version
        fields["SignatureVersion"] = version
        fields["Signature"] = sign_fields(self.signer, fields, version)
        fields["SigningCertURL"] = base_url + self.signer.cert_path
        headers = {
            "x-amz-sns-message-type": kind,
            "x-amz-sns-message-id": fields["MessageId"],
            "x-amz-sns-topic-arn": arn,
            "Content-Type": CONTENT_TYPE,
            "User-Agent": USER_AGENT,
        }
        if kind == "UnsubscribeConfirmation":  # AWS's example names the subscription
            headers["x-amz-sns-subscription-arn"] = sub.arn
        body = json.dumps(fields, indent=2, separators=(",", " : "), ensure_ascii=False)
        task = self.loop.create_task(
            self.attempts(sub.endpoint, body.encode(), headers, retry_delays(topic, sub))
        )
        self._confirmations.add(task)
        task.add_done_callback(self._confirmations.discard)


def new_token() -> str:
    return secrets.token_hex(64)
