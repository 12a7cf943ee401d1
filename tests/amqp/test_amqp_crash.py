"""A durable AMQP transfer the broker accepted survives SIGKILL of the broker process."""

from __future__ import annotations

import contextlib
import re

from proton import Message as AmqpMessage
from proton.utils import BlockingConnection

from tests.daemon.test_crash import Brokers, brokers  # noqa: F401 (the fixture)

AMQP_LISTENER = re.compile(r"amqp listener on (\S+):(\d+)")


def amqp_port(proc) -> int:  # type: ignore[no-untyped-def]
    return int(proc.wait_for(AMQP_LISTENER).group(2))


def test_accepted_durable_transfers_survive_sigkill(brokers: Brokers) -> None:  # noqa: F811
    first = brokers.start()
    port = amqp_port(first)
    # A short timeout: after the kill, close() can only wait for it to run out.
    conn = BlockingConnection(f"127.0.0.1:{port}", timeout=2)
    sender = conn.create_sender("queue://amqp.crash")
    # BlockingSender.send returns once the broker has settled the delivery as accepted,
    # which for a durable message means it is in the journal.
    for i in range(50):
        sender.send(AmqpMessage(body=f"m{i}", durable=True, properties={"n": i}))
    first.kill()
    with contextlib.suppress(Exception):  # the peer is gone: closing can only time out
        conn.close()

    second = brokers.start()
    assert second.recovered >= 50
    port = amqp_port(second)
    conn = BlockingConnection(f"127.0.0.1:{port}", timeout=10)
    receiver = conn.create_receiver("queue://amqp.crash", credit=100)
    got = []
    for _ in range(50):
        msg = receiver.receive(timeout=10)
        got.append(msg.properties["n"])
        receiver.accept()
    assert got == list(range(50))
    conn.close()
    second.kill()


def test_unsettled_durable_deliveries_come_back_counted_after_sigkill(
    brokers: Brokers,  # noqa: F811
) -> None:
    """A durable message delivered on an unsettled link leaves the broker only once its
    delivery record is durable: killed the moment the consumer has it, the broker gives
    it back with delivery-count > 0 and first-acquirer false. A large durable transfer
    just before the attach keeps the journal busy, so without that rule the deliveries
    would go out long before their records were on disk."""
    first = brokers.start()
    port = amqp_port(first)
    conn = BlockingConnection(f"127.0.0.1:{port}", timeout=10)
    sender = conn.create_sender("queue://amqp.counted")
    for i in range(10):
        sender.send(AmqpMessage(body=f"m{i}", durable=True, properties={"n": i}))
    big = conn.create_sender("queue://amqp.counted.big")
    # Not waited for: the transfer goes out ahead of the receiver's attach below.
    big.link.send(AmqpMessage(body=b"b" * (48 * 1024 * 1024), durable=True))
    receiver = conn.create_receiver("queue://amqp.counted", credit=10)
    got = [receiver.receive(timeout=10) for _ in range(10)]
    first.kill()
    assert [m.properties["n"] for m in got] == list(range(10))
    assert all(m.first_acquirer and not m.delivery_count for m in got)
    with contextlib.suppress(Exception):  # the peer is gone: closing can only time out
        conn.close()

    second = brokers.start()
    port = amqp_port(second)
    conn = BlockingConnection(f"127.0.0.1:{port}", timeout=10)
    receiver = conn.create_receiver("queue://amqp.counted", credit=10)
    again = []
    for _ in range(10):
        again.append(receiver.receive(timeout=10))
        receiver.accept()
    assert [m.properties["n"] for m in again] == list(range(10))
    unflagged = [m.properties["n"] for m in again if m.first_acquirer or m.delivery_count < 1]
    assert not unflagged, f"delivered before the crash, not counted after it: {unflagged}"
    conn.close()
    second.kill()
