"""SigV4 as AWS checks it, with users configured: the payload is hashed (a captured
request cannot be replayed with another body), the ±15-minute window, the credential
scope, presigned query-string requests (botocore's SigV4QueryAuth), session tokens
refused, ``host`` signed. Requests are signed by botocore itself and sent over raw
sockets so that a test can alter exactly one thing."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.aws import sigv4
from tests.conftest import BrokerThread
from tests.sqs.support import client, error_code, raw_post, signed

USERS = {"auth.users": {"AKIDGOOD": "s3cret"}}


@pytest.fixture
def secured(broker_factory: Any) -> tuple[BrokerThread, Any, str, str]:
    b = broker_factory(**USERS)
    sqs = client(b, aws_access_key_id="AKIDGOOD", aws_secret_access_key="s3cret")
    a = sqs.create_queue(QueueName="alice")["QueueUrl"]
    m = sqs.create_queue(QueueName="mallory")["QueueUrl"]
    return b, sqs, a, m


def port(b: BrokerThread) -> int:
    return b.broker.port("aws")


def depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def test_captured_request_replayed_with_another_body_is_refused(secured: Any) -> None:
    b, sqs, alice, mallory = secured
    body, headers = signed(port(b), "SendMessage", {"QueueUrl": alice, "MessageBody": "hi"})
    assert raw_post(port(b), body, headers)[0] == 200
    # The replay: the captured headers, a forged body for another queue, and the
    # original body's hash declared in X-Amz-Content-Sha256 (which used to be trusted).
    forged = f'{{"QueueUrl": "{mallory}", "MessageBody": "forged"}}'.encode()
    replay = {**headers, "X-Amz-Content-Sha256": hashlib.sha256(body).hexdigest()}
    status, answer = raw_post(port(b), forged, replay)
    assert status == 403
    assert answer["__type"].endswith("#SignatureDoesNotMatch")
    # Without the header, the forged body does not match the signature either.
    assert raw_post(port(b), forged, headers)[0] == 403
    assert depth(sqs, mallory) == 0
    assert depth(sqs, alice) == 1


def test_unsigned_payload_is_refused(secured: Any) -> None:
    b, sqs, alice, _ = secured
    # Signed with UNSIGNED-PAYLOAD in the canonical request (S3's option, not SQS's).
    with mock.patch("botocore.auth.SigV4Auth.payload", return_value="UNSIGNED-PAYLOAD"):
        body, headers = signed(port(b), "SendMessage", {"QueueUrl": alice, "MessageBody": "u"})
    status, answer = raw_post(
        port(b), body, {**headers, "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD"}
    )
    assert status == 403
    assert answer["__type"].endswith("#SignatureDoesNotMatch")
    assert depth(sqs, alice) == 0


@pytest.mark.parametrize(
    ("offset", "words"),
    [
        (timedelta(days=-365 * 25), "Signature expired"),
        (timedelta(minutes=-16), "Signature expired"),
        (timedelta(minutes=16), "Signature not yet current"),
    ],
)
def test_request_outside_the_15_minute_window_is_refused(
    secured: Any, offset: timedelta, words: str
) -> None:
    b, sqs, alice, _ = secured
    when = datetime.now(UTC).replace(tzinfo=None) + offset
    body, headers = signed(
        port(b), "SendMessage", {"QueueUrl": alice, "MessageBody": "old"}, when=when
    )
    status, answer = raw_post(port(b), body, headers)
    assert status == 403
    assert answer["__type"].endswith("#SignatureDoesNotMatch")
    assert answer["message"].startswith(words)
    assert depth(sqs, alice) == 0


def test_request_inside_the_window_is_accepted(secured: Any) -> None:
    b, sqs, alice, _ = secured
    when = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=10)
    body, headers = signed(
        port(b), "SendMessage", {"QueueUrl": alice, "MessageBody": "ok"}, when=when
    )
    assert raw_post(port(b), body, headers)[0] == 200
    assert depth(sqs, alice) == 1


@pytest.mark.parametrize(
    ("scope", "words"),
    [
        # A region name of no AWS shape (any region of AWS's shape is the request's own:
        # tests/sqs/test_sqs_regions.py).
        ({"region": "mars-1"}, "valid region"),
        ({"region": "US-EAST-1"}, "valid region"),
        ({"service": "sns"}, "correct service"),
    ],
)
def test_credential_scope_must_be_this_listener(
    secured: Any, scope: dict[str, str], words: str
) -> None:
    b, sqs, alice, _ = secured
    body, headers = signed(port(b), "SendMessage", {"QueueUrl": alice, "MessageBody": "s"}, **scope)
    status, answer = raw_post(port(b), body, headers)
    assert status == 403
    assert words in answer["message"]
    assert depth(sqs, alice) == 0


def test_credential_date_must_be_the_request_date(secured: Any) -> None:
    b, _, alice, _ = secured
    body, headers = signed(port(b), "SendMessage", {"QueueUrl": alice, "MessageBody": "d"})
    day = headers["X-Amz-Date"][:8]
    other = (datetime.strptime(day, "%Y%m%d") - timedelta(days=1)).strftime("%Y%m%d")
    auth = headers["Authorization"].replace(f"AKIDGOOD/{day}/", f"AKIDGOOD/{other}/")
    status, answer = raw_post(port(b), body, {**headers, "Authorization": auth})
    assert status == 403
    assert "Date in Credential scope does not match" in answer["message"]


def test_host_must_be_signed(secured: Any) -> None:
    b, _, alice, _ = secured
    body, headers = signed(port(b), "SendMessage", {"QueueUrl": alice, "MessageBody": "h"})
    auth = headers["Authorization"].replace(
        "SignedHeaders=content-type;host;", "SignedHeaders=content-type;"
    )
    assert auth != headers["Authorization"]
    status, answer = raw_post(port(b), body, {**headers, "Authorization": auth})
    assert status == 403
    assert "'Host'" in answer["message"]


def test_session_token_is_refused_clearly(secured: Any) -> None:
    b, sqs, alice, _ = secured
    with_token = client(
        b,
        aws_access_key_id="AKIDGOOD",
        aws_secret_access_key="s3cret",
        aws_session_token="FwoGZXIvYXdzEXAMPLE",
    )
    with pytest.raises(ClientError) as info:
        with_token.send_message(QueueUrl=alice, MessageBody="t")
    assert error_code(info.value) == "InvalidClientTokenId"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert depth(sqs, alice) == 0


def presigned(
    b: BrokerThread, params: dict[str, str], *, expires: int = 300, when: Any = None
) -> str:
    """A presigned Query GET path made by botocore's SigV4QueryAuth."""
    url = f"http://127.0.0.1:{port(b)}/?{urlencode({**params, 'Version': '2012-11-05'})}"
    request = AWSRequest(method="GET", url=url)
    auth = SigV4QueryAuth(Credentials("AKIDGOOD", "s3cret"), "sqs", "us-east-1", expires=expires)
    if when is None:
        auth.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            auth.add_auth(request)
    return request.url[len(f"http://127.0.0.1:{port(b)}") :]


def test_presigned_query_request(secured: Any) -> None:
    b, sqs, alice, _ = secured
    path = presigned(b, {"Action": "SendMessage", "QueueUrl": alice, "MessageBody": "by url"})
    status, answer = raw_post(port(b), b"", {}, path=path, method="GET")
    assert status == 200, answer
    got = sqs.receive_message(QueueUrl=alice, AttributeNames=["SenderId"])["Messages"][0]
    assert got["Body"] == "by url"
    assert got["Attributes"]["SenderId"] == "AKIDGOOD"
    # Another queue or body in the same URL breaks the signature.
    tampered = path.replace("by+url", "forged").replace("by%20url", "forged")
    assert tampered != path
    assert raw_post(port(b), b"", {}, path=tampered, method="GET")[0] == 403


def test_expired_presigned_request_is_refused(secured: Any) -> None:
    b, sqs, alice, _ = secured
    when = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=120)
    path = presigned(
        b,
        {"Action": "SendMessage", "QueueUrl": alice, "MessageBody": "late"},
        expires=60,
        when=when,
    )
    status, answer = raw_post(port(b), b"", {}, path=path, method="GET")
    assert status == 403
    assert b"Signature expired" in answer["raw"]
    assert depth(sqs, alice) == 0


def test_boto3_still_works_and_no_users_means_no_checks(broker_factory: Any) -> None:
    b = broker_factory()
    # Without users, an old-dated signature with any scope is not checked (today's rule).
    when = datetime(2001, 1, 1)
    body, headers = signed(port(b), "ListQueues", {}, region="eu-north-1", when=when)
    assert raw_post(port(b), body, headers)[0] == 200
    # ... but its region is read, and must be a region: it decides what the request sees.
    body, headers = signed(port(b), "ListQueues", {}, region="mars-1", when=when)
    status, answer = raw_post(port(b), body, headers)
    assert status == 403
    assert "Credential should be scoped to a valid region, not 'mars-1'" in answer["message"]


@pytest.mark.parametrize(
    "amz_date",
    [
        "20261301T000000Z",  # month 13
        "20260230T120000Z",  # 30 February
        "20260101T240000Z",  # hour 24
        "20260101T000060Z",  # second 60 (strptime's pattern takes it, datetime not)
        "2026-01-01T00:00:00Z",
        "20260101T000000",
    ],
)
def test_x_amz_date_that_is_no_date_is_refused(secured: Any, amz_date: str) -> None:
    """X-Amz-Date is read by a regex in the common case (sigv4._parse_date); whatever
    strptime refused is still refused, as IncompleteSignature naming the value."""
    b, sqs, alice, _ = secured
    body, headers = signed(port(b), "SendMessage", {"QueueUrl": alice, "MessageBody": "d"})
    headers["X-Amz-Date"] = amz_date
    status, answer = raw_post(port(b), body, headers)
    assert status == 400, answer
    assert answer["__type"].endswith("#IncompleteSignature")
    assert answer["message"] == f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
    assert depth(sqs, alice) == 0


def test_cached_signing_keys_follow_secret_and_scope(broker_factory: Any) -> None:
    """Two users and two regions through one broker: each request is checked with its
    own derived key (the cache is keyed by secret and scope), and a key signed with the
    other user's secret is refused."""
    b = broker_factory(**{"auth.users": {"AKIDGOOD": "s3cret", "AKIDTWO": "other"}})
    urls = {}
    for region in ("us-east-1", "eu-west-1"):
        body, headers = signed(port(b), "CreateQueue", {"QueueName": "k"}, region=region)
        status, answer = raw_post(port(b), body, headers)
        assert status == 200, answer
        urls[region] = answer["QueueUrl"]
    for _round in range(2):  # the second round is answered from the cache
        for region, url in urls.items():
            for key, secret in (("AKIDGOOD", "s3cret"), ("AKIDTWO", "other")):
                body, headers = signed(
                    port(b), "SendMessage", {"QueueUrl": url, "MessageBody": "x"},
                    key=key, secret=secret, region=region,
                )  # fmt: skip
                assert raw_post(port(b), body, headers)[0] == 200
            body, headers = signed(
                port(b), "SendMessage", {"QueueUrl": url, "MessageBody": "x"},
                key="AKIDTWO", secret="s3cret", region=region,
            )  # fmt: skip
            status, answer = raw_post(port(b), body, headers)
            assert status == 403 and answer["__type"].endswith("#SignatureDoesNotMatch")


_DATE_CHARS = st.sampled_from("0123456789T Z-:٢")


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.text(_DATE_CHARS, min_size=14, max_size=18),
        st.builds(
            "{:04d}{:02d}{:02d}T{:02d}{:02d}{:02d}Z".format,
            st.integers(0, 9999), st.integers(0, 99), st.integers(0, 99),
            st.integers(0, 99), st.integers(0, 99), st.integers(0, 99),
        ),
    )
)  # fmt: skip
def test_parse_date_agrees_with_strptime(text: str) -> None:
    """The regex path of sigv4._parse_date accepts exactly what strptime accepts, with
    the same value."""
    try:
        expected: datetime | None = datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        expected = None
    try:
        got: datetime | None = sigv4._parse_date(text)
    except ValueError:
        got = None
    assert got == expected


def test_signing_key_cache_is_bounded_and_exact() -> None:
    import hmac

    def derive(secret: str, scope: str) -> bytes:
        k = ("AWS4" + secret).encode()
        for part in scope.split("/"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        return k

    for day in range(1, 29):
        for region in ("us-east-1", "eu-west-1", "ap-south-1", "sa-east-1"):
            for secret in ("a", "b", "c"):
                scope = f"202602{day:02d}/{region}/sqs/aws4_request"
                assert sigv4.signing_key(secret, scope) == derive(secret, scope)
                assert len(sigv4._SIGNING_KEYS) <= sigv4._SIGNING_KEYS_MAX
