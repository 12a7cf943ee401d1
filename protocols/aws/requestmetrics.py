"""SQS and SNS request metrics: one histogram of request latency by service, action and
outcome (`zonemq_aws_request_duration_seconds`; its `_count` is the request count).

Observed once per request by `SqsApp.handle`, from what the request path left behind:
the action it resolved (`ACTION` in the aiohttp request, set only for an action the
service knows, so a client cannot mint label values) and the response it answered
with. The outcome is ``ok`` or the error's query code (``AWS.SimpleQueueService.
NonExistentQueue``, ``AccessDenied``...), read from the error response, which is the
rare path; a success costs a dict lookup of a cached child and its `observe`.
"""

from __future__ import annotations

import re

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram

# The request key holding (service, action); absent until the action is known.
ACTION: web.RequestKey[tuple[str, str]] = web.RequestKey("zonemq_aws_action", tuple)

# Up to a 20 s long poll (and its margin).
_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    21.0,
    30.0,
)
_CODE = re.compile(rb"<Code>([^<]{1,128})</Code>")
_UNKNOWN = ("aws", "unknown")


class RequestMetrics:
    """The histogram, and its children cached per label set (a bounded set: known
    actions times the error codes the broker answers with)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.seconds = Histogram(
            "zonemq_aws_request_duration_seconds",
            "SQS and SNS requests by service, action and outcome (ok or the error code)",
            ["service", "action", "outcome"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, str, str], Histogram] = {}

    def observe(
        self, request: web.BaseRequest, response: web.Response | None, seconds: float
    ) -> None:
        """Count `request`, answered with `response` (None: it raised) after `seconds`."""
        service, action = request.get(ACTION, _UNKNOWN)
        key = (service, action, outcome(response))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.seconds.labels(*key)
        child.observe(seconds)


def outcome(response: web.Response | None) -> str:
    """``ok``, the error code of an AWS error response, or ``http_<status>``."""
    if response is None:
        return "aborted"  # the client went away, or aiohttp answers an HTTPException
    status = response.status
    if status < 400:
        return "ok"
    code = response.headers.get("x-amzn-query-error")
    if code is not None:
        return code.partition(";")[0]
    body = response.body
    if isinstance(body, bytes):
        match = _CODE.search(body)
        if match is not None:
            return match.group(1).decode("utf-8", "replace")
    return f"http_{status}"
