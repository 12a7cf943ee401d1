"""SQS queue metadata across restarts of a real broker process (`python -m broker run`):
attributes and tags are journal records, durable before the action answers, so they
survive a graceful stop, a SIGKILL right after the response, and compaction; a
pre-journal ``queues.json`` is imported once and renamed."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import stomp
from botocore.config import Config

from tests.conftest import ChildBroker

WAIT = 15.0
BROKER_RUN = [sys.executable, "-m", "broker", "run"]
AWS_LISTENER = re.compile(r"aws listener on (\S+):(\d+)")
STOMP_LISTENER = re.compile(r"stomp listener on (\S+):(\d+)")


class SqsBrokerProcess(ChildBroker):
    """A broker process on a data directory, with a boto3 client on its SQS port."""

    def __init__(self, data_dir: Path, cwd: Path, **env: str) -> None:
        super().__init__([*BROKER_RUN, "--data-dir", str(data_dir)], cwd, **env)
        port = int(self.wait_for(AWS_LISTENER, WAIT).group(2))
        self.sqs = boto3.client(
            "sqs",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, read_timeout=30),
            aws_access_key_id="AKIDTEST",
            aws_secret_access_key="secret",
        )


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[Any]:
    started: list[SqsBrokerProcess] = []

    def start(**env: str) -> SqsBrokerProcess:
        b = SqsBrokerProcess(tmp_path / "data", tmp_path, **env)
        started.append(b)
        return b

    yield start
    for b in started:
        b.cleanup()


def attributes(sqs: Any, url: str) -> dict[str, str]:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def test_attributes_tags_and_deletes_survive_a_graceful_restart(brokers: Any) -> None:
    first = brokers()
    sqs = first.sqs
    dlq = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
    dlq_arn = attributes(sqs, dlq)["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})
    url = sqs.create_queue(
        QueueName="orders",
        Attributes={"VisibilityTimeout": "77", "DelaySeconds": "5"},
        tags={"team": "a"},
    )["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": redrive})
    sqs.tag_queue(QueueUrl=url, Tags={"env": "prod"})
    sqs.untag_queue(QueueUrl=url, TagKeys=["team"])
    fifo = sqs.create_queue(
        QueueName="jobs.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    gone = sqs.create_queue(QueueName="gone", Attributes={"VisibilityTimeout": "9"})["QueueUrl"]
    sqs.delete_queue(QueueUrl=gone)
    before = attributes(sqs, url)
    first.stop()

    second = brokers()
    sqs = second.sqs
    url = sqs.get_queue_url(QueueName="orders")["QueueUrl"]
    after = attributes(sqs, url)
    for name in ("VisibilityTimeout", "DelaySeconds", "RedrivePolicy", "CreatedTimestamp"):
        assert after[name] == before[name], name
    assert json.loads(after["RedrivePolicy"])["maxReceiveCount"] == 3
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"env": "prod"}
    fifo_attrs = attributes(sqs, fifo)
    assert fifo_attrs["FifoQueue"] == "true"
    assert fifo_attrs["ContentBasedDeduplication"] == "true"
    sources = sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"]
    assert [u.rsplit("/", 1)[1] for u in sources] == ["orders"]
    # The deleted queue stays deleted, and its name starts afresh with defaults.
    names = [u.rsplit("/", 1)[1] for u in sqs.list_queues().get("QueueUrls", [])]
    assert "gone" not in names
    gone = sqs.create_queue(QueueName="gone")["QueueUrl"]
    assert attributes(sqs, gone)["VisibilityTimeout"] == "30"
    second.stop()


def test_set_queue_attributes_survives_sigkill_right_after_the_response(brokers: Any) -> None:
    first = brokers()
    sqs = first.sqs
    url = sqs.create_queue(QueueName="crashy")["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "123"})
    sqs.tag_queue(QueueUrl=url, Tags={"k": "v"})
    first.kill()  # at once: the response is the only promise we have

    second = brokers()
    sqs = second.sqs
    url = sqs.get_queue_url(QueueName="crashy")["QueueUrl"]
    assert attributes(sqs, url)["VisibilityTimeout"] == "123"
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"k": "v"}
    second.stop()


def test_metadata_outlives_compaction_of_its_segments(brokers: Any, tmp_path: Path) -> None:
    # Small segments and frequent compaction: the queue's record is copied forward
    # while the churn of messages around it is deleted with the old segments.
    env = {"ZONEMQ_STORE__SEGMENT_SIZE": "65536", "ZONEMQ_STORE__COMPACTION_INTERVAL": "0.05"}
    first = brokers(**env)
    sqs = first.sqs
    url = sqs.create_queue(QueueName="kept", Attributes={"VisibilityTimeout": "42"})["QueueUrl"]
    body = "x" * 4000
    for _ in range(20):
        entries = [{"Id": str(i), "MessageBody": body} for i in range(10)]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if got:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
                ],
            )
    sqs.purge_queue(QueueUrl=url)
    journal = tmp_path / "data" / "journal"
    deadline = time.monotonic() + WAIT
    # Compaction has run when the segment holding the queue's first record is gone.
    while (journal / "00000001.zjournal").exists():
        assert time.monotonic() < deadline, sorted(p.name for p in journal.iterdir())
        time.sleep(0.05)
    first.kill()

    second = brokers(**env)
    url = second.sqs.get_queue_url(QueueName="kept")["QueueUrl"]
    assert attributes(second.sqs, url)["VisibilityTimeout"] == "42"
    second.stop()


def test_legacy_queues_json_is_imported_once(brokers: Any, tmp_path: Path) -> None:
    # A data directory as a pre-journal broker left it: the queue is in the journal
    # (here made by a STOMP send, so without SQS metadata), its SQS attributes and tags
    # only in sqs/queues.json.
    first = brokers()
    found = STOMP_LISTENER.search("".join(first.seen))  # logged before the aws listener
    assert found is not None
    port = int(found.group(2))
    conn = stomp.Connection12([("127.0.0.1", port)])
    conn.connect(wait=True)
    conn.send("/queue/legacy", "kept", headers={"persistent": "true", "receipt": "r1"})
    conn.disconnect(receipt="bye")
    first.stop()
    sqs_dir = tmp_path / "data" / "sqs"
    sqs_dir.mkdir(parents=True, exist_ok=True)
    legacy = {
        "legacy": {
            "attributes": {"VisibilityTimeout": "55"},
            "tags": {"from": "json"},
            "created": 1700000000,
            "modified": 1700000001,
        },
        # Deleted through another protocol before the upgrade: not brought back.
        "orphan": {"attributes": {"VisibilityTimeout": "5"}, "tags": {}},
    }
    (sqs_dir / "queues.json").write_text(json.dumps(legacy))

    second = brokers()
    assert not (sqs_dir / "queues.json").exists()
    assert (sqs_dir / "queues.json.imported").exists()
    second.stop()

    third = brokers()  # from the journal alone now
    sqs = third.sqs
    url = sqs.get_queue_url(QueueName="legacy")["QueueUrl"]
    got = attributes(sqs, url)
    assert got["VisibilityTimeout"] == "55"
    assert got["CreatedTimestamp"] == "1700000000"
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"from": "json"}
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "kept"
    names = [u.rsplit("/", 1)[1] for u in sqs.list_queues().get("QueueUrls", [])]
    assert "orphan" not in names
    third.stop()
