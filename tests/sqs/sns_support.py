"""Shared helpers of the SNS tests (no tests here): boto3 SNS clients on the broker's
aws port, queues to subscribe, and an SNS signature verifier written from AWS's
documented steps ("Verifying the signatures of Amazon SNS messages"), independent of
protocols.aws."""

from __future__ import annotations

import base64
import json
import queue
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
from botocore.config import Config
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.conftest import BrokerThread
from tests.sqs.support import CREDS


def sns_client(broker: BrokerThread, **creds: str) -> Any:
    return boto3.client(
        "sns",
        endpoint_url=f"http://127.0.0.1:{broker.broker.port('aws')}",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, read_timeout=30),
        **(creds or CREDS),
    )


def queue_with_arn(sqs: Any, name: str, **attributes: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def receive(sqs: Any, url: str, n: int = 1, **kw: Any) -> list[dict[str, Any]]:
    """Exactly `n` messages (long polls until they are in; fails past 10 s)."""
    got: list[dict[str, Any]] = []
    for _ in range(10):
        if len(got) >= n:
            break
        out = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=min(10, n - len(got)), WaitTimeSeconds=1, **kw
        )
        got.extend(out.get("Messages", []))
    assert len(got) == n, got
    return got


def verify(notification: dict[str, Any]) -> bool:
    """AWS's verification steps: the fields to sign for a Notification (Message,
    MessageId, Subject if present, Timestamp, TopicArn, Type) as ``name\\nvalue\\n`` in
    that order; the X.509 certificate from SigningCertURL; its public key checks the
    base64 Signature with SHA1 (SignatureVersion 1) or SHA256 (2), PKCS#1 v1.5. (AWS's
    step "the URL is an amazonaws.com host" is left out: the broker is not AWS.)"""
    names = (
        ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        if notification["Type"] == "Notification"
        else ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    )
    canonical = "".join(
        f"{name}\n{notification[name]}\n" for name in names if name in notification
    ).encode()
    with urllib.request.urlopen(notification["SigningCertURL"], timeout=10) as resp:
        cert = x509.load_pem_x509_certificate(resp.read())
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    algorithm: hashes.HashAlgorithm = (
        hashes.SHA1() if notification["SignatureVersion"] == "1" else hashes.SHA256()
    )
    try:
        key.verify(
            base64.b64decode(notification["Signature"]), canonical, padding.PKCS1v15(), algorithm
        )
    except InvalidSignature:
        return False
    return True


def body_of(message: dict[str, Any]) -> dict[str, Any]:
    return json.loads(message["Body"])


@dataclass
class Request:
    """One POST an endpoint received."""

    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Endpoint:
    """A real HTTP server on an ephemeral port (its own threads) standing for a
    subscriber: records every POST; answers the statuses in `statuses` first (then 200);
    while `hold` is clear, it waits before answering (a slow endpoint)."""

    port: int = 0
    statuses: list[int] = field(default_factory=list)
    requests: queue.Queue[Request] = field(default_factory=queue.Queue)
    hold: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self.hold.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Endpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                endpoint.requests.put(Request(headers, body))
                endpoint.hold.wait(30)
                status = endpoint.statuses.pop(0) if endpoint.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.hold.set()
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def next(self, timeout: float = 10.0) -> Request:
        return self.requests.get(timeout=timeout)

    def none_within(self, timeout: float) -> bool:
        try:
            self.requests.get(timeout=timeout)
        except queue.Empty:
            return True
        return False


def endpoints() -> Iterator[Any]:
    """Fixture body: a factory of started Endpoints, all stopped at teardown."""
    made: list[Endpoint] = []

    def make(**kw: Any) -> Endpoint:
        e = Endpoint(**kw).start()
        made.append(e)
        return e

    yield make
    for e in made:
        e.stop()
