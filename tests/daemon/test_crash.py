"""Crash safety of persistent messages (issue 3): a real broker process killed with SIGKILL.

Producers send persistent messages with a receipt per message while the broker is
killed at a random (seeded, printed) moment; a new broker on the same data directory
must have every message whose RECEIPT a client saw, exactly once. A message delivered
before the crash and not acknowledged must come back flagged `redelivered:true`; one
whose ACK was receipted must not come back at all.

How many messages the new broker recovered is read from its "journal: ... messages"
log line, so a drain takes exactly that many and then shows that nothing else waits.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import random
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stomp

from tests.conftest import ChildBroker, Collector, RawClient, headers_of

WAIT = 10.0
DEST = "/queue/crash"
DLQ = "/queue/ActiveMQ.DLQ"
PERSISTENT = {"persistent": "true"}
BROKER_RUN = [sys.executable, "-m", "broker", "run"]
LISTENER = re.compile(r"stomp listener on (\S+):(\d+)")
RECOVERED = re.compile(r"journal: (\d+) records replayed, (\d+) messages on (\d+) queues")


# -- the broker process ----------------------------------------------------------------------


class BrokerProcess(ChildBroker):
    """`python -m broker run` on a data directory, STOMP on an ephemeral port."""

    def __init__(self, data_dir: Path, cwd: Path, env: dict[str, str]) -> None:
        argv = [*BROKER_RUN, "--data-dir", str(data_dir), "--stomp-port", "0"]
        super().__init__([*argv, "--console-port", "0"], cwd, **env)
        self.recovered = int(self.wait_for(RECOVERED, WAIT).group(2))
        self.port = int(self.wait_for(LISTENER, WAIT).group(2))


class Brokers:
    """Broker processes on one data directory, one at a time."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.data_dir = tmp_path / "data"
        self.procs: list[BrokerProcess] = []

    def start(self, **env: str) -> BrokerProcess:
        p = BrokerProcess(self.data_dir, self.tmp_path, env)
        self.procs.append(p)
        return p

    def crash_restart(self, old: BrokerProcess, **env: str) -> BrokerProcess:
        old.kill()
        return self.start(**env)


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[Brokers]:
    b = Brokers(tmp_path)
    yield b
    for i, p in enumerate(b.procs):
        p.cleanup()
        # pytest shows this only when the test failed: every broker's log, in order.
        print(f"--- broker process {i} (exit {p.proc.returncode}) ---\n{p.stderr_text()}", end="")


# -- clients -----------------------------------------------------------------------------------


class Recorder(Collector):
    """A Collector that also notes, as frames arrive, message tags and receipt ids."""

    def __init__(self) -> None:
        super().__init__()
        self.delivered: list[str] = []  # message tags in arrival order
        self.receipted: set[str] = set()
        self.lost = threading.Event()
        self.credit = threading.Semaphore(0)

    def on_message(self, frame: Any) -> None:
        self.delivered.append(frame.headers["n"])
        super().on_message(frame)

    def on_receipt(self, frame: Any) -> None:
        self.receipted.add(frame.headers["receipt-id"])
        self.credit.release()
        super().on_receipt(frame)

    def on_disconnected(self) -> None:
        self.lost.set()
        self.credit.release()
        super().on_disconnected()


def connect(port: int) -> tuple[Any, Recorder]:
    conn = stomp.Connection12([("127.0.0.1", port)], heartbeats=(0, 0))
    rec = Recorder()
    conn.set_listener("recorder", rec)
    conn.connect(wait=True)
    return conn, rec


def wait_receipt(rec: Recorder, rid: str) -> None:
    deadline = time.monotonic() + WAIT
    while rid not in rec.receipted:
        left = deadline - time.monotonic()
        assert left > 0, f"no RECEIPT {rid}"
        with contextlib.suppress(queue.Empty):
            rec.receipts.get(timeout=left)


def sync(conn: Any, rec: Recorder, tag: str) -> None:
    """A receipt round trip; its receipt also waits for everything journaled so far."""
    conn.begin(transaction=tag, receipt=tag)
    wait_receipt(rec, tag)
    conn.abort(tag)


class Producer(threading.Thread):
    """Sends persistent messages tagged p<k>-<i>, at most `window` unreceipted at a time,
    until told to stop or the connection dies."""

    def __init__(self, port: int, k: int, window: int = 8) -> None:
        super().__init__(name=f"producer-{k}", daemon=True)
        self.k = k
        self.window = window
        self.conn, self.rec = connect(port)
        self.sent: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        for _ in range(self.window):
            self.rec.credit.release()
        i = 0
        while not self.stop.is_set():
            if not self.rec.credit.acquire(timeout=WAIT):
                return
            if self.rec.lost.is_set():
                return
            tag = f"p{self.k}-{i}"
            try:
                self.conn.send(DEST, tag, headers={"n": tag, **PERSISTENT}, receipt=tag)
            except Exception:  # the broker is gone
                return
            self.sent.append(tag)
            i += 1


class AckingConsumer(threading.Thread):
    """Consumes DEST in client-individual mode, ACKing each message with a receipt.

    `covers[receipt]` is how many messages had arrived when that ACK was sent: once its
    receipt is back, the broker has made durable everything it did before reading the
    ACK, including the delivery records of those messages."""

    def __init__(self, port: int) -> None:
        super().__init__(name="consumer", daemon=True)
        self.conn, self.rec = connect(port)
        self.conn.subscribe(
            DEST, id="c", ack="client-individual", headers={"activemq.prefetchSize": "16"}
        )
        self.covers: dict[str, int] = {}

    def run(self) -> None:
        while not self.rec.lost.is_set():
            try:
                frame = self.rec.messages.get(timeout=0.05)
            except queue.Empty:
                continue
            rid = "ack:" + frame.headers["n"]
            self.covers[rid] = len(self.rec.delivered)
            try:
                self.conn.ack(frame.headers["ack"], receipt=rid)
            except Exception:
                return

    @property
    def acked(self) -> set[str]:
        return {rid[len("ack:") :] for rid in self.rec.receipted if rid.startswith("ack:")}

    @property
    def ack_sent(self) -> set[str]:
        return {rid[len("ack:") :] for rid in self.covers}

    @property
    def delivered_durably(self) -> set[str]:
        """Messages whose delivery a receipted ACK proves the broker had journaled."""
        done = [self.covers[rid] for rid in self.rec.receipted if rid in self.covers]
        return set(self.rec.delivered[: max(done, default=0)])


def drain(port: int, count: int, dest: str = DEST) -> list[Any]:
    """Take exactly `count` messages (acking each), then show that no more are waiting.
    The last ACK has a receipt, so every ACK is durable when this returns."""
    conn, rec = connect(port)
    try:
        conn.subscribe(dest, id="drain", ack="client-individual", receipt="subscribed")
        wait_receipt(rec, "subscribed")
        frames = []
        for i in range(count):
            frame = rec.messages.get(timeout=WAIT)
            frames.append(frame)
            last = i == count - 1
            conn.ack(frame.headers["ack"], receipt="drained" if last else None)
        if count:
            wait_receipt(rec, "drained")
        sync(conn, rec, "quiet")
        extra = []
        while not rec.messages.empty():
            extra.append(rec.messages.get().headers.get("n"))
        assert not extra, f"more messages than the broker said it recovered: {extra[:10]}"
        return frames
    finally:
        conn.disconnect()


def collect(port: int, dest: str) -> list[Any]:
    """What `dest` dispatches to a new subscriber at once (up to the prefetch of 1000),
    left unacknowledged."""
    conn, rec = connect(port)
    try:
        conn.subscribe(dest, id="collect", ack="client-individual")
        sync(conn, rec, "collected")
        return [rec.messages.get_nowait() for _ in range(rec.messages.qsize())]
    finally:
        conn.disconnect()


def kill_moment(seed: int) -> float:
    delay = random.Random(seed).uniform(0.3, 1.5)
    print(f"seed {seed}: SIGKILL {delay:.3f}s into the load")
    return delay


def run_load_and_kill(broker: BrokerProcess, seed: int, consumer: bool) -> tuple[
    list[Producer], AckingConsumer | None
]:  # fmt: skip
    producers = [Producer(broker.port, k) for k in range(4)]
    acking = AckingConsumer(broker.port) if consumer else None
    for t in [*producers, *([acking] if acking else [])]:
        t.start()
    threading.Event().wait(kill_moment(seed))  # the kill point, not a synchronisation
    assert all(p.is_alive() for p in producers), "a producer stopped before the kill"
    broker.kill()
    for t in [*producers, *([acking] if acking else [])]:
        t.join(WAIT)
        assert not t.is_alive(), f"{t.name} did not notice the crash"
    return producers, acking


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_during_load_loses_no_receipted_message(brokers: Brokers, seed: int) -> None:
    broker = brokers.start()
    producers, _ = run_load_and_kill(broker, seed, consumer=False)
    sent = {tag for p in producers for tag in p.sent}
    receipted = {rid for p in producers for rid in p.rec.receipted}
    assert receipted, "no receipt before the kill: the test proved nothing"
    print(f"sent {len(sent)}, receipted {len(receipted)}")

    broker = brokers.start()
    frames = drain(broker.port, broker.recovered)
    tags = [f.headers["n"] for f in frames]
    dupes = [t for t, n in collections.Counter(tags).items() if n > 1]
    assert not dupes, f"duplicates after recovery: {dupes[:10]}"
    assert set(tags) <= sent, sorted(set(tags) - sent)[:10]
    missing = receipted - set(tags)
    assert not missing, f"{len(missing)} receipted messages lost, e.g. {sorted(missing)[:10]}"
    for f in frames:
        assert f.body == f.headers["n"]
        assert f.headers["persistent"] == "true"
        assert "redelivered" not in f.headers  # nobody had consumed anything
    # Per producer, the recovered messages keep their send order.
    for p in producers:
        mine = [t for t in tags if t.startswith(f"p{p.k}-")]
        assert mine == sorted(mine, key=lambda t: int(t.split("-")[1]))

    # The drain's ACKs were receipted: after another crash nothing comes back.
    broker = brokers.crash_restart(broker)
    assert broker.recovered == 0


@pytest.mark.parametrize("seed", [4, 5])
def test_sigkill_with_a_consumer_acking_during_the_load(brokers: Brokers, seed: int) -> None:
    broker = brokers.start()
    producers, acking = run_load_and_kill(broker, seed, consumer=True)
    assert acking is not None
    receipted = {rid for p in producers for rid in p.rec.receipted}
    delivered = set(acking.rec.delivered)
    assert len(delivered) == len(acking.rec.delivered), "a message was delivered twice"
    acked = acking.acked
    assert receipted and acked, "nothing was receipted or acked before the kill"
    print(f"receipted {len(receipted)}, delivered {len(delivered)}, acked {len(acked)}")

    broker = brokers.start()
    frames = drain(broker.port, broker.recovered)
    tags = [f.headers["n"] for f in frames]
    dupes = [t for t, n in collections.Counter(tags).items() if n > 1]
    assert not dupes, f"duplicates after recovery: {dupes[:10]}"
    resurrected = acked & set(tags)
    assert not resurrected, f"messages whose ACK was receipted came back: {sorted(resurrected)}"
    # An ACK whose receipt did not arrive may still have been applied: such a message
    # may be gone. Any other receipted message must be back.
    lost = receipted - acking.ack_sent - set(tags)
    assert not lost, f"{len(lost)} receipted, unacked messages lost: {sorted(lost)[:10]}"
    unflagged = [
        f.headers["n"]
        for f in frames
        if f.headers["n"] in delivered and f.headers.get("redelivered") != "true"
    ]
    # Deliveries in the last moments before the kill may come back unflagged (see the
    # xfail test below); those made durable before a receipted ACK must be flagged.
    durable = acking.delivered_durably
    assert len(durable) > len(acked) // 2
    late = [t for t in unflagged if t not in durable]
    print(f"{len(late)} messages delivered just before the kill came back unflagged")
    assert not set(unflagged) & durable, sorted(set(unflagged) & durable)


def test_sigkill_after_delivery_brings_it_back_redelivered(brokers: Brokers) -> None:
    broker = brokers.start()
    conn, rec = connect(broker.port)
    conn.send(DEST, "m", headers={"n": "m", **PERSISTENT}, receipt="sent")
    wait_receipt(rec, "sent")
    conn.subscribe(DEST, id="s", ack="client-individual")
    assert rec.next().headers["n"] == "m"
    sync(conn, rec, "after-delivery")

    broker = brokers.crash_restart(broker)
    (frame,) = drain(broker.port, broker.recovered)
    assert frame.headers["n"] == "m"
    assert frame.headers.get("redelivered") == "true"


def test_deliveries_ended_by_crashes_count_toward_the_dlq(brokers: Brokers) -> None:
    """max_redeliveries=1: a message may be delivered twice; the second delivery that
    ends without an ACK (here: in a crash) sends it to the dead letter queue."""
    limit = {"ZONEMQ_DESTINATIONS__MAX_REDELIVERIES": "1"}
    broker = brokers.start(**limit)
    conn, rec = connect(broker.port)
    conn.send(DEST, "poison", headers={"n": "poison", **PERSISTENT}, receipt="sent")
    wait_receipt(rec, "sent")
    for crash in range(2):
        conn, rec = connect(broker.port)
        conn.subscribe(DEST, id="s", ack="client-individual")
        frame = rec.next()
        assert frame.headers["n"] == "poison"
        assert (frame.headers.get("redelivered") == "true") == (crash > 0)
        sync(conn, rec, f"delivered-{crash}")
        broker = brokers.crash_restart(broker, **limit)
    still = [f.headers["n"] for f in collect(broker.port, DEST)]
    assert not still, f"after two deliveries ended by crashes, {still} is delivered again"
    (dead,) = drain(broker.port, 1, dest=DLQ)
    assert dead.headers["n"] == "poison"
    assert dead.headers["original-destination"] == DEST


def test_delivery_is_journaled_before_the_message_goes_out(brokers: Brokers) -> None:
    """The delivery happens while a large batch keeps the journal busy (48 MiB, written
    and fsynced before anything appended after it), and the broker is killed as soon as
    the MESSAGE arrives. A client saw the message, so it must come back redelivered."""
    broker = brokers.start()
    raw = RawClient(broker.port)
    try:
        raw.connect()
        raw.send(f"SEND\ndestination:{DEST}\npersistent:true\nn:m\nreceipt:r\n\nm\x00".encode())
        assert headers_of(raw.frame())[0] == "RECEIPT"
        big = 48 * 1024 * 1024
        raw.send(
            b"SEND\ndestination:/queue/crash.big\npersistent:true\n"
            + f"content-length:{big}\n\n".encode()
            + b"b" * big
            + f"\x00SUBSCRIBE\ndestination:{DEST}\nid:s\nack:client-individual\n\n\x00".encode()
        )
        command, headers = headers_of(raw.frame(timeout=WAIT))
        assert (command, headers["n"]) == ("MESSAGE", "m")
        broker.kill()
    finally:
        raw.close()

    broker = brokers.start()
    (frame,) = drain(broker.port, 1)
    assert frame.headers["n"] == "m"
    assert frame.headers.get("redelivered") == "true", f"not flagged: {frame.headers}"


def test_client_ack_deliveries_come_back_redelivered_after_sigkill(brokers: Brokers) -> None:
    """stomp.py, ack mode client: persistent MESSAGEs leave the broker only once their
    delivery records are durable, so a broker killed the moment the consumer has them
    (no ACK, no receipt round trip) gives every one back with redelivered:true. A large
    persistent SEND just before the SUBSCRIBE keeps the journal busy, so without that
    rule the MESSAGEs would go out long before their records were on disk."""
    broker = brokers.start()
    conn, rec = connect(broker.port)
    for i in range(10):
        conn.send(DEST, f"m{i}", headers={"n": f"m{i}", **PERSISTENT}, receipt=f"m{i}")
    wait_receipt(rec, "m9")
    big = "b" * (48 * 1024 * 1024)
    conn.send("/queue/crash.big", big, headers={"n": "big", **PERSISTENT})
    conn.subscribe(DEST, id="s", ack="client")
    got = rec.take(10)
    broker.kill()
    assert [f.headers["n"] for f in got] == [f"m{i}" for i in range(10)]
    assert not [f for f in got if "redelivered" in f.headers]

    broker = brokers.start()
    frames = drain(broker.port, 10)
    assert [f.headers["n"] for f in frames] == [f"m{i}" for i in range(10)]
    unflagged = [f.headers["n"] for f in frames if f.headers.get("redelivered") != "true"]
    assert not unflagged, f"delivered before the crash, not flagged after it: {unflagged}"


def test_sigkill_keeps_committed_transactions_only(brokers: Brokers) -> None:
    broker = brokers.start()
    conn, rec = connect(broker.port)
    for tag in ("k1", "k2"):
        conn.send("/queue/crash.acks", tag, headers={"n": tag, **PERSISTENT}, receipt=tag)
        wait_receipt(rec, tag)
    conn.begin(transaction="committed")
    for tag in ("c1", "c2"):
        conn.send(DEST, tag, headers={"n": tag, **PERSISTENT}, transaction="committed")
    conn.commit(transaction="committed", receipt="commit")
    wait_receipt(rec, "commit")
    conn.begin(transaction="open")
    conn.send(DEST, "open", headers={"n": "open", **PERSISTENT}, transaction="open")
    conn.subscribe("/queue/crash.acks", id="a", ack="client-individual")
    k1, k2 = rec.take(2)
    conn.begin(transaction="acks")
    conn.ack(k1.headers["ack"], transaction="acks")
    conn.commit(transaction="acks", receipt="acks")
    wait_receipt(rec, "acks")
    conn.ack(k2.headers["ack"], transaction="open", receipt="ack-in-open-tx")
    wait_receipt(rec, "ack-in-open-tx")

    broker = brokers.crash_restart(broker)
    assert broker.recovered == 3
    assert [f.headers["n"] for f in drain(broker.port, 2)] == ["c1", "c2"]
    (back,) = drain(broker.port, 1, dest="/queue/crash.acks")
    assert (back.headers["n"], back.headers.get("redelivered")) == ("k2", "true")
