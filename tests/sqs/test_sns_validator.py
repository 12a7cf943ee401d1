"""AWS's own JavaScript validator (npm ``sns-validator``, run with node) accepts what the
broker signs: a Notification delivered to SQS and a SubscriptionConfirmation POSTed to
an HTTP endpoint, with SigningCertURL on the broker's HTTPS port (the validator fetches
only https URLs). Its host check is given the broker's host; that is the one check the
broker cannot pass, since it is not sns.<region>.amazonaws.com.

Optional: skipped unless node is installed and ``sns-validator`` is found on
SNS_VALIDATOR_NODE_PATH (e.g. ``npm install --prefix /tmp/v sns-validator`` then
``SNS_VALIDATOR_NODE_PATH=/tmp/v/node_modules``)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.sqs.sns_support import endpoints, queue_with_arn, receive

NODE_PATH = os.environ.get("SNS_VALIDATOR_NODE_PATH", "")
SCRIPT = """
const MessageValidator = require('sns-validator');
let input = '';
process.stdin.on('data', d => input += d);
process.stdin.on('end', () => {
  new MessageValidator(/^127\\.0\\.0\\.1:\\d+$/).validate(input, (err) => {
    console.log(err ? 'invalid: ' + err.message : 'valid');
  });
});
"""


def _validator_available() -> bool:
    if shutil.which("node") is None or not NODE_PATH:
        return False
    probe = subprocess.run(
        ["node", "-e", "require.resolve('sns-validator')"],
        env={**os.environ, "NODE_PATH": NODE_PATH},
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _validator_available(), reason="node with sns-validator (SNS_VALIDATOR_NODE_PATH) needed"
)


@pytest.fixture
def endpoint() -> Iterator[Any]:
    yield from endpoints()


def _server_cert(d: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = d / "server.pem", d / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def node_says(document: str, ca: Path) -> str:
    out = subprocess.run(
        ["node", "-e", SCRIPT],
        input=document,
        env={**os.environ, "NODE_PATH": NODE_PATH, "NODE_EXTRA_CA_CERTS": str(ca)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def test_sns_validator_accepts_notifications_and_confirmations(
    broker_factory: Any, tmp_path: Path, endpoint: Any
) -> None:
    cert, key = _server_cert(tmp_path)
    b = broker_factory(
        **{
            "tls.cert_file": str(cert),
            "tls.key_file": str(key),
            "listeners.aws.tls_enabled": True,
            "listeners.aws.tls_port": 0,
        }
    )
    kw: dict[str, Any] = {
        "endpoint_url": f"https://127.0.0.1:{b.broker.port('aws+ssl')}",
        "region_name": "us-east-1",
        "config": Config(retries={"max_attempts": 1}),
        "aws_access_key_id": "AKIDTEST",
        "aws_secret_access_key": "secret",
        "verify": str(cert),
    }
    sns, sqs = boto3.client("sns", **kw), boto3.client("sqs", **kw)
    for version in ("1", "2"):
        arn = sns.create_topic(
            Name=f"sns-node-{version}", Attributes={"SignatureVersion": version}
        )["TopicArn"]
        url, qarn = queue_with_arn(sqs, f"sns-node-q{version}")
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)
        sns.publish(TopicArn=arn, Message='ünïcode "quoted"\nline', Subject="Subj")
        body = receive(sqs, url)[0]["Body"]
        assert json.loads(body)["SigningCertURL"].startswith("https://127.0.0.1:")
        assert node_says(body, cert) == "valid"
        tampered = json.dumps({**json.loads(body), "Message": "forged"})
        assert node_says(tampered, cert).startswith("invalid: The message signature is invalid")
    e = endpoint()
    arn = sns.create_topic(Name="sns-node-http")["TopicArn"]
    sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=e.url)
    confirmation = e.next().body.decode()
    assert json.loads(confirmation)["Type"] == "SubscriptionConfirmation"
    assert node_says(confirmation, cert) == "valid"
