"""SNS delivery against a real broker: the JSON envelope on SQS queues as AWS writes it and
signs it (checked by a verifier following AWS's documented steps, certificate fetched
from SigningCertURL), raw delivery, MessageStructure=json, Publish validation, FIFO
topics (order per group, deduplication), PublishBatch, and the core topic shared with
STOMP (stomp.py) and AMQP (proton) both ways."""

from __future__ import annotations

import base64
import json
import re
import urllib.request
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError
from proton.utils import BlockingConnection

from tests.conftest import WAIT, BrokerThread, Client, subscribe
from tests.sqs.sns_support import body_of, queue_with_arn, receive, sns_client, verify
from tests.sqs.support import client, error_code

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def sns(broker: BrokerThread) -> Any:
    return sns_client(broker)


@pytest.fixture
def sqs(broker: BrokerThread) -> Any:
    return client(broker)


def topic_and_queue(
    sns: Any, sqs: Any, name: str, raw: bool = False, **topic_attrs: str
) -> tuple[str, str, str]:
    arn = sns.create_topic(Name=name, Attributes=topic_attrs)["TopicArn"]
    qname = name.replace(".fifo", "-q.fifo") if name.endswith(".fifo") else name + "-q"
    qattrs = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
    url, qarn = queue_with_arn(sqs, qname, **qattrs)
    attrs = {"RawMessageDelivery": "true"} if raw else {}
    sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn, Attributes=attrs)
    return arn, url, sub["SubscriptionArn"]


def refused(call: Any, words: str, code: str = "InvalidParameter", **kw: Any) -> None:
    with pytest.raises(ClientError) as info:
        call(**kw)
    assert error_code(info.value) == code
    assert words in info.value.response["Error"]["Message"], info.value.response


# -- the envelope --------------------------------------------------------------------------


def test_envelope_is_aws_shape_and_its_signature_verifies(sns: Any, sqs: Any) -> None:
    arn, url, sub = topic_and_queue(sns, sqs, "sns-env")
    mid = sns.publish(
        TopicArn=arn,
        Message="héllo\nworld",
        Subject="Greetings",
        MessageAttributes={
            "color": {"DataType": "String", "StringValue": "red"},
            "n": {"DataType": "Number", "StringValue": "42.5"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            "tags": {"DataType": "String.Array", "StringValue": '["a", 1, true]'},
        },
    )["MessageId"]
    assert uuid.UUID(mid).version == 4
    (m,) = receive(sqs, url)
    raw = m["Body"]
    assert raw.startswith('{\n  "Type" : "Notification",\n')
    doc = json.loads(raw)
    assert list(doc) == [
        "Type", "MessageId", "TopicArn", "Subject", "Message", "Timestamp",
        "SignatureVersion", "Signature", "SigningCertURL", "UnsubscribeURL",
        "MessageAttributes",
    ]  # fmt: skip
    assert doc["Type"] == "Notification"
    assert doc["MessageId"] == mid
    assert doc["TopicArn"] == arn
    assert doc["Subject"] == "Greetings"
    assert doc["Message"] == "héllo\nworld"
    assert TIMESTAMP.fullmatch(doc["Timestamp"])
    assert doc["SignatureVersion"] == "1"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/SimpleNotificationService-[0-9a-f]{32}\.pem",
                        doc["SigningCertURL"])  # fmt: skip
    assert doc["UnsubscribeURL"].endswith(f"/?Action=Unsubscribe&SubscriptionArn={sub}")
    assert doc["MessageAttributes"] == {
        "color": {"Type": "String", "Value": "red"},
        "n": {"Type": "Number", "Value": "42.5"},
        "blob": {"Type": "Binary", "Value": base64.b64encode(b"\x00\x01").decode()},
        "tags": {"Type": "String.Array", "Value": '["a", 1, true]'},
    }
    assert verify(doc)
    # The verifier can fail: any signed field altered breaks it.
    assert not verify({**doc, "Message": "héllo world"})
    assert not verify({**doc, "Subject": "Other"})
    # In the envelope only: no SQS message attributes.
    again = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=0)
    assert "Messages" not in again


def test_envelope_without_subject_or_attributes_and_signature_version_2(sns: Any, sqs: Any) -> None:
    arn, url, _ = topic_and_queue(sns, sqs, "sns-env2", SignatureVersion="2")
    sns.publish(TopicArn=arn, Message="plain")
    doc = body_of(receive(sqs, url)[0])
    assert "Subject" not in doc and "MessageAttributes" not in doc
    assert doc["SignatureVersion"] == "2"
    assert verify(doc)
    assert not verify({**doc, "SignatureVersion": "1"})  # SHA1 does not check a SHA256


def test_signing_certificate_is_kept_across_restarts(broker_factory: Any, tmp_path: Any) -> None:
    b = broker_factory()
    sns, sqs = sns_client(b), client(b)
    arn, url, _ = topic_and_queue(sns, sqs, "sns-cert")
    sns.publish(TopicArn=arn, Message="one")
    (m,) = receive(sqs, url)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    first = body_of(m)["SigningCertURL"]
    with urllib.request.urlopen(first, timeout=10) as resp:
        pem = resp.read()
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    data_dir = b.settings.broker.data_dir
    b.stop()
    again = broker_factory(**{"broker.data_dir": data_dir})
    sns, sqs = sns_client(again), client(again)
    sns.publish(TopicArn=arn, Message="two")
    doc = body_of(receive(sqs, url)[0])
    assert doc["SigningCertURL"].rsplit("/", 1)[1] == first.rsplit("/", 1)[1]
    assert verify(doc)


def test_unsubscribe_url_unsubscribes(sns: Any, sqs: Any) -> None:
    arn, url, _ = topic_and_queue(sns, sqs, "sns-unsub")
    sns.publish(TopicArn=arn, Message="m")
    doc = body_of(receive(sqs, url)[0])
    with urllib.request.urlopen(doc["UnsubscribeURL"], timeout=10) as resp:
        assert resp.status == 200
    assert sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"] == []
    sns.publish(TopicArn=arn, Message="after")
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)


# -- raw delivery and message structure ----------------------------------------------------


def test_raw_delivery_maps_message_attributes_to_sqs(sns: Any, sqs: Any) -> None:
    arn, url, _ = topic_and_queue(sns, sqs, "sns-raw", raw=True)
    sns.publish(
        TopicArn=arn,
        Message="raw body",
        Subject="ignored in raw",
        MessageAttributes={
            "color": {"DataType": "String", "StringValue": "red"},
            "n": {"DataType": "Number", "StringValue": "7"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\xff"},
        },
    )
    (m,) = receive(sqs, url, MessageAttributeNames=["All"])
    assert m["Body"] == "raw body"
    assert m["MessageAttributes"] == {
        "color": {"StringValue": "red", "DataType": "String"},
        "n": {"StringValue": "7", "DataType": "Number"},
        "blob": {"BinaryValue": b"\xff", "DataType": "Binary"},
    }


def test_message_structure_json_per_protocol(sns: Any, sqs: Any, connect: Any) -> None:
    arn, url, _ = topic_and_queue(sns, sqs, "sns-struct")
    c: Client = connect()
    subscribe(c, "/topic/sns-struct", "s1")
    sns.publish(
        TopicArn=arn,
        MessageStructure="json",
        Message=json.dumps({"default": "for everyone", "sqs": "for queues"}),
    )
    assert body_of(receive(sqs, url)[0])["Message"] == "for queues"
    assert c.listener.next().body == "for everyone"
    sns.publish(TopicArn=arn, MessageStructure="json", Message=json.dumps({"default": "d"}))
    assert body_of(receive(sqs, url)[0])["Message"] == "d"
    refused(sns.publish, "No default entry in JSON message body", TopicArn=arn,
            MessageStructure="json", Message='{"sqs": "x"}')  # fmt: skip
    refused(sns.publish, "JSON message body failed to parse", TopicArn=arn,
            MessageStructure="json", Message="not json")  # fmt: skip
    refused(sns.publish, "MessageStructure", TopicArn=arn, MessageStructure="xml", Message="x")


# -- publish validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"Message": ""}, "Empty message"),
        ({"Message": "x" * 262145}, "Message too long"),
        ({"Message": "x", "Subject": "a" * 101}, "Subject"),
        ({"Message": "x", "Subject": "two\nlines"}, "Subject"),
        ({"Message": "x", "MessageDeduplicationId": "d"}, "MessageDeduplicationId"),
        (
            {"Message": "x", "MessageAttributes": {"a": {"DataType": "Float", "StringValue": "1"}}},
            "invalid message attribute type",
        ),
        (
            {"Message": "x", "MessageAttributes": {"a": {"DataType": "String", "StringValue": ""}}},
            "must contain non-empty message attribute value",
        ),
        (
            {
                "Message": "x",
                "MessageAttributes": {"a": {"DataType": "Number", "StringValue": "z"}},
            },
            "Could not cast message attribute 'a' value to number.",
        ),
        (
            {
                "Message": "x",
                "MessageAttributes": {"AWS.x": {"DataType": "String", "StringValue": "v"}},
            },
            "The message attribute name 'AWS.x' is invalid.",
        ),
        (
            {
                "Message": "x",
                "MessageAttributes": {"a": {"DataType": "String.Array", "StringValue": "[{}]"}},
            },
            "String.Array",
        ),
        (
            {
                "Message": "x",
                "MessageAttributes": {
                    f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)
                },
            },
            "Number of message attributes [11] exceeds the allowed maximum [10].",
        ),
        ({"Message": "x", "PhoneNumber": "+15555550100"}, "PhoneNumber"),
    ],
)
def test_publish_validation(sns: Any, sqs: Any, kw: dict[str, Any], words: str) -> None:
    arn, url, _ = topic_and_queue(sns, sqs, "sns-val")
    # Message attribute errors are ParameterValueInvalid, the others InvalidParameter.
    code = "ParameterValueInvalid" if "MessageAttributes" in kw else "InvalidParameter"
    refused(sns.publish, words, code, TopicArn=arn, **kw)
    sns.publish(TopicArn=arn, Message="the one that is delivered")
    (m,) = receive(sqs, url)
    assert body_of(m)["Message"] == "the one that is delivered"


def test_fan_out_to_every_queue_and_target_arn(sns: Any, sqs: Any) -> None:
    arn = sns.create_topic(Name="sns-fan")["TopicArn"]
    urls = []
    for i in range(5):
        url, qarn = queue_with_arn(sqs, f"sns-fan-{i}")
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)
        urls.append(url)
    # A subscription whose queue was deleted does not hold up the others.
    gone, gone_arn = queue_with_arn(sqs, "sns-fan-gone")
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=gone_arn)
    sqs.delete_queue(QueueUrl=gone)
    mid = sns.publish(TargetArn=arn, Message="to all")["MessageId"]
    for url in urls:
        doc = body_of(receive(sqs, url)[0])
        assert (doc["MessageId"], doc["Message"]) == (mid, "to all")


def test_publish_without_subscribers(sns: Any) -> None:
    arn = sns.create_topic(Name="sns-alone")["TopicArn"]
    assert sns.publish(TopicArn=arn, Message="nobody")["MessageId"]


# -- FIFO ----------------------------------------------------------------------------------


def test_fifo_topic_keeps_order_per_group_and_deduplicates(sns: Any, sqs: Any) -> None:
    arn, url, _ = topic_and_queue(sns, sqs, "sns-order.fifo", FifoTopic="true")
    sent: dict[str, list[str]] = {"g1": [], "g2": []}
    seqs = []
    for i in range(12):
        group = "g1" if i % 3 else "g2"
        out = sns.publish(
            TopicArn=arn, Message=f"m{i}", MessageGroupId=group, MessageDeduplicationId=f"d{i}"
        )
        seqs.append(int(out["SequenceNumber"]))
        sent[group].append(f"m{i}")
    assert seqs == sorted(seqs) and len(set(seqs)) == 12
    # The same deduplication id within 5 minutes: the first publish's answer, no delivery.
    dup = sns.publish(
        TopicArn=arn, Message="other", MessageGroupId="g1", MessageDeduplicationId="d1"
    )
    got: dict[str, list[str]] = {"g1": [], "g2": []}
    for _ in range(12):
        out = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1,
            MessageSystemAttributeNames=["MessageGroupId"],
        )  # fmt: skip
        (m,) = out["Messages"]
        doc = body_of(m)
        got[m["Attributes"]["MessageGroupId"]].append(doc["Message"])
        if doc["Message"] == "m1":
            assert dup["MessageId"] == doc["MessageId"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert got == sent
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    # A FIFO topic's notification is not signed (as AWS's).
    sns.publish(TopicArn=arn, Message="last", MessageGroupId="g1", MessageDeduplicationId="z")
    doc = body_of(receive(sqs, url)[0])
    assert "Signature" not in doc and "SigningCertURL" not in doc
    assert set(doc) == {"Type", "MessageId", "TopicArn", "Message", "Timestamp", "UnsubscribeURL"}


def test_fifo_publish_rules(sns: Any, sqs: Any) -> None:
    arn, url, _ = topic_and_queue(sns, sqs, "sns-rules.fifo", FifoTopic="true")
    refused(sns.publish, "MessageGroupId parameter is required", TopicArn=arn, Message="x")
    refused(sns.publish, "ContentBasedDeduplication enabled or MessageDeduplicationId",
            TopicArn=arn, Message="x", MessageGroupId="g")  # fmt: skip
    sns.set_topic_attributes(
        TopicArn=arn, AttributeName="ContentBasedDeduplication", AttributeValue="true"
    )
    first = sns.publish(TopicArn=arn, Message="same", MessageGroupId="g")
    second = sns.publish(TopicArn=arn, Message="same", MessageGroupId="g")
    assert first["MessageId"] == second["MessageId"]
    receive(sqs, url, 1)
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)


# -- PublishBatch --------------------------------------------------------------------------


def test_publish_batch_entries_and_failures(sns: Any, sqs: Any) -> None:
    arn, url, _ = topic_and_queue(sns, sqs, "sns-batch", raw=True)
    out = sns.publish_batch(
        TopicArn=arn,
        PublishBatchRequestEntries=[
            {"Id": "a", "Message": "one"},
            {"Id": "b", "Message": ""},
            {"Id": "c", "Message": "three", "Subject": "s"},
            {
                "Id": "d",
                "Message": "x",
                "MessageAttributes": {"bad": {"DataType": "Nope", "StringValue": "v"}},
            },
        ],
    )
    assert [e["Id"] for e in out["Successful"]] == ["a", "c"]
    assert all(uuid.UUID(e["MessageId"]) for e in out["Successful"])
    failed = {e["Id"]: e for e in out["Failed"]}
    assert set(failed) == {"b", "d"}
    assert failed["b"] == {
        "Id": "b", "Code": "InvalidParameter", "Message": "Invalid parameter: Empty message",
        "SenderFault": True,
    }  # fmt: skip
    bodies = sorted(m["Body"] for m in receive(sqs, url, 2))
    assert bodies == ["one", "three"]


@pytest.mark.parametrize(
    ("entries", "code"),
    [
        ([], "EmptyBatchRequest"),
        ([{"Id": str(i), "Message": "m"} for i in range(11)], "TooManyEntriesInBatchRequest"),
        ([{"Id": "x", "Message": "m"}, {"Id": "x", "Message": "n"}], "BatchEntryIdsNotDistinct"),
        ([{"Id": "bad id", "Message": "m"}], "InvalidBatchEntryId"),
        ([{"Id": str(i), "Message": "x" * 30000} for i in range(10)], "BatchRequestTooLong"),
    ],
)
def test_publish_batch_request_errors(
    sns: Any, sqs: Any, entries: list[dict[str, str]], code: str
) -> None:
    arn, url, _ = topic_and_queue(sns, sqs, "sns-batcherr")
    with pytest.raises(ClientError) as info:
        sns.publish_batch(TopicArn=arn, PublishBatchRequestEntries=entries)
    assert error_code(info.value) == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)


def test_fifo_publish_batch_keeps_entry_order(sns: Any, sqs: Any) -> None:
    arn, url, _ = topic_and_queue(sns, sqs, "sns-fbatch.fifo", FifoTopic="true")
    entries = [
        {"Id": f"e{i}", "Message": f"m{i}", "MessageGroupId": "g", "MessageDeduplicationId": f"{i}"}
        for i in range(10)
    ]
    out = sns.publish_batch(TopicArn=arn, PublishBatchRequestEntries=entries)
    assert len(out["Successful"]) == 10 and not out["Failed"]
    assert all(e["SequenceNumber"] for e in out["Successful"])
    got = []
    while len(got) < 10:
        ms = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for m in ms.get("Messages", []):
            got.append(body_of(m)["Message"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert got == [f"m{i}" for i in range(10)]


# -- one topic for every protocol ----------------------------------------------------------


def test_stomp_subscriber_receives_sns_publish(sns: Any, connect: Any) -> None:
    arn = sns.create_topic(Name="sns-stomp")["TopicArn"]
    c: Client = connect()
    subscribe(c, "/topic/sns-stomp", "s1")
    sns.publish(
        TopicArn=arn,
        Message="to stomp",
        MessageAttributes={
            "color": {"DataType": "String", "StringValue": "red"},
            "n": {"DataType": "Number", "StringValue": "3"},
        },
    )
    frame = c.listener.next()
    assert frame.body == "to stomp"
    assert frame.headers["destination"] == "/topic/sns-stomp"
    assert frame.headers["color"] == "red"
    assert frame.headers["n"] == "3"


def test_stomp_send_reaches_sns_subscriptions(sns: Any, sqs: Any, connect: Any) -> None:
    arn, url, _ = topic_and_queue(sns, sqs, "sns-relay")
    _, raw_url, _ = topic_and_queue(sns, sqs, "sns-relay-raw", raw=True)
    raw_arn = "arn:aws:sns:us-east-1:000000000000:sns-relay-raw"
    assert raw_arn != arn
    c: Client = connect()
    # A STOMP subscriber of the same topic as well: it gets the send once, SNS's copy
    # goes to the queues only (not back to the topic).
    subscribe(c, "/topic/sns-relay", "s1")
    c.send("/topic/sns-relay", "from stomp", headers={"color": "blue"}, receipt="r")
    assert c.listener.receipt() == "r"
    doc = body_of(receive(sqs, url)[0])
    assert doc["Message"] == "from stomp"
    assert doc["TopicArn"] == arn
    assert doc["MessageAttributes"] == {"color": {"Type": "String", "Value": "blue"}}
    assert verify(doc)
    assert c.listener.next().body == "from stomp"
    assert c.listener.none_within(0.3)
    # An SNS publish is not relayed a second time by the topic's SNS consumer.
    sns.publish(TopicArn=arn, Message="from sns")
    assert body_of(receive(sqs, url)[0])["Message"] == "from sns"
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    assert c.listener.next().body == "from sns"
    # Unsubscribed: STOMP sends no longer reach the queue.
    for s in sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]:
        sns.unsubscribe(SubscriptionArn=s["SubscriptionArn"])
    c.send("/topic/sns-relay", "after", receipt="r2")
    assert c.listener.receipt() == "r2"
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    assert "Messages" not in sqs.receive_message(QueueUrl=raw_url, WaitTimeSeconds=0)


def test_amqp_receiver_gets_sns_publish_and_amqp_send_reaches_sqs(
    broker: BrokerThread, sns: Any, sqs: Any
) -> None:
    from proton import Message

    arn, url, _ = topic_and_queue(sns, sqs, "sns-amqp", raw=True)
    conn = BlockingConnection(f"127.0.0.1:{broker.broker.port('amqp')}", timeout=WAIT)
    try:
        receiver = conn.create_receiver("topic://sns-amqp", credit=10)
        sns.publish(
            TopicArn=arn,
            Message="to amqp",
            MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}},
        )
        m = receiver.receive(WAIT)
        receiver.accept()
        assert m.body == "to amqp"
        assert m.properties["k"] == "v"
        (first,) = receive(sqs, url)
        assert first["Body"] == "to amqp"
        sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
        sender = conn.create_sender("topic://sns-amqp")
        sender.send(Message(body="from amqp", properties={"k2": "v2"}))
        (got,) = receive(sqs, url, MessageAttributeNames=["All"])
        assert got["Body"] == "from amqp"
        assert got["MessageAttributes"]["k2"] == {"StringValue": "v2", "DataType": "String"}
    finally:
        conn.close()


def test_filter_policy_is_applied_when_the_filter_module_is_present(sns: Any, sqs: Any) -> None:
    pytest.importorskip("protocols.aws.snsfilter")
    arn, url, sub = topic_and_queue(sns, sqs, "sns-filter", raw=True)
    sns.set_subscription_attributes(
        SubscriptionArn=sub, AttributeName="FilterPolicy", AttributeValue='{"color": ["red"]}'
    )
    for color in ("blue", "red"):
        sns.publish(
            TopicArn=arn,
            Message=color,
            MessageAttributes={"color": {"DataType": "String", "StringValue": color}},
        )
    assert [m["Body"] for m in receive(sqs, url)] == ["red"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
