"""Every SQS input is type-checked against the API model before a handler sees it (a
wrong type used to be an HTTP 500 with a traceback): AWS JSON 1.0 answers
SerializationException, Query InvalidParameterValue; deep JSON and deep Query names are
refused fast; invalid UTF-8 in a Query form is refused, not stored as U+FFFD; bodies past
the limit are refused from Content-Length before they are read, chunked ones at the
cap, and with users set an unsigned request is refused before its body is read."""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from protocols.aws import shapes
from tests.conftest import BrokerThread, ChildBroker
from tests.sqs.support import client, error_code, http_call

MODEL = botocore.session.get_session().get_service_model("sqs")


def _model_shape(shape: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return {name: _model_shape(m) for name, m in shape.members.items()}
    if kind == "list":
        return shapes.ListOf(_model_shape(shape.member))
    if kind == "map":
        return shapes.MapOf(_model_shape(shape.value))
    return kind


def test_the_shape_table_is_the_api_model() -> None:
    """shapes.INPUTS is written by hand; botocore's copy of the model checks it."""
    assert set(shapes.INPUTS) == set(MODEL.operation_names)
    for action, table in shapes.INPUTS.items():
        model = _model_shape(MODEL.operation_model(action).input_shape)
        # CreateQueue also takes the Query protocol's "Tags" (Tag.N.Key/Value).
        mine = {k: v for k, v in table.items() if not (action == "CreateQueue" and k == "Tags")}
        assert mine == model, action


def json_call(b: BrokerThread, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", b.broker.port("aws"), timeout=30)
    try:
        conn.request(
            "POST",
            "/",
            body=body,
            headers={
                "X-Amz-Target": f"AmazonSQS.{target}",
                "Content-Type": "application/x-amz-json-1.0",
            },
        )
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("target", "payload", "message"),
    [
        ("CreateQueue", {"QueueName": 5}, "NUMBER_VALUE can not be converted to a String"),
        ("CreateQueue", {"QueueName": {"a": 1}}, "Start of structure or map found"),
        ("CreateQueue", {"QueueName": ["q"]}, "Start of list found"),
        ("CreateQueue", {"QueueName": "q", "Attributes": {"DelaySeconds": 5}}, "NUMBER_VALUE"),
        ("CreateQueue", {"QueueName": "q", "Attributes": ["x"]}, "Start of list found"),
        ("ListQueues", {"MaxResults": "10"}, "STRING_VALUE can not be converted to an Integer"),
        ("ListQueues", {"MaxResults": True}, "TRUE_VALUE can not be converted to an Integer"),
        ("ListQueues", {"MaxResults": 2**40}, "NUMBER_VALUE can not be converted to an Integer"),
        ("GetQueueUrl", {"QueueName": None, "QueueOwnerAWSAccountId": 1}, "NUMBER_VALUE"),
        ("SendMessageBatch", {"QueueUrl": "u", "Entries": {"Id": "1"}}, "Start of structure"),
        ("SendMessageBatch", {"QueueUrl": "u", "Entries": [5]}, "NUMBER_VALUE"),
        ("DeleteMessageBatch", {"QueueUrl": "u", "Entries": [None]}, "NULL_VALUE"),
        (
            "SendMessage",
            {"QueueUrl": "u", "MessageBody": "b", "MessageAttributes": {"a": "x"}},
            "STRING_VALUE can not be converted to a Structure",
        ),
        (
            "SendMessage",
            {
                "QueueUrl": "u",
                "MessageBody": "b",
                "MessageAttributes": {"a": {"DataType": "String", "StringValue": {"x": 1}}},
            },
            "Start of structure",
        ),
    ],
)
def test_json_wrong_types_are_serialization_exceptions(
    broker: BrokerThread, target: str, payload: dict[str, Any], message: str
) -> None:
    status, answer = json_call(broker, target, json.dumps(payload).encode())
    assert status == 400, answer
    assert answer["__type"] == "com.amazonaws.sqs#SerializationException"
    assert answer["message"].startswith(message)


def test_receive_with_a_huge_number(broker: BrokerThread) -> None:
    url = client(broker).create_queue(QueueName="huge")["QueueUrl"]
    for number in ("1e400", "1.5", "-1e400", "1" * 5000):
        body = f'{{"QueueUrl": "{url}", "MaxNumberOfMessages": {number}}}'.encode()
        status, answer = json_call(broker, "ReceiveMessage", body)
        assert status == 400, (number, answer)
        assert answer["__type"] == "com.amazonaws.sqs#SerializationException"


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deep_json_is_refused_fast(broker: BrokerThread, opener: str) -> None:
    body = (opener * 200_000).encode()
    started = time.monotonic()
    status, answer = json_call(broker, "ListQueues", body)
    assert status == 400
    assert answer["__type"] == "com.amazonaws.sqs#SerializationException"
    assert time.monotonic() - started < 2.0
    # Brackets inside strings do not count toward depth.
    ok = json.dumps({"QueueNamePrefix": "[" * 100_000}).encode()
    assert json_call(broker, "ListQueues", ok)[0] == 200


def test_every_member_of_every_action_is_checked(broker: BrokerThread) -> None:
    """A value of the wrong kind for any modelled member: 400, never 500."""
    for action, table in shapes.INPUTS.items():
        for member, shape in table.items():
            wrong = {"nested": {"x": 1}} if isinstance(shape, str) else 5
            payload = {"QueueUrl": "http://x/000000000000/q", member: wrong}
            status, answer = json_call(broker, action, json.dumps(payload).encode())
            assert status == 400, (action, member, answer)
            assert answer["__type"].endswith("#SerializationException"), (action, member)


def test_boto3_without_validation_gets_the_error(broker: BrokerThread) -> None:
    """boto3 with its own parameter validation off sends what it is given."""
    sqs = client(broker)
    raw = botocore.session.get_session().create_client(
        "sqs",
        endpoint_url=sqs.meta.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as info:
        raw.create_queue(QueueName=5)
    assert error_code(info.value) == "SerializationException"
    with pytest.raises(ClientError) as info:
        raw.list_queues(MaxResults={"a": 1})
    assert error_code(info.value) == "SerializationException"


def test_query_structure_where_a_string_belongs(broker: BrokerThread) -> None:
    status, _, body = http_call(broker, form={"Action": "CreateQueue", "QueueName.1": "x"})
    assert status == 400
    assert b"<Code>InvalidParameterValue</Code>" in body
    status, _, body = http_call(
        broker, form={"Action": "CreateQueue", "QueueName": "y", "QueueName.a.b": "z"}
    )
    assert status == 400
    deep = {"Action": "ListQueues", ".".join(["a"] * 100_000): "v"}
    started = time.monotonic()
    status, _, body = http_call(broker, form=deep)
    assert status == 400
    assert time.monotonic() - started < 2.0


def test_query_invalid_utf8_is_refused_not_replaced(broker: BrokerThread) -> None:
    sqs = client(broker)
    url = sqs.create_queue(QueueName="utf")["QueueUrl"]
    import http.client
    from urllib.parse import quote

    port = broker.broker.port("aws")
    for body in (
        f"Action=SendMessage&QueueUrl={quote(url, safe='')}&MessageBody=caf%E9",
        f"Action=SendMessage&QueueUrl={quote(url, safe='')}&MessageBody=\udcff",
    ):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        data = body.encode("utf-8", "surrogateescape")
        conn.request(
            "POST", "/", body=data, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        resp = conn.getresponse()
        answer = resp.read()
        conn.close()
        assert resp.status == 400, answer
        assert b"<Code>InvalidParameterValue</Code>" in answer
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    # Valid UTF-8, percent-encoded, still goes through.
    sqs.send_message(QueueUrl=url, MessageBody="café")
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "café"


# -- body limits --------------------------------------------------------------------------


def head_only(port: int, headers: str, timeout: float = 5.0) -> bytes:
    """Send a request's head (no body) and read the answer the broker gives at once."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(headers.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_declared_oversize_body_is_refused_before_reading(broker: BrokerThread) -> None:
    port = broker.broker.port("aws")
    started = time.monotonic()
    answer = head_only(
        port,
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonSQS.ListQueues\r\n"
        "Content-Type: application/x-amz-json-1.0\r\nContent-Length: 104857600\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert time.monotonic() - started < 5.0


def test_chunked_body_is_capped(broker_factory: Any) -> None:
    b = broker_factory(**{"listeners.aws.max_request_size": 2 * 1048576})
    port = b.broker.port("aws")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonSQS.ListQueues\r\n"
            b"Content-Type: application/x-amz-json-1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        sent = 0
        answer = b""
        s.settimeout(0.05)
        # Send up to 64 MiB; the broker must answer 413 once past its 2 MiB cap.
        while sent < 64 * 1048576 and not answer:
            try:
                s.sendall(chunk)
                sent += 65536
                answer = s.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        if not answer:
            s.settimeout(5)
            answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), (sent, answer[:200])
    assert sent < 8 * 1048576


def test_unsigned_request_is_refused_before_its_body(broker_factory: Any) -> None:
    b = broker_factory(**{"auth.users": {"AKIDGOOD": "s3cret"}})
    answer = head_only(
        b.broker.port("aws"),
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonSQS.ListQueues\r\n"
        "Content-Type: application/x-amz-json-1.0\r\nContent-Length: 4000000\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 403"), answer
    assert b"MissingAuthenticationToken" in answer


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def push(port: int, head: bytes, total: int) -> bytes:
    """Send `head` then up to `total` body bytes (stopping when the broker answers or
    closes); the answer's first bytes."""
    block = b"x" * 1048576
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        s.settimeout(0.01)
        sent = 0
        answer = b""
        while sent < total and not answer:
            try:
                s.sendall(block)
                sent += len(block)
                answer = s.recv(4096)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        if not answer:
            s.settimeout(5)
            try:
                answer = s.recv(4096)
            except ConnectionResetError:
                answer = b""
    return answer


def test_rejected_huge_bodies_leave_rss_flat(tmp_path: Any) -> None:
    """A broker process is sent 100 MB bodies (declared, and chunked); each is refused
    at once or at the 8 MiB cap, and the process's RSS stays within a bound."""
    proc = ChildBroker(
        [sys.executable, "-m", "broker", "run", "--data-dir", str(tmp_path / "d")], tmp_path
    )
    try:
        port = int(proc.wait_for(r"aws listener on (\S+):(\d+)").group(2))
        json_head = (
            b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonSQS.ListQueues\r\n"
            b"Content-Type: application/x-amz-json-1.0\r\n"
        )
        # Warm up (first request, first refusal), then measure.
        push(port, json_head + b"Content-Length: 2\r\n\r\n{}", 0)
        push(port, json_head + b"Content-Length: 104857600\r\n\r\n", 0)
        before = rss_kb(proc.proc.pid)
        for _ in range(3):
            answer = push(port, json_head + b"Content-Length: 104857600\r\n\r\n", 104857600)
            assert answer.startswith(b"HTTP/1.1 413"), answer
        assert rss_kb(proc.proc.pid) - before < 4 * 1024
        # Chunked: one 1 MiB chunk after another.
        chunked = json_head + b"Transfer-Encoding: chunked\r\n\r\n"
        block = b"%x\r\n%s\r\n" % (1048576, b"x" * 1048576)
        for _ in range(6):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(chunked)
                s.settimeout(0.01)
                answer = b""
                for _ in range(100):
                    try:
                        s.sendall(block)
                        answer = s.recv(4096)
                    except TimeoutError:
                        continue
                    except (BrokenPipeError, ConnectionResetError):
                        break
                    if answer:
                        break
            assert answer.startswith(b"HTTP/1.1 413"), answer
        grown = rss_kb(proc.proc.pid) - before
        # Six 8 MiB reads refused one after another: less than one of them stays resident.
        assert grown < 8 * 1024, f"RSS grew {grown} KiB"
        proc.stop()
    finally:
        proc.cleanup()
