"""SQS message actions over boto3: send/receive/delete, MD5s against AWS's algorithm,
attribute selection, batches and their validation, visibility, stale receipt handles,
delays, redrive to a dead-letter queue, and long polling that returns early."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from broker.core import QUEUE, Address
from tests.conftest import BrokerThread
from tests.sqs.support import client, error_code, md5_attributes, wait_until, waiters


@pytest.fixture
def sqs(broker: BrokerThread) -> Any:
    return client(broker)


@pytest.fixture
def url(sqs: Any) -> str:
    return sqs.create_queue(QueueName="work")["QueueUrl"]


ATTRS = {
    "colour": {"DataType": "String", "StringValue": "blue ☂"},
    "price": {"DataType": "Number", "StringValue": "12.50"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
    "tag.x": {"DataType": "String.custom", "StringValue": "c"},
    "count": {"DataType": "Number.int", "StringValue": "-7"},
}


def test_send_receive_delete_with_md5s(sqs: Any, url: str) -> None:
    body = "héllo\r\nworld \U0001f600"
    sent = sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=ATTRS)
    assert sent["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()
    assert sent["MD5OfMessageAttributes"] == md5_attributes(ATTRS)
    got = sqs.receive_message(
        QueueUrl=url, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"]
    )["Messages"]
    assert len(got) == 1
    m = got[0]
    assert m["Body"] == body
    assert m["MessageId"] == sent["MessageId"]
    assert m["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert m["MessageAttributes"] == ATTRS
    assert m["MD5OfMessageAttributes"] == md5_attributes(ATTRS)
    a = m["Attributes"]
    assert a["ApproximateReceiveCount"] == "1"
    assert a["SenderId"] == "AKIDTEST"
    assert abs(int(a["SentTimestamp"]) - time.time() * 1000) < 60_000
    assert int(a["ApproximateFirstReceiveTimestamp"]) >= int(a["SentTimestamp"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_md5_of_system_attributes(sqs: Any, url: str) -> None:
    trace = {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-5759e988-bd862e3f"}}
    sent = sqs.send_message(QueueUrl=url, MessageBody="t", MessageSystemAttributes=trace)
    assert sent["MD5OfMessageSystemAttributes"] == md5_attributes(trace)
    m = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["AWSTraceHeader"])
    assert m["Messages"][0]["Attributes"] == {"AWSTraceHeader": "Root=1-5759e988-bd862e3f"}


def test_attribute_selection_by_name_prefix_and_all(sqs: Any, url: str) -> None:
    for _ in range(3):
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=ATTRS)
    m = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["colour", "tag.*"])["Messages"]
    selected = {k: ATTRS[k] for k in ("colour", "tag.x")}
    assert m[0]["MessageAttributes"] == selected
    assert m[0]["MD5OfMessageAttributes"] == md5_attributes(selected)
    m = sqs.receive_message(QueueUrl=url, AttributeNames=["SentTimestamp"])["Messages"]
    assert "MessageAttributes" not in m[0] and "MD5OfMessageAttributes" not in m[0]
    assert set(m[0]["Attributes"]) == {"SentTimestamp"}
    m = sqs.receive_message(QueueUrl=url, MessageAttributeNames=[".*"])["Messages"]
    assert m[0]["MessageAttributes"] == ATTRS


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"MessageBody": ""}, "MissingParameter"),
        ({"MessageBody": "bad \x01 char"}, "InvalidMessageContents"),
        ({"MessageBody": "x" * 1048577}, "InvalidParameterValue"),
        ({"MessageBody": "x", "DelaySeconds": 901}, "InvalidParameterValue"),
        ({"MessageBody": "x", "MessageDeduplicationId": "d"}, "InvalidParameterValue"),
        (
            {
                "MessageBody": "x",
                "MessageAttributes": {
                    f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)
                },
            },
            "InvalidParameterValue",
        ),
        (
            {
                "MessageBody": "x",
                "MessageAttributes": {"AWS.x": {"DataType": "String", "StringValue": "v"}},
            },
            "InvalidParameterValue",
        ),
        (
            {
                "MessageBody": "x",
                "MessageAttributes": {"a..b": {"DataType": "String", "StringValue": "v"}},
            },
            "InvalidParameterValue",
        ),
        (
            {
                "MessageBody": "x",
                "MessageAttributes": {"a": {"DataType": "Text", "StringValue": "v"}},
            },
            "InvalidParameterValue",
        ),
        (
            {
                "MessageBody": "x",
                "MessageAttributes": {"a": {"DataType": "Number", "StringValue": "1x"}},
            },
            "InvalidParameterValue",
        ),
        (
            {
                "MessageBody": "x",
                "MessageAttributes": {"a": {"DataType": "String", "StringValue": ""}},
            },
            "InvalidParameterValue",
        ),
    ],
    ids=[
        "empty-body",
        "bad-char",
        "too-big",
        "delay",
        "dedup-on-standard",
        "eleven-attributes",
        "reserved-name",
        "double-dot",
        "bad-type",
        "bad-number",
        "empty-value",
    ],
)
def test_send_validation(sqs: Any, url: str, kwargs: dict[str, Any], code: str) -> None:
    with pytest.raises(ClientError) as info:
        sqs.send_message(QueueUrl=url, **kwargs)
    assert error_code(info.value) == code


def test_maximum_message_size_counts_attributes(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="small", Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x" * 1024)
    attr = {"ab": {"DataType": "String", "StringValue": "v"}}
    with pytest.raises(ClientError) as info:
        sqs.send_message(QueueUrl=url, MessageBody="x" * 1020, MessageAttributes=attr)
    assert error_code(info.value) == "InvalidParameterValue"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"MaxNumberOfMessages": 0}, "MaxNumberOfMessages"),
        ({"MaxNumberOfMessages": 11}, "MaxNumberOfMessages"),
        ({"WaitTimeSeconds": 21}, "WaitTimeSeconds"),
        ({"VisibilityTimeout": 43201}, "VisibilityTimeout"),
    ],
)
def test_receive_validation(sqs: Any, url: str, kwargs: dict[str, Any], reason: str) -> None:
    with pytest.raises(ClientError) as info:
        sqs.receive_message(QueueUrl=url, **kwargs)
    assert error_code(info.value) == "InvalidParameterValue"
    assert reason in info.value.response["Error"]["Message"]


def test_batch_send_receive_delete(sqs: Any, url: str) -> None:
    entries = [{"Id": f"e{i}", "MessageBody": f"m{i}"} for i in range(10)]
    entries[3]["MessageBody"] = "bad \x02"
    res = sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert sorted(e["Id"] for e in res["Successful"]) == sorted(
        f"e{i}" for i in range(10) if i != 3
    )
    assert res["Failed"] == [
        {
            "Id": "e3",
            "SenderFault": True,
            "Code": "InvalidMessageContents",
            "Message": res["Failed"][0]["Message"],
        }
    ]
    for e in res["Successful"]:
        body = f"m{e['Id'][1:]}"
        assert e["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()
    got: list[dict[str, Any]] = []
    while len(got) < 9:
        got += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in got) == sorted(f"m{i}" for i in range(10) if i != 3)
    handles = [{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
    handles.append({"Id": "bad", "ReceiptHandle": "not-a-handle"})
    res = sqs.delete_message_batch(QueueUrl=url, Entries=handles)
    assert len(res["Successful"]) == 9
    assert [(f["Id"], f["Code"]) for f in res["Failed"]] == [("bad", "ReceiptHandleIsInvalid")]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessages"] == "0"
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "0"


@pytest.mark.parametrize(
    ("entries", "code"),
    [
        ([], "AWS.SimpleQueueService.EmptyBatchRequest"),
        (
            [{"Id": str(i), "MessageBody": "x"} for i in range(11)],
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
        ),
        (
            [{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}],
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
        ),
        ([{"Id": "bad id!", "MessageBody": "x"}], "AWS.SimpleQueueService.InvalidBatchEntryId"),
        (
            [{"Id": str(i), "MessageBody": "x" * 200_000} for i in range(6)],
            "AWS.SimpleQueueService.BatchRequestTooLong",
        ),
    ],
    ids=["empty", "eleven", "repeated-id", "bad-id", "too-long"],
)
def test_batch_validation(sqs: Any, url: str, entries: list[dict[str, Any]], code: str) -> None:
    with pytest.raises(ClientError) as info:
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert error_code(info.value) == code


@pytest.mark.parametrize("action", ["delete_message_batch", "change_message_visibility_batch"])
def test_other_batches_validate_too(sqs: Any, url: str, action: str) -> None:
    call = getattr(sqs, action)

    def entry(eid: str) -> dict[str, Any]:
        e: dict[str, Any] = {"Id": eid, "ReceiptHandle": "h"}
        if action.startswith("change"):
            e["VisibilityTimeout"] = 1
        return e

    for entries, code in (
        ([], "EmptyBatchRequest"),
        ([entry(str(i)) for i in range(11)], "TooManyEntriesInBatchRequest"),
        ([entry("a"), entry("a")], "BatchEntryIdsNotDistinct"),
        ([entry("no good")], "InvalidBatchEntryId"),
    ):
        with pytest.raises(ClientError) as info:
            call(QueueUrl=url, Entries=entries)
        assert error_code(info.value) == "AWS.SimpleQueueService." + code


def test_visibility_timeout_returns_message_with_count(sqs: Any, url: str) -> None:
    sqs.send_message(QueueUrl=url, MessageBody="again")
    first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0, AttributeNames=["All"])
    m1 = first["Messages"][0]
    second = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"][0]
    assert second["MessageId"] == m1["MessageId"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    assert (
        second["Attributes"]["ApproximateFirstReceiveTimestamp"]
        == m1["Attributes"]["ApproximateFirstReceiveTimestamp"]
    )
    assert second["ReceiptHandle"] != m1["ReceiptHandle"]
    # While it is in flight nobody else gets it.
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    # Making it visible again.
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=second["ReceiptHandle"], VisibilityTimeout=0
    )
    third = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])
    assert third["Messages"][0]["Attributes"]["ApproximateReceiveCount"] == "3"
    # The stale handles: visibility change fails, delete succeeds without deleting.
    with pytest.raises(ClientError) as info:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=m1["ReceiptHandle"], VisibilityTimeout=10
        )
    assert error_code(info.value) == "InvalidParameterValue"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m1["ReceiptHandle"])
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1"
    # The current one deletes; deleting twice is fine.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=third["Messages"][0]["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=third["Messages"][0]["ReceiptHandle"])
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert attrs["ApproximateNumberOfMessages"] == "0"


def test_expired_handle_still_deletes_unreceived_message(sqs: Any, url: str) -> None:
    sqs.send_message(QueueUrl=url, MessageBody="late delete")
    m = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]
    with pytest.raises(ClientError) as info:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=5
        )
    # What AWS answers for a handle whose receive has ended (not MessageNotInflight).
    assert error_code(info.value) == "InvalidParameterValue"
    assert info.value.response["Error"]["Message"].endswith(
        "Reason: The receipt handle has expired."
    )
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_receipt_handle_validation(sqs: Any, url: str) -> None:
    other = sqs.create_queue(QueueName="other")["QueueUrl"]
    sqs.send_message(QueueUrl=other, MessageBody="x")
    handle = sqs.receive_message(QueueUrl=other)["Messages"][0]["ReceiptHandle"]
    for bad in ("garbage!!", base64.b64encode(b"x").decode(), handle):
        with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid) as info:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=bad)
        assert error_code(info.value) == "ReceiptHandleIsInvalid"


def test_change_visibility_batch(sqs: Any, url: str) -> None:
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(2)]
    )
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    while len(got) < 2:
        got += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    res = sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "a", "ReceiptHandle": got[0]["ReceiptHandle"], "VisibilityTimeout": 0},
            {"Id": "b", "ReceiptHandle": got[1]["ReceiptHandle"], "VisibilityTimeout": 43201},
        ],
    )
    assert [e["Id"] for e in res["Successful"]] == ["a"]
    assert [(e["Id"], e["Code"]) for e in res["Failed"]] == [("b", "InvalidParameterValue")]
    again = sqs.receive_message(QueueUrl=url)["Messages"]
    assert again[0]["MessageId"] == got[0]["MessageId"]


def test_delay_seconds_message_and_queue(sqs: Any, broker: BrokerThread) -> None:
    url = sqs.create_queue(QueueName="delayed", Attributes={"DelaySeconds": "900"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="queue delay")
    sqs.send_message(QueueUrl=url, MessageBody="no delay", DelaySeconds=0)
    sqs.send_message(QueueUrl=url, MessageBody="short", DelaySeconds=1)
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in got] == ["no delay"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesDelayed"] == "2"
    # The one-second delay ends during a long poll, which returns it at once.
    started = time.monotonic()
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10)["Messages"]
    assert [m["Body"] for m in got] == ["short"]
    assert time.monotonic() - started < 5


def test_redrive_to_dead_letter_queue(sqs: Any) -> None:
    dlq = sqs.create_queue(QueueName="dead")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    src = sqs.create_queue(
        QueueName="live",
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 2})
        },
    )["QueueUrl"]
    sent = sqs.send_message(
        QueueUrl=src, MessageBody="poison", MessageAttributes={"k": ATTRS["colour"]}
    )
    for expected in ("1", "2"):
        m = sqs.receive_message(
            QueueUrl=src, VisibilityTimeout=0, AttributeNames=["ApproximateReceiveCount"]
        )["Messages"][0]
        assert m["Attributes"]["ApproximateReceiveCount"] == expected
    assert "Messages" not in sqs.receive_message(QueueUrl=src)
    dead = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"])["Messages"][0]
    assert dead["Body"] == "poison"
    assert dead["MessageId"] == sent["MessageId"]
    assert dead["MessageAttributes"] == {"k": ATTRS["colour"]}


def test_retention_drops_old_messages(sqs: Any, broker: BrokerThread) -> None:
    url = sqs.create_queue(QueueName="brief", Attributes={"MessageRetentionPeriod": "60"})[
        "QueueUrl"
    ]
    sqs.send_message(QueueUrl=url, MessageBody="old")

    def age() -> None:  # make the message 61 s old instead of waiting a minute
        for m in broker.broker.core.browse(Address(QUEUE, "brief")):
            m.timestamp -= 61_000

    broker.call(age)
    sqs.send_message(QueueUrl=url, MessageBody="new")
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in got] == ["new"]


def test_long_poll_returns_when_a_message_arrives(sqs: Any, url: str, broker: BrokerThread) -> None:
    result: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        result["resp"] = client(broker).receive_message(QueueUrl=url, WaitTimeSeconds=20)
        result["took"] = time.monotonic() - started

    t = threading.Thread(target=poll)
    t.start()
    wait_until(lambda: waiters(broker, "work") == 1)
    sqs.send_message(QueueUrl=url, MessageBody="wake up")
    t.join(10)
    assert not t.is_alive()
    assert [m["Body"] for m in result["resp"]["Messages"]] == ["wake up"]
    assert result["took"] < 5


def test_long_poll_queue_default_and_empty_result(sqs: Any, broker: BrokerThread) -> None:
    url = sqs.create_queue(QueueName="patient", Attributes={"ReceiveMessageWaitTimeSeconds": "1"})[
        "QueueUrl"
    ]
    started = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    assert 0.9 <= time.monotonic() - started < 5
    assert waiters(broker, "patient") == 0


def test_message_is_durable_before_send_returns(broker_factory: Any, tmp_path: Any) -> None:
    first = broker_factory()
    sqs = client(first)
    url = sqs.create_queue(QueueName="journaled")["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"b{i}"} for i in range(3)]
    )
    sqs.send_message(QueueUrl=url, MessageBody="single", MessageAttributes=ATTRS)
    data_dir = first.settings.broker.data_dir
    first.stop()
    second = BrokerThread(tmp_path / "unused", **{"broker.data_dir": data_dir}).start()
    try:
        sqs = client(second)
        got: list[dict[str, Any]] = []
        while len(got) < 4:
            page = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            )
            got += page.get("Messages", [])
        assert sorted(m["Body"] for m in got) == ["b0", "b1", "b2", "single"]
        single = next(m for m in got if m["Body"] == "single")
        assert single["MessageAttributes"] == ATTRS
    finally:
        second.stop()
