"""The failover demo's Checker and clients (broker/demo, issue 11).

The Checker's arithmetic on hand-made histories: lost, duplicated without the
redelivered flag, reordered within a producer, resends.
"""

from __future__ import annotations

import threading

import pytest

from broker.demo import Checker, Pacer, decode_body, encode_body

# -- the Checker's arithmetic ----------------------------------------------------------------


def history(*events: tuple[str, int, str]) -> Checker:
    """A Checker fed (what, seq, producer) events on protocol "p": what is "s" (sent),
    "a" (acknowledged), "d" (delivered) or "r" (delivered flagged redelivered)."""
    checker = Checker()
    for what, seq, producer in events:
        if what == "s":
            checker.sent("p", producer, seq)
        elif what == "a":
            checker.acknowledged("p", producer, seq)
        else:
            checker.delivered("p", producer, seq, redelivered=what == "r")
    return checker


def sent_and_acked(*seqs: int, producer: str = "x") -> list[tuple[str, int, str]]:
    return [e for s in seqs for e in (("s", s, producer), ("a", s, producer))]


def test_an_acknowledged_message_never_delivered_is_lost() -> None:
    c = history(*sent_and_acked(0, 1, 2), ("d", 0, "x"), ("d", 2, "x"))
    r = c.report()["p"]
    assert (r.sent, r.acknowledged, r.consumed, r.lost) == (3, 3, 2, 1)
    assert not r.ok
    assert c.wait_for_drain(0.01) is False


def test_a_message_sent_but_never_acknowledged_is_not_lost() -> None:
    r = history(*sent_and_acked(0), ("s", 1, "x"), ("d", 0, "x")).report()["p"]
    assert (r.sent, r.acknowledged, r.consumed, r.lost) == (2, 1, 1, 0)
    assert r.ok


def test_a_second_unflagged_delivery_is_a_duplicate_a_flagged_one_is_not() -> None:
    r = history(*sent_and_acked(0, 1), ("d", 0, "x"), ("d", 0, "x"), ("d", 1, "x")).report()["p"]
    assert (r.consumed, r.duplicated, r.redelivered) == (2, 1, 0)
    r = history(*sent_and_acked(0), ("d", 0, "x"), ("r", 0, "x"), ("r", 0, "x")).report()["p"]
    assert (r.consumed, r.duplicated, r.redelivered) == (1, 0, 2)


def test_each_resend_explains_one_unflagged_copy() -> None:
    # Sent twice (the first receipt was lost with the connection): two unflagged copies
    # are legitimate, a third is not.
    events = [("s", 0, "x"), ("s", 0, "x"), ("a", 0, "x")]
    r = history(*events, ("d", 0, "x"), ("d", 0, "x")).report()["p"]
    assert (r.sent, r.resent, r.duplicated, r.lost) == (1, 1, 0, 0)
    r = history(*events, ("d", 0, "x"), ("d", 0, "x"), ("d", 0, "x")).report()["p"]
    assert r.duplicated == 1


def test_a_lower_seq_after_a_higher_one_is_reordered_unless_flagged() -> None:
    acked = sent_and_acked(0, 1, 2)
    r = history(*acked, ("d", 0, "x"), ("d", 2, "x"), ("d", 1, "x")).report()["p"]
    assert (r.reordered, r.lost, r.ok) == (1, 0, False)
    r = history(*acked, ("d", 0, "x"), ("d", 2, "x"), ("r", 1, "x")).report()["p"]
    assert (r.reordered, r.redelivered, r.ok) == (0, 1, True)


def test_a_repeat_of_a_lower_seq_is_a_duplicate_not_a_reordering() -> None:
    r = history(*sent_and_acked(0, 1), ("d", 0, "x"), ("d", 1, "x"), ("d", 0, "x")).report()["p"]
    assert (r.reordered, r.duplicated) == (0, 1)


def test_order_is_per_producer_and_counts_are_per_protocol() -> None:
    c = history(*sent_and_acked(5, producer="x"), *sent_and_acked(0, producer="y"))
    c.delivered("p", "x", 5, redelivered=False)
    c.delivered("p", "y", 0, redelivered=False)  # lower seq, other producer: in order
    c.sent("q", "x", 0)
    c.acknowledged("q", "x", 0)
    report = c.report()
    assert list(report) == ["p", "q"]
    assert (report["p"].reordered, report["p"].lost) == (0, 0)
    assert (report["q"].sent, report["q"].lost) == (1, 1)


def test_a_delivery_nobody_sent_is_unexpected() -> None:
    r = history(*sent_and_acked(0), ("d", 0, "x"), ("d", 7, "ghost")).report()["p"]
    assert (r.unexpected, r.ok) == (1, False)


def test_wait_for_drain_returns_once_every_acknowledged_message_arrived() -> None:
    c = history(*sent_and_acked(0, 1))
    consumer_may_go = threading.Event()

    def consume() -> None:
        consumer_may_go.wait(5)
        c.delivered("p", "x", 0, redelivered=False)
        c.delivered("p", "x", 1, redelivered=True)

    t = threading.Thread(target=consume)
    t.start()
    assert c.wait_for_drain(0.01) is False
    consumer_may_go.set()
    assert c.wait_for_drain(5) is True
    t.join(5)
    assert c.report()["p"].ok


def test_the_table_has_a_row_per_protocol() -> None:
    c = history(*sent_and_acked(0))
    c.sent("amqp", "y", 0)
    lines = c.table().splitlines()
    assert lines[0].split() == [
        "protocol", "sent", "resent", "acknowledged", "consumed", "lost",
        "duplicated", "reordered", "redelivered", "unexpected",
    ]  # fmt: skip
    assert lines[1].split() == ["p", "1", "0", "1", "0", "1", "0", "0", "0", "0"]
    assert lines[2].split()[:2] == ["amqp", "1"]


def test_bodies_carry_producer_and_seq() -> None:
    assert decode_body(encode_body("stomp-producer-0", 41)) == ("stomp-producer-0", 41)
    assert decode_body(encode_body("p", 3).encode()) == ("p", 3)
    for bad in ("", "{}", "[1]", '{"producer": "p"}', "not json"):
        with pytest.raises(ValueError):
            decode_body(bad)


def test_the_pacer_spaces_sends_without_catching_up() -> None:
    pacer = Pacer(rate=10)
    assert pacer.delay() == 0
    pacer.sent()
    assert 0.09 < pacer.delay() <= 0.1
    assert Pacer(rate=None).delay() == 0
    with pytest.raises(ValueError):
        Pacer(rate=0)
