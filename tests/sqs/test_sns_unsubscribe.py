"""SNS HTTP subscriptions leaving and expiring, against a real broker and a real aiohttp
endpoint: Unsubscribe POSTs a signed UnsubscribeConfirmation whose token restores the
subscription (ConfirmSubscription or a GET of its SubscribeURL) until it expires; a
pending (unconfirmed) subscription is listed as PendingConfirmation and deleted when
its life is over (``listeners.aws.sns_pending_expiry`` / ``sns_token_expiry``, short
here; AWS's three days by default)."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from botocore.exceptions import ClientError

from broker.config import ConfigError, load_settings
from tests.conftest import BrokerThread, wait_until
from tests.sqs.sns_support import sns_client, verify
from tests.sqs.support import error_code


@dataclass
class Posted:
    """One POST the endpoint received."""

    headers: dict[str, str]
    body: bytes


class AiohttpEndpoint:
    """An aiohttp server on an ephemeral port, on its own loop thread, answering 200 to
    every POST and recording it."""

    def __init__(self) -> None:
        self.posts: queue.Queue[Posted] = queue.Queue()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sns"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            self.posts.put(Posted({k.lower(): v for k, v in request.headers.items()}, body))
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post("/sns", hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def next(self, timeout: float = 10.0) -> Posted:
        return self.posts.get(timeout=timeout)

    def next_json(self, timeout: float = 10.0) -> dict[str, Any]:
        return dict(json.loads(self.next(timeout).body))

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def endpoint() -> Iterator[Callable[[], AiohttpEndpoint]]:
    made: list[AiohttpEndpoint] = []

    def make() -> AiohttpEndpoint:
        e = AiohttpEndpoint()
        made.append(e)
        return e

    yield make
    for e in made:
        e.stop()


def subscribe_confirmed(sns: Any, arn: str, e: AiohttpEndpoint) -> str:
    assert (
        sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=e.url)["SubscriptionArn"]
        == "pending confirmation"
    )
    doc = e.next_json()
    assert doc["Type"] == "SubscriptionConfirmation"
    return str(sns.confirm_subscription(TopicArn=arn, Token=doc["Token"])["SubscriptionArn"])


def refused_token(sns: Any, arn: str, token: str) -> bool:
    try:
        sns.confirm_subscription(TopicArn=arn, Token=token)
    except ClientError as exc:
        assert error_code(exc) == "InvalidParameter"
        assert exc.response["Error"]["Message"] == "Invalid parameter: Token"
        return True
    return False


def test_unsubscribe_posts_a_signed_confirmation_whose_token_restores(
    broker: BrokerThread, endpoint: Callable[[], AiohttpEndpoint]
) -> None:
    sns = sns_client(broker)
    e, other = endpoint(), endpoint()
    arn = sns.create_topic(Name="sns-unsub")["TopicArn"]
    sub = subscribe_confirmed(sns, arn, e)
    kept = subscribe_confirmed(sns, arn, other)
    sns.publish(TopicArn=arn, Message="before")
    assert e.next_json()["Message"] == "before"
    assert other.next_json()["Message"] == "before"

    sns.unsubscribe(SubscriptionArn=sub)
    posted = e.next()
    assert posted.headers["x-amz-sns-message-type"] == "UnsubscribeConfirmation"
    assert posted.headers["x-amz-sns-topic-arn"] == arn
    assert posted.headers["x-amz-sns-subscription-arn"] == sub
    assert posted.headers["user-agent"] == "Amazon Simple Notification Service Agent"
    doc = json.loads(posted.body)
    assert posted.headers["x-amz-sns-message-id"] == doc["MessageId"]
    assert list(doc) == [
        "Type", "MessageId", "Token", "TopicArn", "Message", "SubscribeURL", "Timestamp",
        "SignatureVersion", "Signature", "SigningCertURL",
    ]  # fmt: skip
    assert doc["Type"] == "UnsubscribeConfirmation"
    assert doc["TopicArn"] == arn
    assert doc["Message"] == (
        f"You have chosen to deactivate subscription {sub}.\nTo cancel this operation and "
        "restore the subscription, visit the SubscribeURL included in this message."
    )
    assert "Action=ConfirmSubscription" in doc["SubscribeURL"]
    assert doc["Token"] in doc["SubscribeURL"]
    assert verify(doc)
    doc["Message"] = doc["Message"] + " (changed)"
    assert not verify(doc)  # the signature covers Message

    # Gone: not listed, and a publish reaches only the other endpoint.
    listed = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert [s["SubscriptionArn"] for s in listed] == [kept]
    sns.publish(TopicArn=arn, Message="while gone")
    assert other.next_json()["Message"] == "while gone"

    # The SubscribeURL restores it: the same ARN, delivering again.
    with urllib.request.urlopen(json.loads(posted.body)["SubscribeURL"], timeout=10) as resp:
        text = resp.read().decode()
    assert f"<SubscriptionArn>{sub}</SubscriptionArn>" in text
    listed = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert sorted(s["SubscriptionArn"] for s in listed) == sorted([sub, kept])
    sns.publish(TopicArn=arn, Message="after")
    # The next POST is "after": nothing published while unsubscribed was owed.
    assert e.next_json()["Message"] == "after"
    assert other.next_json()["Message"] == "after"
    # A token restores once.
    assert refused_token(sns, arn, json.loads(posted.body)["Token"])


def test_unsubscribing_a_pending_or_sqs_subscription_posts_nothing(
    broker: BrokerThread, endpoint: Callable[[], AiohttpEndpoint]
) -> None:
    sns = sns_client(broker)
    e = endpoint()
    arn = sns.create_topic(Name="sns-unsub-pending")["TopicArn"]
    pending = sns.subscribe(
        TopicArn=arn, Protocol="http", Endpoint=e.url, ReturnSubscriptionArn=True
    )["SubscriptionArn"]
    assert e.next_json()["Type"] == "SubscriptionConfirmation"
    sns.unsubscribe(SubscriptionArn=pending)
    # Then a confirmed one: its UnsubscribeConfirmation is the next POST, so none
    # was sent for the pending one.
    sub = subscribe_confirmed(sns, arn, e)
    sns.unsubscribe(SubscriptionArn=sub)
    doc = e.next_json()
    assert doc["Type"] == "UnsubscribeConfirmation"
    assert sub in doc["Message"]


@pytest.fixture
def short_lives(broker_factory: Callable[..., BrokerThread]) -> BrokerThread:
    return broker_factory(
        **{"listeners.aws.sns_pending_expiry": 1.0, "listeners.aws.sns_token_expiry": 1.0}
    )


def test_pending_subscription_is_listed_then_expires(
    short_lives: BrokerThread, endpoint: Callable[[], AiohttpEndpoint]
) -> None:
    sns = sns_client(short_lives)
    e, ok = endpoint(), endpoint()
    arn = sns.create_topic(Name="sns-expiry")["TopicArn"]
    t0 = time.monotonic()
    sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=e.url)
    token = e.next_json()["Token"]
    confirmed = subscribe_confirmed(sns, arn, ok)
    subs = sns.list_subscriptions()["Subscriptions"]
    listed = {s["Endpoint"]: s["SubscriptionArn"] for s in subs}
    assert listed == {e.url: "PendingConfirmation", ok.url: confirmed}
    attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert (attrs["SubscriptionsPending"], attrs["SubscriptionsConfirmed"]) == ("1", "1")

    assert wait_until(lambda: len(sns.list_subscriptions()["Subscriptions"]) == 1, 10)
    assert time.monotonic() - t0 >= 1.0  # not before its life is over
    assert sns.list_subscriptions()["Subscriptions"][0]["SubscriptionArn"] == confirmed
    attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attrs["SubscriptionsPending"] == "0"
    assert attrs["SubscriptionsDeleted"] == "1"
    assert refused_token(sns, arn, token)
    # The confirmed subscription still delivers.
    sns.publish(TopicArn=arn, Message="still here")
    assert ok.next_json()["Message"] == "still here"


def test_unsubscribe_token_expires(
    short_lives: BrokerThread, endpoint: Callable[[], AiohttpEndpoint]
) -> None:
    sns = sns_client(short_lives)
    e = endpoint()
    arn = sns.create_topic(Name="sns-token-expiry")["TopicArn"]
    sub = subscribe_confirmed(sns, arn, e)
    sns.unsubscribe(SubscriptionArn=sub)
    first = e.next_json()
    assert first["Type"] == "UnsubscribeConfirmation"
    assert sns.confirm_subscription(TopicArn=arn, Token=first["Token"])["SubscriptionArn"] == sub
    sns.unsubscribe(SubscriptionArn=sub)
    t0 = time.monotonic()  # the token's life started before this
    second = e.next_json()
    assert second["Type"] == "UnsubscribeConfirmation"
    assert second["Token"] != first["Token"]
    # Trying the token would restore it while valid, so wait out its life (the one
    # timed wait here: the deadline is the thing tested).
    threading.Event().wait(max(0.0, t0 + 1.05 - time.monotonic()))
    assert refused_token(sns, arn, second["Token"])
    assert sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"] == []


@pytest.mark.parametrize(
    ("key", "value"),
    [("listeners.aws.sns_pending_expiry", 0), ("listeners.aws.sns_token_expiry", -1)],
)
def test_expiry_settings_must_be_positive(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=key):
        load_settings(None, env={}, overrides={key: value})


def test_restore_tokens_and_pending_subscriptions_survive_a_restart(
    tmp_path: Path, endpoint: Callable[[], AiohttpEndpoint]
) -> None:
    e, p = endpoint(), endpoint()
    first = BrokerThread(tmp_path / "data").start()
    try:
        sns = sns_client(first)
        arn = sns.create_topic(Name="sns-unsub-restart")["TopicArn"]
        sub = subscribe_confirmed(sns, arn, e)
        sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=p.url)
        pending_token = p.next_json()["Token"]
        sns.unsubscribe(SubscriptionArn=sub)
        token = e.next_json()["Token"]
    finally:
        first.stop()
    second = BrokerThread(tmp_path / "data").start()
    try:
        sns = sns_client(second)
        subs = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
        assert [(s["Endpoint"], s["SubscriptionArn"]) for s in subs] == [
            (p.url, "PendingConfirmation")
        ]
        assert sns.confirm_subscription(TopicArn=arn, Token=token)["SubscriptionArn"] == sub
        confirmed = sns.confirm_subscription(TopicArn=arn, Token=pending_token)
        sns.publish(TopicArn=arn, Message="after restart")
        assert e.next_json()["Message"] == "after restart"
        assert p.next_json()["Message"] == "after restart"
        assert confirmed["SubscriptionArn"].startswith(arn + ":")
    finally:
        second.stop()
