"""SNS actions over boto3 (the Query protocol, XML in SNS's namespace) against a real
broker: topics (standard and FIFO, idempotent create, attributes, pagination),
subscriptions (sqs), tags, data protection answered "not supported", and the errors
AWS answers (codes, statuses, texts). Routing on the shared port: by the SigV4 scope's
service, or by Action when unsigned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.exceptions import ClientError

from tests.conftest import BrokerThread
from tests.sqs.sns_support import queue_with_arn, sns_client
from tests.sqs.support import client, error_code, http_call, raw_post, signed

NS = "http://sns.amazonaws.com/doc/2010-03-31/"


@pytest.fixture
def sns(broker: BrokerThread) -> Any:
    return sns_client(broker)


@pytest.fixture
def sqs(broker: BrokerThread) -> Any:
    return client(broker)


def status(exc: ClientError) -> int:
    return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])


def refused(call: Any, code: str, http: int = 400, text: str | None = None, **kw: Any) -> str:
    with pytest.raises(ClientError) as info:
        call(**kw)
    assert error_code(info.value) == code, info.value.response
    assert status(info.value) == http
    message = info.value.response["Error"]["Message"]
    if text is not None:
        assert message == text
    return message


# -- topics --------------------------------------------------------------------------------


def test_create_topic_is_idempotent_and_refuses_other_attributes_or_tags(sns: Any) -> None:
    arn = sns.create_topic(
        Name="sns-news", Attributes={"DisplayName": "News"}, Tags=[{"Key": "t", "Value": "1"}]
    )["TopicArn"]
    assert arn == "arn:aws:sns:us-east-1:000000000000:sns-news"
    again = sns.create_topic(Name="sns-news", Attributes={"DisplayName": "News"})
    assert again["TopicArn"] == arn
    assert sns.create_topic(Name="sns-news")["TopicArn"] == arn
    refused(
        sns.create_topic,
        "InvalidParameter",
        text="Invalid parameter: Attributes Reason: Topic already exists with different attributes",
        Name="sns-news",
        Attributes={"DisplayName": "Other"},
    )
    refused(
        sns.create_topic,
        "InvalidParameter",
        text="Invalid parameter: Tags Reason: Topic already exists with different tags",
        Name="sns-news",
        Tags=[{"Key": "t", "Value": "2"}],
    )


@pytest.mark.parametrize(
    ("name", "attributes", "text"),
    [
        ("has space", {}, "Invalid parameter: Topic Name"),
        ("a" * 257, {}, "Invalid parameter: Topic Name"),
        ("dot.name", {}, "Invalid parameter: Topic Name"),
        ("plain.fifo", {}, "Invalid parameter: Topic Name"),
        ("nofifo", {"FifoTopic": "true"}, None),
        ("bad name.fifo", {"FifoTopic": "true"}, None),
        ("x", {"Bogus": "1"}, "Invalid parameter: AttributeName"),
        ("x", {"ContentBasedDeduplication": "true"}, None),
        ("x", {"SignatureVersion": "3"}, None),
        ("x", {"Policy": "{not json"}, "Invalid parameter: Policy: failed to parse JSON."),
    ],
)
def test_create_topic_validation(
    sns: Any, name: str, attributes: dict[str, str], text: str | None
) -> None:
    message = refused(
        sns.create_topic, "InvalidParameter", text=text, Name=name, Attributes=attributes
    )
    assert message.startswith("Invalid parameter: ")
    assert sns.list_topics()["Topics"] == []


def test_fifo_topic_attributes(sns: Any) -> None:
    arn = sns.create_topic(
        Name="sns-jobs.fifo",
        Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "true"},
    )["TopicArn"]
    a = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert a["FifoTopic"] == "true"
    assert a["ContentBasedDeduplication"] == "true"
    sns.set_topic_attributes(
        TopicArn=arn, AttributeName="ContentBasedDeduplication", AttributeValue="false"
    )
    a = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert a["ContentBasedDeduplication"] == "false"
    # FifoTopic is fixed at creation.
    refused(
        sns.set_topic_attributes,
        "InvalidParameter",
        TopicArn=arn,
        AttributeName="FifoTopic",
        AttributeValue="false",
    )


def test_topic_attributes_are_aws_members_and_settable(sns: Any, sqs: Any) -> None:
    arn = sns.create_topic(Name="sns-attrs")["TopicArn"]
    a = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert a["TopicArn"] == arn
    assert a["Owner"] == "000000000000"
    assert a["DisplayName"] == ""
    assert (a["SubscriptionsConfirmed"], a["SubscriptionsPending"]) == ("0", "0")
    assert a["SubscriptionsDeleted"] == "0"
    assert "FifoTopic" not in a
    policy = json.loads(a["Policy"])
    assert policy["Statement"][0]["Resource"] == arn
    assert "http" in json.loads(a["EffectiveDeliveryPolicy"])
    sns.set_topic_attributes(TopicArn=arn, AttributeName="DisplayName", AttributeValue="Hi")
    sns.set_topic_attributes(TopicArn=arn, AttributeName="SignatureVersion", AttributeValue="2")
    _, qarn = queue_with_arn(sqs, "sns-attrs-q")
    sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)["SubscriptionArn"]
    a = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert (a["DisplayName"], a["SignatureVersion"]) == ("Hi", "2")
    assert a["SubscriptionsConfirmed"] == "1"
    sns.unsubscribe(SubscriptionArn=sub)
    a = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert (a["SubscriptionsConfirmed"], a["SubscriptionsDeleted"]) == ("0", "1")
    refused(
        sns.set_topic_attributes,
        "InvalidParameter",
        text="Invalid parameter: AttributeName",
        TopicArn=arn,
        AttributeName="Nope",
        AttributeValue="1",
    )


def test_unknown_topic_is_not_found_and_a_bad_arn_invalid(sns: Any) -> None:
    missing = "arn:aws:sns:us-east-1:000000000000:sns-none"
    refused(sns.get_topic_attributes, "NotFound", 404, "Topic does not exist", TopicArn=missing)
    refused(sns.publish, "NotFound", 404, TopicArn=missing, Message="x")
    refused(sns.get_topic_attributes, "InvalidParameter", TopicArn="not-an-arn")
    # Deleting a topic that does not exist succeeds, as on AWS.
    sns.delete_topic(TopicArn=missing)


def test_list_topics_pages_by_100(sns: Any) -> None:
    arns = {sns.create_topic(Name=f"sns-page-{i:03d}")["TopicArn"] for i in range(205)}
    first = sns.list_topics()
    assert len(first["Topics"]) == 100 and first["NextToken"]
    second = sns.list_topics(NextToken=first["NextToken"])
    assert len(second["Topics"]) == 100
    third = sns.list_topics(NextToken=second["NextToken"])
    assert len(third["Topics"]) == 5 and "NextToken" not in third
    listed = [t["TopicArn"] for page in (first, second, third) for t in page["Topics"]]
    assert set(listed) == arns and len(listed) == 205
    # boto3's paginator follows the tokens.
    pages = sns.get_paginator("list_topics").paginate()
    assert sum(len(p["Topics"]) for p in pages) == 205
    refused(sns.list_topics, "InvalidParameter", NextToken="!!!")


def test_delete_topic_removes_its_subscriptions(sns: Any, sqs: Any) -> None:
    arn = sns.create_topic(Name="sns-del")["TopicArn"]
    _, qarn = queue_with_arn(sqs, "sns-del-q")
    sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)["SubscriptionArn"]
    sns.delete_topic(TopicArn=arn)
    assert sns.list_topics()["Topics"] == []
    assert sns.list_subscriptions()["Subscriptions"] == []
    refused(sns.get_subscription_attributes, "NotFound", 404, SubscriptionArn=sub)


# -- subscriptions -------------------------------------------------------------------------


def test_subscribe_sqs_and_list(sns: Any, sqs: Any) -> None:
    arn = sns.create_topic(Name="sns-subs")["TopicArn"]
    _, qarn = queue_with_arn(sqs, "sns-subs-q")
    sub = sns.subscribe(
        TopicArn=arn,
        Protocol="sqs",
        Endpoint=qarn,
        Attributes={"RawMessageDelivery": "true"},
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    assert sub.startswith(arn + ":") and len(sub) == len(arn) + 37
    # The same endpoint again: the same subscription.
    assert sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)["SubscriptionArn"] == sub
    listed = sns.list_subscriptions()["Subscriptions"]
    assert listed == [
        {
            "SubscriptionArn": sub,
            "Owner": "000000000000",
            "Protocol": "sqs",
            "Endpoint": qarn,
            "TopicArn": arn,
        }
    ]
    assert sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"] == listed
    a = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    assert a["RawMessageDelivery"] == "true"
    assert a["PendingConfirmation"] == "false"
    assert a["ConfirmationWasAuthenticated"] == "true"
    assert (a["TopicArn"], a["Endpoint"], a["Protocol"]) == (arn, qarn, "sqs")
    sns.unsubscribe(SubscriptionArn=sub)
    assert sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"] == []
    refused(sns.unsubscribe, "NotFound", 404, "Subscription does not exist", SubscriptionArn=sub)


def test_list_subscriptions_by_topic_pages_by_100(sns: Any, sqs: Any) -> None:
    arn = sns.create_topic(Name="sns-many")["TopicArn"]
    for i in range(130):
        sns.subscribe(
            TopicArn=arn,
            Protocol="sqs",
            Endpoint=f"arn:aws:sqs:us-east-1:000000000000:sns-many-{i}",
        )
    first = sns.list_subscriptions_by_topic(TopicArn=arn)
    assert len(first["Subscriptions"]) == 100
    second = sns.list_subscriptions_by_topic(TopicArn=arn, NextToken=first["NextToken"])
    assert len(second["Subscriptions"]) == 30 and "NextToken" not in second
    ends = {s["Endpoint"] for s in first["Subscriptions"] + second["Subscriptions"]}
    assert len(ends) == 130
    assert len(sns.list_subscriptions()["Subscriptions"]) == 100


@pytest.mark.parametrize(
    ("protocol", "endpoint", "words"),
    [
        ("email", "a@example.com", "not supported"),
        ("sms", "+15555550100", "not supported"),
        ("carrier-pigeon", "x", "does not support this protocol string: carrier-pigeon"),
        ("sqs", "arn:aws:sqs:us-east-1:999999999999:q", "SQS endpoint ARN"),
        ("sqs", "not-an-arn", "SQS endpoint ARN"),
        ("sqs", "arn:aws:sqs:us-east-1:000000000000:q.fifo", "Please use FIFO SNS topic"),
    ],
)
def test_subscribe_refusals(sns: Any, protocol: str, endpoint: str, words: str) -> None:
    arn = sns.create_topic(Name="sns-refuse")["TopicArn"]
    message = refused(
        sns.subscribe, "InvalidParameter", TopicArn=arn, Protocol=protocol, Endpoint=endpoint
    )
    assert words in message
    assert sns.list_subscriptions()["Subscriptions"] == []


def test_fifo_topic_takes_only_fifo_queues(sns: Any) -> None:
    arn = sns.create_topic(Name="sns-f.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    message = refused(
        sns.subscribe,
        "InvalidParameter",
        TopicArn=arn,
        Protocol="sqs",
        Endpoint="arn:aws:sqs:us-east-1:000000000000:plain",
    )
    assert "FIFO SNS Topics currently only support FIFO SQS Queues" in message
    sns.subscribe(
        TopicArn=arn, Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:000000000000:q.fifo"
    )


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("RawMessageDelivery", "maybe", "RawMessageDelivery: Invalid value [maybe]"),
        ("FilterPolicyScope", "Headers", "FilterPolicyScope: Invalid value [Headers]"),
        ("FilterPolicy", "{nope", "FilterPolicy: failed to parse JSON."),
        ("FilterPolicy", "[1, 2]", "FilterPolicy: Filter policy must be a JSON object"),
        ("RedrivePolicy", "{}", "deadLetterTargetArn is missing"),
        ("RedrivePolicy", '{"deadLetterTargetArn": "x"}', "invalid arn"),
        ("DeliveryPolicy", "{}", "only be set for HTTP/S"),
        ("Unknown", "1", "Invalid parameter: AttributeName"),
    ],
)
def test_subscription_attribute_validation(
    sns: Any, sqs: Any, name: str, value: str, words: str
) -> None:
    arn = sns.create_topic(Name="sns-sa")["TopicArn"]
    _, qarn = queue_with_arn(sqs, "sns-sa-q")
    sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)["SubscriptionArn"]
    message = refused(
        sns.set_subscription_attributes,
        "InvalidParameter",
        SubscriptionArn=sub,
        AttributeName=name,
        AttributeValue=value,
    )
    assert words in message
    # Refused at subscribe too, and nothing was created.
    _, other = queue_with_arn(sqs, "sns-sa-q2")
    refused(
        sns.subscribe,
        "InvalidParameter",
        TopicArn=arn,
        Protocol="sqs",
        Endpoint=other,
        Attributes={name: value},
    )
    assert len(sns.list_subscriptions()["Subscriptions"]) == 1
    a = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    assert name not in a or a[name] == "false"


@pytest.mark.parametrize(
    ("policy", "reason"),
    [
        ("{nope", "failed to parse JSON."),
        ("[1, 2]", "Filter policy must be a JSON object"),
        ('{"price": [{"numeric": ["<", "x"]}]}', "Value of < must be numeric"),
        (
            '{"a": [1], "b": [1], "c": [1], "d": [1], "e": [1], "f": [1]}',
            "Filter policy can not have more than 5 keys",
        ),
    ],
)
def test_filter_policy_errors_name_the_parameter_of_the_action(
    sns: Any, sqs: Any, policy: str, reason: str
) -> None:
    """AWS words a bad FilterPolicy per action: "Invalid parameter: FilterPolicy: <reason>"
    for SetSubscriptionAttributes, "Invalid parameter: Attributes Reason: FilterPolicy:
    <reason>" for Subscribe (its Attributes parameter)."""
    arn = sns.create_topic(Name="sns-fp-text")["TopicArn"]
    _, qarn = queue_with_arn(sqs, "sns-fp-text-q")
    message = refused(
        sns.subscribe,
        "InvalidParameter",
        TopicArn=arn,
        Protocol="sqs",
        Endpoint=qarn,
        Attributes={"FilterPolicy": policy},
    )
    assert message.startswith(f"Invalid parameter: Attributes Reason: FilterPolicy: {reason}")
    assert sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"] == []
    sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)["SubscriptionArn"]
    message = refused(
        sns.set_subscription_attributes,
        "InvalidParameter",
        SubscriptionArn=sub,
        AttributeName="FilterPolicy",
        AttributeValue=policy,
    )
    assert message.startswith(f"Invalid parameter: FilterPolicy: {reason}")


def test_subscription_attributes_are_stored(sns: Any, sqs: Any) -> None:
    arn = sns.create_topic(Name="sns-store")["TopicArn"]
    _, qarn = queue_with_arn(sqs, "sns-store-q")
    _, dlq = queue_with_arn(sqs, "sns-store-dlq")
    sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)["SubscriptionArn"]
    policy = '{"color": ["red", {"prefix": "bl"}]}'
    redrive = json.dumps({"deadLetterTargetArn": dlq})
    for name, value in (
        ("FilterPolicy", policy),
        ("FilterPolicyScope", "MessageBody"),
        ("RedrivePolicy", redrive),
        ("RawMessageDelivery", "true"),
    ):
        sns.set_subscription_attributes(
            SubscriptionArn=sub, AttributeName=name, AttributeValue=value
        )
    a = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    assert a["FilterPolicy"] == policy  # verbatim
    assert a["FilterPolicyScope"] == "MessageBody"
    assert a["RedrivePolicy"] == redrive
    assert a["RawMessageDelivery"] == "true"
    # An empty value removes the attribute.
    sns.set_subscription_attributes(
        SubscriptionArn=sub, AttributeName="FilterPolicy", AttributeValue=""
    )
    assert "FilterPolicy" not in sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]


def test_confirm_subscription_with_an_unknown_token(sns: Any) -> None:
    arn = sns.create_topic(Name="sns-confirm")["TopicArn"]
    refused(sns.confirm_subscription, "InvalidParameter", TopicArn=arn, Token="abc")


# -- tags and data protection --------------------------------------------------------------


def test_tags(sns: Any) -> None:
    arn = sns.create_topic(Name="sns-tags", Tags=[{"Key": "a", "Value": "1"}])["TopicArn"]
    sns.tag_resource(ResourceArn=arn, Tags=[{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "3"}])
    tags = sns.list_tags_for_resource(ResourceArn=arn)["Tags"]
    assert tags == [{"Key": "a", "Value": "3"}, {"Key": "b", "Value": "2"}]
    sns.untag_resource(ResourceArn=arn, TagKeys=["a"])
    assert sns.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "b", "Value": "2"}]
    many = [{"Key": f"k{i}", "Value": "v"} for i in range(50)]
    refused(sns.tag_resource, "TagLimitExceeded", ResourceArn=arn, Tags=many)
    gone = "arn:aws:sns:us-east-1:000000000000:sns-none"
    refused(sns.list_tags_for_resource, "ResourceNotFound", 404, ResourceArn=gone)
    reserved = [{"Key": "aws:x", "Value": ""}]
    refused(sns.tag_resource, "InvalidParameter", ResourceArn=arn, Tags=reserved)


def test_data_protection_is_not_supported(sns: Any) -> None:
    arn = sns.create_topic(Name="sns-dp")["TopicArn"]
    for call, kw in (
        (sns.get_data_protection_policy, {"ResourceArn": arn}),
        (sns.put_data_protection_policy, {"ResourceArn": arn, "DataProtectionPolicy": "{}"}),
        (sns.create_topic, {"Name": "sns-dp2", "DataProtectionPolicy": "{}"}),
    ):
        assert "not supported" in refused(call, "InvalidParameter", **kw)


# -- routing and the wire ------------------------------------------------------------------


def test_unsigned_query_is_routed_by_action(broker: BrokerThread) -> None:
    code, _, body = http_call(
        broker, form={"Action": "CreateTopic", "Name": "sns-raw", "Version": "2010-03-31"}
    )
    assert code == 200
    text = body.decode()
    assert f'<CreateTopicResponse xmlns="{NS}">' in text
    assert "<TopicArn>arn:aws:sns:us-east-1:000000000000:sns-raw</TopicArn>" in text
    assert "<ResponseMetadata><RequestId>" in text
    # An SQS action on the same port is still SQS's.
    code, _, body = http_call(broker, form={"Action": "CreateQueue", "QueueName": "sns-rq"})
    assert code == 200 and b"queue.amazonaws.com" in body
    # The error shape: SNS's namespace, Type, Code, Message, RequestId.
    code, _, body = http_call(
        broker,
        form={"Action": "GetTopicAttributes", "TopicArn": "arn:aws:sns:us-east-1:000000000000:x"},
    )
    assert code == 404
    text = body.decode()
    assert f'<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type><Code>NotFound</Code>' in text
    assert "<RequestId>" in text


def test_signed_requests_route_by_scope_service(broker_factory: Any) -> None:
    b = broker_factory(**{"auth.users": {"AKIDGOOD": "s3cret"}})
    good = {"aws_access_key_id": "AKIDGOOD", "aws_secret_access_key": "s3cret"}
    sns = sns_client(b, **good)
    arn = sns.create_topic(Name="sns-signed")["TopicArn"]
    assert [t["TopicArn"] for t in sns.list_topics()["Topics"]] == [arn]
    # A wrong secret: SNS's error shape with SigV4's code.
    bad = sns_client(b, aws_access_key_id="AKIDGOOD", aws_secret_access_key="wrong")
    refused(bad.list_topics, "SignatureDoesNotMatch", 403)
    unknown = sns_client(b, aws_access_key_id="AKIDNONE", aws_secret_access_key="x")
    refused(unknown.list_topics, "InvalidClientTokenId", 403)
    # Unsigned with users configured: refused before any SNS action runs.
    code, _, _ = http_call(b, form={"Action": "CreateTopic", "Name": "sns-anon"})
    assert code == 403
    assert len(sns.list_topics()["Topics"]) == 1
    # An SQS JSON request signed for SNS is refused (the scope must be sqs there).
    port = b.broker.port("aws")
    body, headers = signed(port, "ListQueues", {}, service="sns")
    answer = raw_post(port, body, headers)
    assert answer[0] == 403 and "correct service" in answer[1]["message"]
    # An SNS-scoped Query request naming an SQS action is SNS's: InvalidAction.
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    form = urlencode({"Action": "ListQueues", "Version": "2010-03-31"}).encode()
    request = AWSRequest(
        method="POST",
        url=f"http://127.0.0.1:{port}/",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    SigV4Auth(Credentials("AKIDGOOD", "s3cret"), "sns", "us-east-1").add_auth(request)
    code, answer = raw_post(port, form, dict(request.headers.items()))
    assert code == 400 and b"<Code>InvalidAction</Code>" in answer["raw"]


def test_unknown_action_and_missing_parameters(broker: BrokerThread, sns: Any) -> None:
    refused(sns.subscribe, "InvalidParameter", TopicArn="", Protocol="sqs")
    arn = sns.create_topic(Name="sns-missing")["TopicArn"]
    refused(sns.set_topic_attributes, "InvalidParameter", TopicArn=arn, AttributeName="")


def test_aws_cli_publish(broker: BrokerThread, sqs: Any, tmp_path: Any) -> None:
    sns = sns_client(broker)
    arn = sns.create_topic(Name="sns-cli")["TopicArn"]
    url, qarn = queue_with_arn(sqs, "sns-cli-q")
    raw = {"RawMessageDelivery": "true"}
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn, Attributes=raw)
    env = {
        "AWS_ACCESS_KEY_ID": "AKIDTEST",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "HOME": str(tmp_path),
    }
    endpoint = f"http://127.0.0.1:{broker.broker.port('aws')}"
    out = subprocess.run(
        [sys.executable, "-m", "awscli", "--endpoint-url", endpoint, "sns", "publish",
         "--topic-arn", arn, "--message", "from the cli"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout)["MessageId"]
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
    assert got[0]["Body"] == "from the cli"
