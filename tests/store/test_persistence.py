"""Persistent messages across broker restarts (issue 3), in-process.

Every test stops a broker gracefully and starts a new one on the SAME data directory
(`Restarts` below), then looks at what came back over real STOMP connections. Crash
restarts (SIGKILL) are in tests/daemon/test_crash.py. Waiting is on receipts, queues and events with
timeouts; absence is shown after a receipt round trip on the same connection (frames
arrive in order, so everything the broker sent before the receipt is already in).
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import stomp

from broker.server import StartupError
from tests.conftest import WAIT, BrokerThread, Client, Collector, popen_broker

DLQ = "/queue/ActiveMQ.DLQ"
PERSISTENT = {"persistent": "true"}

# The on-disk format (broker/store/format.py docstring): a 20-byte segment header, then
# records framed as length u32 | type u8 | crc32 u32 | payload, little-endian.
SEGMENT_HEADER = 20
RECORD = struct.Struct("<IBI")


# -- helpers -------------------------------------------------------------------------------


class Restarts:
    """Brokers started one after another on one data directory; all stopped at teardown."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.started: list[BrokerThread] = []

    def start(self, **overrides: Any) -> BrokerThread:
        b = BrokerThread(self.data_dir, **overrides)
        self.started.append(b)
        return b.start()

    def restart(self, old: BrokerThread, **overrides: Any) -> BrokerThread:
        old.stop()
        assert old.broker.stopped.is_set()
        return self.start(**overrides)

    def segments(self) -> list[Path]:
        return sorted((self.data_dir / "journal").glob("*.zjournal"))

    def close(self) -> None:
        for b in reversed(self.started):
            b.stop()


@pytest.fixture
def restarts(tmp_path: Path) -> Iterator[Restarts]:
    r = Restarts(tmp_path / "data")
    yield r
    r.close()


@pytest.fixture
def client(restarts: Restarts) -> Iterator[Callable[..., Client]]:
    """`client(broker)`: a connected stomp.py 1.2 client of that broker."""
    made: list[Client] = []

    def make(broker: BrokerThread) -> Client:
        conn = stomp.Connection12([("127.0.0.1", broker.stomp_port)], heartbeats=(0, 0))
        listener = Collector()
        conn.set_listener("collector", listener)
        conn.connect(wait=True)
        c = Client(conn, listener, "1.2")
        made.append(c)
        return c

    yield make
    for c in made:
        with contextlib.suppress(Exception):  # the broker may have closed it already
            c.close()


_ids = itertools.count(1)


def wait_receipt(c: Client, rid: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no RECEIPT {rid}"
        try:
            if c.listener.receipts.get(timeout=left) == rid:
                return
        except queue.Empty:
            pass
        assert c.listener.errors.empty(), c.listener.errors.get().headers


def sync(c: Client) -> None:
    """A receipt round trip that writes nothing to the journal (BEGIN, then ABORT)."""
    tid = f"sync-{next(_ids)}"
    c.begin(transaction=tid, receipt=tid)
    wait_receipt(c, tid)
    c.abort(tid)


def quiet(c: Client) -> bool:
    """Nothing is waiting for `c`: after a round trip, no MESSAGE arrived unread."""
    sync(c)
    return c.listener.messages.empty()


def send(c: Client, dest: str, body: str, *, receipt: bool = True, **headers: Any) -> None:
    rid = f"send-{next(_ids)}"
    c.send(dest, body, headers=headers, **({"receipt": rid} if receipt else {}))
    if receipt:
        wait_receipt(c, rid)


def subscribe(c: Client, dest: str, sub_id: str = "s", ack: str = "auto", **headers: Any) -> None:
    rid = f"sub-{next(_ids)}"
    c.subscribe(dest, id=sub_id, ack=ack, headers=headers, receipt=rid)
    wait_receipt(c, rid)


def ack(c: Client, frame: stomp.utils.Frame, *, receipt: bool = True) -> None:
    rid = f"ack-{next(_ids)}"
    c.conn.ack(frame.headers["ack"], receipt=rid if receipt else None)
    if receipt:
        wait_receipt(c, rid)


def drain(c: Client, dest: str, n: int, ack_mode: str = "auto") -> list[stomp.utils.Frame]:
    """Subscribe, take exactly `n` messages, and show that no more are waiting."""
    subscribe(c, dest, f"drain-{next(_ids)}", ack=ack_mode)
    frames = c.listener.take(n)
    assert quiet(c), [f.body for f in frames]
    return frames


def bodies(frames: list[stomp.utils.Frame]) -> list[str]:
    return [f.body for f in frames]


def records(path: Path) -> list[tuple[int, int, int]]:
    """(offset, type, payload length) of each complete record of a segment file."""
    data = path.read_bytes()
    out = []
    offset = SEGMENT_HEADER
    while offset + RECORD.size <= len(data):
        length, rtype, _crc = RECORD.unpack_from(data, offset)
        if offset + RECORD.size + length > len(data):
            break
        out.append((offset, rtype, length))
        offset += RECORD.size + length
    return out


def pass_time_until(deadline: float) -> None:
    """Let wall-clock time pass (for expiry), waiting on an Event rather than sleeping."""
    idle = threading.Event()
    while time.time() < deadline:
        idle.wait(deadline - time.time())


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        tick.wait(0.05)


# -- queue state ---------------------------------------------------------------------------


PRIORITIZED = {"destinations.prioritized_messages": True}


def test_queue_order_and_priorities_survive_restarts(restarts: Restarts, client) -> None:
    prios = [4, 9, 0, 7, 4, 9, 1, 4, 7, 0, 9, 4]
    b = restarts.start(**PRIORITIZED)
    c = client(b)
    for i, p in enumerate(prios):
        send(c, "/queue/order", f"a{i}", receipt=i == len(prios) - 1, priority=str(p), **PERSISTENT)

    b = restarts.restart(b, **PRIORITIZED)
    c = client(b)
    # New messages continue the stored order: after the recovered ones of the same priority.
    for i, p in enumerate(prios[:6]):
        send(c, "/queue/order", f"b{i}", receipt=i == 5, priority=str(p), **PERSISTENT)

    b = restarts.restart(b, **PRIORITIZED)
    c = client(b)
    sent = [(p, f"a{i}") for i, p in enumerate(prios)] + [
        (p, f"b{i}") for i, p in enumerate(prios[:6])
    ]
    expected = [body for _, body in sorted(sent, key=lambda pb: -pb[0])]  # stable: FIFO within
    frames = drain(c, "/queue/order", len(sent))
    assert bodies(frames) == expected
    for f in frames:
        assert f.headers["persistent"] == "true"
        assert "redelivered" not in f.headers
        assert f.headers["destination"] == "/queue/order"
    prio_of = {body: p for p, body in sent}
    assert [int(f.headers["priority"]) for f in frames] == [prio_of[f.body] for f in frames]


def test_message_content_survives_restart(restarts: Restarts, client) -> None:
    b = restarts.start()
    c = client(b)
    body = "line1\nline2 \u00e9\u00e8 : colon"
    send(
        c,
        "/queue/content",
        body,
        **PERSISTENT,
        **{
            "correlation-id": "corr-1",
            "type": "order",
            "reply-to": "/queue/replies",
            "x-custom": "some value",
            "JMSXGroupID": "g1",
        },
    )
    b = restarts.restart(b)
    c = client(b)
    # The group is a message field, not a MESSAGE header (as ActiveMQ's): a selector on
    # it shows it survived.
    subscribe(c, "/queue/content", "grouped", selector="JMSXGroupID = 'g1'")
    (f,) = c.listener.take(1)
    assert quiet(c)
    assert f.body == body
    h = f.headers
    assert (h["correlation-id"], h["type"], h["reply-to"]) == ("corr-1", "order", "/queue/replies")
    assert (h["x-custom"], h["expires"]) == ("some value", "0")
    assert "JMSXGroupID" not in h


def test_non_persistent_and_topic_messages_do_not_survive(
    restarts: Restarts, client, tmp_path: Path
) -> None:
    b = restarts.start()
    topic_sub = client(b)
    subscribe(topic_sub, "/topic/news", "t", ack="client-individual")
    c = client(b)
    send(c, "/queue/mixed", "np-marker-1", persistent="false")
    send(c, "/queue/mixed", "kept-1", **PERSISTENT)
    send(c, "/queue/mixed", "np-marker-2")  # no persistent header at all
    send(c, "/topic/news", "topic-marker", **PERSISTENT)
    got = topic_sub.listener.next()
    assert got.body == "topic-marker"  # delivered, never acked, then the restart

    b = restarts.restart(b)
    # Nothing of the non-persistent or topic messages was ever written.
    on_disk = b"".join(p.read_bytes() for p in restarts.segments())
    assert b"kept-1" in on_disk
    for marker in (b"np-marker", b"topic-marker"):
        assert marker not in on_disk
    topic_sub = client(b)
    subscribe(topic_sub, "/topic/news", "t", ack="client-individual")
    assert quiet(topic_sub)
    assert bodies(drain(client(b), "/queue/mixed", 1)) == ["kept-1"]


def test_unacked_delivery_comes_back_redelivered_acked_one_is_gone(
    restarts: Restarts, client
) -> None:
    b = restarts.start()
    c = client(b)
    for i in range(1, 6):
        send(c, "/queue/unacked", f"m{i}", receipt=i == 5, **PERSISTENT)
    consumer = client(b)
    subscribe(consumer, "/queue/unacked", "s", ack="client-individual", **{
        "activemq.prefetchSize": "3"
    })  # fmt: skip
    m1, m2, m3 = consumer.listener.take(3)
    assert bodies([m1, m2, m3]) == ["m1", "m2", "m3"]
    ack(consumer, m1)
    m4 = consumer.listener.next()  # the freed credit
    assert m4.body == "m4"
    assert quiet(consumer)  # m5 is never delivered (prefetch 3)

    b = restarts.restart(b)  # the consumer is still connected, m2..m4 in flight
    frames = drain(client(b), "/queue/unacked", 4, ack_mode="client-individual")
    assert bodies(frames) == ["m2", "m3", "m4", "m5"]
    assert [f.headers.get("redelivered") for f in frames] == ["true", "true", "true", None]
    # The same messages, not copies: id and timestamp are kept.
    for before, after in zip([m2, m3, m4], frames, strict=False):
        assert after.headers["message-id"] == before.headers["message-id"]
        assert after.headers["timestamp"] == before.headers["timestamp"]


def test_delivery_counts_across_restarts_lead_to_the_dlq(restarts: Restarts, client) -> None:
    limits = {"destinations.max_redeliveries": 1}
    b = restarts.start(**limits)
    send(client(b), "/queue/poison", "bad", **PERSISTENT)
    consumer = client(b)
    subscribe(consumer, "/queue/poison", "s", ack="client-individual")
    assert consumer.listener.next().body == "bad"

    # First return (at the restart): 1 redelivery is allowed, it comes back from the queue.
    b = restarts.restart(b, **limits)
    consumer = client(b)
    subscribe(consumer, "/queue/poison", "s", ack="client-individual")
    again = consumer.listener.next()
    assert (again.body, again.headers.get("redelivered")) == ("bad", "true")

    # Second return: past the limit, so it is dead-lettered, and that survives too.
    b = restarts.restart(b, **limits)
    assert quiet_queue(client(b), "/queue/poison")
    assert b.stats("ActiveMQ.DLQ").depth == 1
    b = restarts.restart(b, **limits)
    assert quiet_queue(client(b), "/queue/poison")
    (dead,) = drain(client(b), DLQ, 1)
    assert dead.body == "bad"
    assert dead.headers["original-destination"] == "/queue/poison"
    assert dead.headers["persistent"] == "true"


def quiet_queue(c: Client, dest: str) -> bool:
    subscribe(c, dest, f"q-{next(_ids)}", ack="client-individual")
    return quiet(c)


def test_nacked_message_is_on_the_dlq_after_restart(restarts: Restarts, client) -> None:
    b = restarts.start()
    c = client(b)
    send(c, "/queue/nacked", "n1", **PERSISTENT)
    send(c, "/queue/nacked", "n2", **PERSISTENT)
    consumer = client(b)
    subscribe(consumer, "/queue/nacked", "s", ack="client-individual")
    n1, n2 = consumer.listener.take(2)
    assert bodies([n1, n2]) == ["n1", "n2"]
    consumer.conn.nack(n1.headers["ack"], receipt="nacked")
    wait_receipt(consumer, "nacked")

    b = restarts.restart(b)
    frames = drain(client(b), "/queue/nacked", 1)
    assert bodies(frames) == ["n2"]
    (dead,) = drain(client(b), DLQ, 1)
    assert dead.body == "n1"
    assert dead.headers["original-destination"] == "/queue/nacked"
    assert dead.headers["message-id"] == n1.headers["message-id"]


# -- transactions --------------------------------------------------------------------------


def test_transaction_outcomes_survive_restart(restarts: Restarts, client) -> None:
    b = restarts.start()
    c = client(b)
    c.begin(transaction="t-commit")
    send(c, "/queue/txs", "c1", receipt=False, transaction="t-commit", **PERSISTENT)
    send(c, "/queue/txs", "c2", receipt=False, transaction="t-commit", **PERSISTENT)
    c.commit(transaction="t-commit", receipt="committed")
    wait_receipt(c, "committed")
    c.begin(transaction="t-abort")
    send(c, "/queue/txs", "aborted", receipt=False, transaction="t-abort", **PERSISTENT)
    c.abort(transaction="t-abort", receipt="aborted")
    wait_receipt(c, "aborted")
    c.begin(transaction="t-open")
    send(c, "/queue/txs", "unfinished", receipt=False, transaction="t-open", **PERSISTENT)

    # Acknowledgements in transactions: one committed, one left open at the restart.
    send(c, "/queue/txacks", "k1", receipt=False, **PERSISTENT)
    send(c, "/queue/txacks", "k2", **PERSISTENT)
    consumer = client(b)
    subscribe(consumer, "/queue/txacks", "s", ack="client-individual")
    k1, k2 = consumer.listener.take(2)
    consumer.begin(transaction="a-commit")
    consumer.conn.ack(k1.headers["ack"], transaction="a-commit")
    consumer.commit(transaction="a-commit", receipt="ack-committed")
    wait_receipt(consumer, "ack-committed")
    consumer.begin(transaction="a-open")
    consumer.conn.ack(k2.headers["ack"], transaction="a-open", receipt="ack-in-tx")
    wait_receipt(consumer, "ack-in-tx")
    sync(c)  # the unfinished send reached the broker before it stops

    b = restarts.restart(b)
    assert bodies(drain(client(b), "/queue/txs", 2)) == ["c1", "c2"]
    (back,) = drain(client(b), "/queue/txacks", 1)
    assert (back.body, back.headers.get("redelivered")) == ("k2", "true")


# -- expiry --------------------------------------------------------------------------------


def test_message_that_expired_during_the_downtime_goes_to_the_dlq(
    restarts: Restarts, client
) -> None:
    b = restarts.start()
    c = client(b)
    expires = int(time.time() * 1000) + 1000
    send(c, "/queue/expiring", "short-lived", expires=str(expires), **PERSISTENT)
    send(c, "/queue/expiring", "long-lived", **PERSISTENT)
    b.stop()
    pass_time_until(expires / 1000 + 0.05)

    b = restarts.start()
    assert bodies(drain(client(b), "/queue/expiring", 1)) == ["long-lived"]
    (dead,) = drain(client(b), DLQ, 1)
    assert dead.body == "short-lived"
    assert dead.headers["original-destination"] == "/queue/expiring"
    assert "Expired" in dead.headers.get("dlqDeliveryFailureCause", "")


# -- the data directory lock ---------------------------------------------------------------


BROKER_RUN = [sys.executable, "-m", "broker", "run", "--stomp-port", "0", "--console-port", "0"]


def run_broker(data_dir: Path, *extra: str, cwd: Path) -> tuple[bool, int, str]:
    """Run `python -m broker run` on `data_dir` (ZONEMQ_* variables dropped). Returns
    whether it started serving STOMP (it is then stopped with SIGTERM), its exit code
    and its stderr."""
    proc = popen_broker([*BROKER_RUN, "--data-dir", str(data_dir), *extra], cwd)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    served = False
    deadline = time.monotonic() + 15
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"broker neither served nor exited: {seen}") from None
            if line is None:
                break
            seen.append(line)
            if "stomp listener on" in line:
                served = True
                proc.terminate()
    finally:
        if proc.poll() is None and not served:
            proc.kill()
    return served, proc.wait(15), "".join(seen)


def test_second_broker_on_a_locked_data_dir_is_refused(
    restarts: Restarts, client, tmp_path: Path
) -> None:
    b = restarts.start()
    send(client(b), "/queue/locked", "still mine", **PERSISTENT)

    with pytest.raises(StartupError, match="locked") as info:
        BrokerThread(restarts.data_dir).start()
    assert str(restarts.data_dir) in str(info.value)

    served, code, err = run_broker(restarts.data_dir, cwd=tmp_path)
    assert (served, code) == (False, 1), err
    assert "locked" in err and str(restarts.data_dir) in err, err

    # The first broker is untouched; once it stops, the directory can be used again.
    b = restarts.restart(b)
    assert bodies(drain(client(b), "/queue/locked", 1)) == ["still mine"]


# -- damaged journals ----------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "cut-1", "cut-to-header", "cut-whole-payload"])
def test_torn_tail_is_repaired_and_earlier_messages_kept(
    restarts: Restarts, client, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    b = restarts.start()
    c = client(b)
    for i in range(5):
        send(c, "/queue/torn", f"t{i}", receipt=i == 4, **PERSISTENT)
    b.stop()
    (last_segment,) = restarts.segments()
    offset, _rtype, length = records(last_segment)[-1]
    size = last_segment.stat().st_size
    assert size == offset + RECORD.size + length  # the last record is the ADD of t4
    with last_segment.open("r+b") as f:
        if damage == "garbage":
            f.seek(size)
            f.write(b"\x07\x00\x00\x00\x01garbage-after-the-last-record")
        elif damage == "cut-1":
            f.truncate(size - 1)
        elif damage == "cut-to-header":
            f.truncate(offset + 4)
        else:
            f.truncate(offset + RECORD.size)
    expected = [f"t{i}" for i in range(5 if damage == "garbage" else 4)]

    b = restarts.start()
    assert "torn tail" in caplog.text
    c = client(b)
    # Appends go after the repaired tail and are read back after the next restart.
    send(c, "/queue/torn", "after-repair", **PERSISTENT)
    b = restarts.restart(b)
    assert bodies(drain(client(b), "/queue/torn", len(expected) + 1)) == [
        *expected,
        "after-repair",
    ]


def test_corrupt_record_mid_journal_refuses_start_unless_skipped(
    restarts: Restarts, client, tmp_path: Path
) -> None:
    small = {"store.segment_size": 65536}
    b = restarts.start(**small)
    c = client(b)
    n = 120  # about 240 KB: four segments
    for i in range(n):
        send(c, "/queue/corrupt", f"c{i:03d}-" + "x" * 2000, receipt=i == n - 1, **PERSISTENT)
    b.stop()
    segments = restarts.segments()
    assert len(segments) >= 3
    first = segments[0]
    recs = records(first)
    offset, _rtype, length = recs[1]  # the ADD of c000 (after the queue's DEST record)
    data = bytearray(first.read_bytes())
    assert b"c000-" in data[offset : offset + RECORD.size + length]
    data[offset + RECORD.size + length // 2] ^= 0xFF
    first.write_bytes(bytes(data))

    with pytest.raises(StartupError) as info:
        restarts.start(**small)
    text = str(info.value)
    assert f"offset {offset}" in text and first.name in text, text

    # The command line: exit code 1 with the offset; --recover-skip-corrupt starts.
    served, code, err = run_broker(restarts.data_dir, cwd=tmp_path)
    assert (served, code) == (False, 1), err
    assert f"offset {offset}" in err, err
    served, code, err = run_broker(restarts.data_dir, "--recover-skip-corrupt", cwd=tmp_path)
    assert (served, code) == (True, 0), err
    assert "skipping corrupt bytes" in err, err

    b = restarts.start(**small, **{"store.skip_corrupt": True})
    frames = drain(client(b), "/queue/corrupt", n - 1)
    assert [f.body[:4] for f in frames] == [f"c{i:03d}" for i in range(1, n)]


# -- compaction ----------------------------------------------------------------------------


def churn(c: Client, consumer: Client, dest: str, total: int, size: int = 8192) -> None:
    """Produce and consume (acked) `total` bytes of persistent messages in batches."""
    body = "y" * size
    batch = 100
    rounds = total // (size * batch)
    for _ in range(rounds):
        for i in range(batch):
            send(c, dest, body, receipt=i == batch - 1, **PERSISTENT)
        for f in consumer.listener.take(batch):
            consumer.conn.ack(f.headers["ack"])
    sync(consumer)


def test_compaction_keeps_disk_bounded_with_one_old_message(restarts: Restarts, client) -> None:
    settings = {"store.segment_size": 65536, "store.compaction_interval": 0.2}
    b = restarts.start(**settings)
    c = client(b)
    send(c, "/queue/old", "the old one", **PERSISTENT)
    consumer = client(b)
    subscribe(consumer, "/queue/churn", "s", ack="client-individual")
    for _ in range(4):
        churn(c, consumer, "/queue/churn", 5 * 1024 * 1024)
    # About 320 segments' worth was written (file names are the zero-padded segment ids).
    assert int(restarts.segments()[-1].name.split(".")[0]) > 200
    wait_until(lambda: len(restarts.segments()) <= 6, 10, "at most 6 segments")

    b = restarts.restart(b, **settings)
    assert bodies(drain(client(b), "/queue/old", 1)) == ["the old one"]
    assert quiet_queue(client(b), "/queue/churn")


def test_compaction_never_resurrects_a_consumed_transactional_send(
    restarts: Restarts, client
) -> None:
    """Two sends committed together are one TX record; when one is consumed and
    compaction copies the record forward, the consumed one must stay consumed."""
    settings = {"store.segment_size": 65536, "store.compaction_interval": 0.2}
    b = restarts.start(**settings)
    c = client(b)
    c.begin(transaction="t")
    send(c, "/queue/pair", "consumed", receipt=False, transaction="t", **PERSISTENT)
    send(c, "/queue/pair", "kept", receipt=False, transaction="t", **PERSISTENT)
    c.commit(transaction="t", receipt="committed")
    wait_receipt(c, "committed")
    consumer = client(b)
    subscribe(consumer, "/queue/pair", "p", ack="client-individual", **{
        "activemq.prefetchSize": "1"
    })  # fmt: skip
    first = consumer.listener.next()
    assert first.body == "consumed"
    ack(consumer, first)
    consumer.conn.unsubscribe("p")
    first_live_segment = restarts.segments()[-1]

    churner = client(b)
    subscribe(churner, "/queue/churn2", "s", ack="client-individual")
    churn(c, churner, "/queue/churn2", 2 * 1024 * 1024)
    # The segments holding the TX record and the ack are gone: only copies remain.
    wait_until(
        lambda: restarts.segments()[0].name > first_live_segment.name,
        10,
        f"{first_live_segment.name} to be compacted away",
    )

    b = restarts.restart(b, **settings)
    c = client(b)
    subscribe(c, "/queue/pair", "after", ack="client-individual")
    sync(c)  # every message the queue holds has been dispatched (prefetch 1000)
    got = [c.listener.messages.get_nowait().body for _ in range(c.listener.messages.qsize())]
    assert "kept" in got
    assert got == ["kept"], f"after compaction and a restart the queue holds {got}"
