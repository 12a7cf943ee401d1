"""Shared helpers of the SQS tests (no tests here): boto3 clients on the broker's SQS
port, raw Query and JSON requests, and an independent implementation of AWS's MD5."""

from __future__ import annotations

import hashlib
import http.client
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import boto3
from botocore.config import Config

from tests.conftest import BrokerThread

CREDS = {"aws_access_key_id": "AKIDTEST", "aws_secret_access_key": "secret"}


def client(broker: BrokerThread, **creds: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=f"http://127.0.0.1:{broker.broker.port('aws')}",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, read_timeout=30),
        **(creds or CREDS),
    )


def error_code(exc: Any) -> str:
    return exc.response["Error"]["Code"]


def http_call(
    broker: BrokerThread,
    *,
    path: str = "/",
    form: dict[str, str] | None = None,
    target: str | None = None,
    payload: dict[str, Any] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request: a Query form POST, or a JSON 1.0 call when `target` is given."""
    conn = http.client.HTTPConnection("127.0.0.1", broker.broker.port("aws"), timeout=30)
    try:
        if target is not None:
            body = json.dumps(payload or {}).encode()
            headers = {
                "X-Amz-Target": f"AmazonSQS.{target}",
                "Content-Type": "application/x-amz-json-1.0",
            }
        else:
            body = urlencode(form or {}).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def md5_attributes(attributes: dict[str, dict[str, Any]]) -> str:
    """AWS's documented MD5OfMessageAttributes, written independently of protocols.aws:
    per attribute sorted by name, length-prefixed (4 bytes big-endian) name, data type,
    a transport byte (1 string / 2 binary) and the length-prefixed value."""
    out = b""
    for name in sorted(attributes):
        spec = attributes[name]
        name_b = name.encode()
        type_b = spec["DataType"].encode()
        out += len(name_b).to_bytes(4, "big") + name_b
        out += len(type_b).to_bytes(4, "big") + type_b
        if "BinaryValue" in spec:
            value = spec["BinaryValue"]
            out += b"\x02" + len(value).to_bytes(4, "big") + value
        else:
            value = spec["StringValue"].encode()
            out += b"\x01" + len(value).to_bytes(4, "big") + value
    return hashlib.md5(out).hexdigest()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a condition of the broker's state (checked on its loop), bounded."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def waiters(broker: BrokerThread, name: str) -> int:
    """Receivers currently long-polling queue `name`."""

    def count() -> int:
        listener = broker.broker.listeners["aws"]
        for address, pq in listener.service.leases.queues.items():  # type: ignore[attr-defined]
            if address.name == name:
                return len(pq.waiters)
        return 0

    return broker.call(count)


def signed(
    port: int,
    target: str,
    payload: dict[str, Any],
    *,
    key: str = "AKIDGOOD",
    secret: str = "s3cret",
    region: str = "us-east-1",
    service: str = "sqs",
    when: Any = None,
    token: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A JSON 1.0 request signed by botocore's own SigV4 signer (as boto3 signs it), at
    `when` (a datetime) or now: the body and the headers to send."""
    from unittest import mock

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = json.dumps(payload).encode()
    request = AWSRequest(
        method="POST",
        url=f"http://127.0.0.1:{port}/",
        data=body,
        headers={
            "X-Amz-Target": f"AmazonSQS.{target}",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )
    signer = SigV4Auth(Credentials(key, secret, token), service, region)
    if when is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            signer.add_auth(request)
    return body, dict(request.headers.items())


def raw_post(
    port: int, body: bytes, headers: dict[str, str], path: str = "/", method: str = "POST"
) -> tuple[int, dict[str, Any]]:
    """Send exactly these bytes and headers; the status and the JSON (or {}) answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    try:
        answer = json.loads(data) if data.startswith(b"{") else {"raw": data}
    except ValueError:
        answer = {"raw": data}
    return resp.status, answer
