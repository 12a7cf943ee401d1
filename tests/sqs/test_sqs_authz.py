"""SQS against the authorization map (tests/authmap.py): actions map to read / write /
admin (protocols/aws/authz.py); a denial is AccessDenied, HTTP 403; failed signatures
are throttled per address. alice's password is hashed, so she signs with her
`auth.sqs_secrets` entry; bob's plain password is his secret."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.authmap import ALICE_PASSWORD, BOB_PASSWORD, overrides
from tests.conftest import BrokerThread
from tests.sqs.support import client, error_code


@pytest.fixture
def secured(broker_factory: Callable[..., BrokerThread]) -> BrokerThread:
    return broker_factory(**overrides())


def alice_of(b: BrokerThread) -> Any:
    return client(b, aws_access_key_id="alice", aws_secret_access_key="alice-sqs-secret")


def bob_of(b: BrokerThread) -> Any:
    return client(b, aws_access_key_id="bob", aws_secret_access_key=BOB_PASSWORD)


def denied(call: Callable[..., Any], **kw: Any) -> str:
    with pytest.raises(ClientError) as info:
        call(**kw)
    assert error_code(info.value) == "AccessDenied"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return str(info.value.response["Error"]["Message"])


def test_bob_cannot_read_or_write_alices_queue(secured: BrokerThread) -> None:
    alice, bob = alice_of(secured), bob_of(secured)
    url = alice.create_queue(QueueName="alice-inbox")["QueueUrl"]
    alice.send_message(QueueUrl=url, MessageBody="for alice only")
    text = denied(bob.receive_message, QueueUrl=url, WaitTimeSeconds=0)
    assert text == "User bob is not authorized to read from: queue://alice-inbox"
    text = denied(bob.send_message, QueueUrl=url, MessageBody="forged")
    assert text == "User bob is not authorized to write to: queue://alice-inbox"
    denied(bob.purge_queue, QueueUrl=url)
    denied(bob.delete_queue, QueueUrl=url)
    denied(bob.get_queue_url, QueueName="alice-inbox")
    denied(bob.create_queue, QueueName="alice-other")
    got = alice.receive_message(QueueUrl=url, WaitTimeSeconds=0)["Messages"]
    assert [m["Body"] for m in got] == ["for alice only"]


def test_shared_queues_and_listing(secured: BrokerThread) -> None:
    alice, bob = alice_of(secured), bob_of(secured)
    denied(bob.create_queue, QueueName="shared-jobs")  # admin is alice's only
    url = alice.create_queue(QueueName="shared-jobs")["QueueUrl"]
    alice.create_queue(QueueName="alice-private")
    bob.send_message(QueueUrl=url, MessageBody="job")
    msg = bob.receive_message(QueueUrl=url, WaitTimeSeconds=0)["Messages"][0]
    bob.change_message_visibility(
        QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"], VisibilityTimeout=5
    )
    bob.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
    denied(bob.set_queue_attributes, QueueUrl=url, Attributes={"DelaySeconds": "1"})
    denied(bob.tag_queue, QueueUrl=url, Tags={"a": "b"})
    names = {u.rsplit("/", 1)[-1] for u in bob.list_queues().get("QueueUrls", [])}
    assert "shared-jobs" in names and "alice-private" not in names
    names = {u.rsplit("/", 1)[-1] for u in alice.list_queues()["QueueUrls"]}
    assert {"shared-jobs", "alice-private"} <= names


def test_failed_signatures_are_throttled_per_address(
    broker_factory: Callable[..., BrokerThread], caplog: Any
) -> None:
    b = broker_factory(**overrides(**{"auth.max_login_failures": 3}))
    wrong = client(b, aws_access_key_id="bob", aws_secret_access_key="wrong")
    for _ in range(3):
        with pytest.raises(ClientError) as info:
            wrong.list_queues()
        assert error_code(info.value) == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as info:
        bob_of(b).list_queues()
    assert error_code(info.value) == "AccessDenied"
    assert "Too many failed logins" in info.value.response["Error"]["Message"]
    assert caplog.text.count("SQS login failed: user 'bob' from 127.0.0.1") == 3


def test_a_hashed_password_without_a_signing_secret_cannot_sign(
    broker_factory: Callable[..., BrokerThread],
) -> None:
    b = broker_factory(**overrides(**{"auth.sqs_secrets": {}}))
    c = client(b, aws_access_key_id="alice", aws_secret_access_key=ALICE_PASSWORD)
    with pytest.raises(ClientError) as info:
        c.list_queues()
    assert error_code(info.value) == "InvalidClientTokenId"
