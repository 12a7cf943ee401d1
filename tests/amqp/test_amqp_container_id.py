"""AMQP container-id uniqueness (issue 12): as ActiveMQ 5.17's AmqpConnection, a second
connection opening with the container-id of one still open is refused (opened with
`amqp:connection-establishment-failed`, then closed with `amqp:invalid-field`, the info
naming `container-id`, and RegionBroker's "already connected" text); the first is
unaffected, and the id is free again once it closes. STOMP's client-id is the same
namespace (ActiveMQ's JMS client id)."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
import stomp
from proton import Message, symbol
from proton.handlers import MessagingHandler
from proton.reactor import Container
from proton.utils import BlockingConnection, ConnectionClosed

from tests.amqp.test_amqp_messaging import amqp_url
from tests.conftest import WAIT, BrokerThread, wait_until

_ids = itertools.count(1)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerThread]:
    b = BrokerThread(tmp_path_factory.mktemp("cid"))
    b.start()
    yield b
    b.stop()


def _cid() -> str:
    return f"amqfeat-cid-{next(_ids)}"


class _Opener(MessagingHandler):
    """Opens one connection and records what the broker's open and close carried."""

    def __init__(self, url: str, cid: str) -> None:
        super().__init__()
        self.url = url
        self.cid = cid
        self.properties: Any = None
        self.condition: Any = None

    def on_start(self, event: Any) -> None:
        event.container.container_id = self.cid
        event.container.connect(self.url, reconnect=False)

    def on_connection_remote_open(self, event: Any) -> None:
        self.properties = event.connection.remote_properties
        if not self.properties:
            # Accepted: close it ourselves so the test fails instead of waiting.
            event.connection.close()

    def on_connection_remote_close(self, event: Any) -> None:
        self.condition = event.connection.remote_condition
        event.connection.close()

    def on_transport_error(self, event: Any) -> None:
        if self.condition is None:
            self.condition = event.connection.remote_condition


def _refusal(broker: BrokerThread, cid: str) -> _Opener:
    opener = _Opener(amqp_url(broker), cid)
    container = Container(opener)
    container.timeout = WAIT
    container.run()
    return opener


def _connects(broker: BrokerThread, cid: str) -> bool:
    try:
        BlockingConnection(amqp_url(broker), timeout=WAIT, container_id=cid).close()
    except ConnectionClosed:
        return False
    return True


def test_second_connection_with_same_container_id_is_refused(broker: BrokerThread) -> None:
    cid = _cid()
    first = BlockingConnection(amqp_url(broker), timeout=WAIT, container_id=cid)
    try:
        refused = _refusal(broker, cid)
        cond = refused.condition
        assert cond.name == "amqp:invalid-field"
        assert re.fullmatch(
            rf"Broker: \S+ - Client: {cid} already connected from tcp://127\.0\.0\.1:\d+",
            cond.description,
        ), cond.description
        assert cond.info == {symbol("invalid-field"): symbol("container-id")}
        assert refused.properties == {symbol("amqp:connection-establishment-failed"): True}
        # The first connection is unaffected.
        snd = first.create_sender("queue://amqfeat.cid.q")
        rcv = first.create_receiver("queue://amqfeat.cid.q")
        snd.send(Message(body="still here"))
        assert rcv.receive(timeout=WAIT).body == "still here"
        rcv.accept()
    finally:
        first.close()
    # Free again once the holder has gone.
    assert wait_until(lambda: _connects(broker, cid))


def test_stomp_client_id_and_amqp_container_id_share_the_namespace(broker: BrokerThread) -> None:
    cid = _cid()
    first = BlockingConnection(amqp_url(broker), timeout=WAIT, container_id=cid)
    errors: list[str] = []

    class Listener(stomp.ConnectionListener):
        def on_error(self, frame: stomp.utils.Frame) -> None:
            errors.append(frame.headers.get("message", ""))

    s = stomp.Connection([("127.0.0.1", broker.stomp_port)])
    s.set_listener("l", Listener())
    try:
        with contextlib.suppress(stomp.exception.ConnectFailedException):
            s.connect(headers={"client-id": cid}, wait=True)
        wait_until(lambda: bool(errors))
        assert re.fullmatch(
            rf"Broker: \S+ - Client: {cid} already connected from tcp://127\.0\.0\.1:\d+",
            errors[0],
        ), errors[0]
    finally:
        with contextlib.suppress(Exception):
            s.disconnect()
        first.close()


def test_distinct_container_ids_connect_side_by_side(broker: BrokerThread) -> None:
    a = BlockingConnection(amqp_url(broker), timeout=WAIT, container_id=_cid())
    b = BlockingConnection(amqp_url(broker), timeout=WAIT, container_id=_cid())
    a.close()
    b.close()
