"""Seeds: what real clients send in a short valid session, recorded through a relay.

`Relay` listens on an ephemeral loopback port, connects each accepted client to the
broker and copies bytes both ways, keeping what the client sent (one stream per client
connection). The session functions drive stomp.py, python-qpid-proton and boto3 through
it, so the corpus is exactly what those libraries put on the wire.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

SEED_QUEUE = "fuzz-target"  # a valid SQS name too


class Relay:
    """A recording TCP relay to (host, port); `streams` holds each client's bytes."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.streams: list[bytearray] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return  # closed
            broker = socket.create_connection(self.upstream)
            sent = bytearray()
            with self._lock:
                self.streams.append(sent)
            for src, dst, keep in ((client, broker, sent), (broker, client, None)):
                t = threading.Thread(target=self._pipe, args=(src, dst, keep), daemon=True)
                t.start()
                self._threads.append(t)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, keep: bytearray | None) -> None:
        try:
            while data := src.recv(65536):
                if keep is not None:
                    keep += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> list[bytes]:
        """Stop, wait for the copies to end, and return the recorded client streams."""
        self.server.close()
        for t in self._threads:
            t.join(10)
        return [bytes(s) for s in self.streams if s]


def record(host: str, port: int, session: Callable[[int], None]) -> list[bytes]:
    """Run `session(relay_port)` through a relay to the broker; its client streams."""
    relay = Relay(host, port)
    try:
        session(relay.port)
    finally:
        streams = relay.close()
    return streams


class _Collect:
    """A stomp.py listener keeping the MESSAGE frames it gets."""

    def __init__(self) -> None:
        self.got = threading.Event()
        self.frames: list[Any] = []

    def on_message(self, frame: Any) -> None:
        self.frames.append(frame)
        self.got.set()


def stomp_session(port: int) -> None:
    """stomp.py 1.0, 1.1 and 1.2: sends (text and bytes, escaped headers, receipts),
    client-individual subscription with ACK and NACK, a transaction, DISCONNECT."""
    import stomp

    dest = f"/queue/{SEED_QUEUE}"
    for cls in (stomp.Connection10, stomp.Connection11, stomp.Connection12):
        conn = cls([("127.0.0.1", port)], auto_content_length=cls is not stomp.Connection11)
        listener = _Collect()
        conn.set_listener("l", listener)
        conn.connect(wait=True, headers={"client-id": "fuzz"})
        conn.send(dest, "hello", headers={"persistent": "true", "colour": "re:d\\n"})
        # A body with NULs needs content-length, which only the auto_content_length
        # clients add.
        body = b"bytes" if cls is stomp.Connection11 else b"\x00bytes\x00"
        conn.send(dest, body, headers={"priority": "7", "expires": "0"})
        conn.begin("tx1")
        conn.send(dest, "in tx", transaction="tx1")
        conn.commit("tx1")
        sub = {"activemq.prefetchSize": "2"}
        if cls is stomp.Connection10:
            conn.subscribe(dest, id="s1", ack="client", headers=sub)
        else:
            conn.subscribe(dest, id="s1", ack="client-individual", headers=sub)
        if listener.got.wait(5) and cls is not stomp.Connection10:
            headers = listener.frames[0].headers
            if cls is stomp.Connection12:
                conn.ack(headers["ack"], receipt="ack-r")
            else:
                conn.nack(headers["message-id"], "s1")
        conn.unsubscribe(id="s1")
        conn.disconnect(receipt="bye")


def amqp_session(port: int) -> None:
    """python-qpid-proton: a durable send with properties, a receive with accept, and a
    connection with SASL PLAIN."""
    from proton import Message
    from proton.utils import BlockingConnection

    addr = f"queue://{SEED_QUEUE}"
    conn = BlockingConnection(f"127.0.0.1:{port}", timeout=5)
    sender = conn.create_sender(addr)
    sender.send(
        Message(
            body="hello",
            durable=True,
            priority=6,
            ttl=60,
            subject="greeting",
            correlation_id="c-1",
            properties={"colour": "red", "n": 3, "ok": True},
        )
    )
    sender.send(Message(body=b"\x00\x01", content_type="application/octet-stream"))
    receiver = conn.create_receiver(addr, credit=2)
    receiver.receive(5)
    receiver.accept()
    conn.close()
    plain = BlockingConnection(
        f"127.0.0.1:{port}", timeout=5, user="fuzz", password="pw", allowed_mechs="PLAIN"
    )
    with contextlib.suppress(Exception):
        plain.create_sender(addr).send(Message(body={"k": [1, 2.5, "x"]}))
    with contextlib.suppress(Exception):
        plain.close()


def sqs_session(port: int) -> None:
    """boto3 (AWS JSON 1.0): create, attributes, send and batch send with attributes,
    receive, delete, change visibility; and one Query-protocol request."""
    import boto3
    from botocore.config import Config

    sqs = boto3.client(
        "sqs",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="AKIDFUZZ",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}),
    )
    url = sqs.create_queue(QueueName=SEED_QUEUE, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    sqs.send_message(
        QueueUrl=url,
        MessageBody="hello",
        MessageAttributes={
            "colour": {"DataType": "String", "StringValue": "red"},
            "n": {"DataType": "Number", "StringValue": "3"},
            "b": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    sqs.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": "a", "MessageBody": "one"}, {"Id": "b", "MessageBody": "two"}],
    )
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, AttributeNames=["All"])
    for m in got.get("Messages", []):
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
        )
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    sqs.close()
    query = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    body = urlencode(
        {"Action": "SendMessage", "QueueUrl": url, "MessageBody": "q", "Version": "2012-11-05"}
    )
    query.request(
        "POST", "/", body, {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    )
    query.getresponse().read()
    query.close()


SESSIONS: dict[str, Callable[[int], None]] = {
    "stomp": stomp_session,
    "amqp": amqp_session,
    "sqs": sqs_session,
}
