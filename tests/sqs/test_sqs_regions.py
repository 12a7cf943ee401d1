"""Regions and accounts (protocols/aws/regions.py): SQS queues and SNS topics per region
as AWS has them, the region taken from the request's credential scope, the default
region's names being the broker's plain destinations, and ARNs naming another region
resolved there. boto3 and the AWS CLI over real sockets; STOMP with stomp.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import stomp
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import WAIT, BrokerThread, Collector
from tests.sqs.sns_support import Endpoint, queue_with_arn, receive, verify
from tests.sqs.support import CREDS, error_code

ACCOUNT = "000000000000"


def _client(service: str, broker: BrokerThread, region: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=f"http://127.0.0.1:{broker.broker.port('aws')}",
        region_name=region,
        config=Config(retries={"max_attempts": 1}, read_timeout=30),
        **CREDS,
    )


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerThread]:
    b = BrokerThread(tmp_path_factory.mktemp("regions")).start()
    yield b
    b.stop()


def _names(sqs: Any, prefix: str) -> list[str]:
    urls = sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    return [u.rsplit("/", 1)[-1] for u in urls]


def _arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]


def test_a_queue_is_listed_and_found_only_in_its_region(shared: BrokerThread) -> None:
    us, eu = _client("sqs", shared, "us-east-1"), _client("sqs", shared, "eu-west-1")
    eu_url = eu.create_queue(QueueName="rg-only-eu")["QueueUrl"]
    us_url = us.create_queue(QueueName="rg-only-us")["QueueUrl"]
    assert _names(eu, "rg-only") == ["rg-only-eu"]
    assert _names(us, "rg-only") == ["rg-only-us"]
    # The URL keeps the facade's shape (host as addressed, account, name).
    port = shared.broker.port("aws")
    assert eu_url == f"http://127.0.0.1:{port}/{ACCOUNT}/rg-only-eu"
    assert _arn(eu, eu_url) == f"arn:aws:sqs:eu-west-1:{ACCOUNT}:rg-only-eu"
    assert _arn(us, us_url) == f"arn:aws:sqs:us-east-1:{ACCOUNT}:rg-only-us"
    for client, name in ((us, "rg-only-eu"), (eu, "rg-only-us")):
        with pytest.raises(client.exceptions.QueueDoesNotExist) as info:
            client.get_queue_url(QueueName=name)
        assert error_code(info.value) == "AWS.SimpleQueueService.NonExistentQueue"
    # Another region's URL, used in this region, names a queue this region does not have.
    with pytest.raises(us.exceptions.QueueDoesNotExist):
        us.send_message(QueueUrl=eu_url, MessageBody="lost?")
    assert (
        eu.get_queue_attributes(QueueUrl=eu_url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
        == "0"
    )


def test_the_same_name_in_two_regions_is_two_queues(shared: BrokerThread) -> None:
    us, eu = _client("sqs", shared, "us-east-1"), _client("sqs", shared, "ap-southeast-2")
    us_url = us.create_queue(QueueName="rg-orders", Attributes={"VisibilityTimeout": "5"})[
        "QueueUrl"
    ]
    eu_url = eu.create_queue(QueueName="rg-orders", Attributes={"VisibilityTimeout": "7"})[
        "QueueUrl"
    ]
    # Same URL text (the region is the request's), two queues with their own attributes.
    assert us_url == eu_url
    us.send_message(QueueUrl=us_url, MessageBody="for us-east-1")
    eu.send_message(QueueUrl=eu_url, MessageBody="for ap-southeast-2")
    eu.send_message(QueueUrl=eu_url, MessageBody="for ap-southeast-2 again")
    assert [m["Body"] for m in receive(us, us_url, 1)] == ["for us-east-1"]
    assert sorted(m["Body"] for m in receive(eu, eu_url, 2)) == [
        "for ap-southeast-2",
        "for ap-southeast-2 again",
    ]
    timeouts = [
        c.get_queue_attributes(QueueUrl=us_url, AttributeNames=["VisibilityTimeout"])["Attributes"][
            "VisibilityTimeout"
        ]
        for c in (us, eu)
    ]
    assert timeouts == ["5", "7"]
    # A receipt handle of one region's queue is not valid for the other's.
    us.send_message(QueueUrl=us_url, MessageBody="handle")
    handle = receive(us, us_url, 1)[0]["ReceiptHandle"]
    with pytest.raises(ClientError) as info:
        eu.delete_message(QueueUrl=eu_url, ReceiptHandle=handle)
    assert error_code(info.value) == "ReceiptHandleIsInvalid"
    us.delete_message(QueueUrl=us_url, ReceiptHandle=handle)
    # Deleting one leaves the other.
    eu.delete_queue(QueueUrl=eu_url)
    assert _names(us, "rg-orders") == ["rg-orders"]
    assert _names(eu, "rg-orders") == []


def test_stomp_sees_the_default_region_by_plain_name(shared: BrokerThread) -> None:
    us, eu = _client("sqs", shared, "us-east-1"), _client("sqs", shared, "eu-west-1")
    us_url = us.create_queue(QueueName="rg-stomp")["QueueUrl"]
    eu_url = eu.create_queue(QueueName="rg-stomp")["QueueUrl"]
    conn = stomp.Connection12([("127.0.0.1", shared.stomp_port)], heartbeats=(0, 0))
    got = Collector()
    conn.set_listener("collector", got)
    conn.connect(wait=True)
    try:
        conn.send("/queue/rg-stomp", "from stomp, default region", receipt="r1")
        assert got.receipt() == "r1"
        conn.send("/queue/AWS.SQS.eu-west-1.rg-stomp", "from stomp, eu-west-1", receipt="r2")
        assert got.receipt() == "r2"
        assert [m["Body"] for m in receive(us, us_url, 1)] == ["from stomp, default region"]
        assert [m["Body"] for m in receive(eu, eu_url, 1)] == ["from stomp, eu-west-1"]
        eu.send_message(QueueUrl=eu_url, MessageBody="to stomp")
        conn.subscribe("/queue/AWS.SQS.eu-west-1.rg-stomp", id="s1")
        assert got.next().body == "to stomp"
    finally:
        conn.disconnect()
    # The prefixed core name is no SQS name in the default region.
    assert all("AWS.SQS" not in u for u in us.list_queues().get("QueueUrls", []))


def test_a_dead_letter_queue_must_be_in_the_source_queues_region(shared: BrokerThread) -> None:
    us, eu = _client("sqs", shared, "us-east-1"), _client("sqs", shared, "eu-west-1")
    us_dlq = us.create_queue(QueueName="rg-dlq")["QueueUrl"]
    eu_dlq = eu.create_queue(QueueName="rg-dlq")["QueueUrl"]
    eu_src = eu.create_queue(QueueName="rg-src")["QueueUrl"]
    other_region = json.dumps({"deadLetterTargetArn": _arn(us, us_dlq), "maxReceiveCount": 1})
    with pytest.raises(ClientError) as info:
        eu.set_queue_attributes(QueueUrl=eu_src, Attributes={"RedrivePolicy": other_region})
    assert error_code(info.value) == "InvalidParameterValue"
    assert "Dead letter target does not exist" in str(info.value)
    # Another account's ARN in the right region does not exist either.
    foreign = json.dumps(
        {"deadLetterTargetArn": "arn:aws:sqs:eu-west-1:123456789012:rg-dlq", "maxReceiveCount": 1}
    )
    with pytest.raises(ClientError):
        eu.set_queue_attributes(QueueUrl=eu_src, Attributes={"RedrivePolicy": foreign})
    same = json.dumps({"deadLetterTargetArn": _arn(eu, eu_dlq), "maxReceiveCount": 1})
    eu.set_queue_attributes(
        QueueUrl=eu_src, Attributes={"RedrivePolicy": same, "VisibilityTimeout": "0"}
    )
    eu.send_message(QueueUrl=eu_src, MessageBody="poison")
    receive(eu, eu_src, 1)
    # The second receive would exceed maxReceiveCount: it moves to eu-west-1's rg-dlq.
    assert eu.receive_message(QueueUrl=eu_src, WaitTimeSeconds=0).get("Messages", []) == []
    assert [m["Body"] for m in receive(eu, eu_dlq, 1)] == ["poison"]
    assert us.receive_message(QueueUrl=us_dlq, WaitTimeSeconds=0).get("Messages", []) == []
    sources = eu.list_dead_letter_source_queues(QueueUrl=eu_dlq)["queueUrls"]
    assert [u.rsplit("/", 1)[-1] for u in sources] == ["rg-src"]
    assert us.list_dead_letter_source_queues(QueueUrl=us_dlq)["queueUrls"] == []


def test_another_regions_core_name_is_no_name_in_the_default_region(
    shared: BrokerThread,
) -> None:
    us, eu = _client("sqs", shared, "us-east-1"), _client("sqs", shared, "eu-west-1")
    eu_url = eu.create_queue(QueueName="rg-hidden")["QueueUrl"]
    eu.send_message(QueueUrl=eu_url, MessageBody="stays in eu-west-1")
    core_name = "AWS.SQS.eu-west-1.rg-hidden"
    with pytest.raises(us.exceptions.QueueDoesNotExist):
        us.get_queue_url(QueueName=core_name)
    with pytest.raises(us.exceptions.QueueDoesNotExist):
        us.receive_message(QueueUrl=eu_url.replace("rg-hidden", core_name))
    with pytest.raises(ClientError) as info:
        us.create_queue(QueueName=core_name)
    assert error_code(info.value) == "InvalidParameterValue"
    sns_us = _client("sns", shared, "us-east-1")
    _client("sns", shared, "eu-west-1").create_topic(Name="rg-hidden")
    with pytest.raises(ClientError) as info:
        sns_us.publish(TopicArn=f"arn:aws:sns:us-east-1:{ACCOUNT}:AWS.SNS.eu-west-1.rg-hidden",
                       Message="x")  # fmt: skip
    assert error_code(info.value) == "NotFound"
    assert [m["Body"] for m in receive(eu, eu_url, 1)] == ["stays in eu-west-1"]


def test_another_account_is_a_queue_that_does_not_exist(shared: BrokerThread) -> None:
    us = _client("sqs", shared, "us-east-1")
    url = us.create_queue(QueueName="rg-acct")["QueueUrl"]
    with pytest.raises(us.exceptions.QueueDoesNotExist):
        us.get_queue_url(QueueName="rg-acct", QueueOwnerAWSAccountId="123456789012")
    assert us.get_queue_url(QueueName="rg-acct", QueueOwnerAWSAccountId=ACCOUNT)["QueueUrl"] == url
    with pytest.raises(us.exceptions.QueueDoesNotExist):
        us.send_message(QueueUrl=url.replace(ACCOUNT, "123456789012"), MessageBody="x")


def test_topics_are_per_region_and_fan_out_across_regions(shared: BrokerThread) -> None:
    sns_eu, sns_us = _client("sns", shared, "eu-west-1"), _client("sns", shared, "us-east-1")
    sqs_us = _client("sqs", shared, "us-east-1")
    arn = sns_eu.create_topic(Name="rg-news")["TopicArn"]
    assert arn == f"arn:aws:sns:eu-west-1:{ACCOUNT}:rg-news"
    us_arn = sns_us.create_topic(Name="rg-news")["TopicArn"]
    assert us_arn == f"arn:aws:sns:us-east-1:{ACCOUNT}:rg-news"

    def listed(client: Any) -> list[str]:
        return [t["TopicArn"] for t in client.list_topics()["Topics"] if "rg-news" in t["TopicArn"]]

    assert listed(sns_eu) == [arn]
    assert listed(sns_us) == [us_arn]
    # A client of one region may not use another region's topic (AWS: publish only to
    # topics of the same region).
    with pytest.raises(ClientError) as info:
        sns_us.publish(TopicArn=arn, Message="wrong region")
    assert error_code(info.value) == "InvalidParameter"
    # An SQS queue of us-east-1 subscribed to the eu-west-1 topic by its ARN.
    url, qarn = queue_with_arn(sqs_us, "rg-fanout")
    sub = sns_eu.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)["SubscriptionArn"]
    assert sub.startswith(arn + ":")
    subs = sns_eu.list_subscriptions()["Subscriptions"]
    assert [s["Endpoint"] for s in subs if s["SubscriptionArn"] == sub] == [qarn]
    assert all(s["SubscriptionArn"] != sub for s in sns_us.list_subscriptions()["Subscriptions"])
    sns_eu.publish(TopicArn=arn, Message="across regions")
    sns_us.publish(TopicArn=us_arn, Message="us topic: no subscriber")
    got = receive(sqs_us, url, 1)
    envelope = json.loads(got[0]["Body"])
    assert (envelope["TopicArn"], envelope["Message"]) == (arn, "across regions")
    assert sqs_us.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []) == []
    # A queue ARN of a region where no such queue is: refused, as any unknown queue.
    with pytest.raises(ClientError):
        sns_eu.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn.replace("us-east-1", "mars-1"))


def test_a_scope_naming_no_region_is_refused(shared: BrokerThread) -> None:
    bad = _client("sqs", shared, "mars")
    with pytest.raises(ClientError) as info:
        bad.list_queues()
    assert error_code(info.value) == "SignatureDoesNotMatch"
    assert "valid region, not 'mars'" in str(info.value)


def test_aws_cli_lists_the_regions_queues(shared: BrokerThread, tmp_path: Path) -> None:
    aws = shutil.which("aws")
    if aws is None:
        pytest.skip("the AWS CLI (awscli, a test dependency) is not installed")
    _client("sqs", shared, "eu-west-1").create_queue(QueueName="rg-cli-eu")
    _client("sqs", shared, "us-east-1").create_queue(QueueName="rg-cli-us")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ACCESS_KEY_ID": CREDS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDS["aws_secret_access_key"],
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    endpoint = f"http://127.0.0.1:{shared.broker.port('aws')}"
    out = subprocess.run(
        [
            *(aws, "--region", "eu-west-1", "--endpoint-url", endpoint, "--output", "json"),
            *("sqs", "list-queues", "--queue-name-prefix", "rg-cli"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        check=True,
    )
    urls = json.loads(out.stdout)["QueueUrls"]
    assert [u.rsplit("/", 1)[-1] for u in urls] == ["rg-cli-eu"]


def test_regions_survive_a_restart(tmp_path: Path) -> None:
    first = BrokerThread(tmp_path / "data").start()
    try:
        eu, us = _client("sqs", first, "eu-west-1"), _client("sqs", first, "us-east-1")
        sns_eu = _client("sns", first, "eu-west-1")
        eu_url = eu.create_queue(
            QueueName="kept", Attributes={"DelaySeconds": "3"}, tags={"r": "eu"}
        )["QueueUrl"]
        us.create_queue(QueueName="kept", tags={"r": "us"})
        dlq = eu.create_queue(QueueName="kept-dlq")["QueueUrl"]
        redrive = json.dumps({"deadLetterTargetArn": _arn(eu, dlq), "maxReceiveCount": 2})
        eu.set_queue_attributes(QueueUrl=eu_url, Attributes={"RedrivePolicy": redrive})
        eu.send_message(QueueUrl=eu_url, MessageBody="eu message", DelaySeconds=0)
        topic = sns_eu.create_topic(Name="kept-topic", Tags=[{"Key": "r", "Value": "eu"}])[
            "TopicArn"
        ]
        fan_url, fan_arn = queue_with_arn(us, "kept-fanout")
        sub = sns_eu.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=fan_arn)["SubscriptionArn"]
    finally:
        first.stop()
    second = BrokerThread(tmp_path / "data").start()
    try:
        eu, us = _client("sqs", second, "eu-west-1"), _client("sqs", second, "us-east-1")
        sns_eu, sns_us = _client("sns", second, "eu-west-1"), _client("sns", second, "us-east-1")
        assert _names(eu, "kept") == ["kept", "kept-dlq"]
        assert _names(us, "kept") == ["kept", "kept-fanout"]
        attributes = eu.get_queue_attributes(QueueUrl=eu_url, AttributeNames=["All"])["Attributes"]
        assert attributes["DelaySeconds"] == "3"
        assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].startswith(
            "arn:aws:sqs:eu-west-1:"
        )
        assert eu.list_queue_tags(QueueUrl=eu_url)["Tags"] == {"r": "eu"}
        assert us.list_queue_tags(QueueUrl=eu_url)["Tags"] == {"r": "us"}
        assert [m["Body"] for m in receive(eu, eu_url, 1)] == ["eu message"]
        assert [t["TopicArn"] for t in sns_eu.list_topics()["Topics"]] == [topic]
        assert sns_us.list_topics()["Topics"] == []
        assert sns_eu.list_tags_for_resource(ResourceArn=topic)["Tags"] == [
            {"Key": "r", "Value": "eu"}
        ]
        subs = sns_eu.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        assert [(s["SubscriptionArn"], s["Endpoint"]) for s in subs] == [(sub, fan_arn)]
        sns_eu.publish(TopicArn=topic, Message="after restart")
        assert json.loads(receive(us, fan_url, 1)[0]["Body"])["Message"] == "after restart"
    finally:
        second.stop()


def test_signed_requests_and_the_authorization_map_follow_the_region(broker_factory: Any) -> None:
    # carol may do anything with eu-west-1's queues and topics, nothing in us-east-1.
    b = broker_factory(
        **{
            "auth.users": {"carol": "carol-pw", "root": "root-pw"},
            "auth.groups": {"carols": ["carol"], "roots": ["root"]},
            "auth.authorization": [
                {"queue": "AWS.SQS.eu-west-1.>", "read": ["carols"], "write": ["carols"],
                 "admin": ["carols"]},
                {"topic": "AWS.SNS.eu-west-1.>", "read": ["carols"], "write": ["carols"],
                 "admin": ["carols"]},
                {"queue": ">", "read": ["roots"], "write": ["roots"], "admin": ["roots"]},
            ],
        }
    )  # fmt: skip
    creds = {"aws_access_key_id": "carol", "aws_secret_access_key": "carol-pw"}

    def make(service: str, region: str, **kw: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=f"http://127.0.0.1:{b.broker.port('aws')}",
            region_name=region,
            config=Config(retries={"max_attempts": 1}),
            **(kw or creds),
        )

    eu, us = make("sqs", "eu-west-1"), make("sqs", "us-east-1")
    url = eu.create_queue(QueueName="rg-carol")["QueueUrl"]
    eu.send_message(QueueUrl=url, MessageBody="signed in eu-west-1")
    assert [m["Body"] for m in receive(eu, url, 1)] == ["signed in eu-west-1"]
    with pytest.raises(ClientError) as info:
        us.create_queue(QueueName="rg-carol")
    assert error_code(info.value) == "AccessDenied"
    root = make("sqs", "us-east-1", aws_access_key_id="root", aws_secret_access_key="root-pw")
    root.create_queue(QueueName="rg-carol")
    # carol's ListQueues in us-east-1 shows nothing she may not read; in eu-west-1 hers.
    assert us.list_queues().get("QueueUrls", []) == []
    assert _names(eu, "rg-") == ["rg-carol"]
    topic = make("sns", "eu-west-1").create_topic(Name="rg-carol")["TopicArn"]
    assert topic.startswith("arn:aws:sns:eu-west-1:")
    with pytest.raises(ClientError) as info:
        make("sns", "us-east-1").create_topic(Name="rg-carol")
    assert error_code(info.value) == "AuthorizationError"


def test_an_http_subscription_of_another_region_confirms_by_its_unsigned_url(
    shared: BrokerThread,
) -> None:
    sns = _client("sns", shared, "eu-west-1")
    arn = sns.create_topic(Name="rg-hook")["TopicArn"]
    e = Endpoint().start()
    try:
        sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=e.url)
        doc = e.next().json()
        assert (doc["Type"], doc["TopicArn"]) == ("SubscriptionConfirmation", arn)
        # The SubscribeURL is an unsigned GET (the default region's): it finds the
        # topic in its ARN's region.
        with urllib.request.urlopen(doc["SubscribeURL"], timeout=WAIT) as resp:
            text = resp.read().decode()
        sub = text.split("<SubscriptionArn>")[1].split("</SubscriptionArn>")[0]
        assert sub.startswith(arn + ":")
        sns.publish(TopicArn=arn, Message="hooked")
        posted = e.next()
        assert posted.headers["x-amz-sns-topic-arn"] == arn
        note = posted.json()
        assert (note["Type"], note["TopicArn"], note["Message"]) == ("Notification", arn, "hooked")
        assert verify(note)
        # Its UnsubscribeURL (unsigned too) ends it.
        with urllib.request.urlopen(note["UnsubscribeURL"], timeout=WAIT) as resp:
            assert resp.status == 200
        assert sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"] == []
    finally:
        e.stop()
