"""SQS message move tasks (DLQ redrive) over boto3 and the Query protocol: start, list,
completion back to the original source queues or to a DestinationArn, a rate-limited
task cancelled midway, AWS's validation errors, and moves that survive a restart."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import BrokerThread
from tests.sqs.support import client, error_code, http_call, wait_until

ATTRS = {
    "colour": {"DataType": "String", "StringValue": "blue"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
}


def arn_of(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]


def count(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def redrive_source(sqs: Any, name: str, dlq_arn: str) -> str:
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})
    return sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})["QueueUrl"]


def dead_letter(sqs: Any, url: str, n: int, prefix: str = "m") -> list[str]:
    """Send `n` messages to `url` and let each be received once, so that the next
    receive redrives them all (maxReceiveCount 1). Returns their message ids."""
    ids = []
    for i in range(n):
        sent = sqs.send_message(QueueUrl=url, MessageBody=f"{prefix}{i}", MessageAttributes=ATTRS)
        ids.append(sent["MessageId"])
    seen = 0
    while seen < n:
        seen += len(
            sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
                "Messages", []
            )
        )
    assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return ids


def latest(sqs: Any, source_arn: str) -> dict[str, Any]:
    return sqs.list_message_move_tasks(SourceArn=source_arn)["Results"][0]


def receive_all(sqs: Any, url: str, n: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < n:
        page = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        got += page.get("Messages", [])
    return got


@pytest.fixture
def sqs(broker: BrokerThread) -> Any:
    return client(broker)


def test_redrive_back_to_the_original_source_queues(sqs: Any) -> None:
    dlq = sqs.create_queue(QueueName="dead")["QueueUrl"]
    dlq_arn = arn_of(sqs, dlq)
    first = redrive_source(sqs, "first", dlq_arn)
    second = redrive_source(sqs, "second", dlq_arn)
    ids = {"first": dead_letter(sqs, first, 3, "a"), "second": dead_letter(sqs, second, 2, "b")}
    assert count(sqs, dlq) == 5
    assert sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"] == []

    handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    assert handle
    wait_until(lambda: latest(sqs, dlq_arn)["Status"] == "COMPLETED")
    task = latest(sqs, dlq_arn)
    assert task["ApproximateNumberOfMessagesMoved"] == 5
    assert task["ApproximateNumberOfMessagesToMove"] == 5
    assert task["SourceArn"] == dlq_arn
    assert "TaskHandle" not in task and "DestinationArn" not in task
    assert "MaxNumberOfMessagesPerSecond" not in task and "FailureReason" not in task
    assert count(sqs, dlq) == 0
    for url, prefix in ((first, "a"), (second, "b")):
        got = receive_all(sqs, url, len(ids[url.rsplit("/", 1)[1]]))
        assert sorted(m["Body"] for m in got) == [f"{prefix}{i}" for i in range(len(got))]
        # New message ids (the old ones may not come back to a queue they left).
        assert not {m["MessageId"] for m in got} & set(ids[url.rsplit("/", 1)[1]])
        assert all(m["MessageAttributes"] == ATTRS for m in got)
    # A finished task can no longer be cancelled.
    with pytest.raises(ClientError) as info:
        sqs.cancel_message_move_task(TaskHandle=handle)
    assert error_code(info.value) == "ResourceNotFoundException"


def test_redrive_to_a_destination_and_list_max_results(sqs: Any) -> None:
    dlq = sqs.create_queue(QueueName="dead")["QueueUrl"]
    dlq_arn = arn_of(sqs, dlq)
    src = redrive_source(sqs, "src", dlq_arn)
    other = sqs.create_queue(QueueName="elsewhere")["QueueUrl"]
    other_arn = arn_of(sqs, other)
    for round_ in range(3):
        dead_letter(sqs, src, 2, f"r{round_}-")
        sqs.start_message_move_task(
            SourceArn=dlq_arn, DestinationArn=other_arn, MaxNumberOfMessagesPerSecond=500
        )
        wait_until(lambda: latest(sqs, dlq_arn)["Status"] == "COMPLETED")
    tasks = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10)["Results"]
    assert len(tasks) == 3
    assert [t["DestinationArn"] for t in tasks] == [other_arn] * 3
    assert [t["MaxNumberOfMessagesPerSecond"] for t in tasks] == [500] * 3
    started = [t["StartedTimestamp"] for t in tasks]
    assert started == sorted(started, reverse=True)  # most recent first
    assert len(sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=2)["Results"]) == 2
    assert len(receive_all(sqs, other, 6)) == 6
    assert count(sqs, src) == 0


def test_cancel_a_rate_limited_task(sqs: Any) -> None:
    dlq = sqs.create_queue(QueueName="dead")["QueueUrl"]
    dlq_arn = arn_of(sqs, dlq)
    src = redrive_source(sqs, "src", dlq_arn)
    dead_letter(sqs, src, 5)
    handle = sqs.start_message_move_task(SourceArn=dlq_arn, MaxNumberOfMessagesPerSecond=1)[
        "TaskHandle"
    ]
    running = latest(sqs, dlq_arn)
    assert running["Status"] == "RUNNING" and running["TaskHandle"] == handle
    assert running["MaxNumberOfMessagesPerSecond"] == 1
    # Only one active task per source.
    with pytest.raises(ClientError) as info:
        sqs.start_message_move_task(SourceArn=dlq_arn)
    assert error_code(info.value) == "InvalidParameterValue"
    moved = sqs.cancel_message_move_task(TaskHandle=handle)["ApproximateNumberOfMessagesMoved"]
    assert moved < 5
    wait_until(lambda: latest(sqs, dlq_arn)["Status"] == "CANCELLED")
    task = latest(sqs, dlq_arn)
    assert task["ApproximateNumberOfMessagesMoved"] == moved
    assert "TaskHandle" not in task
    assert count(sqs, dlq) == 5 - moved and count(sqs, src) == moved
    # The source is free again.
    sqs.start_message_move_task(SourceArn=dlq_arn)
    wait_until(lambda: latest(sqs, dlq_arn)["Status"] == "COMPLETED")
    assert count(sqs, src) == 5


def test_validation(sqs: Any) -> None:
    dlq = sqs.create_queue(QueueName="dead")["QueueUrl"]
    dlq_arn = arn_of(sqs, dlq)
    src_arn = arn_of(sqs, redrive_source(sqs, "src", dlq_arn))
    missing = dlq_arn.rsplit(":", 1)[0] + ":nope"
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("start_message_move_task", {"SourceArn": missing}, "ResourceNotFoundException"),
        ("start_message_move_task", {"SourceArn": src_arn}, "InvalidParameterValue"),
        (
            "start_message_move_task",
            {"SourceArn": dlq_arn, "DestinationArn": missing},
            "ResourceNotFoundException",
        ),
        (
            "start_message_move_task",
            {"SourceArn": dlq_arn, "MaxNumberOfMessagesPerSecond": 501},
            "InvalidParameterValue",
        ),
        (
            "start_message_move_task",
            {"SourceArn": dlq_arn, "MaxNumberOfMessagesPerSecond": 0},
            "InvalidParameterValue",
        ),
        (
            "cancel_message_move_task",
            {"TaskHandle": "bm90IGEgdGFzaw=="},
            "ResourceNotFoundException",
        ),
        ("list_message_move_tasks", {"SourceArn": missing}, "ResourceNotFoundException"),
        (
            "list_message_move_tasks",
            {"SourceArn": dlq_arn, "MaxResults": 11},
            "InvalidParameterValue",
        ),
    ]
    for action, params, code in cases:
        with pytest.raises(ClientError) as info:
            getattr(sqs, action)(**params)
        assert error_code(info.value) == code, (action, params)


def test_query_protocol_and_moves_survive_a_restart(broker_factory: Any, tmp_path: Path) -> None:
    first = broker_factory()
    sqs = client(first)
    dlq = sqs.create_queue(QueueName="dead")["QueueUrl"]
    dlq_arn = arn_of(sqs, dlq)
    src = redrive_source(sqs, "src", dlq_arn)
    dead_letter(sqs, src, 3)
    status, _, body = http_call(
        first, form={"Action": "StartMessageMoveTask", "SourceArn": dlq_arn}
    )
    assert status == 200, body
    ns = {"s": "http://queue.amazonaws.com/doc/2012-11-05/"}
    handle = ET.fromstring(body).findtext(
        "s:StartMessageMoveTaskResult/s:TaskHandle", namespaces=ns
    )
    assert handle
    wait_until(lambda: latest(sqs, dlq_arn)["Status"] == "COMPLETED")
    status, _, body = http_call(
        first, form={"Action": "ListMessageMoveTasks", "SourceArn": dlq_arn, "MaxResults": "5"}
    )
    entry = ET.fromstring(body).find(
        "s:ListMessageMoveTasksResult/s:ListMessageMoveTasksResultEntry", namespaces=ns
    )
    assert entry is not None
    assert entry.findtext("s:Status", namespaces=ns) == "COMPLETED"
    assert entry.findtext("s:ApproximateNumberOfMessagesMoved", namespaces=ns) == "3"
    data_dir = first.settings.broker.data_dir
    first.stop()
    second = BrokerThread(tmp_path / "unused", **{"broker.data_dir": data_dir}).start()
    try:
        sqs = client(second)
        assert count(sqs, dlq) == 0
        got = receive_all(sqs, src, 3)
        assert sorted(m["Body"] for m in got) == ["m0", "m1", "m2"]
        # Tasks are not kept across a restart.
        assert sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"] == []
    finally:
        second.stop()
