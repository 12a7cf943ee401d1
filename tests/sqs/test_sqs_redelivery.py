"""SQS messages and the broker's redelivery limit: however often an SQS message comes back
(expired visibility, a broker stop or DeleteQueue closing the pull subscription, a crash
ending a receive), it never lands in ActiveMQ.DLQ; only a RedrivePolicy dead-letters it,
to its own target after maxReceiveCount. STOMP semantics of ordinary queues are covered
by tests/stomp/test_stomp_acks.py, tests/store/test_persistence.py and
tests/daemon/test_crash.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.conftest import BrokerThread
from tests.daemon.test_crash import DLQ, BrokerProcess, Brokers, brokers, collect  # noqa: F401
from tests.sqs.support import CREDS, client

AWS_LISTENER = re.compile(r"aws listener on (\S+):(\d+)")
# A broker-side redelivery limit (off by default, as in ActiveMQ) set for these tests:
# SQS queues must never be dead-lettered by it, only by their own RedrivePolicy.
LIMIT = 6
WITH_LIMIT = {"destinations.max_redeliveries": LIMIT}


def receive_count(sqs: Any, url: str, visibility: int = 0) -> tuple[str, int]:
    """Receive the one message of `url`: its body and ApproximateReceiveCount."""
    got = sqs.receive_message(
        QueueUrl=url, VisibilityTimeout=visibility, AttributeNames=["ApproximateReceiveCount"]
    )["Messages"]
    assert len(got) == 1
    return got[0]["Body"], int(got[0]["Attributes"]["ApproximateReceiveCount"])


def no_activemq_dlq(broker: BrokerThread) -> bool:
    stats = broker.stats("ActiveMQ.DLQ")
    return stats is None or (stats.depth == 0 and stats.enqueued == 0)


def restart(broker: BrokerThread, tmp_path: Path) -> BrokerThread:
    data_dir = broker.settings.broker.data_dir
    broker.stop()
    return BrokerThread(tmp_path / "unused", **{"broker.data_dir": data_dir}, **WITH_LIMIT).start()


def test_expired_visibility_and_restarts_never_reach_activemq_dlq(
    broker_factory: Any, tmp_path: Path
) -> None:
    first = broker_factory(**WITH_LIMIT)
    sqs = client(first)
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="again and again")
    for n in range(1, LIMIT + 4):  # visibility expires past the broker's limit
        assert receive_count(sqs, url) == ("again and again", n)
    # In flight at the stop: the closing pull subscription returns it (counted).
    assert receive_count(sqs, url, visibility=300)[1] == LIMIT + 4
    assert no_activemq_dlq(first)
    second = restart(first, tmp_path)
    try:
        sqs = client(second)
        # Restore sees a redelivered message far past the limit: it stays on its queue.
        for n in range(LIMIT + 5, LIMIT + 10):
            assert receive_count(sqs, url) == ("again and again", n)
        assert no_activemq_dlq(second)
    finally:
        second.stop()


def test_redrive_policy_still_applies_across_a_restart(broker_factory: Any, tmp_path: Path) -> None:
    first = broker_factory(**WITH_LIMIT)
    sqs = client(first)
    dlq = sqs.create_queue(QueueName="parked")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": LIMIT + 4})
    url = sqs.create_queue(QueueName="jobs", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    for n in range(1, 6):
        assert receive_count(sqs, url) == ("poison", n)
    second = restart(first, tmp_path)
    try:
        sqs = client(second)
        for n in range(6, LIMIT + 5):
            assert receive_count(sqs, url) == ("poison", n)
        # The receive after maxReceiveCount redrives it to its own DLQ.
        assert "Messages" not in sqs.receive_message(QueueUrl=url)
        (dead,) = sqs.receive_message(QueueUrl=dlq)["Messages"]
        assert dead["Body"] == "poison"
        assert no_activemq_dlq(second)
    finally:
        second.stop()


def test_delete_queue_with_a_message_in_flight(broker: BrokerThread) -> None:
    sqs = client(broker)
    url = sqs.create_queue(QueueName="doomed")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    for _ in range(LIMIT + 1):
        receive_count(sqs, url)
    receive_count(sqs, url, visibility=300)
    sqs.delete_queue(QueueUrl=url)
    assert no_activemq_dlq(broker)


def test_receives_ended_by_crashes_never_reach_activemq_dlq(brokers: Brokers) -> None:  # noqa: F811
    """max_redeliveries=1, and a received SQS message in flight at three SIGKILLs: each
    crash-ended receive counts, none dead-letters."""
    limit = {"ZONEMQ_DESTINATIONS__MAX_REDELIVERIES": "1"}

    def sqs_of(proc: BrokerProcess) -> Any:
        port = int(proc.wait_for(AWS_LISTENER).group(2))
        return boto3.client(
            "sqs",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}),
            **CREDS,
        )

    proc = brokers.start(**limit)
    sqs = sqs_of(proc)
    url = sqs.create_queue(QueueName="fragile")["QueueUrl"]
    sync_url = sqs.create_queue(QueueName="sync")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="survivor")
    for crash in range(3):
        assert receive_count(sqs, url, visibility=300) == ("survivor", crash + 1)
        # A journaled send waits for everything written before it (the receive's record).
        sqs.send_message(QueueUrl=sync_url, MessageBody="sync")
        proc = brokers.crash_restart(proc, **limit)
        sqs = sqs_of(proc)
    assert receive_count(sqs, url) == ("survivor", 4)
    assert not collect(proc.port, DLQ)
