"""A malformed HTTP request on the SQS port is the client's fault (issue 10): aiohttp
answers 400 and closes that connection, and the broker logs one line (INFO, the peer and
a short reason, no traceback); clients on other connections are unaffected. Before, an
aiohttp parser error was logged at ERROR with a traceback of the parser, and a bad first
request line not at all (DEBUG)."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from tests.conftest import BrokerThread
from tests.sqs.support import client

GARBAGE = [
    # (bytes sent, a word the reason or snippet must carry)
    (b"POST / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", "Bad Header"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", "Content-Length"),
    (b"\x00\x01\x02 garbage\r\n\r\n", "garbage"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", "HTTPS"),
]


def exchange(port: int, data: bytes) -> bytes:
    """Send `data` on a fresh connection; everything the broker answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(("data", "word"), GARBAGE)
def test_malformed_request_is_one_log_line_and_hurts_no_one_else(
    broker: BrokerThread, caplog: pytest.LogCaptureFixture, data: bytes, word: str
) -> None:
    caplog.set_level(logging.INFO)
    sqs = client(broker)
    url = sqs.create_queue(QueueName="malformed")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="before")  # a keep-alive connection is open
    caplog.clear()

    answer = exchange(broker.broker.port("aws"), data)

    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n", 1)[0]
    # The same client (its pooled connection) and a new one go on working.
    sqs.send_message(QueueUrl=url, MessageBody="after")
    other = client(broker)
    got = other.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert sorted(m["Body"] for m in got["Messages"]) == ["after", "before"]

    server = [r for r in caplog.records if r.name.startswith(("aiohttp", "zonemq.aws"))]
    malformed = [r for r in server if "malformed HTTP request" in r.getMessage()]
    assert len(malformed) == 1, [r.getMessage() for r in server]
    record = malformed[0]
    line = record.getMessage()
    assert record.levelno == logging.INFO
    assert record.exc_info is None and record.exc_text is None
    assert "\n" not in line and len(line) < 300
    assert "from 127.0.0.1" in line and word in line, line
    assert [r for r in server if r.levelno >= logging.WARNING] == []


def test_client_gone_mid_body_is_no_error(
    broker: BrokerThread, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that closes its socket part-way through a body is not the broker's
    error: no ERROR record with a traceback (aiohttp logged one), and others go on."""
    caplog.set_level(logging.INFO)
    sqs = client(broker)
    url = sqs.create_queue(QueueName="gone")["QueueUrl"]
    head = (
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonSQS.SendMessage\r\n"
        b"Content-Type: application/x-amz-json-1.0\r\nExpect: 100-continue\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", broker.broker.port("aws")), timeout=5) as s:
        s.sendall(head)
        # "100 Continue": the handler is reading the body when the client goes.
        assert s.recv(64).startswith(b"HTTP/1.1 100 Continue")
        s.sendall(b'{"QueueUrl": ')
    sqs.send_message(QueueUrl=url, MessageBody="after")
    assert broker.stats("gone").depth == 1
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == [], [r.getMessage() for r in noisy]


def _send_head(body: bytes, expect: str) -> bytes:
    return (
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonSQS.SendMessage\r\n"
        b"Content-Type: application/x-amz-json-1.0\r\nExpect: " + expect.encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response's status line and body (Content-Length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(
        int(v) for k, _, v in (h.partition(b": ") for h in lines) if k.lower() == b"content-length"
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    return lines[0], rest[:length]


def test_expect_100_continue_then_the_body(broker: BrokerThread) -> None:
    """The SQS port runs on aiohttp's low-level server: the ``100 Continue`` an
    Application's router sent is ours now. It comes before any of the body is sent, the
    request is then answered, and the connection is kept alive for the next one."""
    sqs = client(broker)
    url = sqs.create_queue(QueueName="expect")["QueueUrl"]
    body = json.dumps({"QueueUrl": url, "MessageBody": "continued"}).encode()
    with socket.create_connection(("127.0.0.1", broker.broker.port("aws")), timeout=5) as s:
        for _ in range(2):
            s.sendall(_send_head(body, "100-continue"))
            assert s.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
            s.sendall(body)
            status, answer = _read_response(s)
            assert status == b"HTTP/1.1 200 OK", answer
            assert json.loads(answer)["MD5OfMessageBody"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert [m["Body"] for m in got["Messages"]] == ["continued", "continued"]


def test_unknown_expectation_is_417_and_nothing_is_sent(broker: BrokerThread) -> None:
    """Any other ``Expect`` is 417 before the handler runs (as the Application's router
    answered): the message is not sent, and aiohttp reads past its body, so the same
    connection takes the next request."""
    sqs = client(broker)
    url = sqs.create_queue(QueueName="expect417")["QueueUrl"]
    body = json.dumps({"QueueUrl": url, "MessageBody": "never"}).encode()
    with socket.create_connection(("127.0.0.1", broker.broker.port("aws")), timeout=5) as s:
        s.sendall(_send_head(body, "something-else") + body)
        status, answer = _read_response(s)
        assert status == b"HTTP/1.1 417 Expectation Failed", answer
        assert b"Unknown Expect: something-else" in answer
        ok = json.dumps({"QueueUrl": url, "MessageBody": "after"}).encode()
        s.sendall(_send_head(ok, "100-continue"))
        assert s.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(ok)
        assert _read_response(s)[0] == b"HTTP/1.1 200 OK"
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert [m["Body"] for m in got["Messages"]] == ["after"]


def test_request_target_that_is_no_path_is_404(broker: BrokerThread) -> None:
    """``OPTIONS *`` (and any target not starting with ``/``) is not an SQS request:
    404, as the Application's catch-all route answered; the connection stays usable."""
    with socket.create_connection(("127.0.0.1", broker.broker.port("aws")), timeout=5) as s:
        s.sendall(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _ = _read_response(s)
        assert status == b"HTTP/1.1 404 Not Found"
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonSQS.ListQueues\r\n"
            b"Content-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n\r\n{}"
        )
        status, answer = _read_response(s)
        assert status == b"HTTP/1.1 200 OK" and json.loads(answer) == {}
