"""SNS durability with a real broker process (`python -m broker run`): topics,
subscriptions, their attributes and tags are journal records durable before the action
answers, and Publish answers only once its SQS deliveries are journaled, so a SIGKILL
right after the answers loses none of them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.conftest import BrokerThread
from tests.sqs.sns_support import sns_client
from tests.sqs.support import client
from tests.sqs.test_sqs_restart import SqsBrokerProcess


class SnsBrokerProcess(SqsBrokerProcess):
    """A broker process with SQS and SNS clients on its aws port."""

    def __init__(self, data_dir: Path, cwd: Path, **env: str) -> None:
        super().__init__(data_dir, cwd, **env)
        self.sns = boto3.client(
            "sns",
            endpoint_url=self.sqs.meta.endpoint_url,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, read_timeout=30),
            aws_access_key_id="AKIDTEST",
            aws_secret_access_key="secret",
        )


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[Any]:
    started: list[SnsBrokerProcess] = []

    def start(**env: str) -> SnsBrokerProcess:
        b = SnsBrokerProcess(tmp_path / "data", tmp_path, **env)
        started.append(b)
        return b

    yield start
    for b in started:
        b.cleanup()


def queue(sqs: Any, name: str, **attributes: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        ms = out.get("Messages", [])
        if not ms:
            return got
        got.extend(ms)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(ms)],
        )


def test_published_messages_survive_sigkill_right_after_publish(brokers: Any) -> None:
    first = brokers()
    sns, sqs = first.sns, first.sqs
    arn = sns.create_topic(Name="sns-crash", Tags=[{"Key": "k", "Value": "v"}])["TopicArn"]
    urls = []
    for i in range(3):
        url, qarn = queue(sqs, f"sns-crash-{i}")
        attrs = {"RawMessageDelivery": "true"} if i == 2 else {}
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn, Attributes=attrs)
        urls.append(url)
    farn = sns.create_topic(Name="sns-crash.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    furl, fqarn = queue(sqs, "sns-crash-q.fifo", FifoQueue="true")
    sns.subscribe(TopicArn=farn, Protocol="sqs", Endpoint=fqarn)
    ids = []
    for i in range(30):
        ids.append(sns.publish(TopicArn=arn, Message=f"m{i}")["MessageId"])
    out = sns.publish_batch(
        TopicArn=arn,
        PublishBatchRequestEntries=[{"Id": str(i), "Message": f"b{i}"} for i in range(10)],
    )
    ids.extend(e["MessageId"] for e in out["Successful"])
    for i in range(10):
        sns.publish(
            TopicArn=farn, Message=f"f{i}", MessageGroupId="g", MessageDeduplicationId=str(i)
        )
    first.kill()  # at once: the answers are the only promise

    second = brokers()
    sns, sqs = second.sns, second.sqs
    bodies = {f"m{i}" for i in range(30)} | {f"b{i}" for i in range(10)}
    for url in urls[:2]:
        docs = [json.loads(m["Body"]) for m in drain(sqs, url)]
        assert sorted(d["MessageId"] for d in docs) == sorted(ids)
        assert {d["Message"] for d in docs} == bodies
    assert {m["Body"] for m in drain(sqs, urls[2])} == bodies
    fifo = [json.loads(m["Body"])["Message"] for m in drain(sqs, furl)]
    assert fifo == [f"f{i}" for i in range(10)]
    # Topics and subscriptions are back, and deliver.
    assert sorted(t["TopicArn"] for t in sns.list_topics()["Topics"]) == sorted([arn, farn])
    assert len(sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]) == 3
    assert sns.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "k", "Value": "v"}]
    sns.publish(TopicArn=arn, Message="after")
    assert [m["Body"] for m in drain(sqs, urls[2])] == ["after"]
    second.stop()


def test_topic_and_subscription_changes_survive_sigkill(brokers: Any) -> None:
    first = brokers()
    sns, sqs = first.sns, first.sqs
    arn = sns.create_topic(Name="sns-meta", Attributes={"DisplayName": "D"})["TopicArn"]
    gone = sns.create_topic(Name="sns-meta-gone")["TopicArn"]
    _, qarn = queue(sqs, "sns-meta-q")
    _, qarn2 = queue(sqs, "sns-meta-q2")
    sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)["SubscriptionArn"]
    dropped = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn2)["SubscriptionArn"]
    policy = '{"a": ["b"]}'
    sns.set_subscription_attributes(
        SubscriptionArn=sub, AttributeName="FilterPolicy", AttributeValue=policy
    )
    sns.set_subscription_attributes(
        SubscriptionArn=sub, AttributeName="RawMessageDelivery", AttributeValue="true"
    )
    sns.set_topic_attributes(TopicArn=arn, AttributeName="DisplayName", AttributeValue="E")
    sns.unsubscribe(SubscriptionArn=dropped)
    sns.delete_topic(TopicArn=gone)
    sns.tag_resource(ResourceArn=arn, Tags=[{"Key": "t", "Value": "1"}])
    first.kill()

    second = brokers()
    sns = second.sns
    assert [t["TopicArn"] for t in sns.list_topics()["Topics"]] == [arn]
    a = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert (a["DisplayName"], a["SubscriptionsConfirmed"], a["SubscriptionsDeleted"]) == (
        "E", "1", "1",
    )  # fmt: skip
    assert [s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"]] == [sub]
    sa = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    assert sa["FilterPolicy"] == policy and sa["RawMessageDelivery"] == "true"
    assert sns.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "t", "Value": "1"}]
    second.stop()


def test_publish_answers_only_once_its_deliveries_are_durable(broker: BrokerThread) -> None:
    """The SIGKILL test above cannot see a record written but not yet fsynced (the page
    cache outlives the process); this one can: when Publish answers, the journal has
    nothing outstanding (Core.barrier() is None), for single and batch publishes."""
    sns, sqs = sns_client(broker), client(broker)
    arn = sns.create_topic(Name="sns-durable")["TopicArn"]
    for i in range(3):
        _, qarn = queue(sqs, f"sns-durable-{i}")
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)

    def settled() -> bool:
        return broker.broker.core.barrier() is None

    for i in range(20):
        sns.publish(TopicArn=arn, Message=f"m{i}")
        assert broker.call(settled), i
        sns.publish_batch(
            TopicArn=arn,
            PublishBatchRequestEntries=[{"Id": str(j), "Message": f"b{j}"} for j in range(10)],
        )
        assert broker.call(settled), i
