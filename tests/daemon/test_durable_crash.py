"""Durable topic subscriptions survive SIGKILL of the broker process (issue 12).

Producers publish persistent messages to a topic with a receipt per message while two
durable subscriptions exist: one offline for the whole load, one online consuming with
client-individual acks (each ACK with a receipt). The broker is killed at a seeded
moment; the broker started again on the same data directory must still have both
subscriptions, and deliver to the offline one every message whose RECEIPT a producer
saw, once and in each producer's order, and to the online one every receipted message
except those whose ACK was receipted (and maybe those whose ACK was sent, whose receipt
died with the broker).
"""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
import time
from typing import Any

import pytest
import stomp

from tests.daemon.test_crash import (  # noqa: F401  (brokers is a fixture)
    PERSISTENT,
    WAIT,
    Brokers,
    Recorder,
    brokers,
    kill_moment,
    sync,
    wait_receipt,
)

TOPIC = "/topic/durable.crash"
SUB = {"activemq.subscriptionName": "crash"}


def connect(port: int, client_id: str | None = None) -> tuple[Any, Recorder]:
    conn = stomp.Connection12([("127.0.0.1", port)], heartbeats=(0, 0))
    rec = Recorder()
    conn.set_listener("recorder", rec)
    headers = {"client-id": client_id} if client_id else {}
    conn.connect(wait=True, headers=headers)
    return conn, rec


def durable(port: int, client_id: str, ack: str = "client-individual") -> tuple[Any, Recorder]:
    conn, rec = connect(port, client_id)
    conn.subscribe(TOPIC, id="d", ack=ack, headers=SUB, receipt="subscribed")
    wait_receipt(rec, "subscribed")
    return conn, rec


class Producer(threading.Thread):
    """Publishes persistent messages tagged p<k>-<i>, at most 8 unreceipted at a time."""

    def __init__(self, port: int, k: int) -> None:
        super().__init__(name=f"producer-{k}", daemon=True)
        self.k = k
        self.conn, self.rec = connect(port)
        self.sent: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        for _ in range(8):
            self.rec.credit.release()
        i = 0
        while not self.stop.is_set():
            if not self.rec.credit.acquire(timeout=WAIT) or self.rec.lost.is_set():
                return
            tag = f"p{self.k}-{i}"
            try:
                self.conn.send(TOPIC, tag, headers={"n": tag, **PERSISTENT}, receipt=tag)
            except Exception:  # the broker is gone
                return
            self.sent.append(tag)
            i += 1


class Acker(threading.Thread):
    """The online durable subscriber: ACKs each message with a receipt."""

    def __init__(self, port: int) -> None:
        super().__init__(name="acker", daemon=True)
        self.conn, self.rec = durable(port, "online")
        self.ack_sent: set[str] = set()

    def run(self) -> None:
        while not self.rec.lost.is_set():
            try:
                frame = self.rec.messages.get(timeout=0.05)
            except queue.Empty:
                continue
            tag = frame.headers["n"]
            self.ack_sent.add(tag)
            try:
                self.conn.ack(frame.headers["ack"], receipt="ack:" + tag)
            except Exception:
                return

    @property
    def acked(self) -> set[str]:
        return {r[4:] for r in self.rec.receipted if r.startswith("ack:")}


def drain(port: int, client_id: str) -> list[str]:
    """Everything the durable subscription holds, acked; then nothing more waits."""
    conn, rec = durable(port, client_id)
    try:
        tags: list[str] = []
        while True:
            try:
                frame = rec.messages.get(timeout=1.0)
            except queue.Empty:
                break
            tags.append(frame.headers["n"])
            conn.ack(frame.headers["ack"])
        sync(conn, rec, "quiet")
        assert rec.messages.empty()
        return tags
    finally:
        with contextlib.suppress(Exception):
            conn.disconnect()


@pytest.mark.parametrize("seed", [11, 12])
def test_sigkill_under_load_keeps_durable_subscriptions(brokers: Brokers, seed: int) -> None:  # noqa: F811
    broker = brokers.start()
    off, off_rec = durable(broker.port, "offline")
    off.unsubscribe(id="d", receipt="away")
    wait_receipt(off_rec, "away")
    off.disconnect()
    acker = Acker(broker.port)
    producers = [Producer(broker.port, k) for k in range(3)]
    for t in [*producers, acker]:
        t.start()
    threading.Event().wait(kill_moment(seed))  # the kill point, not a synchronisation
    assert all(p.is_alive() for p in producers), "a producer stopped before the kill"
    broker.kill()
    deadline = time.monotonic() + WAIT
    for t in [*producers, acker]:
        t.join(max(0.1, deadline - time.monotonic()))
        assert not t.is_alive(), f"{t.name} did not notice the crash"
    sent = {tag for p in producers for tag in p.sent}
    receipted = {r for p in producers for r in p.rec.receipted}
    assert receipted and acker.acked, "nothing receipted or acked before the kill"
    print(f"sent {len(sent)}, receipted {len(receipted)}, acked {len(acker.acked)}")

    broker = brokers.start()
    assert broker.recovered >= len(receipted)  # the offline subscription's at least
    offline = drain(broker.port, "offline")
    dupes = [t for t, n in collections.Counter(offline).items() if n > 1]
    assert not dupes, f"duplicates: {dupes[:10]}"
    assert set(offline) <= sent
    missing = receipted - set(offline)
    assert not missing, f"{len(missing)} receipted messages lost, e.g. {sorted(missing)[:10]}"
    for p in producers:
        mine = [t for t in offline if t.startswith(f"p{p.k}-")]
        assert mine == sorted(mine, key=lambda t: int(t.split("-")[1]))

    online = drain(broker.port, "online")
    assert not acker.acked & set(online), "messages whose ACK was receipted came back"
    lost = receipted - acker.ack_sent - set(online)
    assert not lost, f"{len(lost)} receipted, unacked messages lost: {sorted(lost)[:10]}"

    # The drains' ACKs were durable (each drain ends on a receipt): after another
    # crash both subscriptions are there, empty.
    broker = brokers.crash_restart(broker)
    assert broker.recovered == 0
    assert drain(broker.port, "offline") == [] and drain(broker.port, "online") == []
