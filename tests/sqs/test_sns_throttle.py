"""The HTTP/HTTPS delivery throttle (DeliveryPolicy ``throttlePolicy.maxReceivesPerSecond``,
the topic's ``http.defaultThrottlePolicy``) against a real broker and real aiohttp
endpoints that timestamp each POST as it arrives: a 1/s subscription's POSTs come about
a second apart while another subscription of the topic, and the publisher, do not wait;
and the policy's validation (AWS's documented shape, the rate an integer of at least 1)."""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from botocore.exceptions import ClientError

from tests.conftest import BrokerThread
from tests.sqs.sns_support import sns_client
from tests.sqs.support import error_code


@dataclass
class Arrival:
    """One POST as the endpoint saw it: its monotonic arrival time and its body."""

    at: float
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class AiohttpEndpoint:
    """An aiohttp server on an ephemeral port, on its own loop in its own thread."""

    arrivals: queue.Queue[Arrival] = field(default_factory=queue.Queue)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> AiohttpEndpoint:
        ready = threading.Event()

        async def hook(request: web.Request) -> web.Response:
            # Timestamp first: what is measured is when the broker's POST arrived.
            at = time.monotonic()
            body = await request.read()
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.arrivals.put(Arrival(at, headers, body))
            return web.Response(status=200)

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/hook", hook)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()

        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(serve(), self._loop)
        assert ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)

    def next(self, timeout: float = 10.0) -> Arrival:
        return self.arrivals.get(timeout=timeout)


@pytest.fixture
def sns(broker: BrokerThread) -> Any:
    return sns_client(broker)


@pytest.fixture
def endpoints() -> Iterator[Any]:
    made: list[AiohttpEndpoint] = []

    def make() -> AiohttpEndpoint:
        e = AiohttpEndpoint().start()
        made.append(e)
        return e

    yield make
    for e in made:
        e.stop()


def confirmed(sns: Any, arn: str, e: AiohttpEndpoint, **attributes: str) -> str:
    out = sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=e.url, Attributes=attributes)
    assert out["SubscriptionArn"] == "pending confirmation"
    doc = e.next().json()
    assert doc["Type"] == "SubscriptionConfirmation"
    with urllib.request.urlopen(doc["SubscribeURL"], timeout=10) as resp:
        text = resp.read().decode()
    return text.split("<SubscriptionArn>")[1].split("</SubscriptionArn>")[0]


def test_one_per_second_spaces_its_posts_and_holds_no_one_else(sns: Any, endpoints: Any) -> None:
    slow, free = endpoints(), endpoints()
    arn = sns.create_topic(Name="sns-throttle")["TopicArn"]
    policy = json.dumps({"throttlePolicy": {"maxReceivesPerSecond": 1}})
    confirmed(sns, arn, slow, DeliveryPolicy=policy)
    confirmed(sns, arn, free)
    t0 = time.monotonic()
    sent = [sns.publish(TopicArn=arn, Message=f"m{i}")["MessageId"] for i in range(4)]
    published = time.monotonic() - t0
    assert published < 0.9  # the publisher did not wait for the throttle
    fast = [free.next() for _ in range(4)]
    # Unthrottled, a courier has up to IN_FLIGHT POSTs out at once: they may arrive in
    # any order (as a standard SNS topic's do); the throttled one below is ordered.
    assert sorted(a.json()["MessageId"] for a in fast) == sorted(sent)
    assert fast[-1].at - fast[0].at < 0.7  # no policy: all at once
    got = [slow.next() for _ in range(4)]
    assert [a.json()["MessageId"] for a in got] == sent  # in order
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
    assert all(gap >= 0.9 for gap in gaps), gaps  # 1/s, 0.1 s of timer tolerance
    assert got[-1].at - got[0].at < 4.5, gaps  # throttled, not stalled


def test_topic_default_throttle_and_its_override(sns: Any, endpoints: Any) -> None:
    """The topic's http.defaultThrottlePolicy applies to a subscription without its own;
    a subscription's throttlePolicy overrides it (no disableSubscriptionOverrides)."""
    paced, own = endpoints(), endpoints()
    arn = sns.create_topic(Name="sns-throttle-topic")["TopicArn"]
    sns.set_topic_attributes(
        TopicArn=arn,
        AttributeName="DeliveryPolicy",
        AttributeValue=json.dumps({"http": {"defaultThrottlePolicy": {"maxReceivesPerSecond": 2}}}),
    )
    confirmed(sns, arn, paced)
    sub = confirmed(sns, arn, own)
    sns.set_subscription_attributes(
        SubscriptionArn=sub,
        AttributeName="DeliveryPolicy",
        AttributeValue=json.dumps({"throttlePolicy": {"maxReceivesPerSecond": 100}}),
    )
    for i in range(3):
        sns.publish(TopicArn=arn, Message=f"t{i}")
    quick = [own.next() for _ in range(3)]
    assert quick[-1].at - quick[0].at < 0.7
    got = [paced.next() for _ in range(3)]
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
    assert all(gap >= 0.4 for gap in gaps), gaps  # 2/s


@pytest.mark.parametrize(
    "policy",
    [
        {"throttlePolicy": {"maxReceivesPerSecond": 0}},
        {"throttlePolicy": {"maxReceivesPerSecond": -3}},
        {"throttlePolicy": {"maxReceivesPerSecond": "5"}},
        {"throttlePolicy": {"maxReceivesPerSecond": 1.5}},
        {"throttlePolicy": {"maxReceivesPerSecond": True}},
        {"throttlePolicy": {"maxReceivesPerSecnd": 5}},
        {"throttlePolicy": 5},
    ],
)
def test_a_bad_throttle_is_invalid_parameter(sns: Any, policy: dict[str, Any]) -> None:
    arn = sns.create_topic(Name="sns-throttle-bad")["TopicArn"]
    with pytest.raises(ClientError) as info:
        sns.subscribe(
            TopicArn=arn,
            Protocol="http",
            Endpoint="http://127.0.0.1:9/",
            Attributes={"DeliveryPolicy": json.dumps(policy)},
        )
    assert error_code(info.value) == "InvalidParameter"
    assert "throttlePolicy" in info.value.response["Error"]["Message"]
    assert sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"] == []
    throttle = policy["throttlePolicy"]
    with pytest.raises(ClientError) as info:
        sns.set_topic_attributes(
            TopicArn=arn,
            AttributeName="DeliveryPolicy",
            AttributeValue=json.dumps({"http": {"defaultThrottlePolicy": throttle}}),
        )
    assert error_code(info.value) == "InvalidParameter"
    assert "defaultThrottlePolicy" in info.value.response["Error"]["Message"]
    attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert "defaultThrottlePolicy" not in attrs.get("DeliveryPolicy", "")
