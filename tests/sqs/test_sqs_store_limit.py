"""The store limit holds SQS sends back (issue 10): past `destinations.store_limit` under
`store_full_policy = "block"`, SendMessage and SendMessageBatch wait for space (as STOMP
producers stop being read and AMQP ones get no credit) for at most
`listeners.aws.send_block_timeout`, then are answered RequestThrottled (HTTP 503), which
boto3 retries in its legacy and standard retry modes; at most
`listeners.aws.max_blocked_sends` wait, beyond which a send is throttled at once.
Before, SQS sends were stored whatever the store held. boto3 against a real broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import BrokerThread
from tests.sqs.support import client, error_code, wait_until

LIMIT = 64 * 1024
BODY = "x" * 8192


def sqs_client(b: BrokerThread, **retries: Any) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=f"http://127.0.0.1:{b.broker.port('aws')}",
        region_name="us-east-1",
        config=Config(retries=retries or {"total_max_attempts": 1}, read_timeout=30),
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
    )


def stored_bytes(b: BrokerThread) -> int:
    return int(b.call(lambda: b.broker.core.store.stored_bytes))


def blocked(b: BrokerThread) -> int:
    """SQS sends waiting for store space now (0 for a broker without the gate)."""
    gate = getattr(b.broker.listeners["aws"].service, "gate", None)
    return int(b.call(lambda: gate.waiting)) if gate is not None else 0


def depth(b: BrokerThread, name: str) -> int:
    return int(b.stats(name).depth)


def fill(b: BrokerThread, sqs: Any, url: str) -> int:
    """Send until the store is over its limit; the number of messages sent."""
    for n in range(1, 100):
        sqs.send_message(QueueUrl=url, MessageBody=BODY)
        if stored_bytes(b) > LIMIT:
            return n
    raise AssertionError("the store never filled")


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run `fn` in a thread; its result (or exception) lands in the list."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def consume(sqs: Any, url: str, n: int) -> None:
    while n > 0:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(n, 10))
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(got.get("Messages", []))
        ]
        if entries:
            assert not sqs.delete_message_batch(QueueUrl=url, Entries=entries).get("Failed")
        n -= len(entries)


def limited(broker_factory: Callable[..., BrokerThread], **more: Any) -> BrokerThread:
    return broker_factory(**{"destinations.store_limit": LIMIT, "store.fsync": "never", **more})


def test_sends_wait_for_store_space_and_then_go_through(broker_factory) -> None:
    b = limited(broker_factory)
    sqs = client(b)
    url = sqs.create_queue(QueueName="full")["QueueUrl"]
    n = fill(b, sqs, url)

    one, one_out = in_thread(
        lambda: sqs_client(b).send_message(QueueUrl=url, MessageBody="held-single")
    )
    batch = [{"Id": f"b{i}", "MessageBody": f"held-batch-{i}"} for i in range(3)]
    many, many_out = in_thread(
        lambda: sqs_client(b).send_message_batch(QueueUrl=url, Entries=batch)
    )
    wait_until(lambda: blocked(b) == 2 or not (one.is_alive() or many.is_alive()))
    # Held: neither answered nor stored while nobody consumes.
    assert one.is_alive() and many.is_alive(), (one_out, many_out)
    assert depth(b, "full") == n and stored_bytes(b) > LIMIT

    consume(sqs, url, n)  # the store drains below 90%: the held sends go ahead
    one.join(15)
    many.join(15)
    assert "MessageId" in one_out[0], one_out
    assert {e["Id"] for e in many_out[0]["Successful"]} == {"b0", "b1", "b2"}, many_out
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    bodies = {m["Body"] for m in got["Messages"]}
    assert bodies == {"held-single", "held-batch-0", "held-batch-1", "held-batch-2"}
    assert blocked(b) == 0


@pytest.mark.parametrize("mode", ["legacy", "standard"])
def test_send_past_the_timeout_is_throttled_and_boto3_retries_it(broker_factory, mode) -> None:
    b = limited(broker_factory, **{"listeners.aws.send_block_timeout": 0.2})
    sqs = client(b)
    url = sqs.create_queue(QueueName="throttled")["QueueUrl"]
    n = fill(b, sqs, url)

    retrying = sqs_client(b, mode=mode, total_max_attempts=3)
    with pytest.raises(retrying.exceptions.RequestThrottled) as info:
        retrying.send_message(QueueUrl=url, MessageBody="late")
    response = info.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert response["ResponseMetadata"]["RetryAttempts"] == 2  # boto3 retried it twice
    assert "store is full" in response["Error"]["Message"]
    with pytest.raises(ClientError) as info:  # a batch is throttled as a whole
        sqs_client(b).send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "late"}])
    assert error_code(info.value) == "RequestThrottled"
    # Nothing of a throttled send is stored, and no waiter is left behind: the gate
    # keeps one callback with the core however many sends timed out.
    assert depth(b, "throttled") == n and blocked(b) == 0
    assert b.call(lambda: len(b.broker.core._store_waiters)) <= 1

    consume(sqs, url, n)
    wait_until(lambda: stored_bytes(b) < LIMIT * 0.9)
    assert "MessageId" in sqs_client(b).send_message(QueueUrl=url, MessageBody="room")


def test_beyond_max_blocked_sends_a_send_is_throttled_at_once(broker_factory) -> None:
    b = limited(broker_factory, **{"listeners.aws.max_blocked_sends": 2})
    sqs = client(b)
    url = sqs.create_queue(QueueName="capped")["QueueUrl"]
    n = fill(b, sqs, url)
    held = [
        in_thread(lambda i=i: sqs_client(b).send_message(QueueUrl=url, MessageBody=f"h{i}"))
        for i in range(2)
    ]
    wait_until(lambda: blocked(b) == 2)

    started = time.monotonic()
    with pytest.raises(ClientError) as info:
        sqs_client(b).send_message(QueueUrl=url, MessageBody="third")
    assert error_code(info.value) == "RequestThrottled"
    assert time.monotonic() - started < 5.0  # not the 10 s send_block_timeout
    assert all(thread.is_alive() for thread, _ in held) and blocked(b) == 2

    consume(sqs, url, n)
    for thread, out in held:
        thread.join(15)
        assert "MessageId" in out[0], out
    assert depth(b, "capped") == 2


def test_fail_policy_still_refuses_with_overlimit(broker_factory) -> None:
    b = limited(broker_factory, **{"destinations.store_full_policy": "fail"})
    sqs = client(b)
    url = sqs.create_queue(QueueName="failing")["QueueUrl"]
    n = fill(b, sqs, url)
    with pytest.raises(ClientError) as info:
        sqs.send_message(QueueUrl=url, MessageBody="refused")
    assert error_code(info.value) == "OverLimit"
    assert depth(b, "failing") == n and blocked(b) == 0
