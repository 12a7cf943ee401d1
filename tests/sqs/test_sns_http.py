"""SNS HTTP/HTTPS subscriptions against a real broker and real HTTP endpoints (each a
ThreadingHTTPServer on an ephemeral port): the signed SubscriptionConfirmation, confirming
by SubscribeURL or ConfirmSubscription, notifications with AWS's headers, raw delivery,
retries per the delivery policy, the DLQ once retries are spent, a slow endpoint that
blocks neither the publisher nor other subscriptions, and no delivery lost to a SIGKILL."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import BrokerThread
from tests.sqs.sns_support import Endpoint, endpoints, queue_with_arn, sns_client, verify
from tests.sqs.support import client, error_code
from tests.sqs.test_sns_restart import SnsBrokerProcess

FAST_RETRY = {"minDelayTarget": 1, "maxDelayTarget": 1, "numRetries": 2}


@pytest.fixture
def sns(broker: BrokerThread) -> Any:
    return sns_client(broker)


@pytest.fixture
def endpoint() -> Iterator[Any]:
    yield from endpoints()


def confirmed(sns: Any, arn: str, e: Endpoint, **attributes: str) -> str:
    """Subscribe `e` and confirm by GETting the SubscribeURL it was sent."""
    out = sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=e.url, Attributes=attributes)
    assert out["SubscriptionArn"] == "pending confirmation"
    doc = e.next().json()
    assert doc["Type"] == "SubscriptionConfirmation"
    with urllib.request.urlopen(doc["SubscribeURL"], timeout=10) as resp:
        text = resp.read().decode()
    assert "<ConfirmSubscriptionResult><SubscriptionArn>" in text
    return text.split("<SubscriptionArn>")[1].split("</SubscriptionArn>")[0]


def test_confirmation_then_notifications_with_aws_headers(sns: Any, endpoint: Any) -> None:
    e = endpoint()
    arn = sns.create_topic(Name="sns-http")["TopicArn"]
    assert (
        sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=e.url)["SubscriptionArn"]
        == "pending confirmation"
    )
    req = e.next()
    assert req.headers["x-amz-sns-message-type"] == "SubscriptionConfirmation"
    assert req.headers["x-amz-sns-topic-arn"] == arn
    assert "x-amz-sns-subscription-arn" not in req.headers
    assert req.headers["user-agent"] == "Amazon Simple Notification Service Agent"
    doc = req.json()
    assert list(doc) == [
        "Type", "MessageId", "Token", "TopicArn", "Message", "SubscribeURL", "Timestamp",
        "SignatureVersion", "Signature", "SigningCertURL",
    ]  # fmt: skip
    assert req.headers["x-amz-sns-message-id"] == doc["MessageId"]
    assert doc["TopicArn"] == arn
    assert f"Action=ConfirmSubscription&TopicArn={arn}&Token={doc['Token']}" in doc["SubscribeURL"]
    assert verify(doc)
    # A token changed in its last character (to one it does not already end in).
    other = "1" if doc["Token"].endswith("0") else "0"
    assert not verify({**doc, "Token": doc["Token"][:-1] + other})
    # Pending: listed as such, and not delivered to.
    listed = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert [s["SubscriptionArn"] for s in listed] == ["PendingConfirmation"]
    attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert (attrs["SubscriptionsPending"], attrs["SubscriptionsConfirmed"]) == ("1", "0")
    sns.publish(TopicArn=arn, Message="too early")
    assert e.none_within(0.5)
    # Wrong token, then the right one.
    with pytest.raises(ClientError) as info:
        sns.confirm_subscription(TopicArn=arn, Token="nope")
    assert error_code(info.value) == "InvalidParameter"
    sub = sns.confirm_subscription(TopicArn=arn, Token=doc["Token"])["SubscriptionArn"]
    assert sub.startswith(arn + ":")
    a = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    assert a["PendingConfirmation"] == "false"
    assert json.loads(a["EffectiveDeliveryPolicy"])["healthyRetryPolicy"]["numRetries"] == 3
    mid = sns.publish(TopicArn=arn, Message="hello http", Subject="S")["MessageId"]
    req = e.next()
    assert req.headers["x-amz-sns-message-type"] == "Notification"
    assert req.headers["x-amz-sns-message-id"] == mid
    assert req.headers["x-amz-sns-topic-arn"] == arn
    assert req.headers["x-amz-sns-subscription-arn"] == sub
    assert req.headers["content-type"] == "text/plain; charset=UTF-8"
    doc = req.json()
    assert (doc["Type"], doc["MessageId"], doc["Message"], doc["Subject"]) == (
        "Notification", mid, "hello http", "S",
    )  # fmt: skip
    assert verify(doc)
    # Unsubscribed: the UnsubscribeConfirmation (tests/sqs/test_sns_unsubscribe.py), then
    # no more POSTs.
    sns.unsubscribe(SubscriptionArn=sub)
    assert e.next().json()["Type"] == "UnsubscribeConfirmation"
    sns.publish(TopicArn=arn, Message="gone")
    assert e.none_within(0.5)


def test_subscribe_url_confirms_and_raw_delivery(sns: Any, endpoint: Any) -> None:
    e = endpoint()
    arn = sns.create_topic(Name="sns-http-raw")["TopicArn"]
    sub = confirmed(sns, arn, e, RawMessageDelivery="true")
    sns.publish(
        TopicArn=arn,
        Message="raw!",
        MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}},
    )
    req = e.next()
    assert req.body == b"raw!"
    assert req.headers["x-amz-sns-rawdelivery"] == "true"
    assert req.headers["x-amz-sns-subscription-arn"] == sub


def test_retries_follow_the_delivery_policy(sns: Any, endpoint: Any) -> None:
    e = endpoint()
    arn = sns.create_topic(Name="sns-http-retry")["TopicArn"]
    policy = json.dumps({"healthyRetryPolicy": FAST_RETRY})
    confirmed(sns, arn, e, DeliveryPolicy=policy)
    e.statuses[:] = [500, 503]
    mid = sns.publish(TopicArn=arn, Message="again")["MessageId"]
    first = e.next()
    t0 = time.monotonic()
    second = e.next()
    third = e.next()
    elapsed = time.monotonic() - t0
    ids = {r.headers["x-amz-sns-message-id"] for r in (first, second, third)}
    assert ids == {mid}
    assert elapsed >= 0.9  # two retries, one second apart, after the first attempt
    assert e.none_within(1.5)  # delivered at the third attempt: no more


def test_spent_retries_go_to_the_dead_letter_queue(
    broker: BrokerThread, sns: Any, endpoint: Any
) -> None:
    sqs = client(broker)
    e = endpoint()
    dlq_url, dlq = queue_with_arn(sqs, "sns-http-dlq")
    arn = sns.create_topic(Name="sns-http-dead")["TopicArn"]
    policy = json.dumps({"healthyRetryPolicy": {**FAST_RETRY, "numRetries": 1}})
    confirmed(
        sns, arn, e, DeliveryPolicy=policy, RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq})
    )
    e.statuses[:] = [500, 500]
    mid = sns.publish(TopicArn=arn, Message="never")["MessageId"]
    e.next()
    e.next()
    got = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=10)["Messages"]
    doc = json.loads(got[0]["Body"])
    assert (doc["MessageId"], doc["Message"]) == (mid, "never")


def test_slow_endpoint_blocks_neither_publisher_nor_others(sns: Any, endpoint: Any) -> None:
    slow, fast = endpoint(), endpoint()
    arn = sns.create_topic(Name="sns-http-slow")["TopicArn"]
    confirmed(sns, arn, slow)
    confirmed(sns, arn, fast)
    slow.hold.clear()  # it takes requests and does not answer
    t0 = time.monotonic()
    for i in range(30):
        sns.publish(TopicArn=arn, Message=f"m{i}")
    assert time.monotonic() - t0 < 10
    got = sorted(fast.next().json()["Message"] for _ in range(30))
    assert got == sorted(f"m{i}" for i in range(30))
    # The slow one has at most its in-flight window open.
    seen = 0
    while not slow.requests.empty():
        slow.requests.get_nowait()
        seen += 1
    assert 1 <= seen <= 10
    slow.hold.set()
    rest = 30 - seen
    for _ in range(rest):
        slow.next()


@pytest.mark.parametrize(
    ("protocol", "url", "attributes", "words"),
    [
        ("http", "ftp://x/", {}, "Endpoint"),
        ("https", "http://127.0.0.1/", {}, "Endpoint"),
        ("http", "http:///nohost", {}, "Endpoint"),
        ("http", "http://127.0.0.1/",
         {"DeliveryPolicy": '{"healthyRetryPolicy": {"minDelayTarget": 0}}'}, "minDelayTarget"),
        ("http", "http://127.0.0.1/",
         {"DeliveryPolicy": '{"healthyRetryPolicy": {"numRetries": 101}}'}, "numRetries"),
        ("http", "http://127.0.0.1/",
         {"DeliveryPolicy": '{"healthyRetryPolicy": {"backoffFunction": "cubic"}}'},
         "backoffFunction"),
    ],
)  # fmt: skip
def test_http_subscribe_validation(
    sns: Any, protocol: str, url: str, attributes: dict[str, str], words: str
) -> None:
    arn = sns.create_topic(Name="sns-http-bad")["TopicArn"]
    with pytest.raises(ClientError) as info:
        sns.subscribe(TopicArn=arn, Protocol=protocol, Endpoint=url, Attributes=attributes)
    assert error_code(info.value) == "InvalidParameter"
    assert words in info.value.response["Error"]["Message"]
    assert sns.list_subscriptions()["Subscriptions"] == []


def test_fifo_topic_refuses_http(sns: Any) -> None:
    arn = sns.create_topic(Name="sns-http.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    with pytest.raises(ClientError) as info:
        sns.subscribe(TopicArn=arn, Protocol="http", Endpoint="http://127.0.0.1/")
    assert "FIFO SQS Queues" in info.value.response["Error"]["Message"]


def test_deliveries_owed_to_an_endpoint_survive_sigkill(tmp_path: Path) -> None:
    e = Endpoint().start()
    first = SnsBrokerProcess(tmp_path / "data", tmp_path)
    second: SnsBrokerProcess | None = None
    try:
        arn = first.sns.create_topic(Name="sns-http-crash")["TopicArn"]
        confirmed(first.sns, arn, e)
        port = e.port
        e.stop()  # the endpoint is down: every POST fails and waits for its retry
        ids = {first.sns.publish(TopicArn=arn, Message=f"m{i}")["MessageId"] for i in range(5)}
        first.kill()
        e = Endpoint(port=port).start()
        second = SnsBrokerProcess(tmp_path / "data", tmp_path)
        got = {e.next(15).headers["x-amz-sns-message-id"] for _ in range(5)}
        assert got == ids
        second.stop()
    finally:
        e.stop()
        first.cleanup()
        if second is not None:
            second.cleanup()
