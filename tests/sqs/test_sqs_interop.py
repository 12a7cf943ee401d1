"""One queue, two protocols: SQS and STOMP (stomp.py) on the same core queue, with the
attribute ↔ header mapping of protocols/aws/__init__.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tests.conftest import BrokerThread, Client
from tests.sqs.support import client, wait_until, waiters


def test_sqs_send_is_received_by_stomp(
    broker: BrokerThread, connect: Callable[..., Client]
) -> None:
    sqs = client(broker)
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    c = connect()
    # The group is a message field (ActiveMQ's STOMP shows it as no header): a selector
    # on it shows that MessageGroupId became the group.
    c.subscribe(
        "/queue/orders",
        id="1",
        ack="client-individual",
        headers={"selector": "JMSXGroupID = 'grp'"},
    )
    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody="from sqs",
        MessageAttributes={
            "colour": {"DataType": "String", "StringValue": "red"},
            "qty": {"DataType": "Number", "StringValue": "3"},
        },
        MessageGroupId="grp",
    )
    frame = c.listener.next()
    assert frame.body == "from sqs"
    h = frame.headers
    assert h["message-id"] == sent["MessageId"]
    assert h["destination"] == "/queue/orders"
    assert h["persistent"] == "true"
    assert h["colour"] == "red"
    assert h["qty"] == "3"
    assert "JMSXGroupID" not in h
    assert h["AWS.SQS.SenderId"] == "AKIDTEST"
    assert h["AWS.SQS.Types"] == "qty=Number"
    c.ack_frame(frame)


def test_stomp_send_is_received_by_sqs(
    broker: BrokerThread, connect: Callable[..., Client]
) -> None:
    c = connect()
    c.send(
        "/queue/inbound",
        "from stomp",
        headers={"persistent": "true", "colour": "green", "JMSXGroupID": "g1"},
        receipt="r1",
    )
    assert c.listener.receipt() == "r1"
    sqs = client(broker)
    url = sqs.get_queue_url(QueueName="inbound")["QueueUrl"]
    msg = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], AttributeNames=["All"])[
        "Messages"
    ][0]
    assert msg["Body"] == "from stomp"
    assert msg["MessageAttributes"] == {"colour": {"DataType": "String", "StringValue": "green"}}
    assert msg["Attributes"]["MessageGroupId"] == "g1"
    assert msg["Attributes"]["SenderId"] == "000000000000"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
    assert broker.stats("inbound").depth == 0


def test_long_poll_wakes_for_a_stomp_send(
    broker: BrokerThread, connect: Callable[..., Client]
) -> None:
    sqs = client(broker)
    url = sqs.create_queue(QueueName="mixed")["QueueUrl"]
    result: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        result["resp"] = client(broker).receive_message(QueueUrl=url, WaitTimeSeconds=20)
        result["took"] = time.monotonic() - started

    t = threading.Thread(target=poll)
    t.start()
    wait_until(lambda: waiters(broker, "mixed") == 1)
    connect().send("/queue/mixed", "stomp wakes sqs")
    t.join(10)
    assert not t.is_alive()
    assert result["resp"]["Messages"][0]["Body"] == "stomp wakes sqs"
    assert result["took"] < 5


def test_sqs_in_flight_is_hidden_from_stomp_and_returns(
    broker: BrokerThread, connect: Callable[..., Client]
) -> None:
    sqs = client(broker)
    url = sqs.create_queue(QueueName="shared")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="one")
    m = sqs.receive_message(QueueUrl=url)["Messages"][0]
    c = connect()
    c.subscribe("/queue/shared", id="1", ack="client-individual")
    assert c.listener.none_within(0.2)
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
    )
    frame = c.listener.next()
    assert frame.body == "one"
    assert frame.headers.get("redelivered") == "true"
