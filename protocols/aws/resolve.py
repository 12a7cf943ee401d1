"""What every SQS action group shares: the request context and the lookups from a
request's QueueUrl to a queue and its pull side.

SqsService (the router and the message actions), QueueActions and MoveTasks all build on
Resolver; it sits below them so that the action groups depend on it and not on the
router that holds them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from broker.core import Core
from broker.core.leases import Leases, PullQueue
from protocols.aws.errors import missing, no_queue
from protocols.aws.queues import QueueRegistry, SqsQueue


@dataclass(frozen=True, slots=True)
class Context:
    """What a handler knows about its request."""

    base_url: str
    sender_id: str
    # The request's region (regions.py): which region's queues and topics it sees.
    region: str


class Resolver:
    """Queue URLs, receipt handles and pull queues of one SQS service's account."""

    def __init__(self, core: Core, leases: Leases, registry: QueueRegistry) -> None:
        self.core = core
        self.leases = leases
        self.registry = registry
        self.account = registry.account

    def url(self, ctx: Context, key: str) -> str:
        """The queue URL of core queue `key` (the host as the client addressed us: AWS's
        has the region in it, sqs.<region>.amazonaws.com, which a client addressing this
        broker chose)."""
        return f"{ctx.base_url}/{self.account}/{self.registry.regions.name_of(key)}"

    def queue(self, p: dict[str, Any], ctx: Context) -> SqsQueue:
        url = p.get("QueueUrl")
        if not url:
            raise missing("QueueUrl")
        parts = str(url).split("?", 1)[0].rstrip("/").split("/")
        name = parts[-1]
        if len(parts) >= 2 and parts[-2] != self.account and "://" in str(url):
            raise no_queue()
        # A URL names a queue of the request's region (as on AWS, where the URL's host
        # is the region's endpoint the request is sent to).
        q = self.registry.lookup(ctx.region, name)
        if q is None:
            raise no_queue()
        return q

    def pull(self, q: SqsQueue) -> PullQueue:
        pq = self.leases.get(q.address)
        pq.policy = q.policy
        return pq

    def handle(self, q: SqsQueue, token: str) -> str:
        raw = f"{q.name}\n{token}".encode()
        return base64.urlsafe_b64encode(raw).decode("ascii")
