"""A graceful stop (SIGTERM) answers every SQS request it has accepted (issue 10), as
STOMP pays its receipts: boto3 senders in tight loops, a SendMessage whose body is still
arriving when the signal comes, and an idle keep-alive connection, against a broker
process. Then a new broker on the same data directory shows what was stored. Checked:

- the request accepted before the signal gets its answer (200 and a MessageId) once the
  rest of its body arrives during the drain (before, aiohttp's shutdown stopped reading
  every connection at once, so that body never completed and the request was cut off
  without an answer);
- a request started during the drain is refused (503 ServiceUnavailable) or finds its
  connection closed, and nothing of it is stored;
- stored == answered: no message stored without its SendMessage response, none
  answered and lost.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.conftest import ChildBroker

WAIT = 15.0
BROKER_RUN = [sys.executable, "-m", "broker", "run"]
AWS_LISTENER = re.compile(r"aws listener on (\S+):(\d+)")
RECOVERED = re.compile(r"journal: (\d+) records replayed, (\d+) messages on (\d+) queues")
SENDERS = 4


def sqs_client(port: int) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        # One attempt per call: every request the test counts is one HTTP request.
        config=Config(retries={"total_max_attempts": 1}, read_timeout=30),
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
    )


class Sender(threading.Thread):
    """SendMessage in a tight loop until the broker is gone: what was answered 200,
    what was refused with an error response."""

    def __init__(self, port: int, url: str, name: str) -> None:
        super().__init__(daemon=True)
        self.sqs = sqs_client(port)
        self.url = url
        self.name = name
        self.answered: list[str] = []
        self.refused: list[tuple[str, str]] = []
        self.ended: BaseException | None = None
        self.warm = threading.Event()

    def run(self) -> None:
        n = 0
        while True:
            body = f"{self.name}-{n}"
            n += 1
            try:
                self.sqs.send_message(QueueUrl=self.url, MessageBody=body)
            except ClientError as exc:
                self.refused.append((body, exc.response["Error"]["Code"]))
            except BotoCoreError as exc:  # connection refused / closed: the broker is gone
                self.ended = exc
                return
            else:
                self.answered.append(body)
                if len(self.answered) >= 50:
                    self.warm.set()


def refused_to_connect(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def wait_for(predicate: Any, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response (Content-Length framed) on `sock`."""
    sock.settimeout(WAIT)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed mid-response"
        rest += chunk
    return int(head.split(b" ", 2)[1]), rest[:length]


def test_sigterm_answers_every_accepted_sqs_request(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ChildBroker([*BROKER_RUN, "--data-dir", str(data)], tmp_path)
    procs = [first]
    try:
        port = int(first.wait_for(AWS_LISTENER, WAIT).group(2))
        url = sqs_client(port).create_queue(QueueName="stopping")["QueueUrl"]

        # A request accepted (routed to the handler: "100 Continue" says so) whose body
        # has not all arrived when the signal comes.
        body = json.dumps({"QueueUrl": url, "MessageBody": "half-sent"}).encode()
        half = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        half.sendall(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: AmazonSQS.SendMessage\r\n"
            b"Content-Type: application/x-amz-json-1.0\r\nExpect: 100-continue\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        half.settimeout(WAIT)
        assert half.recv(64).startswith(b"HTTP/1.1 100 Continue")
        # An idle keep-alive connection that has had one answer.
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        idle.request("GET", "/?Action=ListQueues")
        listed = idle.getresponse()
        assert listed.status == 200 and b"stopping" in listed.read()

        senders = [Sender(port, url, f"s{i}") for i in range(SENDERS)]
        for s in senders:
            s.start()
        for s in senders:
            assert s.warm.wait(WAIT)
        first.proc.send_signal(15)  # SIGTERM
        first.wait_for("received SIGTERM, draining", WAIT)
        wait_for(lambda: refused_to_connect(port))  # the drain has begun

        # Started during the drain: refused, or its connection closed; never handled.
        late = json.dumps({"QueueUrl": url, "MessageBody": "keepalive-late"}).encode()
        late_status: int | None = None
        try:
            idle.request(
                "POST",
                "/",
                body=late,
                headers={
                    "X-Amz-Target": "AmazonSQS.SendMessage",
                    "Content-Type": "application/x-amz-json-1.0",
                },
            )
            response = idle.getresponse()
            late_status = response.status
            late_answer = json.loads(response.read())
        except (http.client.HTTPException, OSError):
            pass
        if late_status is not None:
            assert late_status == 503 and late_answer["__type"].endswith("ServiceUnavailable")

        # The rest of the accepted request's body: it is handled and answered.
        half.sendall(body[10:])
        status, answer = read_response(half)
        assert status == 200, answer
        assert "MessageId" in json.loads(answer)

        for s in senders:
            s.join(WAIT)
            assert not s.is_alive()
        first.proc.wait(WAIT)
        assert first.proc.returncode == 0

        second = ChildBroker([*BROKER_RUN, "--data-dir", str(data)], tmp_path)
        procs.append(second)
        recovered = int(second.wait_for(RECOVERED, WAIT).group(2))
        port = int(second.wait_for(AWS_LISTENER, WAIT).group(2))
        sqs = sqs_client(port)
        stored: list[str] = []
        while len(stored) < recovered:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)
            stored += [m["Body"] for m in got.get("Messages", [])]
        assert sqs.receive_message(QueueUrl=url).get("Messages") is None
        second.stop()
    finally:
        for p in procs:
            p.cleanup()
        print("".join(p.stderr_text() for p in procs), end="")

    answered = {"half-sent"} | {b for s in senders for b in s.answered}
    refused = {b for s in senders for b, _code in s.refused}
    assert len(stored) == len(set(stored))
    assert set(stored) - answered == set(), "stored without a SendMessage response"
    assert answered - set(stored) == set(), "answered but lost"
    assert refused & set(stored) == set() and "keepalive-late" not in stored
    assert {code for s in senders for _b, code in s.refused} <= {"ServiceUnavailable"}


def test_stop_answers_held_sends_and_long_polls_at_once(broker_factory) -> None:
    """What waits (a send held back by the store limit, a 20 s long poll) is answered
    as the drain begins, not cut off when it ends: the send ServiceUnavailable (nothing
    stored: the client may send it again), the receive with what it has."""
    b = broker_factory(**{"destinations.store_limit": 16 * 1024, "store.fsync": "never"})
    port = b.broker.port("aws")
    sqs = sqs_client(port)
    url = sqs.create_queue(QueueName="held")["QueueUrl"]
    empty = sqs.create_queue(QueueName="empty")["QueueUrl"]
    while b.call(lambda: b.broker.core.store.stored_bytes) <= 16 * 1024:
        sqs.send_message(QueueUrl=url, MessageBody="x" * 4096)
    results: dict[str, Any] = {}

    def call(name: str, fn: Any) -> None:
        try:
            results[name] = fn()
        except ClientError as exc:
            results[name] = exc.response["Error"]["Code"]

    threads = [
        threading.Thread(
            target=call,
            args=("send", lambda: sqs_client(port).send_message(QueueUrl=url, MessageBody="h")),
        ),
        threading.Thread(
            target=call,
            args=(
                "poll",
                lambda: sqs_client(port).receive_message(QueueUrl=empty, WaitTimeSeconds=20),
            ),
        ),
    ]
    for t in threads:
        t.start()

    def waiting() -> tuple[int, int]:
        service = b.broker.listeners["aws"].service
        polls = sum(len(pq.waiters) for pq in service.leases.queues.values())
        return service.gate.waiting, polls

    wait_for(lambda: b.call(waiting) == (1, 1))
    started = time.monotonic()
    b.stop()
    for t in threads:
        t.join(WAIT)
    assert time.monotonic() - started < 5.0  # not the 10 s shutdown_timeout
    assert results["send"] == "ServiceUnavailable"
    assert (
        "Messages" not in results["poll"]
        and results["poll"]["ResponseMetadata"]["HTTPStatusCode"] == 200
    )
