"""FIFO queues: group ordering with one in-flight batch per group, deduplication (explicit,
content-based, per group), sequence numbers, FIFO-only validation, concurrent receivers."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import BrokerThread
from tests.sqs.support import client, error_code


@pytest.fixture
def sqs(broker: BrokerThread) -> Any:
    return client(broker)


def fifo(sqs: Any, name: str = "jobs.fifo", **attributes: str) -> str:
    return sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true", **attributes})[
        "QueueUrl"
    ]


def send(sqs: Any, url: str, body: str, group: str, dedup: str | None = None) -> dict[str, Any]:
    return sqs.send_message(
        QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=dedup or body
    )


def test_fifo_attributes(sqs: Any) -> None:
    url = fifo(sqs, ContentBasedDeduplication="true")
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["FifoQueue"] == "true"
    assert attrs["ContentBasedDeduplication"] == "true"
    assert attrs["DeduplicationScope"] == "queue"
    assert attrs["FifoThroughputLimit"] == "perQueue"
    sqs.set_queue_attributes(
        QueueUrl=url,
        Attributes={
            "DeduplicationScope": "messageGroup",
            "FifoThroughputLimit": "perMessageGroupId",
        },
    )
    with pytest.raises(ClientError) as info:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"FifoQueue": "false"})
    assert error_code(info.value) == "InvalidAttributeName"
    with pytest.raises(ClientError) as info:
        fifo(sqs, "x.fifo", FifoThroughputLimit="perMessageGroupId")
    assert error_code(info.value) == "InvalidParameterValue"


def test_fifo_send_validation(sqs: Any) -> None:
    url = fifo(sqs)
    with pytest.raises(ClientError) as info:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageDeduplicationId="d")
    assert error_code(info.value) == "MissingParameter"
    with pytest.raises(ClientError) as info:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")
    assert error_code(info.value) == "InvalidParameterValue"
    with pytest.raises(ClientError) as info:
        sqs.send_message(
            QueueUrl=url,
            MessageBody="x",
            MessageGroupId="g",
            MessageDeduplicationId="d",
            DelaySeconds=1,
        )
    assert error_code(info.value) == "InvalidParameterValue"
    with pytest.raises(ClientError) as info:
        sqs.send_message(
            QueueUrl=url, MessageBody="x", MessageGroupId="g" * 129, MessageDeduplicationId="d"
        )
    assert error_code(info.value) == "InvalidParameterValue"
    dlq = sqs.create_queue(QueueName="standard-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    with pytest.raises(ClientError) as info:
        sqs.set_queue_attributes(
            QueueUrl=url,
            Attributes={"RedrivePolicy": f'{{"deadLetterTargetArn":"{arn}","maxReceiveCount":1}}'},
        )
    assert error_code(info.value) == "InvalidParameterValue"


def test_deduplication_and_sequence_numbers(sqs: Any) -> None:
    url = fifo(sqs)
    a = send(sqs, url, "one", "g", dedup="d1")
    dup = send(sqs, url, "one again", "g", dedup="d1")
    b = send(sqs, url, "two", "g", dedup="d2")
    assert dup["MessageId"] == a["MessageId"]
    assert dup["SequenceNumber"] == a["SequenceNumber"]
    assert len(a["SequenceNumber"]) == 20 and int(b["SequenceNumber"]) > int(a["SequenceNumber"])
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
    msgs = got["Messages"]
    assert [m["Body"] for m in msgs] == ["one", "two"]
    assert msgs[0]["Attributes"]["SequenceNumber"] == a["SequenceNumber"]
    assert msgs[0]["Attributes"]["MessageDeduplicationId"] == "d1"
    assert msgs[0]["Attributes"]["MessageGroupId"] == "g"


def test_content_based_deduplication_and_group_scope(sqs: Any) -> None:
    url = fifo(sqs, "cbd.fifo", ContentBasedDeduplication="true")
    first = sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    again = sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="h")
    assert again["MessageId"] == first["MessageId"]
    scoped = fifo(
        sqs, "scoped.fifo", ContentBasedDeduplication="true", DeduplicationScope="messageGroup"
    )
    x = sqs.send_message(QueueUrl=scoped, MessageBody="same", MessageGroupId="g")
    y = sqs.send_message(QueueUrl=scoped, MessageBody="same", MessageGroupId="h")
    assert x["MessageId"] != y["MessageId"]


def test_one_inflight_batch_per_group(sqs: Any) -> None:
    url = fifo(sqs)
    for i in range(3):
        send(sqs, url, f"a{i}", "A")
    for i in range(2):
        send(sqs, url, f"b{i}", "B")
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]
    assert [m["Body"] for m in first] == ["a0", "a1"]
    # Group A is held: the next receive gets B, never a2.
    second = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in second] == ["b0", "b1"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    # Returning a1 (visibility 0) puts it back first in its group; A stays held by a0.
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=first[1]["ReceiptHandle"], VisibilityTimeout=0
    )
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    # An expired FIFO receipt handle no longer deletes.
    with pytest.raises(ClientError) as info:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=first[1]["ReceiptHandle"])
    assert error_code(info.value) == "InvalidParameterValue"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"])
    third = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
    assert [m["Body"] for m in third["Messages"]] == ["a1", "a2"]
    assert third["Messages"][0]["Attributes"]["ApproximateReceiveCount"] == "2"


def test_fifo_order_under_concurrent_receivers(sqs: Any, broker: BrokerThread) -> None:
    url = fifo(sqs, "busy.fifo")
    groups, per_group = 4, 15
    entries = [
        {
            "Id": f"{g}-{i}",
            "MessageBody": f"{g}:{i}",
            "MessageGroupId": f"g{g}",
            "MessageDeduplicationId": f"{g}-{i}",
        }
        for i in range(per_group)
        for g in range(groups)
    ]
    for start in range(0, len(entries), 10):
        sqs.send_message_batch(QueueUrl=url, Entries=entries[start : start + 10])
    seen: dict[str, list[int]] = defaultdict(list)
    lock = threading.Lock()
    held: set[str] = set()
    overlaps: list[str] = []
    total = groups * per_group

    def worker() -> None:
        c = client(broker)
        while True:
            with lock:
                if sum(len(v) for v in seen.values()) >= total:
                    return
            got = c.receive_message(QueueUrl=url, MaxNumberOfMessages=3, WaitTimeSeconds=1)
            msgs = got.get("Messages", [])
            batch_groups = {m["Body"].split(":")[0] for m in msgs}
            with lock:
                overlaps.extend(batch_groups & held)
                held.update(batch_groups)
                for m in msgs:
                    g, i = m["Body"].split(":")
                    seen[g].append(int(i))
            if msgs:
                with lock:
                    held.difference_update(batch_groups)
                c.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                        for n, m in enumerate(msgs)
                    ],
                )

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert not overlaps
    for g in range(groups):
        assert seen[str(g)] == list(range(per_group)), seen[str(g)]
