"""Core refusals (CoreError) reaching the SQS layer are answered with the SQS error of the
one table, protocols/aws/errors.CORE_ERRORS, over boto3 (JSON) and the Query protocol,
and fail only their own entry in a batch; never a 500 InternalFailure."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

import broker.core.errors as core_errors
from broker.core import CoreError
from protocols.aws.errors import CORE_ERRORS, ERRORS, from_core
from tests.conftest import BrokerThread
from tests.sqs.support import client, error_code, http_call, wait_until


def _refuse_sends(broker: BrokerThread, code: str) -> None:
    """Make the broker's core refuse every send with `code` (as it does, for instance,
    for a queue deleted under the request)."""
    core = broker.broker.core

    def send(*args: Any, **kwargs: Any) -> None:
        raise CoreError(code, f"refused ({code})")

    broker.call(lambda: setattr(core, "send", send))


def test_every_core_error_code_has_an_sqs_error() -> None:
    codes = {
        value
        for name, value in vars(core_errors).items()
        if name.isupper() and isinstance(value, str)
    }
    assert codes and codes <= set(CORE_ERRORS)
    for name, _message in CORE_ERRORS.values():
        assert name in ERRORS and ERRORS[name][1] < 500


def test_from_core_uses_aws_text_where_aws_has_one() -> None:
    err = from_core(CoreError(core_errors.NOT_FOUND, "no such queue: q"))
    assert (err.query_code, err.status) == ("AWS.SimpleQueueService.NonExistentQueue", 400)
    assert err.message == "The specified queue does not exist."
    err = from_core(CoreError(core_errors.INVALID, "destination name is empty"))
    assert (err.name, err.message) == ("InvalidParameterValue", "destination name is empty")
    # A code missing from the table (the core should have none) is a server fault.
    unmapped = CoreError(core_errors.INVALID, "?")
    unmapped.code = "no-such-code"  # type: ignore[assignment]
    assert from_core(unmapped).status == 500


def test_core_not_found_over_boto3_is_non_existent_queue(broker: BrokerThread) -> None:
    sqs = client(broker)
    url = sqs.create_queue(QueueName="refused")["QueueUrl"]
    _refuse_sends(broker, core_errors.NOT_FOUND)
    with pytest.raises(ClientError) as info:
        sqs.send_message(QueueUrl=url, MessageBody="x")
    assert error_code(info.value) == "AWS.SimpleQueueService.NonExistentQueue"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert type(info.value).__name__ == "QueueDoesNotExist"


def test_core_invalid_fails_each_batch_entry_alone(broker: BrokerThread) -> None:
    sqs = client(broker)
    url = sqs.create_queue(QueueName="refused")["QueueUrl"]
    _refuse_sends(broker, core_errors.INVALID)
    result = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": "a", "MessageBody": "x"}, {"Id": "b", "MessageBody": "y"}],
    )
    assert not result.get("Successful")
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in result["Failed"]] == [
        ("a", "InvalidParameterValue", True),
        ("b", "InvalidParameterValue", True),
    ]
    assert result["Failed"][0]["Message"] == "refused (invalid)"


def test_core_error_over_the_query_protocol(broker: BrokerThread) -> None:
    sqs = client(broker)
    url = sqs.create_queue(QueueName="refused")["QueueUrl"]
    _refuse_sends(broker, core_errors.DELETED)
    status, _headers, body = http_call(
        broker, form={"Action": "SendMessage", "QueueUrl": url, "MessageBody": "x"}
    )
    assert status == 400
    assert b"<Code>AWS.SimpleQueueService.NonExistentQueue</Code>" in body


def test_core_error_in_a_move_task_fails_the_task(broker: BrokerThread) -> None:
    sqs = client(broker)
    dlq = sqs.create_queue(QueueName="refused-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})
    src = sqs.create_queue(QueueName="refused-src", Attributes={"RedrivePolicy": policy})
    sqs.send_message(QueueUrl=src["QueueUrl"], MessageBody="m")
    sqs.receive_message(QueueUrl=src["QueueUrl"], VisibilityTimeout=0)
    assert "Messages" not in sqs.receive_message(QueueUrl=src["QueueUrl"])  # redriven
    core = broker.broker.core

    def move(*args: Any, **kwargs: Any) -> None:
        raise CoreError(core_errors.NOT_FOUND, "no such queue: refused-src")

    broker.call(lambda: setattr(core, "move", move))
    sqs.start_message_move_task(SourceArn=dlq_arn)

    def task() -> dict[str, Any]:
        return sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0]

    wait_until(lambda: task()["Status"] != "RUNNING")
    assert task()["Status"] == "FAILED"
    assert task()["FailureReason"] == "The specified queue does not exist."
