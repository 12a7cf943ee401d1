"""AMQP 1.0 semantics with real proton clients: BlockingConnection, and Container programs
shaped like Qpid Proton's classic examples (written here, run against the broker)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from proton import Data, Delivery, Message
from proton.handlers import MessagingHandler, TransactionHandler
from proton.reactor import AtMostOnce, Container, Copy, LinkOption
from proton.utils import BlockingConnection, LinkDetached

from tests.conftest import WAIT, BrokerThread


class TopicCapability(LinkOption):
    """Asks for a topic by the source's `topic` capability, as Qpid JMS does."""

    def apply(self, link: Any) -> None:
        link.source.capabilities.put_array(False, Data.SYMBOL)
        link.source.capabilities.enter()
        link.source.capabilities.put_symbol("topic")
        link.source.capabilities.exit()


def amqp_url(broker: BrokerThread) -> str:
    return f"127.0.0.1:{broker.broker.port('amqp')}"


@pytest.fixture
def amqp(broker: BrokerThread) -> Iterator[Callable[..., BlockingConnection]]:
    conns: list[BlockingConnection] = []

    def make(**kw: Any) -> BlockingConnection:
        c = BlockingConnection(amqp_url(broker), timeout=WAIT, **kw)
        conns.append(c)
        return c

    yield make
    for c in conns:
        with contextlib.suppress(Exception):
            c.close()


def sync(c: BlockingConnection) -> None:
    """Round trip: everything sent on `c` before this has been processed by the broker
    (an unsettled send waits for its disposition, which follows earlier frames)."""
    c.create_sender("zonemq.test.sync").send(Message(body=""))


def modified_failed(r: Any) -> None:
    """Settle the oldest unsettled delivery as modified(delivery-failed=true), as Qpid JMS
    does on recover (BlockingReceiver.release leaves delivery-failed unset)."""
    r.fetcher.unsettled[0].local.failed = True
    r.settle(Delivery.MODIFIED)


def run_container(handler: MessagingHandler, timeout: float = 10.0) -> None:
    """Run a proton Container program in a thread; fail if it does not finish."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            Container(handler).run()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "container program did not finish"
    if errors:
        raise errors[0]


# -- the classic example shapes -----------------------------------------------------------


class HelloWorld(MessagingHandler):
    def __init__(self, url: str, address: str) -> None:
        super().__init__()
        self.url, self.address = url, address
        self.got: list[str] = []

    def on_start(self, event: Any) -> None:
        conn = event.container.connect(self.url)
        event.container.create_receiver(conn, self.address)
        event.container.create_sender(conn, self.address)

    def on_sendable(self, event: Any) -> None:
        event.sender.send(Message(body="Hello World!"))
        event.sender.close()

    def on_message(self, event: Any) -> None:
        self.got.append(event.message.body)
        event.connection.close()


def test_hello_world(broker: BrokerThread) -> None:
    h = HelloWorld(amqp_url(broker), "examples")
    run_container(h)
    assert h.got == ["Hello World!"]


class Send(MessagingHandler):
    def __init__(self, url: str, address: str, count: int) -> None:
        super().__init__()
        self.url, self.address, self.total = url, address, count
        self.sent = self.confirmed = 0

    def on_start(self, event: Any) -> None:
        event.container.create_sender(f"{self.url}/{self.address}")

    def on_sendable(self, event: Any) -> None:
        while event.sender.credit and self.sent < self.total:
            msg = Message(id=self.sent + 1, body={"sequence": self.sent + 1}, durable=True)
            event.sender.send(msg)
            self.sent += 1

    def on_accepted(self, event: Any) -> None:
        self.confirmed += 1
        if self.confirmed == self.total:
            event.connection.close()


class Recv(MessagingHandler):
    def __init__(self, url: str, address: str, count: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.url, self.address, self.expected = url, address, count
        self.received: list[Any] = []

    def on_start(self, event: Any) -> None:
        event.container.create_receiver(f"{self.url}/{self.address}")

    def on_message(self, event: Any) -> None:
        if event.message.id and event.message.id in [m.id for m in self.received]:
            return  # a duplicate, as the example ignores
        self.received.append(event.message)
        if len(self.received) == self.expected:
            event.receiver.close()
            event.connection.close()


def test_simple_send_and_receive_with_counts(broker: BrokerThread) -> None:
    url = amqp_url(broker)
    s = Send(url, "examples", 100)
    run_container(s)
    assert s.confirmed == 100
    assert broker.stats("examples").depth == 100
    r = Recv(url, "examples", 100)
    run_container(r)
    assert [m.body for m in r.received] == [{"sequence": i} for i in range(1, 101)]
    assert [m.id for m in r.received] == list(range(1, 101))  # the producer's ids
    assert broker.stats("examples").depth == 0


class Server(MessagingHandler):
    """The request/response example's server: upper-cases each request into reply-to."""

    def __init__(self, url: str, address: str, ready: threading.Event) -> None:
        super().__init__()
        self.url, self.address, self.ready = url, address, ready

    def on_start(self, event: Any) -> None:
        self.conn = event.container.connect(self.url)
        self.receiver = event.container.create_receiver(self.conn, self.address)
        self.server = event.container.create_sender(self.conn, None)  # anonymous relay

    def on_link_opened(self, event: Any) -> None:
        if event.receiver == self.receiver:
            self.ready.set()

    def on_message(self, event: Any) -> None:
        if event.message.body == "stop":
            event.connection.close()
            return
        self.server.send(
            Message(
                address=event.message.reply_to,
                body=event.message.body.upper(),
                correlation_id=event.message.correlation_id,
            )
        )


class Client(MessagingHandler):
    def __init__(self, url: str, address: str, requests: list[str]) -> None:
        super().__init__()
        self.url, self.address, self.requests = url, address, list(requests)
        self.replies: list[tuple[str, Any]] = []

    def on_start(self, event: Any) -> None:
        self.conn = event.container.connect(self.url)
        self.sender = event.container.create_sender(self.conn, self.address)
        self.receiver = event.container.create_receiver(self.conn, None, dynamic=True)

    def next_request(self) -> None:
        if self.receiver.remote_source.address:
            body = self.requests[0]
            req = Message(reply_to=self.receiver.remote_source.address, body=body)
            req.correlation_id = f"c-{len(self.replies)}"
            self.sender.send(req)

    def on_link_opened(self, event: Any) -> None:
        if event.receiver == self.receiver:
            self.next_request()

    def on_message(self, event: Any) -> None:
        self.replies.append((event.message.body, event.message.correlation_id))
        del self.requests[0]
        if self.requests:
            self.next_request()
        else:
            self.sender.send(Message(body="stop"))
            event.connection.close()


def test_request_response_with_a_dynamic_reply_queue(broker: BrokerThread) -> None:
    url = amqp_url(broker)
    ready = threading.Event()
    server_thread = threading.Thread(
        target=lambda: Container(Server(url, "requests", ready)).run(), daemon=True
    )
    server_thread.start()
    assert ready.wait(WAIT)
    client = Client(url, "requests", ["hello", "amqp", "world"])
    run_container(client)
    server_thread.join(WAIT)
    assert client.replies == [("HELLO", "c-0"), ("AMQP", "c-1"), ("WORLD", "c-2")]
    temps = [s for s in broker.call(broker.broker.core.stats) if s.kind == "temp-queue"]
    assert temps == []  # the dynamic queue went with its link


class Browser(MessagingHandler):
    def __init__(self, url: str, address: str, count: int) -> None:
        super().__init__()
        self.url, self.address, self.count = url, address, count
        self.seen: list[str] = []

    def on_start(self, event: Any) -> None:
        conn = event.container.connect(self.url)
        event.container.create_receiver(conn, self.address, options=Copy())

    def on_message(self, event: Any) -> None:
        self.seen.append(event.message.body)
        if len(self.seen) == self.count:
            event.connection.close()


def test_queue_browser_leaves_the_messages(broker: BrokerThread, amqp) -> None:
    c = amqp()
    s = c.create_sender("browse.me")
    for i in range(5):
        s.send(Message(body=f"m{i}"))
    b = Browser(amqp_url(broker), "browse.me", 5)
    run_container(b)
    assert b.seen == [f"m{i}" for i in range(5)]
    assert broker.stats("browse.me").depth == 5
    r = c.create_receiver("browse.me", credit=5)
    assert r.receive(WAIT).body == "m0"
    r.accept()


class TxSend(MessagingHandler, TransactionHandler):
    """Transactional send: batches of `batch` committed; the last batch aborted."""

    def __init__(self, url: str, address: str, batches: int, batch: int) -> None:
        super().__init__()
        self.url, self.address, self.batches, self.batch = url, address, batches, batch
        self.current_batch = self.committed = self.aborted = self.sent = 0
        self.txn: Any = None

    def on_start(self, event: Any) -> None:
        self.container = event.container
        self.conn = event.container.connect(self.url)
        self.sender = event.container.create_sender(self.conn, self.address)
        self.container.declare_transaction(self.conn, handler=self)

    def on_transaction_declared(self, event: Any) -> None:
        self.txn = event.transaction
        self.current_batch = 0
        self.send()

    def on_sendable(self, event: Any) -> None:
        self.send()

    def send(self) -> None:
        while self.txn and self.sender.credit and self.current_batch < self.batch:
            self.txn.send(self.sender, Message(body=f"tx-{self.sent}", durable=True))
            self.sent += 1
            self.current_batch += 1
            if self.current_batch == self.batch:
                if self.committed + 1 < self.batches:
                    self.txn.commit()
                else:
                    self.txn.abort()
                self.txn = None

    def on_transaction_committed(self, event: Any) -> None:
        self.committed += 1
        self.container.declare_transaction(self.conn, handler=self)

    def on_transaction_aborted(self, event: Any) -> None:
        self.aborted += 1
        event.connection.close()


class TxRecv(MessagingHandler, TransactionHandler):
    """Transactional receive: accept `batch` messages per transaction and commit."""

    def __init__(self, url: str, address: str, batch: int, total: int) -> None:
        super().__init__(prefetch=0, auto_accept=False)
        self.url, self.address, self.batch, self.total = url, address, batch, total
        self.current = 0
        self.received: list[str] = []
        self.txn: Any = None

    def on_start(self, event: Any) -> None:
        self.container = event.container
        self.conn = event.container.connect(self.url)
        self.receiver = event.container.create_receiver(self.conn, self.address)
        self.container.declare_transaction(self.conn, handler=self)

    def on_transaction_declared(self, event: Any) -> None:
        self.receiver.flow(self.batch)
        self.txn = event.transaction

    def on_message(self, event: Any) -> None:
        self.received.append(event.message.body)
        self.current += 1
        self.txn.accept(event.delivery)
        if self.current == self.batch:
            self.txn.commit()
            self.txn = None

    def on_transaction_committed(self, event: Any) -> None:
        self.current = 0
        if len(self.received) >= self.total:
            event.connection.close()
        else:
            self.container.declare_transaction(self.conn, handler=self)


def test_transactional_send_and_receive(broker: BrokerThread) -> None:
    url = amqp_url(broker)
    sender = TxSend(url, "tx.examples", batches=3, batch=4)
    run_container(sender)
    assert (sender.committed, sender.aborted) == (2, 1)
    assert broker.stats("tx.examples").depth == 8  # the aborted batch never arrived
    receiver = TxRecv(url, "tx.examples", batch=4, total=8)
    run_container(receiver)
    assert receiver.received == [f"tx-{i}" for i in range(8)]
    s = broker.stats("tx.examples")
    assert (s.depth, s.acked) == (0, 8)


# -- credit, outcomes, settle modes -------------------------------------------------------


def test_link_credit_is_the_consumers_credit(broker: BrokerThread, amqp) -> None:
    c = amqp()
    s = c.create_sender("credit.q")
    for i in range(10):
        s.send(Message(body=f"m{i}"))
    r = c.create_receiver("credit.q", credit=3)
    first = r.receive(WAIT)
    assert first.body == "m0"
    stats = broker.stats("credit.q")
    assert stats.inflight == 3  # only the credit was dispatched
    for _ in range(3):
        r.accept()
        r.receive(WAIT)
    r.accept()
    sync(c)
    stats = broker.stats("credit.q")
    assert stats.acked == 4


def test_outcomes_map_to_ack_release_nack_and_dead_letter(broker: BrokerThread, amqp) -> None:
    c = amqp()
    s = c.create_sender("outcomes")
    s.send(Message(body="x", durable=True))
    r = c.create_receiver("outcomes", credit=1)
    m = r.receive(WAIT)
    assert (m.delivery_count, m.first_acquirer) == (0, True)
    r.release(delivered=False)  # released: back unchanged
    m = r.receive(WAIT)
    assert m.delivery_count == 0
    r.release(delivered=True)  # modified without delivery-failed: as released
    m = r.receive(WAIT)
    assert m.delivery_count == 0
    modified_failed(r)  # modified(delivery-failed): count + 1
    m = r.receive(WAIT)
    assert (m.delivery_count, m.first_acquirer) == (1, False)
    r.reject()  # rejected: straight to the dead letter queue
    dlq = c.create_receiver("ActiveMQ.DLQ", credit=1)
    d = dlq.receive(WAIT)
    assert d.body == "x"
    assert d.properties["originalDestination"] == "queue://outcomes"
    dlq.accept()
    sync(c)
    stats = broker.stats("outcomes")
    assert (stats.depth, stats.dlq, stats.redelivered) == (0, 1, 1)


def test_redelivery_limit_dead_letters_after_modified(broker_factory) -> None:
    broker = broker_factory(**{"destinations.max_redeliveries": 1})
    c = BlockingConnection(amqp_url(broker), timeout=WAIT)
    try:
        c.create_sender("limit.q").send(Message(body="p", durable=True))
        r = c.create_receiver("limit.q", credit=1)
        r.receive(WAIT)
        modified_failed(r)
        r.receive(WAIT)
        modified_failed(r)
        d = c.create_receiver("ActiveMQ.DLQ", credit=1).receive(WAIT)
        assert d.body == "p"
        assert "exceeds redelivery limit" in d.properties["dlqDeliveryFailureCause"]
    finally:
        c.close()


def test_pre_settled_receive_is_auto_ack(broker: BrokerThread, amqp) -> None:
    c = amqp()
    s = c.create_sender("presettled")
    for i in range(3):
        s.send(Message(body=f"m{i}"))
    r = c.create_receiver("presettled", credit=10, options=AtMostOnce())
    assert [r.receive(WAIT).body for _ in range(3)] == ["m0", "m1", "m2"]
    sync(c)
    stats = broker.stats("presettled")
    assert (stats.depth, stats.inflight, stats.acked) == (0, 0, 3)


def test_pre_settled_send_is_routed(broker: BrokerThread, amqp) -> None:
    c = amqp()
    s = c.create_sender("presettled.send", options=AtMostOnce())
    s.send(Message(body="fire and forget"))
    r = c.create_receiver("presettled.send")
    assert r.receive(WAIT).body == "fire and forget"
    r.accept()


def test_unsettled_deliveries_come_back_when_the_link_closes(broker: BrokerThread, amqp) -> None:
    c = amqp()
    c.create_sender("comeback").send(Message(body="again"))
    r = c.create_receiver("comeback", credit=1)
    r.receive(WAIT)
    r.close()
    r2 = c.create_receiver("comeback", credit=1)
    m = r2.receive(WAIT)
    assert (m.body, m.first_acquirer, m.delivery_count) == ("again", False, 1)
    r2.accept()


def test_topics_by_prefix_and_by_capability(broker: BrokerThread, amqp) -> None:
    c = amqp()
    a = c.create_receiver("topic://news", credit=10, name="a")
    b = c.create_receiver("news", credit=10, name="b", options=TopicCapability())
    s = c.create_sender("topic://news")
    s.send(Message(body="headline"))
    assert a.receive(WAIT).body == "headline"
    assert b.receive(WAIT).body == "headline"
    a.accept()
    b.accept()
    assert broker.stats("news", "topic").enqueued == 1
    assert broker.stats("news") is None  # never a queue


def test_anonymous_relay_routes_by_to(broker: BrokerThread, amqp) -> None:
    c = amqp()
    q = c.create_receiver("relay.q", credit=10)
    t = c.create_receiver("topic://relay.t", credit=10)
    s = c.create_sender(None)
    s.send(Message(address="relay.q", body="to a queue"))
    s.send(Message(address="topic://relay.t", body="to a topic"))
    assert q.receive(WAIT).body == "to a queue"
    assert t.receive(WAIT).body == "to a topic"
    q.accept()
    t.accept()


def test_anonymous_relay_without_to_is_rejected(amqp) -> None:
    from proton.utils import SendException

    c = amqp()
    s = c.create_sender(None)
    with pytest.raises(SendException):
        s.send(Message(body="nowhere"))


def test_attach_to_a_missing_temporary_queue_is_refused(amqp) -> None:
    c = amqp()
    with pytest.raises(LinkDetached) as info:
        c.create_receiver("temp-queue://ID:nobody-1:1")
    assert "amqp:resource-deleted" in str(info.value)
    # The connection survives a refused link.
    c.create_sender("still.fine").send(Message(body="ok"))


def test_disconnect_aborts_open_transactions_and_returns_messages(
    broker: BrokerThread, amqp
) -> None:
    c = amqp()
    c.create_sender("lost.q").send(Message(body="kept"))
    r = c.create_receiver("lost.q", credit=1)
    r.receive(WAIT)
    c.close()
    c2 = amqp()
    m = c2.create_receiver("lost.q", credit=1).receive(WAIT)
    assert m.body == "kept"
