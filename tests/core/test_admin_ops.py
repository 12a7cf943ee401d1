"""The core's operator actions (broker/core/admin.py): pause, take by predicate, move,
copy, retry of dead letters, on a fake clock and a memory store."""

from __future__ import annotations

import pytest

from broker.core import AUTO, INDIVIDUAL, QUEUE, TOPIC, Address, Core, CoreError, Message, Selector
from broker.core.admin import HeldQueue, by_ids
from broker.core.queue import MessageQueue
from tests.core.conftest import MakeCore
from tests.core.fakes import MemoryStore, RecordingConsumer

Q = Address(QUEUE, "admin.q")
T = Address(QUEUE, "admin.t")
DLQ = Address(QUEUE, "ActiveMQ.DLQ")


def send(core: Core, address: Address, body: bytes, **props: str) -> Message:
    msg = Message(body, persistent=True, properties=dict(props))
    core.send(address, msg)
    return msg


def test_pause_holds_put_and_dispatch_and_resume_sends_in_order(core: Core) -> None:
    send(core, Q, b"a")
    c = RecordingConsumer()
    sub = core.subscribe(Q, c, ack_mode=INDIVIDUAL, prefetch=10)
    assert c.bodies == [b"a"]
    assert core.pause_queue(Q) is True and core.pause_queue(Q) is False
    assert type(core.queues[Q]) is HeldQueue and core.queue_paused(Q)
    send(core, Q, b"b")
    send(core, Q, b"c")
    sub.ack(c.got[0].id)  # an ack dispatches: nothing may go out
    late = RecordingConsumer()
    core.subscribe(Q, late, ack_mode=AUTO)
    sub.pause()
    sub.resume()  # the protocol's own flow control cannot undo an operator's pause
    assert c.bodies == [b"a"] and late.bodies == []
    assert core.queues[Q].count == 2 and core.queues[Q].enqueued == 3
    assert core.resume_queue(Q) is True and core.resume_queue(Q) is False
    assert type(core.queues[Q]) is MessageQueue
    assert sorted(c.bodies[1:] + late.bodies) == [b"b", b"c"]


def test_pause_with_a_selective_consumer(core: Core) -> None:
    c = RecordingConsumer()
    core.subscribe(Q, c, ack_mode=AUTO, selector=Selector("k = 'y'"))
    send(core, Q, b"no", k="n")  # settles the consumer: it matches nothing pending
    core.pause_queue(Q)
    send(core, Q, b"yes", k="y")
    assert c.bodies == []
    core.resume_queue(Q)
    assert c.bodies == [b"yes"]


def test_unknown_queue_is_not_found(core: Core) -> None:
    for call in (core.pause_queue, core.resume_queue, core.queue_paused):
        with pytest.raises(CoreError) as info:
            call(Address(QUEUE, "nope"))
        assert info.value.code == "not-found"


def test_remove_by_id_journals_and_counts(durable_core: Core, store: MemoryStore) -> None:
    msgs = [send(durable_core, Q, b"m%d" % i) for i in range(3)]
    assert durable_core.remove_pending(Q, by_ids({msgs[1].id})) == 1
    assert ("remove", Q, msgs[1].id) in store.ops("remove")
    q = durable_core.queues[Q]
    assert (q.count, q.acked) == (2, 1)
    assert [m.body for m in q.browse()] == [b"m0", b"m2"]
    with pytest.raises(CoreError):
        durable_core.find_pending(Q, msgs[1].id)
    assert durable_core.find_pending(Q, msgs[2].id).body == b"m2"


def test_purge_counts_dequeued(durable_core: Core) -> None:
    for i in range(4):
        send(durable_core, Q, b"%d" % i)
    assert durable_core.remove_pending(Q, None) == 4
    assert durable_core.queues[Q].acked == 4 and durable_core.queues[Q].count == 0


def test_move_by_selector_is_one_record_per_message(durable_core: Core, store: MemoryStore) -> None:
    msgs = [send(durable_core, Q, b"m%d" % i, k=str(i % 2)) for i in range(4)]
    moved = durable_core.move_pending(Q, T, Selector("k = '1'").matches)
    assert moved == 2
    txs = store.ops("transaction")
    assert txs == [
        ("transaction", [(T, msgs[1].id)], [(Q, msgs[1].id)]),
        ("transaction", [(T, msgs[3].id)], [(Q, msgs[3].id)]),
    ]
    target = durable_core.queues[T].browse()
    assert [m.id for m in target] == [msgs[1].id, msgs[3].id]
    assert target[0].properties["originalDestination"] == "queue://admin.q"
    assert durable_core.queues[Q].acked == 2


def test_move_takes_paged_out_stubs(make_core: MakeCore) -> None:
    store = MemoryStore(stubs=True)
    core = make_core(store, queue_memory_limit=600)
    msgs = [send(core, Q, b"x" * 200 + b"%d" % i) for i in range(10)]
    q = core.queues[Q]
    assert any(type(e) is int for e in q.entries())
    before = q.bytes
    assert core.move_pending(Q, T, by_ids({msgs[8].id})) == 1
    assert q.count == 9 and q.bytes < before
    assert core.queues[T].browse()[0].body == b"x" * 200 + b"8"
    # What is left still comes out whole and in order.
    c = RecordingConsumer()
    core.subscribe(Q, c, ack_mode=AUTO)
    assert c.bodies == [m.body for i, m in enumerate(msgs) if i != 8]


def test_copy_leaves_the_original_and_gives_a_new_id(durable_core: Core) -> None:
    msg = send(durable_core, Q, b"c")
    assert durable_core.move_pending(Q, T, None, copy=True) == 1
    (copy,) = durable_core.queues[T].browse()
    assert copy.body == b"c" and copy.id != msg.id
    assert durable_core.queues[Q].count == 1


@pytest.mark.parametrize("target", [Q, Address(TOPIC, "admin.t"), Address(QUEUE, "")])
def test_bad_targets_are_invalid(core: Core, target: Address) -> None:
    send(core, Q, b"x")
    with pytest.raises(CoreError) as info:
        core.move_pending(Q, target, None)
    assert info.value.code == "invalid"
    assert core.queues[Q].count == 1


def test_retry_moves_back_what_names_a_queue_and_counts_the_rest(durable_core: Core) -> None:
    c = RecordingConsumer()
    sub = durable_core.subscribe(Q, c, ack_mode=INDIVIDUAL, prefetch=10)
    send(durable_core, Q, b"poison")
    sub.dead_letter(c.got[0].id, "poison ack")
    sub.close()
    send(durable_core, DLQ, b"no origin")
    topic_origin = Message(b"from a topic", persistent=True)
    topic_origin.properties["originalDestination"] = "topic://admin.news"
    durable_core.send(DLQ, topic_origin)
    assert durable_core.queues[DLQ].count == 3
    assert durable_core.retry_dead_letters(DLQ) == (1, 2)
    (back,) = durable_core.queues[Q].browse()
    assert back.body == b"poison" and back.delivery_count == 0 and not back.redelivered
    assert back.properties["originalDestination"] == "queue://ActiveMQ.DLQ"
    assert "originalExpiration" not in back.properties
    assert [m.body for m in durable_core.queues[DLQ].browse()] == [b"no origin", b"from a topic"]


def test_group_messages_sent_while_paused_keep_their_groups_after_resume(core: Core) -> None:
    core.queue(Q)
    core.pause_queue(Q)
    for i in range(6):
        core.send(Q, Message(b"%d" % i, group_id="abc"[i % 3]))
    first, second = RecordingConsumer(), RecordingConsumer()
    core.subscribe(Q, first, ack_mode=INDIVIDUAL, prefetch=10)
    core.subscribe(Q, second, ack_mode=INDIVIDUAL, prefetch=10)
    core.resume_queue(Q)
    groups = [{m.group_id for m in c.got} for c in (first, second)]
    # Each group went to one consumer (round robin would have split every group).
    assert not groups[0] & groups[1]
    assert len(first.got) + len(second.got) == 6
