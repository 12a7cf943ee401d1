"""What a JMS client's failover transport replays on a new connection, sent by hand over a
real socket so each step is certain: a synchronous send resent with the same MessageId
after a restart (the journal's replay, as a promoted standby does) or on a reconnect to
the same broker is answered and not stored again (the producer audit, ActiveMQ's
ProducerBrokerExchange); the newer connection with a ConnectionId takes over from the
old one; ConnectionControl may come before ConnectionInfo; ConsumerControl gives a
consumer restored with prefetch 0 its prefetch back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broker.core import QUEUE, Address
from protocols.openwire.codec import commands as c
from protocols.openwire.codec import loose, utf
from tests.conftest import BrokerThread
from tests.openwire.test_openwire_errors import RawOpenWire, handshake

OW = {"listeners.openwire.enabled": True}


class RawJms(RawOpenWire):
    """A hand-driven OpenWire client: one connection, one session, one producer."""

    def __init__(self, port: int, conn: str, *, reconnect: bool = False) -> None:
        raw = handshake(port)
        self.__dict__.update(raw.__dict__)
        self.conn = conn
        self.next_id = 0
        self.session = c.SessionId(connection_id=conn, value=1)
        self.producer = c.ProducerId(connection_id=conn, value=1, session_id=1)
        if reconnect:
            # What FailoverTransport.restoreTransport writes first.
            self.oneway(c.ConnectionControl(fault_tolerant=True))
        info = c.ConnectionInfo(connection_id=c.ConnectionId(conn), failover_reconnect=reconnect)
        assert isinstance(self.request(info), c.Response)
        self.oneway(c.SessionInfo(session_id=self.session))
        assert type(self.request(c.ProducerInfo(producer_id=self.producer))) is c.Response

    def oneway(self, cmd: c.Command) -> None:
        self.next_id += 1
        cmd.command_id = self.next_id
        self.sock.sendall(loose.encode(cmd))

    def request(self, cmd: c.Command) -> c.Response:
        cmd.response_required = True
        self.oneway(cmd)
        while True:
            got = self.command()
            if isinstance(got, c.Response) and got.correlation_id == cmd.command_id:
                return got

    def send(self, queue: str, seq: int) -> c.Response:
        """A persistent TextMessage `m<seq>`, numbered `seq` by this producer, as a
        synchronous send (the JMS default for persistent messages)."""
        text = utf.encode(f"m{seq}")
        msg = c.TextMessage(
            producer_id=self.producer,
            destination=c.Queue(queue),
            message_id=c.MessageId(producer_id=self.producer, producer_sequence_id=seq),
            persistent=True,
            content=len(text).to_bytes(4, "big") + text,
        )
        return self.request(msg)

    def consume(self, queue: str, n: int, prefetch: int = 10) -> list[c.MessageDispatch]:
        """`n` messages of `queue` on a new consumer, acknowledged (standard ack)."""
        cid = c.ConsumerId(connection_id=self.conn, session_id=1, value=self.next_id + 1)
        self.request(
            c.ConsumerInfo(consumer_id=cid, destination=c.Queue(queue), prefetch_size=prefetch)
        )
        got = self.dispatches(n)
        last = got[-1].message
        assert last is not None
        ack = c.MessageAck(
            destination=c.Queue(queue),
            consumer_id=cid,
            ack_type=c.ACK_STANDARD,
            last_message_id=last.message_id,
            message_count=n,
        )
        self.request(ack)
        self.request(c.RemoveInfo(object_id=cid))
        return got

    def dispatches(self, n: int) -> list[c.MessageDispatch]:
        got: list[c.MessageDispatch] = []
        while len(got) < n:
            cmd = self.command()
            if isinstance(cmd, c.MessageDispatch) and cmd.message is not None:
                got.append(cmd)
        return got


def bodies(b: BrokerThread, queue: str) -> list[bytes]:
    return b.call(lambda: [m.body for m in b.broker.core.browse(Address(QUEUE, queue))])


def inflight(b: BrokerThread, queue: str) -> int:
    return b.call(lambda: b.broker.core.queues[Address(QUEUE, queue)].inflight_count)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def restartable(data_dir: Path) -> Iterator[Callable[[], BrokerThread]]:
    """Brokers over one data directory, one after another (the journal's replay is
    what a promoted standby does over its mirror)."""
    running: list[BrokerThread] = []

    def start() -> BrokerThread:
        for b in running:
            b.stop()
        running.clear()
        running.append(BrokerThread(data_dir, **OW).start())
        return running[0]

    yield start
    for b in running:
        b.stop()


def test_a_resend_after_a_restart_is_answered_and_not_stored_twice(
    restartable: Callable[[], BrokerThread],
) -> None:
    b = restartable()
    port = b.broker.port("openwire")
    first = RawJms(port, "ID:resend-1:1")
    for seq in (1, 2, 3):
        assert type(first.send("ow.resend", seq)) is c.Response
    # m1 consumed: its ADD is still in the journal, which the audit is rebuilt from.
    RawJms(port, "ID:resend-consumer:1").consume("ow.resend", 1, prefetch=1)
    first.sock.close()
    b = restartable()
    assert b.call(lambda: b.broker.core.producer_audit.last("ID:resend-1:1:1:1")) == 3
    again = RawJms(b.broker.port("openwire"), "ID:resend-1:1", reconnect=True)
    # The sends whose answers "never came": answered as stored, stored once.
    for seq in (1, 2, 3):
        assert type(again.send("ow.resend", seq)) is c.Response
    assert type(again.send("ow.resend", 4)) is c.Response
    assert bodies(b, "ow.resend") == [b"m2", b"m3", b"m4"]
    # As ActiveMQ, only a reconnected connection is checked: a new connection whose
    # producer reuses the ids is a different client as far as the broker can tell.
    other = RawJms(b.broker.port("openwire"), "ID:resend-1:1")
    assert type(other.send("ow.resend", 4)) is c.Response
    assert bodies(b, "ow.resend") == [b"m2", b"m3", b"m4", b"m4"]


def test_a_reconnect_takes_over_its_old_connection_and_its_resend_is_dropped(
    broker_factory: Callable[..., BrokerThread],
) -> None:
    b = broker_factory(**OW)
    port = b.broker.port("openwire")
    old = RawJms(port, "ID:takeover-1:1")
    for seq in (1, 2):
        assert type(old.send("ow.takeover", seq)) is c.Response
    # The client's failover transport reconnects while the broker still holds the old
    # socket (a half-open connection): the newer one wins and the old one is closed.
    new = RawJms(port, "ID:takeover-1:1", reconnect=True)
    assert old.closed()
    assert type(new.send("ow.takeover", 2)) is c.Response
    assert type(new.send("ow.takeover", 3)) is c.Response
    assert bodies(b, "ow.takeover") == [b"m1", b"m2", b"m3"]
    # The broker and its other clients carry on.
    assert [d.message.message_id.producer_sequence_id for d in new.consume("ow.takeover", 3)] == [
        1,
        2,
        3,
    ]


def test_consumer_control_gives_a_restored_consumer_its_prefetch(
    broker_factory: Callable[..., BrokerThread],
) -> None:
    b = broker_factory(**OW)
    port = b.broker.port("openwire")
    producer = RawJms(port, "ID:control-p:1")
    for seq in (1, 2, 3):
        producer.send("ow.control", seq)
    client = RawJms(port, "ID:control-c:1", reconnect=True)
    cid = c.ConsumerId(connection_id="ID:control-c:1", session_id=1, value=1)
    # Restored in pull mode (prefetch 0): nothing comes without a MessagePull ...
    info = c.ConsumerInfo(consumer_id=cid, destination=c.Queue("ow.control"), prefetch_size=0)
    client.request(info)
    assert inflight(b, "ow.control") == 0
    # ... until the client, done with what it held, sends the consumer's own prefetch.
    client.oneway(c.ConsumerControl(consumer_id=cid, destination=c.Queue("ow.control"), prefetch=2))
    got = client.dispatches(2)
    assert [d.message.message_id.producer_sequence_id for d in got] == [1, 2]
    assert inflight(b, "ow.control") == 2
