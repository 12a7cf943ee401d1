"""Local transactions: held sends and acks, commit and rollback."""

from __future__ import annotations

import pytest

from broker.core import INDIVIDUAL, QUEUE, Address, Core, CoreCode, CoreError, Message
from tests.core.fakes import MemoryStore, RecordingConsumer

Q = Address(QUEUE, "tx")
OUT = Address(QUEUE, "tx.out")


def test_commit_routes_held_sends(core: Core) -> None:
    c = RecordingConsumer()
    core.subscribe(Q, c)
    tx = core.begin()
    assert core.send(Q, Message(b"a"), tx=tx) is None
    assert c.got == []
    tx.commit()
    assert c.bodies == [b"a"]


def test_rollback_drops_sends_and_restores_acks(core: Core) -> None:
    core.send(Q, Message(b"m"))
    c = RecordingConsumer()
    sub = core.subscribe(Q, c, ack_mode=INDIVIDUAL, prefetch=1)
    tx = core.begin()
    core.send(OUT, Message(b"never"), tx=tx)
    assert sub.ack(c.got[0].id, tx=tx)
    assert not sub.inflight  # credit freed at once
    tx.abort()
    assert core.browse(OUT) == []
    # Unacknowledged again, no new delivery; it can be acked for good now.
    assert list(sub.inflight) == [c.got[0].id] and len(c.got) == 1
    assert sub.ack(c.got[0].id)
    assert core.queue(Q).acked == 1


def test_acks_count_only_at_commit(core: Core) -> None:
    core.send(Q, Message(b"m"))
    c = RecordingConsumer()
    sub = core.subscribe(Q, c, ack_mode=INDIVIDUAL)
    tx = core.begin()
    sub.ack(c.got[0].id, tx=tx)
    assert core.queue(Q).acked == 0
    tx.commit()
    assert core.queue(Q).acked == 1


def test_rollback_after_close_redelivers(core: Core) -> None:
    core.send(Q, Message(b"m"))
    c = RecordingConsumer()
    sub = core.subscribe(Q, c, ack_mode=INDIVIDUAL)
    tx = core.begin()
    sub.ack(c.got[0].id, tx=tx)
    sub.close()
    tx.abort()
    (back,) = core.browse(Q)
    assert back.redelivered and back.delivery_count == 1


def test_commit_is_one_journal_record(durable_core: Core, store: MemoryStore) -> None:
    core = durable_core
    core.send(Q, Message(b"in", persistent=True))
    c = RecordingConsumer()
    sub = core.subscribe(Q, c, ack_mode=INDIVIDUAL)
    tx = core.begin()
    core.send(OUT, Message(b"p", persistent=True), tx=tx)
    core.send(OUT, Message(b"n"), tx=tx)  # not persistent: not journaled
    sub.ack(c.got[0].id, tx=tx)
    before = len(store.calls)
    tx.commit()
    (record,) = [op for op in store.calls[before:] if op[0] != "queue_created"]
    kind, adds, removes = record
    assert kind == "transaction"
    assert [a for a, _ in adds] == [OUT] and removes == [(Q, c.got[0].id)]


def test_finished_transaction_refuses_sends(core: Core) -> None:
    tx = core.begin()
    tx.commit()
    with pytest.raises(CoreError) as err:
        core.send(Q, Message(b"late"), tx=tx)
    assert err.value.code == CoreCode.INVALID
