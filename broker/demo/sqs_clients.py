"""The demo's SQS clients (boto3): a producer calling SendMessage, a consumer calling
ReceiveMessage (long poll) then DeleteMessageBatch for what it received.

HTTP has no connection to re-establish, so "reconnecting" is choosing the endpoint:
one boto3 client per address, and a call that fails with a connection error (refused,
reset, timed out) or a 5xx moves to the next address in the list, round robin, after
a short pause once per round. The queue's URL is asked again of each endpoint
(CreateQueue, idempotent), since a URL names the node that answered.

boto3's own retries are off (`total_max_attempts` 1): a SendMessage it retried after
a lost response would be a second copy the Checker never heard of, so the producer
retries itself and reports each resend. Leases are not journaled: after a broker
restart a message received but not yet deleted is visible again at once, with
ApproximateReceiveCount raised (a crash right after a receive may leave it one short,
see ARCHITECTURE.md, so such a copy can come back unflagged).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from broker.demo.checker import Checker, decode_body, encode_body
from broker.demo.workloads import RECONNECT_DELAY, Address, ProducerBase, Workload

CREDENTIALS = {"aws_access_key_id": "demo", "aws_secret_access_key": "demo"}
# A long poll short enough that stop() is prompt, and the read timeout above it.
WAIT_SECONDS = 1
READ_TIMEOUT = 5.0
CONNECT_TIMEOUT = 1.0
NO_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


class _Unavailable(Exception):
    """A call failed in a way another endpoint (or a restarted one) may not."""


class _SqsClient(Workload):
    """Endpoint rotation and the queue URL, shared by the SQS producer and consumer."""

    protocol = "sqs"

    def __init__(
        self,
        name: str,
        addresses: Sequence[Address],
        checker: Checker,
        queue: str,
        *,
        visibility_timeout: int = 5,
        **kw: Any,
    ) -> None:
        super().__init__(name, addresses, checker, queue, **kw)
        self.visibility_timeout = visibility_timeout
        self._clients: list[Any] = []
        self._index = 0
        self.queue_url: str | None = None

    def _make_clients(self) -> None:
        import boto3
        from botocore.config import Config

        # A session per thread: boto3's default session is not thread-safe to create
        # clients from.
        session = boto3.session.Session(region_name="us-east-1", **CREDENTIALS)
        config = Config(
            retries={"total_max_attempts": 1},
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
        )
        self._clients = [
            session.client("sqs", endpoint_url=f"http://{host}:{port}", config=config)
            for host, port in self.addresses
        ]

    @property
    def endpoint(self) -> str:
        host, port = self.addresses[self._index]
        return f"{host}:{port}"

    def call(self, operation: str, **params: Any) -> Any:
        """`operation` on the current endpoint; _Unavailable if another might answer."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._clients[self._index]
        try:
            return getattr(client, operation)(**params)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            code = exc.response.get("Error", {}).get("Code", "")
            # A node that does not know the queue (yet) is asked again like one down:
            # ready() creates the queue there.
            if status >= 500 or code in NO_QUEUE:
                raise _Unavailable(f"{operation}: {exc}") from exc
            raise
        except BotoCoreError as exc:
            # EndpointConnectionError, ConnectionClosedError, the timeouts: botocore's
            # errors below the HTTP response.
            raise _Unavailable(f"{operation}: {exc}") from exc

    def unavailable(self, why: _Unavailable) -> None:
        """The current endpoint failed: the next one, and the queue URL asked again."""
        if self.connected.is_set():
            self.connected.clear()
            self.note(f"{self.endpoint} unavailable ({why})")
        self.queue_url = None
        self._index = (self._index + 1) % len(self.addresses)
        if self._index == 0:  # a round over the list without an answer
            self.pause(RECONNECT_DELAY)

    def ready(self) -> bool:
        """Have a queue URL from an endpoint that answers; False if stopped first."""
        if not self._clients:
            self._make_clients()
        while self.queue_url is None and not self.stopping:
            attributes = {"VisibilityTimeout": str(self.visibility_timeout)}
            try:
                reply = self.call("create_queue", QueueName=self.queue, Attributes=attributes)
            except _Unavailable as exc:
                self.unavailable(exc)
                continue
            self.queue_url = reply["QueueUrl"]
            self.note(f"connected to {self.endpoint}")
            self.connected.set()
        return not self.stopping


class SqsProducer(_SqsClient, ProducerBase):
    """SendMessage to queue `<queue>`, one at a time; a call that failed below HTTP (no
    response) is made again with the same seq, on the next endpoint."""

    def __init__(
        self,
        name: str,
        addresses: Sequence[Address],
        checker: Checker,
        queue: str,
        *,
        rate: float | None = None,
        visibility_timeout: int = 5,
    ) -> None:
        super().__init__(
            name, addresses, checker, queue, rate=rate, visibility_timeout=visibility_timeout
        )

    def work(self) -> None:
        while self.ready():
            if self.pause(self.pacer.delay()):
                break
            self.sending()
            try:
                self.call(
                    "send_message",
                    QueueUrl=self.queue_url,
                    MessageBody=encode_body(self.name, self.seq),
                )
            except _Unavailable as exc:
                self.unavailable(exc)
                continue
            self.acknowledged()


class SqsConsumer(_SqsClient):
    """ReceiveMessage (up to 10, long poll), then one DeleteMessageBatch for them; a
    message whose ApproximateReceiveCount is above 1 counts as redelivered. A delete that
    fails leaves the message to come back after the visibility timeout (or the
    restart), flagged."""

    def work(self) -> None:
        while self.ready():
            try:
                reply = self.call(
                    "receive_message",
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=WAIT_SECONDS,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                )
            except _Unavailable as exc:
                self.unavailable(exc)
                continue
            messages = reply.get("Messages", ())
            for msg in messages:
                self._record_delivery(msg)
            if messages:
                self._delete_batch(messages)

    def _record_delivery(self, msg: dict[str, Any]) -> None:
        try:
            producer, seq = decode_body(msg["Body"])
        except ValueError as exc:
            self.note(str(exc))
            return
        count = int(msg.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        self.checker.delivered(self.protocol, producer, seq, count > 1, consumer=self.name)

    def _delete_batch(self, messages: Sequence[dict[str, Any]]) -> None:
        """One DeleteMessageBatch for a receive's messages: a consumer keeping up with
        several producers at demo rates needs fewer round trips than one per message."""
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        try:
            reply = self.call("delete_message_batch", QueueUrl=self.queue_url, Entries=entries)
        except _Unavailable as exc:
            self.unavailable(exc)
            return
        for failed in reply.get("Failed", ()):
            self.note(f"delete failed: {failed.get('Code')} {failed.get('Message', '')}")
