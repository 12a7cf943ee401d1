"""AWS regions on one broker: which region a request is in, and the one mapping of a
region's SQS queue or SNS topic onto a core destination name (sans-IO).

A request's region is its SigV4 credential scope's (``<date>/<region>/<service>/
aws4_request``, header or presigned form); an unsigned request is in the configured
default region (``listeners.aws.region``). A scope naming something that is not an AWS
region name is refused with AWS's SignatureDoesNotMatch "Credential should be scoped to
a valid region" (also with no users configured, where signatures are not checked: the
region decides which queues a request sees). Accepted: every name of AWS's shape,
``<2 letters>[-gov|-iso|-isob|-isof|-isoe]-<direction>-<digits>`` (us-east-1,
eu-west-1, ap-southeast-2, us-gov-west-1, cn-north-1, us-isob-east-1...), whether or
not AWS runs it today.

The mapping (queues and topics alike; kind says which core namespace):

    default region, name ``orders``      -> core ``orders``
    region R (not the default), ``orders`` -> core ``AWS.SQS.<R>.orders`` (SNS:
                                              ``AWS.SNS.<R>.<name>``)

so the default region's queues and topics are the broker's plain destinations (STOMP
``/queue/orders``, AMQP ``queue://orders``; existing data directories unchanged), and
another region's are reachable too (``/queue/AWS.SQS.eu-west-1.orders``, or all of a
region's with the wildcard ``/queue/AWS.SQS.eu-west-1.>``). No collision is possible:
an SQS or SNS name has no ``.`` but in a final ``.fifo``, so a core name with a dot
anywhere else is never a default-region name. Changing the default region moves the
plain names to it (the data is the same; what another region's prefixed names hold is
not renamed).

ARNs carry the region and the account (``arn:<partition>:sqs:<region>:<account>:<name>``);
the partition follows the region as AWS's (``aws-cn`` for cn-*, ``aws-us-gov`` for
us-gov-*, ``aws-iso``/``aws-iso-b``... , else ``aws``).
"""

from __future__ import annotations

import re

from broker.config import AWS_REGION

_PARTITIONS = (
    ("us-gov-", "aws-us-gov"),
    ("cn-", "aws-cn"),
    ("us-isob-", "aws-iso-b"),
    ("us-iso-", "aws-iso"),
    ("eu-isoe-", "aws-iso-e"),
    ("us-isof-", "aws-iso-f"),
)
# The prefixes of another region's destinations, by service.
PREFIXES = {"sqs": "AWS.SQS.", "sns": "AWS.SNS."}
# The characters of SQS queue and SNS topic names (their lengths are checked where they
# are created): what a name in a request must be before it is mapped, so that a
# default-region request naming ``AWS.SQS.eu-west-1.orders`` reaches nothing.
_PLAIN = re.compile(r"[A-Za-z0-9_-]{1,256}(?:\.fifo)?")


def valid_region(region: str) -> bool:
    """Whether `region` has the shape of an AWS region name."""
    return bool(AWS_REGION.fullmatch(region))


def plain(name: str) -> bool:
    """Whether `name` may be an SQS or SNS name (and so is mapped by a region)."""
    return bool(_PLAIN.fullmatch(name))


def partition(region: str) -> str:
    """The ARN partition of `region`."""
    for prefix, name in _PARTITIONS:
        if region.startswith(prefix):
            return name
    return "aws"


class Regions:
    """The mapping of one service's (``sqs`` or ``sns``) names onto core names, and its
    ARNs, for one account and default region."""

    def __init__(self, service: str, account: str, default: str) -> None:
        self.service = service
        self.account = account
        self.default = default
        self.prefix = PREFIXES[service]

    def key(self, region: str, name: str) -> str:
        """The core destination name of `name` in `region` (the one mapping)."""
        if region == self.default:
            return name
        return f"{self.prefix}{region}.{name}"

    def split(self, key: str) -> tuple[str, str]:
        """(region, name) of a core destination name; a name this service cannot have in
        the default region comes back as it is (callers check the name)."""
        if key.startswith(self.prefix):
            region, dot, name = key[len(self.prefix) :].partition(".")
            if dot and valid_region(region) and region != self.default:
                return region, name
        return self.default, key

    def region_of(self, key: str) -> str:
        return self.split(key)[0]

    def name_of(self, key: str) -> str:
        return self.split(key)[1]

    def arn(self, key: str) -> str:
        region, name = self.split(key)
        return f"arn:{partition(region)}:{self.service}:{region}:{self.account}:{name}"

    def key_of_arn(self, arn: str, parts: int = 6) -> str | None:
        """The core name an ARN of this service and account names, in the ARN's own
        region (None when it is not one: another account, service, a malformed region,
        a partition that is not the region's). `parts` is the ARN's number of
        ``:``-separated fields (a subscription ARN has 7)."""
        fields = arn.split(":", 5)
        if len(fields) != 6 or fields[0] != "arn" or fields[2] != self.service:
            return None
        _, part, _, region, account, name = fields
        if account != self.account or not valid_region(region) or part != partition(region):
            return None
        if name.count(":") != parts - 6 or not plain(name.split(":", 1)[0]):
            return None
        return self.key(region, name)
