"""Acknowledgement over STOMP: auto, client (cumulative), client-individual, NACK,
redelivery of unacknowledged messages, redelivery limits and dead letter queues."""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest

from tests.conftest import Client, bodies, headers_of, quiet, subscribe

VERSIONS = ["1.0", "1.1", "1.2"]
NACK_VERSIONS = ["1.1", "1.2"]
PREFETCH_1 = {"activemq.prefetchSize": "1"}


def disconnect(c: Client) -> None:
    """DISCONNECT and wait until the broker has answered and closed the socket."""
    c.disconnect()
    assert c.listener.disconnected.wait(5)


def send_all(c: Client, dest: str, payloads: list[str], **headers: str) -> None:
    for body in payloads:
        c.send(dest, body, headers=headers)
    c.sync()


def redelivered(frame: Any) -> bool:
    """ActiveMQ sends `redelivered` only when true (redelivered:false is tolerated)."""
    return frame.headers.get("redelivered", "false") == "true"


# -- auto -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_auto_ack_messages_are_gone_after_delivery(connect, version: str) -> None:
    c = connect(version)
    subscribe(c, "/queue/auto", "s1")
    send_all(c, "/queue/auto", ["a", "b"])
    assert bodies(c.listener.take(2)) == ["a", "b"]
    disconnect(c)

    again = connect(version)
    subscribe(again, "/queue/auto", "s1")
    assert quiet(again)


# -- client (cumulative) --------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_client_ack_is_cumulative(connect, version: str) -> None:
    c = connect(version)
    subscribe(c, "/queue/cum", "s1", ack="client")
    send_all(c, "/queue/cum", ["m1", "m2", "m3"])
    got = c.listener.take(3)
    assert bodies(got) == ["m1", "m2", "m3"]
    c.ack_frame(got[1])
    c.sync()
    disconnect(c)

    again = connect(version)
    subscribe(again, "/queue/cum", "s1", ack="client")
    back = again.listener.next()
    assert back.body == "m3"
    assert back.headers["redelivered"] == "true"
    assert quiet(again)


@pytest.mark.parametrize("version", VERSIONS)
def test_client_ack_is_per_subscription(connect, version: str) -> None:
    """A cumulative ACK on one subscription leaves another subscription's messages alone."""
    c = connect(version)
    subscribe(c, "/queue/cum-a", "a", ack="client")
    subscribe(c, "/queue/cum-b", "b", ack="client")
    send_all(c, "/queue/cum-a", ["a1"])
    send_all(c, "/queue/cum-b", ["b1"])
    send_all(c, "/queue/cum-a", ["a2"])
    got = {f.body: f for f in c.listener.take(3)}
    c.ack_frame(got["a2"])
    c.sync()
    disconnect(c)

    again = connect(version)
    subscribe(again, "/queue/cum-a", "a")
    subscribe(again, "/queue/cum-b", "b")
    back = again.listener.next()
    assert (back.body, back.headers["redelivered"]) == ("b1", "true")
    assert quiet(again)


# -- client-individual ----------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_client_individual_acks_only_that_message(connect, version: str) -> None:
    c = connect(version)
    subscribe(c, "/queue/ind", "s1", ack="client-individual")
    send_all(c, "/queue/ind", ["m1", "m2", "m3"])
    got = c.listener.take(3)
    c.ack_frame(got[1])
    c.sync()
    assert c.listener.errors.empty()
    disconnect(c)

    again = connect(version)
    subscribe(again, "/queue/ind", "s1", ack="client-individual")
    back = again.listener.take(2)
    assert bodies(back) == ["m1", "m3"]
    assert {f.headers["redelivered"] for f in back} == {"true"}
    assert quiet(again)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("ack", ["client", "client-individual"])
def test_redelivered_messages_can_be_acked_for_good(connect, version: str, ack: str) -> None:
    c = connect(version)
    subscribe(c, "/queue/reack", "s1", ack=ack)
    send_all(c, "/queue/reack", ["m1", "m2"])
    c.listener.take(2)
    disconnect(c)

    again = connect(version)
    subscribe(again, "/queue/reack", "s1", ack=ack)
    back = again.listener.take(2)
    assert bodies(back) == ["m1", "m2"]
    for frame in back:
        again.ack_frame(frame)
    again.sync()
    assert again.listener.errors.empty()
    disconnect(again)

    third = connect(version)
    subscribe(third, "/queue/reack", "s1", ack=ack)
    assert quiet(third)


def test_backlog_delivered_at_subscribe_can_be_acked_1_2(connect) -> None:
    """Messages waiting before a 1.2 client-mode SUBSCRIBE still carry a usable ack id."""
    producer = connect()
    send_all(producer, "/queue/backlog-ack", ["m1"])
    c = connect("1.2")
    subscribe(c, "/queue/backlog-ack", "s1", ack="client-individual")
    msg = c.listener.next()
    assert msg.body == "m1"
    assert "ack" in msg.headers
    c.conn.ack(msg.headers["ack"], receipt="acked")
    assert c.listener.receipt() == "acked"
    assert c.listener.errors.empty()


# -- unacknowledged messages come back --------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("ack", ["client", "client-individual"])
def test_unacked_redelivered_after_disconnect(connect, version: str, ack: str) -> None:
    c = connect(version)
    subscribe(c, "/queue/un-disc", "s1", ack=ack)
    send_all(c, "/queue/un-disc", ["x", "y"])
    first = c.listener.take(2)
    assert not any(redelivered(f) for f in first)
    disconnect(c)

    again = connect(version)
    subscribe(again, "/queue/un-disc", "s1", ack=ack)
    back = again.listener.take(2)
    assert bodies(back) == ["x", "y"]
    assert {f.headers["redelivered"] for f in back} == {"true"}
    assert [f.headers["message-id"] for f in back] == [f.headers["message-id"] for f in first]


@pytest.mark.parametrize("version", VERSIONS)
def test_unacked_redelivered_after_unsubscribe(connect, version: str) -> None:
    c = connect(version)
    subscribe(c, "/queue/un-unsub", "s1", ack="client-individual")
    send_all(c, "/queue/un-unsub", ["x"])
    assert not redelivered(c.listener.next())
    c.unsubscribe(id="s1", receipt="unsub")
    assert c.listener.receipt() == "unsub"

    subscribe(c, "/queue/un-unsub", "s2", ack="client-individual")
    back = c.listener.next()
    assert back.body == "x"
    assert back.headers["redelivered"] == "true"
    assert back.headers["subscription"] == "s2"


@pytest.mark.parametrize("how", ["disconnect", "unsubscribe"])
def test_unacked_go_to_a_waiting_consumer(connect, how: str) -> None:
    """Returned messages are dispatched at once to another consumer already waiting."""
    holder = connect()
    subscribe(holder, "/queue/handover", "h", ack="client-individual")
    send_all(holder, "/queue/handover", ["x", "y"])
    held = holder.listener.take(2)
    waiting = connect()
    subscribe(waiting, "/queue/handover", "w", ack="client-individual")
    assert quiet(waiting)

    if how == "disconnect":
        disconnect(holder)
    else:
        holder.unsubscribe(id="h", receipt="unsub")
        assert holder.listener.receipt() == "unsub"

    back = waiting.listener.take(2)
    assert bodies(back) == ["x", "y"]
    assert all(redelivered(f) for f in back)
    assert {f.headers["subscription"] for f in back} == {"w"}
    assert [f.headers["message-id"] for f in back] == [f.headers["message-id"] for f in held]


def test_unacked_redelivered_after_socket_dropped(connect, raw) -> None:
    victim = raw()
    victim.connect("1.2")
    victim.send(
        b"SUBSCRIBE\ndestination:/queue/un-drop\nid:s1\nack:client-individual\nreceipt:r\n\n\x00"
    )
    assert headers_of(victim.frame())[0] == "RECEIPT"
    producer = connect()
    send_all(producer, "/queue/un-drop", ["x"])
    command, headers = headers_of(victim.frame())
    assert command == "MESSAGE"
    assert headers.get("redelivered", "false") == "false"

    other = connect()
    subscribe(other, "/queue/un-drop", "s2", ack="client-individual")
    assert quiet(other)
    # Reset the connection (SO_LINGER 0): no DISCONNECT, no FIN handshake.
    victim.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    victim.close()

    back = other.listener.next()
    assert back.body == "x"
    assert back.headers["redelivered"] == "true"
    assert back.headers["message-id"] == headers["message-id"].replace("\\c", ":")


# -- NACK and dead letter queues ------------------------------------------------------------


@pytest.mark.parametrize("version", NACK_VERSIONS)
@pytest.mark.parametrize("ack", ["client", "client-individual"])
def test_nack_moves_message_to_dlq_at_once(connect, version: str, ack: str) -> None:
    dlq = connect()
    subscribe(dlq, "/queue/ActiveMQ.DLQ", "dlq")
    c = connect(version)
    subscribe(c, "/queue/poison", "s1", ack=ack)
    send_all(c, "/queue/poison", ["bad"], color="red", persistent="true")
    msg = c.listener.next()
    c.nack_frame(msg)

    dead = dlq.listener.next()
    assert dead.body == "bad"
    assert dead.headers["original-destination"] == "/queue/poison"
    assert dead.headers["destination"] == "/queue/ActiveMQ.DLQ"
    assert dead.headers["message-id"] == msg.headers["message-id"]
    assert dead.headers["persistent"] == "true"
    assert dead.headers["originalExpiration"] == "0"
    assert dead.headers["color"] == "red"
    # No redelivery attempt on the original subscription.
    assert quiet(c)

    disconnect(c)
    again = connect(version)
    subscribe(again, "/queue/poison", "s1")
    assert quiet(again)


def test_nack_of_non_persistent_message_discards_it(connect) -> None:
    """ActiveMQ's DLQ strategy drops non-persistent messages (processNonPersistent=false)."""
    dlq = connect()
    subscribe(dlq, "/queue/ActiveMQ.DLQ", "dlq")
    c = connect()
    subscribe(c, "/queue/poison-np", "s1", ack="client-individual")
    send_all(c, "/queue/poison-np", ["bad"])
    c.nack_frame(c.listener.next())
    assert quiet(c)
    assert quiet(dlq)
    # Discarded, not merely left unacknowledged: nothing comes back after a reconnect.
    disconnect(c)
    again = connect()
    subscribe(again, "/queue/poison-np", "s1")
    assert quiet(again)
    assert quiet(dlq)


def test_dlq_copy_has_no_failure_cause_header(connect) -> None:
    """ActiveMQ shows no dlqDeliveryFailureCause on a NACKed message's DLQ copy."""
    dlq = connect()
    subscribe(dlq, "/queue/ActiveMQ.DLQ", "dlq")
    c = connect()
    subscribe(c, "/queue/poison-hdr", "s1", ack="client-individual")
    send_all(c, "/queue/poison-hdr", ["bad"], persistent="true")
    c.nack_frame(c.listener.next())
    dead = dlq.listener.next()
    assert dead.headers["original-destination"] == "/queue/poison-hdr"
    assert "dlqDeliveryFailureCause" not in dead.headers


def test_nack_is_rejected_in_1_0(connect) -> None:
    c = connect("1.0")
    subscribe(c, "/queue/nack10", "s1", ack="client-individual")
    send_all(c, "/queue/nack10", ["m"])
    msg = c.listener.next()
    c.send_frame("NACK", {"message-id": msg.headers["message-id"], "receipt": "n"})
    assert c.listener.error().headers["message"]


@pytest.mark.parametrize("version", NACK_VERSIONS)
@pytest.mark.parametrize("outcome", ["ack", "nack"])
def test_settling_frees_credit_for_next_message(connect, version: str, outcome: str) -> None:
    c = connect(version)
    subscribe(c, "/queue/credit", "s1", ack="client-individual", **PREFETCH_1)
    send_all(c, "/queue/credit", ["m1", "m2", "m3"])
    first = c.listener.next()
    assert first.body == "m1"
    assert quiet(c)

    (c.ack_frame if outcome == "ack" else c.nack_frame)(first)
    second = c.listener.next()
    assert second.body == "m2"
    assert not redelivered(second)
    assert quiet(c)


def test_abandoned_message_is_never_dead_lettered_by_default(connect) -> None:
    """ActiveMQ 5.17's default (no redelivery plugin): a message whose consumer goes away
    comes back redelivered however often; only a NACK dead-letters it."""
    dlq = connect()
    subscribe(dlq, "/queue/ActiveMQ.DLQ", "dlq")
    for i in range(9):
        c = connect()
        subscribe(c, "/queue/abandoned", "s1", ack="client-individual")
        if i == 0:
            send_all(c, "/queue/abandoned", ["sticky"], persistent="true")
        got = c.listener.next()
        assert got.body == "sticky" and redelivered(got) == (i > 0)
        disconnect(c)
    assert quiet(dlq)


def test_redelivery_limit_sends_to_dlq(broker_factory, connect) -> None:
    b = broker_factory(**{"destinations.max_redeliveries": 1})
    port = b.stomp_port
    dlq = connect(port=port)
    subscribe(dlq, "/queue/ActiveMQ.DLQ", "dlq")

    c1 = connect(port=port)
    subscribe(c1, "/queue/retry", "s1", ack="client-individual")
    send_all(c1, "/queue/retry", ["fragile"], persistent="true")
    assert not redelivered(c1.listener.next())
    disconnect(c1)

    c2 = connect(port=port)
    subscribe(c2, "/queue/retry", "s1", ack="client-individual")
    second = c2.listener.next()
    assert (second.body, second.headers["redelivered"]) == ("fragile", "true")
    assert quiet(dlq)
    disconnect(c2)

    dead = dlq.listener.next()
    assert dead.body == "fragile"
    assert dead.headers["original-destination"] == "/queue/retry"

    c3 = connect(port=port)
    subscribe(c3, "/queue/retry", "s1", ack="client-individual")
    assert quiet(c3)


POLICY = [{"pattern": "orders.>", "dead_letter_queue": "DLQ.orders", "max_redeliveries": 0}]


def test_per_pattern_policy_routes_to_own_dlq(broker_factory, connect) -> None:
    b = broker_factory(**{"destinations.policies": POLICY})
    port = b.stomp_port
    own = connect(port=port)
    subscribe(own, "/queue/DLQ.orders", "own")
    shared = connect(port=port)
    subscribe(shared, "/queue/ActiveMQ.DLQ", "shared")

    c = connect(port=port)
    subscribe(c, "/queue/orders.new", "s1", ack="client-individual")
    send_all(c, "/queue/orders.new", ["order-1"], persistent="true")
    assert c.listener.next().body == "order-1"
    disconnect(c)  # max_redeliveries 0: the first return is one too many

    dead = own.listener.next()
    assert dead.body == "order-1"
    assert dead.headers["original-destination"] == "/queue/orders.new"
    assert quiet(shared)


def test_per_pattern_policy_nack_and_default_for_others(broker_factory, connect) -> None:
    b = broker_factory(**{"destinations.policies": POLICY})
    port = b.stomp_port
    own = connect(port=port)
    subscribe(own, "/queue/DLQ.orders", "own")
    shared = connect(port=port)
    subscribe(shared, "/queue/ActiveMQ.DLQ", "shared")

    c = connect(port=port)
    subscribe(c, "/queue/orders.eu.new", "a", ack="client-individual")
    subscribe(c, "/queue/invoices", "b", ack="client-individual")
    send_all(c, "/queue/orders.eu.new", ["order"], persistent="true")
    send_all(c, "/queue/invoices", ["invoice"], persistent="true")
    for msg in c.listener.take(2):
        c.nack_frame(msg)

    assert own.listener.next().body == "order"
    assert shared.listener.next().body == "invoice"
    assert quiet(own)
    assert quiet(shared)
