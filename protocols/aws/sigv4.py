"""AWS Signature Version 4 verification of SQS requests, in two steps.

With users configured (``[auth] users``: access key id = user name, secret access key =
password), every request must be signed; with no users, requests are accepted unchecked
(the loopback default) and only the access key id is read, for SenderId.

`check_head` runs on the request line and headers alone, before the body is read, so a
request that cannot be genuine (no signature, unknown key, wrong scope, outside the time
window) is refused without the broker buffering its body. `check_signature` then
computes the signature over the canonical request, hashing the body the broker actually
received:

- Both forms AWS accepts: the ``Authorization: AWS4-HMAC-SHA256`` header and the
  query-string (presigned) form (``X-Amz-Algorithm``, ``-Credential``, ``-Date``,
  ``-Expires``, ``-SignedHeaders``, ``-Signature``), as botocore's SigV4QueryAuth makes.
- The payload hash in the canonical request is always the SHA-256 of the received body.
  ``UNSIGNED-PAYLOAD`` is an Amazon S3 option; SQS has no unsigned-body operation in its
  model, and botocore always signs the payload over HTTP ("Payloads will always be signed
  over insecure connections"), so it is refused. An ``X-Amz-Content-Sha256`` header must
  equal the body's hash (it used to be trusted, which let a captured request be replayed
  with another body).
- The time window is AWS's: X-Amz-Date within 15 minutes of the broker's clock, and a
  presigned request no later than X-Amz-Date + X-Amz-Expires (1..604800 s). AWS answers
  SQS requests outside it with 403 SignatureDoesNotMatch "Signature expired: ... is now
  earlier than ... (... - 15 min.)" (not S3's RequestTimeTooSkewed); so do we.
- The credential scope must be <X-Amz-Date's date>/<a region>/sqs (or sns, which shares
  the port: the scope's service routes the request)/aws4_request, and
  ``host`` must be a signed header (so a signature is bound to the
  broker it was made for). The region is any of AWS's shape (regions.valid_region):
  it is the request's region, whose queues and topics it sees (regions.py).
- Session tokens (``X-Amz-Security-Token``) are refused with AWS's answer to a token it
  does not know, InvalidClientTokenId: the broker issues no temporary credentials.

Errors are AWS's: IncompleteSignature (malformed), MissingAuthenticationToken (none),
InvalidClientTokenId (unknown key or a token), SignatureDoesNotMatch (everything else).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, quote

from protocols.aws.errors import SqsError
from protocols.aws.regions import valid_region

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "sqs"
# The services a credential scope may name on this port (SNS shares it: listener.py).
SERVICES = ("sqs", "sns")
TERMINATOR = "aws4_request"
# AWS's clock-skew window for SigV4 requests.
MAX_SKEW = timedelta(minutes=15)
# X-Amz-Expires bounds (seconds): AWS's presigned URLs live at most seven days.
MAX_EXPIRES = 604800
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_PRESIGN_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)
# X-Amz-Date as every SDK writes it, read without strptime (≈ 8 µs a request); any other
# spelling still goes through strptime, so what is accepted and refused is unchanged.
_BASIC_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z")
# Derived signing keys by (secret, scope): four HMACs a request saved. A scope holds the
# day, so a key's entries change daily; the cache is cleared when it reaches its bound
# (users times regions and services in use within a day stay far below it).
_SIGNING_KEYS: dict[tuple[str, str], bytes] = {}
_SIGNING_KEYS_MAX = 256
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service "
    "documentation for details."
)


@dataclass(frozen=True)
class Head:
    """A request's signature fields that passed every check that needs no body."""

    key_id: str
    secret: str
    amz_date: str
    scope: str
    signed_headers: tuple[str, ...]
    signature: str
    presigned: bool
    # The credential scope's service: "sqs" or "sns" (which API the request is for).
    service: str = SERVICE
    # The credential scope's region: the request's (regions.py).
    region: str = ""


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


def query_fields(query: str) -> dict[str, str]:
    """The presign parameters of a raw query string (empty when it is not presigned)."""
    if "X-Amz-" not in query:
        return {}
    return {k: v for k, v in parse_qsl(query, keep_blank_values=True) if k.startswith("X-Amz-")}


def access_key(header: str | None, query: str = "") -> str | None:
    """The access key id a request names (header or presigned query), unchecked."""
    if header:
        try:
            return parse_authorization(header)["Credential"].split("/")[0]
        except SqsError:
            return None
    credential = query_fields(query).get("X-Amz-Credential")
    return credential.split("/")[0] if credential else None


def _scope(authorization: str | None, query: str) -> list[str] | None:
    """The credential scope's fields (key, date, region, service, terminator) of a
    request, unchecked; None when it carries no well-formed credential."""
    credential = None
    if authorization and authorization.startswith(ALGORITHM + " "):
        for part in authorization[len(ALGORITHM) + 1 :].split(","):
            key, _, value = part.strip().partition("=")
            if key == "Credential":
                credential = value
    elif "X-Amz-Credential" in query:
        credential = query_fields(query).get("X-Amz-Credential")
    if not credential:
        return None
    parts = credential.split("/")
    return parts if len(parts) == 5 else None


def scope_service(authorization: str | None, query: str) -> str | None:
    """The service named by a request's credential scope (header or presigned form),
    unchecked; None when the request carries no credential."""
    parts = _scope(authorization, query)
    return parts[3] if parts else None


def scope_region(authorization: str | None, query: str, default: str) -> str:
    """The region of a request whose signature is not checked (no users configured):
    its credential scope's, else `default`. A scope naming no valid region is refused
    as check_head refuses it: the region decides what the request sees."""
    parts = _scope(authorization, query)
    if not parts:
        return default
    if not valid_region(parts[2]):
        raise _bad_region(parts[2])
    return parts[2]


def _bad_region(region: str) -> SqsError:
    return SqsError(
        "SignatureDoesNotMatch", f"Credential should be scoped to a valid region, not '{region}'."
    )


def check_head(
    query: str,
    headers: Mapping[str, str],
    secrets: Mapping[str, str],
    now: datetime,
) -> Head:
    """Every check that needs no body: form, key, token, scope, host signed, time window.
    Raises SqsError."""
    presign = query_fields(query)
    header = headers.get("Authorization")
    if header:
        fields = parse_authorization(header)
        credential, signed_names, signature = (
            fields["Credential"],
            fields["SignedHeaders"],
            fields["Signature"],
        )
        amz_date = headers.get("X-Amz-Date") or _from_http_date(headers.get("Date"))
        expires = None
    elif "X-Amz-Signature" in presign or "X-Amz-Algorithm" in presign:
        for name in _PRESIGN_PARAMS:
            if not presign.get(name):
                raise SqsError(
                    "IncompleteSignature",
                    f"AWS query-string parameters must include '{name}'. "
                    "Re-examine the query-string parameters.",
                )
        if presign["X-Amz-Algorithm"] != ALGORITHM:
            raise SqsError(
                "IncompleteSignature",
                f"Unsupported AWS 'algorithm': '{presign['X-Amz-Algorithm']}'",
            )
        credential = presign["X-Amz-Credential"]
        signed_names = presign["X-Amz-SignedHeaders"]
        signature = presign["X-Amz-Signature"]
        amz_date = presign["X-Amz-Date"]
        expires = presign["X-Amz-Expires"]
        if len(credential.split("/")) != 5:
            raise SqsError("IncompleteSignature", "Credential should be scoped to a valid region.")
    else:
        raise SqsError("MissingAuthenticationToken", "Request is missing Authentication Token")
    key_id, date, cred_region, service, terminator = credential.split("/")
    secret = secrets.get(key_id)
    token = headers.get("X-Amz-Security-Token") or presign.get("X-Amz-Security-Token")
    if secret is None or token:
        # The broker issues no session credentials: any token is one it does not know.
        raise SqsError(
            "InvalidClientTokenId", "The security token included in the request is invalid."
        )
    if not amz_date:
        raise SqsError(
            "IncompleteSignature",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    try:
        when = _parse_date(amz_date)
    except ValueError:
        raise SqsError(
            "IncompleteSignature", f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
        ) from None
    if date != amz_date[:8]:
        raise SqsError(
            "SignatureDoesNotMatch",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{date}' != '{amz_date[:8]}', from '{amz_date}'.",
        )
    if not valid_region(cred_region):
        raise _bad_region(cred_region)
    if service not in SERVICES:
        raise SqsError(
            "SignatureDoesNotMatch",
            f"Credential should be scoped to correct service: '{SERVICE}'.",
        )
    if terminator != TERMINATOR:
        raise SqsError(
            "SignatureDoesNotMatch",
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
            f"not '{terminator}'.",
        )
    signed = tuple(signed_names.split(";"))
    if "host" not in signed:
        raise SqsError(
            "SignatureDoesNotMatch",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )
    _check_time(when, expires, now)
    return Head(key_id, secret, amz_date, f"{date}/{cred_region}/{service}/{terminator}",
                signed, signature, expires is not None, service, cred_region)  # fmt: skip


def _parse_date(amz_date: str) -> datetime:
    """X-Amz-Date (``%Y%m%dT%H%M%SZ``) as an aware datetime; ValueError if it is not.
    The common spelling is cut by a regex: for a string of that shape strptime reads the
    same fixed-width fields and refuses the same out-of-range values."""
    m = _BASIC_DATE.fullmatch(amz_date)
    if m is None:
        return datetime.strptime(amz_date, _TIME_FORMAT).replace(tzinfo=UTC)
    y, mo, d, h, mi, sec = (int(g) for g in m.groups())
    return datetime(y, mo, d, h, mi, sec, tzinfo=UTC)


def signing_key(secret: str, scope: str) -> bytes:
    """SigV4's signing key for `scope` (date/region/service/aws4_request), cached."""
    k = _SIGNING_KEYS.get((secret, scope))
    if k is None:
        k = ("AWS4" + secret).encode()
        for part in scope.split("/"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        if len(_SIGNING_KEYS) >= _SIGNING_KEYS_MAX:
            _SIGNING_KEYS.clear()
        _SIGNING_KEYS[(secret, scope)] = k
    return k


def _from_http_date(value: str | None) -> str:
    """An RFC 7231 Date header as SigV4's basic ISO-8601 form ('' if none or unreadable)."""
    if not value:
        return ""
    try:
        return parsedate_to_datetime(value).astimezone(UTC).strftime(_TIME_FORMAT)
    except (TypeError, ValueError):
        return ""


def _check_time(when: datetime, expires: str | None, now: datetime) -> None:
    if expires is not None:
        if not expires.isdigit() or not 1 <= int(expires) <= MAX_EXPIRES:
            raise SqsError(
                "SignatureDoesNotMatch",
                f"X-Amz-Expires must be a number of seconds in 1..{MAX_EXPIRES}, got '{expires}'.",
            )
        end = when + timedelta(seconds=int(expires))
        if now > end:
            raise SqsError(
                "SignatureDoesNotMatch",
                f"Signature expired: {end.strftime(_TIME_FORMAT)} is now earlier than "
                f"{now.strftime(_TIME_FORMAT)}.",
            )
        # A presigned request dated in the future is as suspect as a header-signed one.
        if when > now + MAX_SKEW:
            raise _not_yet(when, now)
        return
    if when < now - MAX_SKEW:
        raise SqsError(
            "SignatureDoesNotMatch",
            f"Signature expired: {when.strftime(_TIME_FORMAT)} is now earlier than "
            f"{(now - MAX_SKEW).strftime(_TIME_FORMAT)} ({now.strftime(_TIME_FORMAT)} - 15 min.)",
        )
    if when > now + MAX_SKEW:
        raise _not_yet(when, now)


def _not_yet(when: datetime, now: datetime) -> SqsError:
    return SqsError(
        "SignatureDoesNotMatch",
        f"Signature not yet current: {when.strftime(_TIME_FORMAT)} is still later than "
        f"{(now + MAX_SKEW).strftime(_TIME_FORMAT)} ({now.strftime(_TIME_FORMAT)} + 15 min.)",
    )


def check_signature(
    head: Head,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """Compute the signature over the canonical request with the received body's hash;
    returns the access key id or raises SignatureDoesNotMatch."""
    payload = hashlib.sha256(body).hexdigest()
    declared = headers.get("X-Amz-Content-Sha256")
    if declared is not None and declared != payload:
        # UNSIGNED-PAYLOAD included: SQS signs its payloads (module docstring).
        raise SqsError(
            "SignatureDoesNotMatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    canonical_headers = "".join(
        f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in head.signed_headers
    )
    pairs = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
        for k, v in parse_qsl(query, keep_blank_values=True)
        # The presigned form signs every query parameter but the signature itself.
        if not (head.presigned and k == "X-Amz-Signature")
    )
    canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
    canonical = "\n".join(
        [
            method,
            path or "/",
            canonical_query,
            canonical_headers,
            ";".join(head.signed_headers),
            payload,
        ]
    )
    to_sign = "\n".join(
        [ALGORITHM, head.amz_date, head.scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    k = signing_key(head.secret, head.scope)
    expected = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, head.signature):
        raise SqsError("SignatureDoesNotMatch", _MISMATCH)
    return head.key_id
