"""SNS against the authorization map (tests/authmap.py plus two topics): actions map to
read / write / admin on ``topic://<name>`` (protocols/aws/sns_authz.py), an sqs
subscription also needs write on its queue; a denial is AuthorizationError, HTTP 403,
with ActiveMQ's text, and lists show only readable topics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.authmap import BOB_PASSWORD, overrides
from tests.conftest import BrokerThread
from tests.sqs.sns_support import sns_client
from tests.sqs.support import client, error_code


@pytest.fixture
def secured(broker_factory: Callable[..., BrokerThread]) -> BrokerThread:
    settings = overrides()
    everyone = ["alices", "bobs"]
    settings["auth.authorization"] = [
        *settings["auth.authorization"],
        {"topic": "alice-news", "read": everyone, "write": ["alices"], "admin": ["alices"]},
        {"topic": "alice-secret", "read": ["alices"], "write": ["alices"], "admin": ["alices"]},
    ]
    return broker_factory(**settings)


def clients(b: BrokerThread) -> tuple[Any, Any, Any]:
    alice = {"aws_access_key_id": "alice", "aws_secret_access_key": "alice-sqs-secret"}
    bob = {"aws_access_key_id": "bob", "aws_secret_access_key": BOB_PASSWORD}
    return sns_client(b, **alice), sns_client(b, **bob), client(b, **alice)


def denied(call: Callable[..., Any], **kw: Any) -> str:
    with pytest.raises(ClientError) as info:
        call(**kw)
    assert error_code(info.value) == "AuthorizationError"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return str(info.value.response["Error"]["Message"])


def test_topic_operations_follow_the_map(secured: BrokerThread) -> None:
    alice, bob, sqs = clients(secured)
    assert "not authorized" in denied(bob.create_topic, Name="alice-news")
    news = alice.create_topic(Name="alice-news")["TopicArn"]
    secret = alice.create_topic(Name="alice-secret")["TopicArn"]
    text = denied(bob.publish, TopicArn=news, Message="forged")
    assert text == "User bob is not authorized to write to: topic://alice-news"
    denied(bob.delete_topic, TopicArn=news)
    denied(bob.set_topic_attributes, TopicArn=news, AttributeName="DisplayName",
           AttributeValue="x")  # fmt: skip
    denied(bob.tag_resource, ResourceArn=news, Tags=[{"Key": "k", "Value": "v"}])
    denied(bob.get_topic_attributes, TopicArn=secret)
    # bob may read alice-news: its attributes, and it is the only topic he lists.
    assert bob.get_topic_attributes(TopicArn=news)["Attributes"]["TopicArn"] == news
    assert [t["TopicArn"] for t in bob.list_topics()["Topics"]] == [news]
    assert len(alice.list_topics()["Topics"]) == 2
    # A subscription puts messages into its queue: bob needs write on it.
    inbox = sqs.create_queue(QueueName="alice-inbox")["QueueUrl"]
    inbox_arn = "arn:aws:sqs:us-east-1:000000000000:alice-inbox"
    text = denied(bob.subscribe, TopicArn=news, Protocol="sqs", Endpoint=inbox_arn)
    assert text == "User bob is not authorized to write to: queue://alice-inbox"
    shared = "arn:aws:sqs:us-east-1:000000000000:shared-jobs"
    sub = bob.subscribe(TopicArn=news, Protocol="sqs", Endpoint=shared)["SubscriptionArn"]
    assert bob.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]["Endpoint"] == shared
    alice.subscribe(TopicArn=secret, Protocol="sqs", Endpoint=inbox_arn)
    # bob lists only the subscriptions of topics he may read.
    assert [s["SubscriptionArn"] for s in bob.list_subscriptions()["Subscriptions"]] == [sub]
    assert len(alice.list_subscriptions()["Subscriptions"]) == 2
    alice.publish(TopicArn=secret, Message="to alice")
    got = sqs.receive_message(QueueUrl=inbox, WaitTimeSeconds=5)["Messages"]
    assert "to alice" in got[0]["Body"]
