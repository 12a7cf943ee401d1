"""SQS differences from AWS that a boto3 user met, each checked with boto3 (issue 13):
FIFO DelaySeconds=0, UUID MessageIds, PurgeQueue of in-flight messages (FIFO groups
freed), AddPermission's validation, SequenceNumber's form, receipt-handle errors."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import BrokerThread
from tests.sqs.support import client, error_code

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def sqs(broker: BrokerThread) -> Any:
    return client(broker)


def fifo(sqs: Any, name: str) -> str:
    attrs = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    return sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]


def test_fifo_accepts_a_zero_per_message_delay(sqs: Any) -> None:
    url = fifo(sqs, "zero.fifo")
    sqs.send_message(QueueUrl=url, MessageBody="a", MessageGroupId="g", DelaySeconds=0)
    batch = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": "b", "MessageBody": "b", "MessageGroupId": "g", "DelaySeconds": 0}],
    )
    assert [s["Id"] for s in batch["Successful"]] == ["b"] and not batch.get("Failed")
    with pytest.raises(ClientError) as info:
        sqs.send_message(QueueUrl=url, MessageBody="c", MessageGroupId="g", DelaySeconds=1)
    assert error_code(info.value) == "InvalidParameterValue"
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in got] == ["a", "b"]


def test_message_ids_are_uuids_whoever_sent_the_message(
    broker: BrokerThread, sqs: Any, connect
) -> None:
    url = sqs.create_queue(QueueName="ids")["QueueUrl"]
    sent = sqs.send_message(QueueUrl=url, MessageBody="from sqs")["MessageId"]
    batch = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "x", "MessageBody": "b"}])
    assert UUID.fullmatch(sent) and UUID.fullmatch(batch["Successful"][0]["MessageId"])
    stomp = connect()
    stomp.send("/queue/ids", "from stomp")
    stomp.sync()
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    ids = {m["Body"]: m["MessageId"] for m in got["Messages"]}
    assert ids["from sqs"] == sent
    assert all(UUID.fullmatch(i) for i in ids.values())
    # The same message keeps its MessageId on the next receive.
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert {m["Body"]: m["MessageId"] for m in again} == ids
    # Usable as batch entry ids, as real code does.
    entries = [{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in again]
    assert len(sqs.delete_message_batch(QueueUrl=url, Entries=entries)["Successful"]) == 3
    uuid.UUID(sent)


def test_purge_removes_in_flight_messages_and_frees_fifo_groups(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="purge-inflight")["QueueUrl"]
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    held = sqs.receive_message(QueueUrl=url, VisibilityTimeout=600)["Messages"][0]
    sqs.purge_queue(QueueUrl=url)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    # The purged message's handle deletes nothing and fails nothing.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=held["ReceiptHandle"])

    q = fifo(sqs, "purge-groups.fifo")
    sqs.send_message(QueueUrl=q, MessageBody="first", MessageGroupId="g")
    assert sqs.receive_message(QueueUrl=q, VisibilityTimeout=600)["Messages"][0]["Body"] == "first"
    sqs.purge_queue(QueueUrl=q)
    sqs.send_message(QueueUrl=q, MessageBody="after", MessageGroupId="g")
    # The group is not held by the purged in-flight message any more.
    assert sqs.receive_message(QueueUrl=q)["Messages"][0]["Body"] == "after"


def test_add_permission_validates_as_aws(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="shared")["QueueUrl"]
    acct = ["123456789012"]

    def refused(actions: list[str], accounts: list[str] = acct) -> ClientError:
        with pytest.raises(ClientError) as info:
            sqs.add_permission(QueueUrl=url, Label="p", AWSAccountIds=accounts, Actions=actions)
        return info.value

    eight = ["SendMessage", "ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility"] * 2
    assert error_code(refused(eight)) == "OverLimit"
    owner_only = refused(["DeleteQueue"])
    assert error_code(owner_only) == "InvalidParameterValue"
    assert "SQS:DeleteQueue" in owner_only.response["Error"]["Message"]
    assert error_code(refused(["Launch"])) == "InvalidParameterValue"
    assert error_code(refused(["SendMessageBatch"])) == "InvalidParameterValue"
    assert error_code(refused(["SendMessage"], ["not-an-account"])) == "InvalidParameterValue"
    seven = ["SendMessage", "ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility"]
    seven += ["GetQueueAttributes", "GetQueueUrl", "*"]
    sqs.add_permission(QueueUrl=url, Label="p", AWSAccountIds=acct, Actions=seven)


def test_sequence_numbers_look_like_aws_and_grow_per_group(sqs: Any) -> None:
    url = fifo(sqs, "seq.fifo")
    seqs: dict[str, list[int]] = {"a": [], "b": []}
    for i in range(6):
        group = "ab"[i % 2]
        out = sqs.send_message(QueueUrl=url, MessageBody=f"m{i}", MessageGroupId=group)
        assert re.fullmatch(r"[1-9]\d{19}", out["SequenceNumber"]), out["SequenceNumber"]
        seqs[group].append(int(out["SequenceNumber"]))
    assert all(s == sorted(set(s)) for s in seqs.values())


def test_receipt_handle_errors_as_aws_writes_them(sqs: Any) -> None:
    a = sqs.create_queue(QueueName="handles-a")["QueueUrl"]
    b = sqs.create_queue(QueueName="handles-b")["QueueUrl"]
    sqs.send_message(QueueUrl=a, MessageBody="x")
    handle = sqs.receive_message(QueueUrl=a)["Messages"][0]["ReceiptHandle"]
    with pytest.raises(ClientError) as info:
        sqs.delete_message(QueueUrl=b, ReceiptHandle=handle)
    assert error_code(info.value) == "ReceiptHandleIsInvalid"
    assert info.value.response["Error"]["Message"] == (
        f'The receipt handle "{handle}" is not valid for this queue.'
    )
    with pytest.raises(ClientError) as info:
        sqs.delete_message(QueueUrl=b, ReceiptHandle="garbage")
    assert info.value.response["Error"]["Message"] == (
        'The input receipt handle "garbage" is not a valid receipt handle.'
    )
