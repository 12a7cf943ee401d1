"""The failover demo's Checker and clients (broker/demo, issue 11).

The Checker's arithmetic on hand-made histories: lost, duplicated without the
redelivered flag, reordered within a producer, resends. Then the clients end to end:
STOMP, AMQP and SQS producers and consumers on one broker process that is SIGKILLed
under load and restarted on the same ports and data directory; the clients reconnect by
themselves, and every message a producer had acknowledged is delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.demo import Checker, Pacer, decode_body, encode_body, make_workloads
from broker.demo.faultproxy import FaultProxy
from tests.conftest import ChildBroker, wait_until

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


def test_order_is_checked_per_consumer() -> None:
    # Two consumers share one producer's messages: each sees them in order, and their
    # reports interleave (1 arrives after 2, from another consumer): no reordering.
    c = history(*sent_and_acked(0, 1, 2, 3))
    for seq, consumer in ((0, "a"), (2, "a"), (1, "b"), (3, "b")):
        c.delivered("p", "x", seq, redelivered=False, consumer=consumer)
    assert c.report()["p"].reordered == 0
    c.delivered("p", "x", 2, redelivered=False, consumer="b")  # a repeat: a duplicate
    c.sent("p", "x", 4)
    c.acknowledged("p", "x", 4)
    c.delivered("p", "x", 4, redelivered=False, consumer="c")
    r = c.report()["p"]
    assert (r.reordered, r.duplicated, r.lost) == (0, 1, 0)
    c2 = history(*sent_and_acked(0, 1, 2))
    for seq in (0, 2, 1):
        c2.delivered("p", "x", seq, redelivered=False, consumer="a")
    assert c2.report()["p"].reordered == 1


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


# -- the clients against a broker killed and restarted ---------------------------------------

STARTED = re.compile(r"broker \S+ started")
PROTOCOLS = ("stomp", "amqp", "sqs")


def free_ports(n: int) -> list[int]:
    """`n` distinct ports the kernel had free: all bound at once, then released, so a
    broker restarted on them gets the same addresses (the clients' only list)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


class FixedPortBroker:
    """`python -m broker run` on one data directory with STOMP, AMQP and SQS on fixed
    ports: `start(i)` uses the i-th of two port sets, so a restart is either the same
    addresses or the second address of every client's list (a node elsewhere)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        ports = free_ports(2 * len(PROTOCOLS))
        self.port_sets = [
            dict(zip(PROTOCOLS, ports[:3], strict=True)),
            dict(zip(PROTOCOLS, ports[3:], strict=True)),
        ]
        self.procs: list[ChildBroker] = []

    def start(self, port_set: int = 0, **env: str) -> ChildBroker:
        ports = self.port_sets[port_set]
        argv = [sys.executable, "-m", "broker", "run", "--data-dir", str(self.tmp_path / "data")]
        argv += ["--stomp-port", str(ports["stomp"]), "--amqp-port", str(ports["amqp"])]
        argv += ["--sqs-port", str(ports["sqs"]), "--console-port", "0"]
        proc = ChildBroker(argv, self.tmp_path, **env)
        self.procs.append(proc)
        proc.wait_for(STARTED)
        return proc

    def addresses(self, sets: int) -> dict[str, list[tuple[str, int]]]:
        """Each protocol's address list: the first `sets` port sets, in order."""
        return {p: [("127.0.0.1", ports[p]) for ports in self.port_sets[:sets]] for p in PROTOCOLS}


@pytest.fixture
def fixed_broker(tmp_path: Path) -> Iterator[FixedPortBroker]:
    b = FixedPortBroker(tmp_path)
    yield b
    for i, p in enumerate(b.procs):
        p.cleanup()
        print(f"--- broker process {i} (exit {p.proc.returncode}) ---\n{p.stderr_text()}", end="")


def show(checker: Checker) -> None:
    """The table and the timeline (pytest shows them when a test fails)."""
    print(checker.table())
    for at, source, text in checker.timeline():
        print(f"{at:7.3f}  {source:18}  {text}")


@pytest.mark.parametrize(
    ("restart_on", "sets"),
    [(0, 1), (1, 2)],
    ids=["same-address", "second-address-of-the-list"],
)
def test_clients_reconnect_after_sigkill_and_lose_no_acknowledged_message(
    fixed_broker: FixedPortBroker, restart_on: int, sets: int
) -> None:
    broker = fixed_broker.start()
    checker = Checker()
    clients = make_workloads(checker, fixed_broker.addresses(sets), producers=2, rate=60)
    try:
        for c in clients:
            c.start()
        for c in clients:
            assert c.connected.wait(15), f"{c.name} never connected"
        # Under load: every protocol has messages acknowledged before the kill.
        assert checker.wait_for_acknowledged(dict.fromkeys(PROTOCOLS, 60), 15), checker.table()
        broker.kill()
        checker.event("test", "broker SIGKILLed")
        before = checker.acknowledged_counts()
        fixed_broker.start(restart_on)
        checker.event("test", f"broker restarted on port set {restart_on}")
        # Nobody told the clients: acknowledgements resume only if they reconnected.
        resumed = {p: n + 60 for p, n in before.items()}
        assert checker.wait_for_acknowledged(resumed, 20), checker.table()
        for c in clients:
            assert c.connected.wait(15), f"{c.name} not connected after the restart"
        for c in clients:
            if "producer" in c.name:
                c.stop()
        drained = checker.wait_for_drain(20)
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                c.stop()
    show(checker)
    assert drained, f"not drained:\n{checker.table()}"
    report = checker.report()
    assert sorted(report) == sorted(PROTOCOLS)
    for protocol, r in report.items():
        assert r.acknowledged > 0, protocol
        assert r.lost == 0, f"{protocol}: {r}"
        assert r.unexpected == 0, f"{protocol}: {r}"
    for c in clients:
        assert c.error is None, f"{c.name}: {c.error!r}"
    if restart_on:
        # Every client found the broker at the second address of its list.
        second = {f"127.0.0.1:{port}" for port in fixed_broker.port_sets[1].values()}
        moved = {
            source
            for _, source, text in checker.timeline()
            if text.startswith("connected to") and any(text.endswith(a) for a in second)
        }
        assert moved == {c.name for c in clients}, checker.timeline()


def test_clients_stop_while_no_broker_answers(fixed_broker: FixedPortBroker) -> None:
    """A demo may end with every node down: stop() must not wait for a reconnect."""
    broker = fixed_broker.start()
    checker = Checker()
    clients = make_workloads(checker, fixed_broker.addresses(2), producers=1, rate=50)
    try:
        for c in clients:
            c.start()
        for c in clients:
            assert c.connected.wait(15), f"{c.name} never connected"
        broker.kill()
        for c in clients:
            assert wait_until(lambda c=c: not c.connected.is_set(), 10), c.name
    finally:
        for c in clients:
            c.stop(timeout=10)
    show(checker)
    assert all(not c.is_alive() for c in clients)


class Proxies:
    """A FaultProxy in front of each protocol's port, on a private event loop thread."""

    def __init__(self, upstreams: dict[str, int]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxies = {
            p: self._call(FaultProxy(("127.0.0.1", port)).start()) for p, port in upstreams.items()
        }

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(5)

    def port(self, protocol: str) -> int:
        return self.proxies[protocol].port

    def blackhole(self) -> None:
        async def cut() -> None:
            for proxy in self.proxies.values():
                proxy.blackhole()

        self._call(cut())

    def close(self) -> None:
        for proxy in self.proxies.values():
            self._call(proxy.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_clients_leave_a_partitioned_address_for_the_next_one(
    fixed_broker: FixedPortBroker,
) -> None:
    """Every client reaches the broker through a proxy first in its list, the broker's
    own port second. The proxies then blackhole (connections stay open, nothing gets
    through: a partition, no FIN, no RST): heart-beats (STOMP), the idle timeout (AMQP)
    and the read timeout (SQS) must tell the clients, which move to the next address.
    The broker frees what the cut-off consumers held by its own timeouts (STOMP
    heart-beats, AMQP idle timeout lowered to 2 s here, SQS visibility timeout)."""
    fixed_broker.start(ZONEMQ_LISTENERS__AMQP__IDLE_TIMEOUT="2")
    direct = fixed_broker.port_sets[0]
    proxies = Proxies(direct)
    checker = Checker()
    addresses = {p: [("127.0.0.1", proxies.port(p)), ("127.0.0.1", direct[p])] for p in PROTOCOLS}
    clients = make_workloads(checker, addresses, rate=60, heartbeat=1.0, visibility_timeout=2)
    try:
        for c in clients:
            c.start()
        for c in clients:
            assert c.connected.wait(15), f"{c.name} never connected"
        assert checker.wait_for_acknowledged(dict.fromkeys(PROTOCOLS, 60), 15), checker.table()
        proxies.blackhole()
        checker.event("test", "proxies blackholed")
        before = checker.acknowledged_counts()
        resumed = {p: n + 60 for p, n in before.items()}
        assert checker.wait_for_acknowledged(resumed, 30), checker.table()
        for c in clients:
            if "producer" in c.name:
                c.stop()
        drained = checker.wait_for_drain(30)
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                c.stop()
        proxies.close()
    show(checker)
    assert drained, f"not drained:\n{checker.table()}"
    for protocol, r in checker.report().items():
        assert r.lost == 0, f"{protocol}: {r}"
        assert r.unexpected == 0, f"{protocol}: {r}"
    moved = {
        source
        for _, source, text in checker.timeline()
        if text.startswith("connected to")
        and text.endswith(tuple(f":{p}" for p in direct.values()))
    }
    assert moved == {c.name for c in clients}, checker.timeline()
