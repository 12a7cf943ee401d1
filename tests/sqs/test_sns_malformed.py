"""Malformed SNS Query requests over raw HTTP (what boto3 would never send): a member
nested where the model has a string, a list or map that is not one, a bad list index,
non-UTF-8 bodies. Each is a 400 in SNS's error shape, never a 500, nothing is changed,
and the broker goes on serving."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import BrokerThread
from tests.sqs.support import http_call

ARN = "arn:aws:sns:us-east-1:000000000000:sns-bad"
NS = b'<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type>'
QARN = "arn:aws:sqs:us-east-1:000000000000:sns-bad-q"


@pytest.mark.parametrize(
    ("form", "code", "words"),
    [
        ({"Action": "Publish", "TopicArn": ARN, "Message.a.b": "m"}, "InvalidParameter",
         "Invalid parameter: Message"),
        ({"Action": "Publish", "TopicArn": ARN, "Message": "m", "Subject.a": "s"},
         "InvalidParameter", "Invalid parameter: Subject"),
        ({"Action": "Publish", "TopicArn.x": "1", "Message": "m"}, "InvalidParameter",
         "Invalid parameter: TopicArn"),
        ({"Action": "Publish", "TopicArn": ARN, "Message": "m", "MessageAttributes": "x"},
         "InvalidParameter", "Invalid parameter: MessageAttributes"),
        ({"Action": "Publish", "TopicArn": ARN, "Message": "m",
          "MessageAttributes.entry.1.Name": "a", "MessageAttributes.entry.1.Value": "s"},
         "InvalidParameter", "Invalid parameter: MessageAttributes.a"),
        ({"Action": "Publish", "TopicArn": ARN, "Message": "m",
          "MessageAttributes.entry.1.Name": "a",
          "MessageAttributes.entry.1.Value.DataType": "Binary",
          "MessageAttributes.entry.1.Value.BinaryValue": "!!"},
         "ParameterValueInvalid", "invalid binary value"),
        ({"Action": "PublishBatch", "TopicArn": ARN, "PublishBatchRequestEntries.member.1": "x"},
         "InvalidParameter", "PublishBatchRequestEntries.member.1"),
        ({"Action": "PublishBatch", "TopicArn": ARN,
          "PublishBatchRequestEntries.member.a.Id": "x"},
         "InvalidParameter", "Malformed list parameter"),
        ({"Action": "CreateTopic", "Name": "sns-bad2", "Attributes.entry.1.key": "DisplayName",
          "Attributes.entry.1.value.x": "y"}, "InvalidParameter", "Attributes.DisplayName"),
        ({"Action": "CreateTopic", "Name": "sns-bad2", "Tags.member.1": "x"},
         "InvalidParameter", "Tags.member.1"),
        ({"Action": "UntagResource", "ResourceArn": ARN, "TagKeys.member.1.x": "k"},
         "InvalidParameter", "TagKeys.member.1"),
        ({"Action": "Subscribe", "TopicArn": ARN, "Protocol": "sqs", "Endpoint": QARN,
          "Attributes.entry.1.key": "RawMessageDelivery", "Attributes.entry.1.value.x": "t"},
         "InvalidParameter", "Attributes.RawMessageDelivery"),
        ({"Action": "SetTopicAttributes", "TopicArn": ARN, "AttributeName": "DisplayName",
          "AttributeValue.x": "y"}, "InvalidParameter", "AttributeValue"),
        ({"Action": "ListTopics", "NextToken": "LTE="}, "InvalidParameter", "NextToken"),
        ({"Action": "Publish", "TopicArn": ARN, "Message": "m",
          "A.b.c.d.e.f.g.h.i": "deep"}, "InvalidParameterValue", "Malformed parameter"),
    ],
)  # fmt: skip
def test_malformed_query_is_400_in_sns_shape(
    broker: BrokerThread, form: dict[str, str], code: str, words: str
) -> None:
    http_call(broker, form={"Action": "CreateTopic", "Name": "sns-bad"})
    status, _, body = http_call(broker, form=form)
    assert status == 400, body
    assert body.startswith(b'<?xml version="1.0"?>' + NS)
    assert f"<Code>{code}</Code>".encode() in body
    assert words.encode() in body
    # Nothing changed, and the broker still answers.
    status, _, body = http_call(broker, form={"Action": "ListTopics"})
    assert status == 200
    assert body.count(b"<TopicArn>") == 1
    status, _, body = http_call(broker, form={"Action": "GetTopicAttributes", "TopicArn": ARN})
    assert b"<key>DisplayName</key><value></value>" in body
    assert b"<key>SubscriptionsConfirmed</key><value>0</value>" in body


def test_body_that_is_not_utf8(broker: BrokerThread) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", broker.broker.port("aws"), timeout=30)
    try:
        conn.request(
            "POST",
            "/",
            body=b"Action=CreateTopic&Name=%ff%fe",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        resp = conn.getresponse()
        body: Any = resp.read()
    finally:
        conn.close()
    assert resp.status == 400
    assert b"<Code>InvalidParameterValue</Code>" in body
    status, _, listed = http_call(broker, form={"Action": "ListTopics"})
    assert status == 200 and b"<TopicArn>" not in listed
