"""The SQS wire: raw Query-protocol requests and XML responses, exact JSON and XML error
shapes, the AWS CLI, and SigV4 verification when users are configured."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import BrokerThread
from tests.sqs.support import client, error_code, http_call, md5_attributes

NS = {"s": "http://queue.amazonaws.com/doc/2012-11-05/"}
Q = "{" + NS["s"] + "}"


def xml(body: bytes) -> ET.Element:
    return ET.fromstring(body)


def test_query_protocol_round_trip(broker: BrokerThread) -> None:
    status, headers, body = http_call(
        broker,
        form={
            "Action": "CreateQueue",
            "QueueName": "q1",
            "Attribute.1.Name": "VisibilityTimeout",
            "Attribute.1.Value": "45",
            "Tag.1.Key": "team",
            "Tag.1.Value": "x",
            "Version": "2012-11-05",
        },
    )
    assert status == 200, body
    assert headers["content-type"].startswith("text/xml")
    root = xml(body)
    assert root.tag == Q + "CreateQueueResponse"
    url = root.find("s:CreateQueueResult/s:QueueUrl", NS).text  # type: ignore[union-attr]
    assert url.endswith("/000000000000/q1")
    assert root.find("s:ResponseMetadata/s:RequestId", NS) is not None

    path = "/000000000000/q1"
    status, _, body = http_call(
        broker,
        path=path,
        form={
            "Action": "SendMessage",
            "MessageBody": "a\r\nb & <c>",
            "MessageAttribute.1.Name": "n",
            "MessageAttribute.1.Value.DataType": "Number",
            "MessageAttribute.1.Value.StringValue": "3",
            "MessageAttribute.2.Name": "bin",
            "MessageAttribute.2.Value.DataType": "Binary",
            "MessageAttribute.2.Value.BinaryValue": base64.b64encode(b"\x01\x02").decode(),
        },
    )
    assert status == 200, body
    result = xml(body).find("s:SendMessageResult", NS)
    assert result is not None
    expected_attrs = {
        "n": {"DataType": "Number", "StringValue": "3"},
        "bin": {"DataType": "Binary", "BinaryValue": b"\x01\x02"},
    }
    assert result.findtext("s:MD5OfMessageAttributes", namespaces=NS) == md5_attributes(
        expected_attrs
    )
    assert (
        result.findtext("s:MD5OfMessageBody", namespaces=NS)
        == hashlib.md5(b"a\r\nb & <c>").hexdigest()
    )

    status, _, body = http_call(
        broker,
        form={
            "Action": "ReceiveMessage",
            "QueueUrl": url,
            "AttributeName.1": "All",
            "MessageAttributeName.1": "All",
        },
    )
    assert status == 200, body
    msg = xml(body).find("s:ReceiveMessageResult/s:Message", NS)
    assert msg is not None
    assert msg.findtext("s:Body", namespaces=NS) == "a\r\nb & <c>"
    attrs = {
        a.findtext("s:Name", namespaces=NS): a.findtext("s:Value", namespaces=NS)
        for a in msg.findall("s:Attribute", NS)
    }
    assert attrs["ApproximateReceiveCount"] == "1"
    mattrs = {
        a.findtext("s:Name", namespaces=NS): (
            a.findtext("s:Value/s:DataType", namespaces=NS),
            a.findtext("s:Value/s:StringValue", namespaces=NS)
            or a.findtext("s:Value/s:BinaryValue", namespaces=NS),
        )
        for a in msg.findall("s:MessageAttribute", NS)
    }
    assert mattrs == {"n": ("Number", "3"), "bin": ("Binary", "AQI=")}
    handle = msg.findtext("s:ReceiptHandle", namespaces=NS)

    status, _, body = http_call(
        broker,
        form={
            "Action": "GetQueueAttributes",
            "QueueUrl": url,
            "AttributeName.1": "VisibilityTimeout",
            "AttributeName.2": "ApproximateNumberOfMessagesNotVisible",
        },
    )
    values = {
        a.findtext("s:Name", namespaces=NS): a.findtext("s:Value", namespaces=NS)
        for a in xml(body).iter(Q + "Attribute")
    }
    assert values == {"VisibilityTimeout": "45", "ApproximateNumberOfMessagesNotVisible": "1"}

    status, _, body = http_call(
        broker,
        form={
            "Action": "DeleteMessageBatch",
            "QueueUrl": url,
            "DeleteMessageBatchRequestEntry.1.Id": "ok",
            "DeleteMessageBatchRequestEntry.1.ReceiptHandle": handle or "",
            "DeleteMessageBatchRequestEntry.2.Id": "bad",
            "DeleteMessageBatchRequestEntry.2.ReceiptHandle": "nonsense",
        },
    )
    root = xml(body).find("s:DeleteMessageBatchResult", NS)
    assert root is not None
    assert root.findtext("s:DeleteMessageBatchResultEntry/s:Id", namespaces=NS) == "ok"
    assert (
        root.findtext("s:BatchResultErrorEntry/s:Code", namespaces=NS) == "ReceiptHandleIsInvalid"
    )
    assert root.findtext("s:BatchResultErrorEntry/s:SenderFault", namespaces=NS) == "true"

    status, _, body = http_call(broker, form={"Action": "ListQueueTags", "QueueUrl": url})
    tag = xml(body).find("s:ListQueueTagsResult/s:Tag", NS)
    assert tag is not None and tag.findtext("s:Key", namespaces=NS) == "team"

    status, _, body = http_call(broker, form={"Action": "ListQueues"})
    urls = [e.text for e in xml(body).iter(Q + "QueueUrl")]
    assert urls == [url]
    status, _, body = http_call(broker, form={"Action": "DeleteQueue", "QueueUrl": url})
    assert status == 200 and xml(body).tag == Q + "DeleteQueueResponse"


def test_query_error_response_shape(broker: BrokerThread) -> None:
    status, _, body = http_call(broker, form={"Action": "GetQueueUrl", "QueueName": "missing"})
    assert status == 400
    root = xml(body)
    assert root.tag == Q + "ErrorResponse"
    assert root.findtext("s:Error/s:Type", namespaces=NS) == "Sender"
    assert (
        root.findtext("s:Error/s:Code", namespaces=NS) == "AWS.SimpleQueueService.NonExistentQueue"
    )
    assert root.findtext("s:Error/s:Message", namespaces=NS)
    assert root.findtext("s:RequestId", namespaces=NS)
    status, _, body = http_call(broker, form={"Action": "Frobnicate"})
    assert status == 400
    assert xml(body).findtext("s:Error/s:Code", namespaces=NS) == "InvalidAction"
    status, _, body = http_call(broker, form={"Action": "CreateQueue"})
    assert xml(body).findtext("s:Error/s:Code", namespaces=NS) == "MissingParameter"


def test_json_error_shape(broker: BrokerThread) -> None:
    status, headers, body = http_call(
        broker, target="GetQueueUrl", payload={"QueueName": "missing"}
    )
    assert status == 400
    assert headers["x-amzn-query-error"] == "AWS.SimpleQueueService.NonExistentQueue;Sender"
    assert headers["content-type"].startswith("application/x-amz-json-1.0")
    doc = json.loads(body)
    assert doc["__type"] == "com.amazonaws.sqs#QueueDoesNotExist"
    assert doc["message"]
    status, headers, body = http_call(broker, target="Frobnicate")
    assert status == 400
    assert json.loads(body)["__type"].endswith("#UnknownOperationException")
    status, headers, body = http_call(broker, target="CreateQueue", payload={"QueueName": "j"})
    assert status == 200 and json.loads(body)["QueueUrl"].endswith("/000000000000/j")
    status, headers, body = http_call(
        broker,
        target="ReceiveMessage",
        payload={"QueueUrl": json.loads(body)["QueueUrl"], "MaxNumberOfMessages": 11},
    )
    assert status == 400
    assert headers["x-amzn-query-error"] == "InvalidParameterValue;Sender"


@pytest.mark.skipif(shutil.which("aws") is None, reason="awscli is not installed")
def test_aws_cli(broker: BrokerThread, tmp_path: Any) -> None:
    endpoint = f"http://127.0.0.1:{broker.broker.port('aws')}"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIDTEST",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }

    def aws(*args: str) -> Any:
        out = subprocess.run(
            ["aws", "--endpoint-url", endpoint, "--output", "json", "sqs", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return out

    created = aws("create-queue", "--queue-name", "cli")
    assert created.returncode == 0, created.stderr
    url = json.loads(created.stdout)["QueueUrl"]
    sent = aws("send-message", "--queue-url", url, "--message-body", "from the cli")
    assert sent.returncode == 0, sent.stderr
    got = aws("receive-message", "--queue-url", url)
    assert json.loads(got.stdout)["Messages"][0]["Body"] == "from the cli"
    missing = aws("get-queue-url", "--queue-name", "nope")
    assert missing.returncode != 0
    assert "NonExistentQueue" in missing.stderr


def test_sigv4_is_verified_when_users_are_configured(broker_factory: Any) -> None:
    b = broker_factory(**{"auth.users": {"AKIDGOOD": "s3cret"}})
    good = client(b, aws_access_key_id="AKIDGOOD", aws_secret_access_key="s3cret")
    url = good.create_queue(QueueName="signed")["QueueUrl"]
    good.send_message(QueueUrl=url, MessageBody="x")
    msg = good.receive_message(QueueUrl=url, AttributeNames=["SenderId"])["Messages"][0]
    assert msg["Attributes"]["SenderId"] == "AKIDGOOD"
    wrong = client(b, aws_access_key_id="AKIDGOOD", aws_secret_access_key="nope")
    with pytest.raises(ClientError) as info:
        wrong.list_queues()
    assert error_code(info.value) == "SignatureDoesNotMatch"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    unknown = client(b, aws_access_key_id="AKIDBAD", aws_secret_access_key="s3cret")
    with pytest.raises(ClientError) as info:
        unknown.list_queues()
    assert error_code(info.value) == "InvalidClientTokenId"
    status, _, body = http_call(b, form={"Action": "ListQueues"})
    assert status == 403
    assert xml(body).findtext("s:Error/s:Code", namespaces=NS) == "MissingAuthenticationToken"
