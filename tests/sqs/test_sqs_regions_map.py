"""protocols/aws/regions.py on its own: region names, partitions, and the mapping of a
region's names onto core destination names (no collision with the default region's)."""

from __future__ import annotations

import pytest

from protocols.aws.queues import valid_name
from protocols.aws.regions import Regions, partition, valid_region


@pytest.mark.parametrize(
    "region",
    ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1",
     "us-isob-east-1", "eu-central-2", "il-central-1", "mx-central-1", "ca-west-1"],
)  # fmt: skip
def test_aws_region_names_are_accepted(region: str) -> None:
    assert valid_region(region)


@pytest.mark.parametrize(
    "region",
    ["", "mars", "mars-1", "US-EAST-1", "us-east-01", "us-east-1a", "us-east", "a-east-1",
     "us_east_1", "us-east-1.", "us-east-1/x", "useast1"],
)  # fmt: skip
def test_other_names_are_refused(region: str) -> None:
    assert not valid_region(region)


def test_partitions_follow_the_region() -> None:
    regions = ("us-east-1", "cn-north-1", "us-gov-east-1", "us-iso-east-1")
    assert [partition(r) for r in regions] == ["aws", "aws-cn", "aws-us-gov", "aws-iso"]
    sqs = Regions("sqs", "123456789012", "us-east-1")
    assert sqs.arn(sqs.key("cn-north-1", "q")) == "arn:aws-cn:sqs:cn-north-1:123456789012:q"
    # An ARN whose partition is not its region's names nothing.
    assert sqs.key_of_arn("arn:aws:sqs:cn-north-1:123456789012:q") is None


def test_the_default_region_keeps_plain_names_and_others_cannot_collide() -> None:
    sqs = Regions("sqs", "000000000000", "us-east-1")
    assert sqs.key("us-east-1", "orders") == "orders"
    assert sqs.key("eu-west-1", "orders") == "AWS.SQS.eu-west-1.orders"
    assert sqs.key("eu-west-1", "fifo") == "AWS.SQS.eu-west-1.fifo"
    for name in ("orders", "a.fifo", "fifo", "x" * 80, "eu-west-1"):
        key = sqs.key("eu-west-1", name)
        # Never a legal SQS name, so never a default-region queue.
        assert not valid_name(key)
        assert sqs.split(key) == ("eu-west-1", name)
    # A prefixed name naming the default region, or no region, is not unfolded.
    assert sqs.split("AWS.SQS.us-east-1.orders") == ("us-east-1", "AWS.SQS.us-east-1.orders")
    assert sqs.split("AWS.SQS.mars.orders") == ("us-east-1", "AWS.SQS.mars.orders")
    sns = Regions("sns", "000000000000", "eu-west-1")
    assert sns.key("us-east-1", "news") == "AWS.SNS.us-east-1.news"
    assert sns.arn("news") == "arn:aws:sns:eu-west-1:000000000000:news"


def test_arns_resolve_in_their_own_region_and_account() -> None:
    sqs = Regions("sqs", "000000000000", "us-east-1")
    assert sqs.key_of_arn("arn:aws:sqs:us-east-1:000000000000:q") == "q"
    assert sqs.key_of_arn("arn:aws:sqs:eu-west-1:000000000000:q") == "AWS.SQS.eu-west-1.q"
    for arn in (
        "arn:aws:sqs:eu-west-1:123456789012:q",  # another account
        "arn:aws:sns:eu-west-1:000000000000:q",  # another service
        "arn:aws:sqs:mars:000000000000:q",
        "arn:aws:sqs:eu-west-1:000000000000:q:extra",
        "nonsense",
    ):
        assert sqs.key_of_arn(arn) is None
