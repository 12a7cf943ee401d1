"""What an SNS subscription receives: the JSON notification envelope as AWS writes it, and
its signature.

Envelope (AWS developer guide, "Amazon SNS message and JSON formats"; "Fanout to Amazon
SQS queues"), members in AWS's order: Type ("Notification"), MessageId (UUID), TopicArn,
Subject (only when the publish had one), Message, Timestamp (ISO 8601 UTC with
milliseconds and ``Z``), SignatureVersion, Signature, SigningCertURL, UnsubscribeURL,
MessageAttributes (only when the publish had some: ``{"name": {"Type": ..., "Value":
...}}``, Binary values in base64); printed as AWS prints it (two-space indent, `` : ``
between name and value, one line per attribute). A FIFO topic's notification has no
SignatureVersion, Signature or SigningCertURL (what AWS delivers: aws/aws-sdk-net#3000 shows a FIFO
notification, and AWS's SDK validators skip FIFO messages since they carry none).

Signature (AWS's "Verifying the signatures of Amazon SNS messages"): the string to sign
is ``name\\nvalue\\n`` for Message, MessageId, Subject (if present), Timestamp, TopicArn,
Type, in that (byte) order; SignatureVersion 1 signs it with SHA1withRSA, 2 with
SHA256withRSA (the topic attribute SignatureVersion), PKCS#1 v1.5, base64. The key is
RSA 2048, generated once per data directory (``<data_dir>/sns/signing-key.pem``, mode
0600) with a self-signed X.509 certificate (``signing-cert.pem``) that the listener
serves at SigningCertURL: ``<base>/SimpleNotificationService-<sha1 of the DER, 32 hex
digits>.pem`` on the SNS/SQS port. AWS's validators also check that the URL's host is
``sns.<region>.amazonaws.com``: a client verifying against the broker must skip that
check (it is the only one they cannot pass).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


def timestamp(ms: int) -> str:
    """AWS's Timestamp form: ``2012-03-29T05:12:16.901Z``."""
    when = dt.datetime.fromtimestamp(ms // 1000, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


# The signed fields per message type, in the documented order.
_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip


def string_to_sign(fields: dict[str, str]) -> bytes:
    """The canonical string of a Notification, SubscriptionConfirmation or
    UnsubscribeConfirmation (SignatureVersion 1 and 2 alike)."""
    parts: list[str] = []
    for name in _SIGNED[fields.get("Type", "Notification")]:
        value = fields.get(name)
        if value is not None:
            parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode("utf-8")


class Signer:
    """The broker's SNS signing key and certificate (one per data directory)."""

    def __init__(self, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert
        self.pem = cert.public_bytes(serialization.Encoding.PEM)
        der = cert.public_bytes(serialization.Encoding.DER)
        self.cert_path = f"/SimpleNotificationService-{hashlib.sha1(der).hexdigest()[:32]}.pem"

    @classmethod
    def load_or_create(cls, directory: Path | None) -> Signer:
        """The key kept in `directory` (created the first time); None: a key for this
        run only (an in-memory broker)."""
        if directory is not None:
            key_file = directory / "signing-key.pem"
            cert_file = directory / "signing-cert.pem"
            if key_file.exists() and cert_file.exists():
                key = serialization.load_pem_private_key(key_file.read_bytes(), None)
                cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
                if isinstance(key, rsa.RSAPrivateKey):
                    return cls(key, cert)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = _self_signed(key)
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            _write_private(
                directory / "signing-key.pem",
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            _write_private(
                directory / "signing-cert.pem", cert.public_bytes(serialization.Encoding.PEM)
            )
        return cls(key, cert)

    def sign(self, fields: dict[str, str], version: str) -> str:
        algorithm: hashes.HashAlgorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
        signature = self.key.sign(string_to_sign(fields), padding.PKCS1v15(), algorithm)
        return base64.b64encode(signature).decode("ascii")


def _self_signed(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.zonemq.local")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def sign_fields(signer: Signer, fields: dict[str, str], version: str) -> str:
    return signer.sign(fields, version)


@dataclass(frozen=True, slots=True)
class Notification:
    """One published message as every subscription of its topic is told of it."""

    message_id: str
    topic_arn: str
    message: str
    timestamp_ms: int
    subject: str | None = None
    # name -> (DataType, value as text: Binary in base64)
    attributes: tuple[tuple[str, str, str], ...] = ()


def envelope(
    n: Notification,
    message: str,
    *,
    signer: Signer | None,
    signature_version: str,
    base_url: str,
    subscription_arn: str,
    parts: dict[tuple[str, bool], tuple[str, str]] | None = None,
) -> str:
    """The JSON document an SQS subscription without raw delivery receives; `message` is
    the text for this subscription's protocol (MessageStructure json); `signer` None for
    a FIFO topic (not signed). `parts` caches, across the subscriptions of one publish,
    the document around its one per-subscription member (UnsubscribeURL): the signed
    fields do not name the subscription, an RSA signature costs about a millisecond and
    the JSON encoding of the rest was half the broker's time in a 10-queue fan-out."""
    key = (message, signer is None)
    cached = parts.get(key) if parts is not None else None
    if cached is None:
        cached = _parts(n, message, signer, signature_version, base_url)
        if parts is not None:
            parts[key] = cached
    head, tail = cached
    url = f"{base_url}/?Action=Unsubscribe&SubscriptionArn={subscription_arn}"
    return f'{head}  "UnsubscribeURL" : {_json(url)}{tail}'


def _parts(
    n: Notification, message: str, signer: Signer | None, signature_version: str, base_url: str
) -> tuple[str, str]:
    """The envelope's text before and after its UnsubscribeURL member."""
    fields: dict[str, Any] = {"Type": "Notification", "MessageId": n.message_id}
    fields["TopicArn"] = n.topic_arn
    if n.subject is not None:
        fields["Subject"] = n.subject
    fields["Message"] = message
    fields["Timestamp"] = timestamp(n.timestamp_ms)
    if signer is not None:
        fields["SignatureVersion"] = signature_version
        fields["Signature"] = signer.sign(fields, signature_version)
        fields["SigningCertURL"] = base_url + signer.cert_path
    head = "{\n" + "".join(f"  {_json(k)} : {_json(v)},\n" for k, v in fields.items())
    tail = "\n}"
    if n.attributes:
        # AWS prints the document with two-space indent and " : ", each attribute on
        # one compact line.
        inner = ",\n".join(
            f"    {_json(name)} : {_json({'Type': data_type, 'Value': value}, compact=True)}"
            for name, data_type, value in n.attributes
        )
        tail = f',\n  "MessageAttributes" : {{\n{inner}\n  }}\n}}'
    return head, tail


def _json(value: Any, *, compact: bool = False) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":") if compact else None)
