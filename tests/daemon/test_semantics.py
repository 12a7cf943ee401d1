"""One behaviour, every protocol: the same queue semantics run over STOMP (stomp.py), AMQP
1.0 (proton) and SQS (boto3) against one broker.

Each protocol is a `Peer` with the same small vocabulary: send a persistent message and
wait for the broker's acknowledgement of it (RECEIPT, accepted disposition, HTTP
response); take `n` messages as one consumer; acknowledge them (ACK, accept,
DeleteMessage); or give them back unacknowledged (the consumer goes away: DISCONNECT,
connection close; for SQS, whose consumers have no connection, the visibility timeout set
to 0). A test that fails for one protocol only names it in its id.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
import stomp
from proton import Message as AmqpMessage
from proton.utils import BlockingConnection, BlockingReceiver

from tests.conftest import WAIT, BrokerThread, Collector
from tests.sqs.support import client as sqs_client

PROTOCOLS = ("stomp", "amqp", "sqs")


@dataclass
class Got:
    """One message as a consumer saw it."""

    body: str
    redelivered: bool
    handle: Any = None


@dataclass
class Taken:
    """What one consumer took, and how to settle it."""

    messages: list[Got]
    ack: Callable[[], None]
    give_back: Callable[[], None]
    bodies: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.bodies = [m.body for m in self.messages]


class Peer(Protocol):
    def send(self, name: str, body: str) -> None: ...

    def take(self, name: str, n: int) -> Taken: ...

    def close(self) -> None: ...


class StompPeer:
    """stomp.py 1.2: text messages (no content-length), client-individual consumers."""

    def __init__(self, broker: BrokerThread) -> None:
        self.port = broker.stomp_port
        self.conns: list[Any] = []
        self.producer, self.rec = self._connect()

    def _connect(self) -> tuple[Any, Collector]:
        conn = stomp.Connection12(
            [("127.0.0.1", self.port)], heartbeats=(0, 0), auto_content_length=False
        )
        rec = Collector()
        conn.set_listener("c", rec)
        conn.connect(wait=True)
        self.conns.append(conn)
        return conn, rec

    def send(self, name: str, body: str) -> None:
        rid = f"r-{body}"
        self.producer.send(f"/queue/{name}", body, headers={"persistent": "true"}, receipt=rid)
        assert self.rec.receipt() == rid

    def take(self, name: str, n: int) -> Taken:
        conn, rec = self._connect()
        conn.subscribe(
            f"/queue/{name}",
            id="s",
            ack="client-individual",
            headers={"activemq.prefetchSize": str(n)},
        )
        frames = rec.take(n)
        got = [Got(f.body, f.headers.get("redelivered") == "true", f) for f in frames]

        def ack() -> None:
            for f in frames:
                conn.ack(f.headers["ack"], receipt=f"a-{f.headers['ack']}")
            for f in frames:
                assert rec.receipt() == f"a-{f.headers['ack']}"
            conn.disconnect()

        return Taken(got, ack, conn.disconnect)

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(Exception):
                if conn.is_connected():
                    conn.disconnect()


class AmqpPeer:
    """python-qpid-proton's blocking client: durable sends, one receiver link per take."""

    def __init__(self, broker: BrokerThread) -> None:
        self.url = f"127.0.0.1:{broker.broker.port('amqp')}"
        self.conns: list[BlockingConnection] = []
        self.producer = self._connect()

    def _connect(self) -> BlockingConnection:
        conn = BlockingConnection(self.url, timeout=WAIT)
        self.conns.append(conn)
        return conn

    def send(self, name: str, body: str) -> None:
        sender = self.producer.create_sender(f"queue://{name}")
        sender.send(AmqpMessage(body=body, durable=True))  # blocks until settled
        sender.close()

    def take(self, name: str, n: int) -> Taken:
        conn = self._connect()
        receiver: BlockingReceiver = conn.create_receiver(f"queue://{name}", credit=n)
        msgs = [receiver.receive(WAIT) for _ in range(n)]
        got = [Got(str(m.body), (m.delivery_count or 0) > 0) for m in msgs]

        def ack() -> None:
            for _ in msgs:
                receiver.accept()
            # A round trip after the dispositions: the broker has applied them.
            conn.create_sender("queue://zonemq.test.sync").close()
            conn.close()

        return Taken(got, ack, conn.close)

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(Exception):
                conn.close()


class SqsPeer:
    """boto3: SendMessage, ReceiveMessage (long poll), DeleteMessage."""

    def __init__(self, broker: BrokerThread) -> None:
        self.sqs = sqs_client(broker)

    def url(self, name: str) -> str:
        return str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])

    def send(self, name: str, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.url(name), MessageBody=body)

    def take(self, name: str, n: int) -> Taken:
        url = self.url(name)
        msgs: list[dict[str, Any]] = []
        deadline = time.monotonic() + WAIT
        while len(msgs) < n:
            assert time.monotonic() < deadline, f"only {len(msgs)} of {n} received"
            resp = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=n - len(msgs),
                WaitTimeSeconds=2,
                AttributeNames=["ApproximateReceiveCount"],
            )
            msgs.extend(resp.get("Messages", []))
        got = [Got(m["Body"], int(m["Attributes"]["ApproximateReceiveCount"]) > 1, m) for m in msgs]

        def ack() -> None:
            for m in msgs:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

        def give_back() -> None:
            for m in msgs:
                self.sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )

        return Taken(got, ack, give_back)

    def close(self) -> None:
        self.sqs.close()


PEERS: dict[str, Callable[[BrokerThread], Peer]] = {
    "stomp": StompPeer,
    "amqp": AmqpPeer,
    "sqs": SqsPeer,
}


@pytest.fixture
def peers(broker: BrokerThread) -> Iterator[Callable[[str], Peer]]:
    made: list[Peer] = []

    def make(protocol: str) -> Peer:
        peer = PEERS[protocol](broker)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


def new_queue(broker: BrokerThread, name: str) -> str:
    """Create the queue through SQS, so that every protocol can name it (SQS only knows
    queues by their URL)."""
    sqs = sqs_client(broker)
    sqs.create_queue(QueueName=name)
    sqs.close()
    return name


def settled(broker: BrokerThread, name: str) -> tuple[int, int]:
    """(depth, inflight) of a queue, once the broker has applied what was sent to it."""
    deadline = time.monotonic() + WAIT
    while True:
        s = broker.stats(name)
        if (s.depth, s.inflight) == (0, 0) or time.monotonic() > deadline:
            return s.depth, s.inflight
        time.sleep(0.01)


@pytest.mark.parametrize("receiver", PROTOCOLS)
@pytest.mark.parametrize("sender", PROTOCOLS)
def test_a_queue_is_one_queue_whichever_protocol_touches_it(
    broker: BrokerThread, peers: Callable[[str], Peer], sender: str, receiver: str
) -> None:
    """Sent on one protocol, received in order on another, first time not redelivered;
    acknowledged there, nothing is left on the queue."""
    name = new_queue(broker, f"sem-one-{sender}-{receiver}")
    producer, consumer = peers(sender), peers(receiver)
    for i in range(3):
        producer.send(name, f"m{i}")
    taken = consumer.take(name, 3)
    assert taken.bodies == ["m0", "m1", "m2"]
    assert [m.redelivered for m in taken.messages] == [False, False, False]
    taken.ack()
    assert settled(broker, name) == (0, 0)


@pytest.mark.parametrize("second", PROTOCOLS)
@pytest.mark.parametrize("first", PROTOCOLS)
def test_a_message_given_back_comes_back_flagged_redelivered(
    broker: BrokerThread, peers: Callable[[str], Peer], first: str, second: str
) -> None:
    """A consumer on one protocol takes a message and goes away without acknowledging
    it; the next consumer, on any protocol, gets the same message flagged as redelivered
    (STOMP `redelivered:true`, AMQP delivery-count > 0, SQS ApproximateReceiveCount > 1),
    ahead of a message sent after it."""
    name = new_queue(broker, f"sem-back-{first}-{second}")
    producer = peers("stomp")
    producer.send(name, "given-back")
    peers(first).take(name, 1).give_back()
    producer.send(name, "later")
    taken = peers(second).take(name, 2)
    assert taken.bodies == ["given-back", "later"]
    assert [m.redelivered for m in taken.messages] == [True, False]
    taken.ack()
    assert settled(broker, name) == (0, 0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_competing_consumers_on_two_protocols_share_without_duplicates(
    broker: BrokerThread, peers: Callable[[str], Peer], protocol: str
) -> None:
    """Two consumers of one queue, one on `protocol` and one on another: every message
    goes to exactly one of them."""
    other = "sqs" if protocol != "sqs" else "stomp"
    name = new_queue(broker, f"sem-compete-{protocol}")
    producer = peers(protocol)
    sent = [f"c{i}" for i in range(6)]
    for body in sent:
        producer.send(name, body)
    a = peers(protocol).take(name, 3)
    b = peers(other).take(name, 3)
    assert sorted(a.bodies + b.bodies) == sorted(sent)
    a.ack()
    b.ack()
    assert settled(broker, name) == (0, 0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_acknowledged_sends_survive_a_restart(tmp_path: Path, protocol: str) -> None:
    """What the broker acknowledged on `protocol` is there after a graceful restart, for
    every protocol to read; what was acknowledged as consumed is not."""
    data = tmp_path / "data"
    first = BrokerThread(data).start()
    try:
        name = new_queue(first, f"sem-restart-{protocol}")
        peer = PEERS[protocol](first)
        for i in range(4):
            peer.send(name, f"r{i}")
        peer.take(name, 1).ack()
        peer.close()
    finally:
        first.stop()
    second = BrokerThread(data).start()
    try:
        got: list[str] = []
        for reader in PROTOCOLS:
            peer = PEERS[reader](second)
            taken = peer.take(name, 1)
            got += taken.bodies
            taken.ack()
            peer.close()
        assert got == ["r1", "r2", "r3"]
        assert settled(second, name) == (0, 0)
    finally:
        second.stop()
