"""Local transactions over STOMP: BEGIN / COMMIT / ABORT around SEND and ACK."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client, quiet, subscribe

VERSIONS = ["1.0", "1.1", "1.2"]


def disconnect(c: Client) -> None:
    c.disconnect()
    assert c.listener.disconnected.wait(5)


def ack_in_tx(c: Client, frame: Any, tx: str) -> None:
    h = frame.headers
    if c.version == "1.2":
        c.conn.ack(h["ack"], transaction=tx)
    elif c.version == "1.1":
        c.conn.ack(h["message-id"], h["subscription"], transaction=tx)
    else:
        c.conn.ack(h["message-id"], transaction=tx)


@pytest.mark.parametrize("version", VERSIONS)
def test_send_in_transaction_delivered_only_at_commit(connect, version: str) -> None:
    consumer = connect(version)
    subscribe(consumer, "/queue/tx-send", "s1")
    producer = connect(version)
    producer.begin("tx1")
    producer.send("/queue/tx-send", "one", transaction="tx1")
    producer.send("/queue/tx-send", "two", transaction="tx1")
    producer.sync()
    assert quiet(consumer)

    producer.commit("tx1", receipt="committed")
    assert producer.listener.receipt() == "committed"
    assert [m.body for m in consumer.listener.take(2)] == ["one", "two"]
    assert quiet(consumer)


def test_send_outside_transaction_is_not_held(connect) -> None:
    consumer = connect()
    subscribe(consumer, "/queue/tx-mixed", "s1")
    producer = connect()
    producer.begin("tx1")
    producer.send("/queue/tx-mixed", "held", transaction="tx1")
    producer.send("/queue/tx-mixed", "direct")
    assert consumer.listener.next().body == "direct"
    producer.commit("tx1")
    assert consumer.listener.next().body == "held"


def test_send_in_transaction_to_topic_delivered_at_commit(connect) -> None:
    consumer = connect()
    subscribe(consumer, "/topic/tx-topic", "s1")
    producer = connect()
    producer.begin("tx1")
    producer.send("/topic/tx-topic", "news", transaction="tx1")
    producer.sync()
    assert quiet(consumer)
    producer.commit("tx1")
    assert consumer.listener.next().body == "news"


@pytest.mark.parametrize("version", VERSIONS)
def test_abort_drops_sends(connect, version: str) -> None:
    consumer = connect(version)
    subscribe(consumer, "/queue/tx-abort", "s1")
    producer = connect(version)
    producer.begin("tx1")
    producer.send("/queue/tx-abort", "dropped", transaction="tx1")
    producer.abort("tx1", receipt="aborted")
    assert producer.listener.receipt() == "aborted"
    producer.send("/queue/tx-abort", "after")
    assert consumer.listener.next().body == "after"
    assert quiet(consumer)


@pytest.mark.parametrize("version", VERSIONS)
def test_ack_in_transaction_then_abort_makes_it_unacked_again(connect, version: str) -> None:
    """As ActiveMQ: ABORT does not redeliver at once; the message is in flight and
    unacknowledged again, so the same ack id can be acknowledged outside the tx."""
    c = connect(version)
    subscribe(c, "/queue/tx-ack-abort", "s1", ack="client-individual")
    c.send("/queue/tx-ack-abort", "m")
    first = c.listener.next()

    c.begin("tx1")
    ack_in_tx(c, first, "tx1")
    c.abort("tx1", receipt="aborted")
    assert c.listener.receipt() == "aborted"
    assert quiet(c)

    c.ack_frame(first)
    c.sync()
    assert c.listener.errors.empty()
    disconnect(c)
    again = connect(version)
    subscribe(again, "/queue/tx-ack-abort", "s1")
    assert quiet(again)


@pytest.mark.parametrize("version", VERSIONS)
def test_ack_in_transaction_then_abort_redelivered_after_disconnect(connect, version: str) -> None:
    c = connect(version)
    subscribe(c, "/queue/tx-ack-abort2", "s1", ack="client-individual")
    c.send("/queue/tx-ack-abort2", "m")
    first = c.listener.next()
    assert first.headers.get("redelivered", "false") == "false"
    c.begin("tx1")
    ack_in_tx(c, first, "tx1")
    c.abort("tx1")
    disconnect(c)

    again = connect(version)
    subscribe(again, "/queue/tx-ack-abort2", "s1", ack="client-individual")
    back = again.listener.next()
    assert back.body == "m"
    assert back.headers["redelivered"] == "true"
    assert back.headers["message-id"] == first.headers["message-id"]
    again.ack_frame(back)
    assert quiet(again)
    assert again.listener.errors.empty()


@pytest.mark.parametrize("version", VERSIONS)
def test_ack_in_transaction_then_commit_is_final(connect, version: str) -> None:
    c = connect(version)
    subscribe(c, "/queue/tx-ack-commit", "s1", ack="client-individual")
    c.send("/queue/tx-ack-commit", "m")
    first = c.listener.next()
    c.begin("tx1")
    ack_in_tx(c, first, "tx1")
    c.commit("tx1", receipt="committed")
    assert c.listener.receipt() == "committed"
    assert quiet(c)
    disconnect(c)

    again = connect(version)
    subscribe(again, "/queue/tx-ack-commit", "s1", ack="client-individual")
    assert quiet(again)


def nack_in_tx(c: Client, frame: Any, tx: str) -> None:
    h = frame.headers
    if c.version == "1.2":
        c.conn.nack(h["ack"], transaction=tx)
    else:
        c.conn.nack(h["message-id"], h["subscription"], transaction=tx)


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_nack_in_transaction_dead_letters_at_commit(connect, version: str) -> None:
    dlq = connect()
    subscribe(dlq, "/queue/ActiveMQ.DLQ", "dlq")
    c = connect(version)
    subscribe(c, "/queue/tx-nack", "s1", ack="client-individual")
    c.send("/queue/tx-nack", "poison", headers={"persistent": "true"})
    msg = c.listener.next()
    c.begin("tx1")
    nack_in_tx(c, msg, "tx1")
    c.sync()
    assert quiet(dlq)

    c.commit("tx1")
    dead = dlq.listener.next()
    assert dead.body == "poison"
    assert dead.headers["original-destination"] == "/queue/tx-nack"
    assert quiet(c)


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_nack_in_transaction_then_abort_undoes_the_nack(connect, version: str) -> None:
    dlq = connect()
    subscribe(dlq, "/queue/ActiveMQ.DLQ", "dlq")
    c = connect(version)
    subscribe(c, "/queue/tx-nack-abort", "s1", ack="client-individual")
    c.send("/queue/tx-nack-abort", "poison", headers={"persistent": "true"})
    msg = c.listener.next()
    c.begin("tx1")
    nack_in_tx(c, msg, "tx1")
    c.abort("tx1")
    assert quiet(c)
    assert quiet(dlq)
    disconnect(c)

    again = connect(version)
    subscribe(again, "/queue/tx-nack-abort", "s1")
    back = again.listener.next()
    assert back.body == "poison"
    assert back.headers["redelivered"] == "true"
    assert quiet(dlq)


@pytest.mark.parametrize("version", VERSIONS)
def test_open_transaction_aborted_at_disconnect(connect, version: str) -> None:
    consumer = connect(version)
    subscribe(consumer, "/queue/tx-open", "s1")
    producer = connect(version)
    producer.begin("tx1")
    producer.send("/queue/tx-open", "never", transaction="tx1")
    producer.sync()
    disconnect(producer)
    assert quiet(consumer)

    # The transaction's sends did not wait on the queue either.
    late = connect(version)
    subscribe(late, "/queue/tx-open", "s2")
    assert quiet(late)


def test_open_transaction_ack_undone_at_disconnect(connect) -> None:
    c = connect()
    subscribe(c, "/queue/tx-open-ack", "s1", ack="client-individual")
    c.send("/queue/tx-open-ack", "m")
    first = c.listener.next()
    c.begin("tx1")
    ack_in_tx(c, first, "tx1")
    c.sync()
    disconnect(c)

    again = connect()
    subscribe(again, "/queue/tx-open-ack", "s1", ack="client-individual")
    back = again.listener.next()
    assert back.body == "m"
    assert back.headers["redelivered"] == "true"
    assert quiet(again)


def test_commit_of_unknown_transaction_is_an_error(connect) -> None:
    c = connect()
    c.commit("nope", receipt="r")
    err = c.listener.error()
    assert err.headers.get("message")
    assert err.headers.get("receipt-id") == "r"


def test_send_in_unknown_transaction_is_not_delivered(connect) -> None:
    consumer = connect()
    subscribe(consumer, "/queue/tx-unknown", "s1")
    producer = connect()
    producer.send("/queue/tx-unknown", "x", transaction="nope")
    assert producer.listener.error().headers.get("message")
    assert quiet(consumer)
