"""Queues and topics declared in the configuration ([[queues]], [[topics]]): created at
start, seen by the admin API, SQS and STOMP clients, kept across a restart, declared
again without harm, with their own policy keys; bad declarations stop start-up."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import stomp

from broker.config import ConfigError, load_settings
from tests.conftest import WAIT, BrokerThread, Collector
from tests.sqs.support import client as sqs_client

DECLARED: dict[str, Any] = {
    "queues": [
        {"name": "cfg-orders"},
        {"name": "cfg.poison", "dead_letter_strategy": "individual"},
    ],
    "topics": [{"name": "cfg.prices"}],
}


def destinations(broker: BrokerThread) -> dict[tuple[str, str], dict[str, Any]]:
    url = f"http://127.0.0.1:{broker.console_port}/api/destinations"
    with urllib.request.urlopen(url, timeout=WAIT) as resp:
        listed = json.loads(resp.read())["destinations"]
    return {(d["kind"], d["name"]): d for d in listed}


def stomp_client(broker: BrokerThread) -> tuple[stomp.Connection12, Collector]:
    conn = stomp.Connection12([("127.0.0.1", broker.stomp_port)])
    listener = Collector()
    conn.set_listener("c", listener)
    conn.connect(wait=True)
    return conn, listener


def test_declared_destinations_exist_at_start_for_every_client(tmp_path: Path) -> None:
    broker = BrokerThread(tmp_path / "data", **DECLARED).start()
    try:
        seen = destinations(broker)
        assert seen[("queue", "cfg-orders")]["depth"] == 0
        assert ("queue", "cfg.poison") in seen
        assert ("topic", "cfg.prices") in seen
        urls = sqs_client(broker).list_queues(QueueNamePrefix="cfg-").get("QueueUrls", [])
        assert [u.rsplit("/", 1)[1] for u in urls] == ["cfg-orders"]
        # An SQS producer and a STOMP consumer meet on the declared queue.
        sqs = sqs_client(broker)
        sqs.send_message(QueueUrl=urls[0], MessageBody="from sqs")
        conn, listener = stomp_client(broker)
        try:
            conn.subscribe("/queue/cfg-orders", id="1", ack="auto")
            assert listener.next().body == "from sqs"
        finally:
            conn.disconnect()
    finally:
        broker.stop()


def test_declared_queue_keeps_its_messages_across_restarts(tmp_path: Path) -> None:
    broker = BrokerThread(tmp_path / "data", **DECLARED).start()
    try:
        conn, listener = stomp_client(broker)
        conn.send("/queue/cfg-orders", "kept", persistent="true", receipt="r")
        assert listener.receipt() == "r"
        conn.disconnect()
    finally:
        broker.stop()
    # Declared again over the recovered queue: the same one, its message still there.
    for _ in range(2):
        broker = BrokerThread(tmp_path / "data", **DECLARED).start()
        try:
            seen = destinations(broker)
            assert seen[("queue", "cfg-orders")]["depth"] == 1
            assert [k for k in seen if k[1] == "cfg-orders"] == [("queue", "cfg-orders")]
        finally:
            broker.stop()


def test_declared_policy_keys_apply_to_that_queue_alone(tmp_path: Path) -> None:
    broker = BrokerThread(tmp_path / "data", **DECLARED).start()
    try:
        conn, listener = stomp_client(broker)
        try:
            for name in ("cfg.poison", "cfg-orders"):
                conn.subscribe(f"/queue/{name}", id=name, ack="client-individual")
                # Persistent: a non-persistent dead letter is dropped (ActiveMQ's default).
                conn.send(f"/queue/{name}", "bad", persistent="true", receipt=f"s-{name}")
                assert listener.receipt() == f"s-{name}"
                frame = listener.next()
                conn.nack(frame.headers["ack"], receipt=f"n-{name}")
                assert listener.receipt() == f"n-{name}"
        finally:
            conn.disconnect()
        seen = destinations(broker)
        # Its own individual strategy; the other declared queue keeps the shared DLQ.
        assert seen[("queue", "DLQ.cfg.poison")]["depth"] == 1
        assert seen[("queue", "ActiveMQ.DLQ")]["depth"] == 1
    finally:
        broker.stop()


@pytest.mark.parametrize(
    ("declared", "words"),
    [
        ({"queues": [{"name": "a.*"}]}, "queues[0].name: one destination"),
        ({"queues": [{"name": "a,b"}]}, "queues[0].name: one destination"),
        ({"topics": [{"name": ""}]}, "topics[0].name: must be set"),
        ({"queues": [{"name": "a"}, {"name": "a"}]}, "queues[1].name: 'a' is declared already"),
        ({"queues": [{"name": "a", "memory_limit": 0}]}, "queues[0].memory_limit"),
        ({"queues": [{"name": "a", "prefetch": 1}]}, "queues[0].prefetch: unknown setting"),
    ],
)
def test_bad_declarations_name_the_key(declared: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, env={}, overrides=declared)
    assert words in str(err.value)


def test_declarations_load_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "z.toml"
    path.write_text('[[queues]]\nname = "orders"\nmax_redeliveries = 3\n[[topics]]\nname = "t"\n')
    s = load_settings(path, env={})
    assert [q.name for q in s.queues] == ["orders"] and s.queues[0].max_redeliveries == 3
    assert [t.name for t in s.topics] == ["t"]
