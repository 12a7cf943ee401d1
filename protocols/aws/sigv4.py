"""AWS Signature Version 4 verification of SQS requests (header-signed requests).

With users configured (``[auth] users``: access key id = user name, secret access key =
password), every request must carry an ``Authorization: AWS4-HMAC-SHA256`` header whose
signature matches; with no users, requests are accepted unchecked (the loopback
default) and only the access key id is read, for SenderId. Pre-signed query-string
authentication and session tokens are not supported. The request time is not checked
against a skew window. Errors are AWS's: IncompleteSignature (malformed header),
MissingAuthenticationToken, InvalidClientTokenId (unknown key), SignatureDoesNotMatch.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote

from protocols.aws.errors import SqsError

ALGORITHM = "AWS4-HMAC-SHA256"


def parse_authorization(header: str) -> dict[str, str]:
    """Credential, SignedHeaders and Signature of an Authorization header."""
    if not header.startswith(ALGORITHM + " "):
        raise SqsError(
            "IncompleteSignature", f"Unsupported AWS 'algorithm': '{header.split(' ', 1)[0]}'"
        )
    fields: dict[str, str] = {}
    for part in header[len(ALGORITHM) + 1 :].split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields[key] = value
    for key in ("Credential", "SignedHeaders", "Signature"):
        if key not in fields:
            raise SqsError(
                "IncompleteSignature",
                f"Authorization header requires '{key}' parameter. Authorization={header}",
            )
    if len(fields["Credential"].split("/")) != 5:
        raise SqsError("IncompleteSignature", "Credential should be scoped to a valid region.")
    return fields


def access_key(header: str | None) -> str | None:
    """The access key id of an Authorization header, if it has a readable one."""
    if not header:
        return None
    try:
        return parse_authorization(header)["Credential"].split("/")[0]
    except SqsError:
        return None


def verify(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Mapping[str, str],
) -> str:
    """Check the request's signature against `secrets` (key id -> secret); returns the
    access key id or raises SqsError."""
    header = headers.get("Authorization")
    if not header:
        raise SqsError("MissingAuthenticationToken", "Request is missing Authentication Token")
    fields = parse_authorization(header)
    key_id, date, region, service, terminator = fields["Credential"].split("/")
    secret = secrets.get(key_id)
    if secret is None:
        raise SqsError(
            "InvalidClientTokenId", "The security token included in the request is invalid."
        )
    amz_date = headers.get("X-Amz-Date") or headers.get("Date") or ""
    signed = fields["SignedHeaders"].split(";")
    canonical_headers = "".join(
        f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed
    )
    pairs = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
        for k, v in parse_qsl(query, keep_blank_values=True)
    )
    canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
    payload = headers.get("X-Amz-Content-Sha256") or hashlib.sha256(body).hexdigest()
    canonical = "\n".join(
        [method, path or "/", canonical_query, canonical_headers, ";".join(signed), payload]
    )
    scope = f"{date}/{region}/{service}/{terminator}"
    to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    k = ("AWS4" + secret).encode()
    for part in (date, region, service, terminator):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields["Signature"]):
        raise SqsError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.",
        )
    return key_id
