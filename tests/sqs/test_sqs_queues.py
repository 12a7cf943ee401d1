"""SQS queue actions over boto3 (JSON protocol): create/get/list/delete, attributes, purge,
tags, permissions, dead-letter sources, and their validation errors with AWS's codes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import BrokerThread
from tests.sqs.support import client, error_code


@pytest.fixture
def sqs(broker: BrokerThread) -> Any:
    return client(broker)


def test_create_is_idempotent_and_conflicts_are_queue_name_exists(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="orders", Attributes={"VisibilityTimeout": "40"})["QueueUrl"]
    assert url.endswith("/000000000000/orders")
    again = sqs.create_queue(QueueName="orders", Attributes={"VisibilityTimeout": "40"})
    assert again["QueueUrl"] == url
    assert sqs.create_queue(QueueName="orders")["QueueUrl"] == url
    with pytest.raises(sqs.exceptions.QueueNameExists) as info:
        sqs.create_queue(QueueName="orders", Attributes={"VisibilityTimeout": "41"})
    assert error_code(info.value) == "QueueAlreadyExists"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize(
    ("name", "attributes"),
    [
        ("has space", {}),
        ("a" * 81, {}),
        ("", {}),
        ("dot.name", {}),
        ("plain.fifo", {}),
        ("notfifo", {"FifoQueue": "true"}),
    ],
    ids=["space", "too-long", "empty", "dot", "fifo-suffix-without-attribute", "fifo-no-suffix"],
)
def test_bad_queue_names(sqs: Any, name: str, attributes: dict[str, str]) -> None:
    with pytest.raises(ClientError) as info:
        sqs.create_queue(QueueName=name, Attributes=attributes)
    assert error_code(info.value) in ("InvalidParameterValue", "MissingParameter")


@pytest.mark.parametrize(
    ("attribute", "value", "code"),
    [
        ("VisibilityTimeout", "43201", "InvalidAttributeValue"),
        ("DelaySeconds", "901", "InvalidAttributeValue"),
        ("MessageRetentionPeriod", "59", "InvalidAttributeValue"),
        ("MaximumMessageSize", "1023", "InvalidAttributeValue"),
        ("MaximumMessageSize", "1048577", "InvalidAttributeValue"),
        ("ReceiveMessageWaitTimeSeconds", "21", "InvalidAttributeValue"),
        ("VisibilityTimeout", "soon", "InvalidAttributeValue"),
        ("Colour", "red", "InvalidAttributeName"),
        ("ContentBasedDeduplication", "true", "InvalidAttributeName"),
        ("Policy", "{not json", "InvalidAttributeValue"),
        ("RedrivePolicy", '{"maxReceiveCount": 3}', "InvalidParameterValue"),
    ],
)
def test_attribute_validation(sqs: Any, attribute: str, value: str, code: str) -> None:
    with pytest.raises(ClientError) as info:
        sqs.create_queue(QueueName="v", Attributes={attribute: value})
    assert error_code(info.value) == code
    url = sqs.create_queue(QueueName="v2")["QueueUrl"]
    with pytest.raises(ClientError) as info:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={attribute: value})
    assert error_code(info.value) == code


def test_get_queue_url_and_missing_queue_errors(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="here")["QueueUrl"]
    assert sqs.get_queue_url(QueueName="here")["QueueUrl"] == url
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as info:
        sqs.get_queue_url(QueueName="nowhere")
    err = info.value.response
    assert err["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert err["Error"]["QueryErrorCode"] == "QueueDoesNotExist"
    assert err["Error"]["Type"] == "Sender"
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName="here", QueueOwnerAWSAccountId="111111111111")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=url.replace("here", "gone"), MessageBody="x")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=url.replace("000000000000", "111111111111"), MessageBody="x")


def test_list_queues_prefix_and_pagination(sqs: Any) -> None:
    for name in ("app-a", "app-b", "app-c", "other"):
        sqs.create_queue(QueueName=name)
    urls = sqs.list_queues(QueueNamePrefix="app-")["QueueUrls"]
    assert [u.rsplit("/", 1)[1] for u in urls] == ["app-a", "app-b", "app-c"]
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix="zzz")
    first = sqs.list_queues(QueueNamePrefix="app-", MaxResults=2)
    assert len(first["QueueUrls"]) == 2 and first["NextToken"]
    rest = sqs.list_queues(QueueNamePrefix="app-", MaxResults=2, NextToken=first["NextToken"])
    assert [u.rsplit("/", 1)[1] for u in rest["QueueUrls"]] == ["app-c"]
    assert "NextToken" not in rest
    paged = [
        u
        for page in sqs.get_paginator("list_queues").paginate(PaginationConfig={"PageSize": 1})
        for u in page.get("QueueUrls", [])
    ]
    assert len(paged) == 4
    with pytest.raises(ClientError) as info:
        sqs.list_queues(MaxResults=1001)
    assert error_code(info.value) == "InvalidParameterValue"


def test_delete_queue(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="doomed")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName="doomed")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.delete_queue(QueueUrl=url)
    url = sqs.create_queue(QueueName="doomed")["QueueUrl"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_attributes_and_live_counts(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="counted", Attributes={"DelaySeconds": "0"})["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=600)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "2"
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert attrs["ApproximateNumberOfMessagesDelayed"] == "1"
    assert attrs["QueueArn"] == "arn:aws:sqs:us-east-1:000000000000:counted"
    assert attrs["VisibilityTimeout"] == "30"
    assert attrs["MaximumMessageSize"] == "1048576"
    assert attrs["MessageRetentionPeriod"] == "345600"
    assert "FifoQueue" not in attrs and "RedrivePolicy" not in attrs
    one = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    assert one["Attributes"] == {"VisibilityTimeout": "30"}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "5"})
    one = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    assert one["Attributes"] == {"VisibilityTimeout": "5"}
    with pytest.raises(ClientError) as info:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Bogus"])
    assert error_code(info.value) == "InvalidAttributeName"


def test_purge_and_purge_in_progress(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="purged")["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "m"} for i in range(5)]
    )
    sqs.purge_queue(QueueUrl=url)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    with pytest.raises(sqs.exceptions.PurgeQueueInProgress) as info:
        sqs.purge_queue(QueueUrl=url)
    assert error_code(info.value) == "AWS.SimpleQueueService.PurgeQueueInProgress"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_tags(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="tagged", tags={"team": "a"})["QueueUrl"]
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "a"}
    sqs.tag_queue(QueueUrl=url, Tags={"env": "test", "team": "b"})
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "b", "env": "test"}
    sqs.untag_queue(QueueUrl=url, TagKeys=["team"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"env": "test"}
    with pytest.raises(ClientError) as info:
        sqs.tag_queue(QueueUrl=url, Tags={f"k{i}": "v" for i in range(51)})
    assert error_code(info.value) == "InvalidParameterValue"


def test_dead_letter_sources_and_permissions(sqs: Any) -> None:
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "2"})
    src = sqs.create_queue(QueueName="src", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    got = sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"]
    assert got == [src]
    policy = sqs.get_queue_attributes(QueueUrl=src, AttributeNames=["RedrivePolicy"])
    assert json.loads(policy["Attributes"]["RedrivePolicy"]) == {
        "deadLetterTargetArn": arn,
        "maxReceiveCount": 2,
    }
    bad = json.dumps({"deadLetterTargetArn": arn + "-missing", "maxReceiveCount": 2})
    with pytest.raises(ClientError) as info:
        sqs.set_queue_attributes(QueueUrl=src, Attributes={"RedrivePolicy": bad})
    assert error_code(info.value) == "InvalidParameterValue"

    sqs.add_permission(
        QueueUrl=src, Label="p1", AWSAccountIds=["123456789012"], Actions=["SendMessage"]
    )
    stmt = json.loads(
        sqs.get_queue_attributes(QueueUrl=src, AttributeNames=["Policy"])["Attributes"]["Policy"]
    )["Statement"]
    assert stmt[0]["Sid"] == "p1" and stmt[0]["Action"] == ["SQS:SendMessage"]
    sqs.remove_permission(QueueUrl=src, Label="p1")
    with pytest.raises(ClientError) as info:
        sqs.remove_permission(QueueUrl=src, Label="p1")
    assert error_code(info.value) == "InvalidParameterValue"


def test_attributes_and_tags_survive_restart(broker_factory: Any, tmp_path: Any) -> None:
    first = broker_factory()
    sqs = client(first)
    url = sqs.create_queue(QueueName="kept", Attributes={"VisibilityTimeout": "77"})["QueueUrl"]
    sqs.tag_queue(QueueUrl=url, Tags={"k": "v"})
    sqs.send_message(QueueUrl=url, MessageBody="durable")
    data_dir = first.settings.broker.data_dir
    first.stop()
    second = BrokerThread(tmp_path / "unused", **{"broker.data_dir": data_dir}).start()
    try:
        sqs = client(second)
        url = sqs.get_queue_url(QueueName="kept")["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
        assert attrs["Attributes"]["VisibilityTimeout"] == "77"
        assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"k": "v"}
        assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "durable"
    finally:
        second.stop()
