"""Routing by pattern (issue 12): wildcard and composite subscriptions, composite sends,
virtual topics. Behaviour compared with the shared ActiveMQ 5.17.2 over STOMP (see the
report in README "Differences from ActiveMQ 5.17" and ARCHITECTURE "Routing")."""

from __future__ import annotations

import pytest

from broker.core import AUTO, CLIENT, INDIVIDUAL, QUEUE, TOPIC, Address, Core, CoreError, Message
from tests.core.conftest import MakeCore
from tests.core.fakes import MemoryStore, RecordingConsumer


def q(name: str) -> Address:
    return Address(QUEUE, name)


def t(name: str) -> Address:
    return Address(TOPIC, name)


def test_wildcard_topic_gets_existing_and_later_topics(core: Core) -> None:
    core.topic(t("news.sport"))
    star, rest = RecordingConsumer(), RecordingConsumer()
    core.subscribe(t("news.*"), star, ack_mode=AUTO)
    core.subscribe(t("news.>"), rest, ack_mode=AUTO)
    core.send(t("news.sport"), Message(b"1"))
    core.send(t("news.tech"), Message(b"2"))  # created after the subscriptions
    core.send(t("news.tech.ai"), Message(b"3"))
    core.send(t("weather"), Message(b"4"))
    assert star.bodies == [b"1", b"2"]
    assert rest.bodies == [b"1", b"2", b"3"]
    assert [m.destination for m in rest.got] == [
        t("news.sport"),
        t("news.tech"),
        t("news.tech.ai"),
    ]


def test_wildcard_topic_close_leaves_every_topic(core: Core) -> None:
    c = RecordingConsumer()
    sub = core.subscribe(t("a.*"), c, ack_mode=AUTO)
    core.send(t("a.x"), Message(b"1"))
    core.send(t("a.y"), Message(b"2"))
    sub.close()
    core.send(t("a.x"), Message(b"3"))
    core.send(t("a.z"), Message(b"4"))  # a new topic no longer finds it
    assert c.bodies == [b"1", b"2"]
    assert all(not topic.subs for topic in core.topics.values())
    assert core.router.topic_watchers.size == 0


def test_wildcard_topic_selector_and_no_local(core: Core) -> None:
    from broker.core import Selector

    c = RecordingConsumer()
    core.subscribe(t("s.*"), c, ack_mode=AUTO, selector=Selector("n > 1"), no_local=True, origin=1)
    core.send(t("s.a"), Message(b"low", properties={"n": 1}))
    core.send(t("s.a"), Message(b"high", properties={"n": 2}))
    core.send(t("s.b"), Message(b"mine", properties={"n": 5}, origin=1))
    assert c.bodies == [b"high"]


def test_deleted_topic_keeps_its_wildcard_subscriber_on_the_others(core: Core) -> None:
    c = RecordingConsumer()
    core.subscribe(t("d.*"), c, ack_mode=AUTO)
    core.topic(t("d.one"))
    core.topic(t("d.two"))
    core.delete(t("d.one"))
    core.send(t("d.two"), Message(b"still"))
    core.send(t("d.one"), Message(b"again"))  # recreated: found by the trie again
    assert c.bodies == [b"still", b"again"]


def test_wildcard_queue_consumes_existing_and_new_queues(core: Core) -> None:
    core.send(q("orders.eu"), Message(b"before"))
    c = RecordingConsumer()
    core.subscribe(q("orders.*"), c, ack_mode=AUTO)
    core.send(q("orders.us"), Message(b"new queue"))
    core.send(q("orders.us.west"), Message(b"too deep"))
    core.send(q("other"), Message(b"other"))
    assert c.bodies == [b"before", b"new queue"]
    assert [m.destination for m in c.got] == [q("orders.eu"), q("orders.us")]
    assert core.queues[q("orders.us.west")].count == 1
    assert q("orders.*") not in core.queues  # a wildcard is never a queue


def test_wildcard_queue_shares_one_prefetch(core: Core) -> None:
    """ActiveMQ: prefetch 1 on /queue/p.* gets one message over all its queues."""
    for i in range(3):
        core.send(q("p.a"), Message(b"a%d" % i))
        core.send(q("p.b"), Message(b"b%d" % i))
    c = RecordingConsumer()
    sub = core.subscribe(q("p.*"), c, ack_mode=INDIVIDUAL, prefetch=1)
    assert len(c.got) == 1
    assert sub.ack(c.got[0].id)
    assert len(c.got) == 2
    sub.ack(c.got[1].id)
    assert len(c.got) == 3
    assert sorted(c.bodies) == sorted(set(c.bodies))


def test_wildcard_queue_client_ack_is_cumulative_over_queues(core: Core) -> None:
    core.send(q("c.a"), Message(b"1"))
    core.send(q("c.b"), Message(b"2"))
    core.send(q("c.a"), Message(b"3"))
    c = RecordingConsumer()
    sub = core.subscribe(q("c.*"), c, ack_mode=CLIENT)
    assert len(c.got) == 3
    assert sub.ack(c.got[1].id)  # acks the first two, whichever queue they came from
    assert len(sub.inflight) == 1 and c.got[2].id in sub.inflight
    assert not sub.ack("no-such-id")
    a, b = core.queues[q("c.a")], core.queues[q("c.b")]
    first_two = [m.destination for m in c.got[:2]]
    assert (a.acked, b.acked) == (first_two.count(q("c.a")), first_two.count(q("c.b")))
    assert c.got[0].destination == q("c.a")  # the older queue first


def test_wildcard_queue_close_returns_unacked_to_their_queues(core: Core) -> None:
    core.send(q("r.a"), Message(b"1"))
    core.send(q("r.b"), Message(b"2"))
    c = RecordingConsumer()
    sub = core.subscribe(q("r.*"), c, ack_mode=INDIVIDUAL)
    sub.close()
    assert core.queues[q("r.a")].count == 1 and core.queues[q("r.b")].count == 1
    assert not core.queues[q("r.a")].consumers
    core.send(q("r.c"), Message(b"3"))  # no longer watched
    assert len(c.got) == 2 and core.router.queue_watchers.size == 0
    other = RecordingConsumer()
    core.subscribe(q("r.a"), other, ack_mode=AUTO)
    assert other.got[0].redelivered


def test_wildcard_queue_pause_resume_and_deleted_member(core: Core) -> None:
    c = RecordingConsumer()
    sub = core.subscribe(q("w.*"), c, ack_mode=AUTO, paused=True)
    core.send(q("w.a"), Message(b"1"))
    assert c.got == []
    sub.resume()
    assert c.bodies == [b"1"]
    sub.pause()
    core.send(q("w.b"), Message(b"2"))  # the new member starts paused too
    assert c.bodies == [b"1"]
    sub.resume()
    assert c.bodies == [b"1", b"2"]
    core.delete(q("w.a"))
    core.send(q("w.b"), Message(b"3"))
    assert c.bodies == [b"1", b"2", b"3"]


def test_wildcard_queue_competes_with_a_plain_consumer(core: Core) -> None:
    plain, wild = RecordingConsumer(), RecordingConsumer()
    core.subscribe(q("k.a"), plain, ack_mode=AUTO)
    core.subscribe(q("k.*"), wild, ack_mode=AUTO)
    for i in range(4):
        core.send(q("k.a"), Message(b"%d" % i))
    assert len(plain.got) == 2 and len(wild.got) == 2  # round-robin, each once


def test_wildcard_queue_transaction_ack_and_abort(core: Core) -> None:
    core.send(q("x.a"), Message(b"1"))
    c = RecordingConsumer()
    sub = core.subscribe(q("x.*"), c, ack_mode=INDIVIDUAL, prefetch=1)
    tx = core.begin()
    sub.ack(c.got[0].id, tx=tx)
    tx.abort()
    assert c.got[0].id in sub.inflight
    tx = core.begin()
    sub.ack(c.got[0].id, tx=tx)
    tx.commit()
    assert not sub.inflight and core.queues[q("x.a")].acked == 1


def test_send_to_a_wildcard_is_refused(core: Core) -> None:
    for address in (q("a.*"), t("a.>"), q(">")):
        with pytest.raises(CoreError) as err:
            core.send(address, Message(b"x"))
        assert "wildcard" in err.value.message
    assert not core.queues and not core.topics


def test_composite_send_reaches_each_with_one_id(core: Core) -> None:
    qc, tc = RecordingConsumer(), RecordingConsumer()
    core.subscribe(q("c1"), qc, ack_mode=AUTO)
    core.subscribe(t("c2"), tc, ack_mode=AUTO)
    core.send_composite((q("c1"), t("c2"), q("c3")), Message(b"all"))
    assert qc.bodies == [b"all"] and tc.bodies == [b"all"]
    assert core.queues[q("c3")].count == 1
    assert qc.got[0].id == tc.got[0].id
    assert qc.got[0] is not tc.got[0]
    assert (qc.got[0].destination, tc.got[0].destination) == (q("c1"), t("c2"))


def test_composite_send_journals_each_queue(durable_core: Core, store: MemoryStore) -> None:
    durable_core.send_composite((q("j1"), q("j2")), Message(b"p", persistent=True))
    assert [(c[1], c[0]) for c in store.ops("add")] == [(q("j1"), "add"), (q("j2"), "add")]


def test_composite_subscribe_takes_the_first_parts_kind(core: Core) -> None:
    """ActiveMQ 5.17: /queue/f1,/topic/f2 consumes from queue f1 only."""
    c = RecordingConsumer()
    core.subscribe((q("f1"), t("f2"), q("f3")), c, ack_mode=AUTO)
    core.send(q("f1"), Message(b"1"))
    core.send(t("f2"), Message(b"2"))
    core.send(q("f3"), Message(b"3"))
    assert c.bodies == [b"1", b"3"]
    tc = RecordingConsumer()
    core.subscribe((t("g1"), t("g2.*")), tc, ack_mode=AUTO)
    core.send(t("g1"), Message(b"a"))
    core.send(t("g2.x"), Message(b"b"))
    assert tc.bodies == [b"a", b"b"]


def test_composite_of_one_is_a_plain_subscription(core: Core) -> None:
    from broker.core.multi import QueueGroup

    c = RecordingConsumer()
    sub = core.subscribe((q("one"), t("ignored")), c, ack_mode=AUTO)
    assert not isinstance(sub, QueueGroup) and sub.source is core.queues[q("one")]


def test_virtual_topic_forwards_to_existing_consumer_queues(core: Core) -> None:
    a, b, topic_sub = RecordingConsumer(), RecordingConsumer(), RecordingConsumer()
    core.subscribe(q("Consumer.A.VirtualTopic.orders"), a, ack_mode=AUTO)
    core.subscribe(t("VirtualTopic.orders"), topic_sub, ack_mode=AUTO)
    core.send(t("VirtualTopic.orders"), Message(b"1"))
    # Consumer.B exists only after the first send: it does not get it (as ActiveMQ).
    core.subscribe(q("Consumer.B.VirtualTopic.orders"), b, ack_mode=AUTO)
    core.send(t("VirtualTopic.orders"), Message(b"2"))
    assert a.bodies == [b"1", b"2"] and b.bodies == [b"2"] and topic_sub.bodies == [b"1", b"2"]
    assert a.got[1].id == b.got[0].id == topic_sub.got[1].id
    assert a.got[0].destination == q("Consumer.A.VirtualTopic.orders")
    core.send(q("Consumer.A.VirtualTopic.other"), Message(b"direct"))
    core.send(t("VirtualTopic.other"), Message(b"3"))  # the queue existed before the topic
    assert a.bodies == [b"1", b"2"]
    assert core.queues[q("Consumer.A.VirtualTopic.other")].count == 2
    core.delete(q("Consumer.A.VirtualTopic.orders"))
    core.send(t("VirtualTopic.orders"), Message(b"4"))
    assert b.bodies == [b"2", b"4"]


def test_virtual_topic_competing_consumers_share_one_queue(core: Core) -> None:
    one, two = RecordingConsumer(), RecordingConsumer()
    core.subscribe(q("Consumer.svc.VirtualTopic.jobs"), one, ack_mode=AUTO)
    core.subscribe(q("Consumer.svc.VirtualTopic.jobs"), two, ack_mode=AUTO)
    for i in range(4):
        core.send(t("VirtualTopic.jobs"), Message(b"%d" % i))
    assert len(one.got) == 2 and len(two.got) == 2


def test_virtual_topic_persistent_copies_are_journaled(
    durable_core: Core, store: MemoryStore
) -> None:
    durable_core.queue(q("Consumer.A.VirtualTopic.p"))
    durable_core.queue(q("Consumer.B.VirtualTopic.p"))
    barriers = store.barriers
    durable_core.send(t("VirtualTopic.p"), Message(b"x", persistent=True))
    assert store.barriers > barriers  # the send waits for the copies' records
    adds = sorted(c[1].name for c in store.ops("add"))
    assert adds == ["Consumer.A.VirtualTopic.p", "Consumer.B.VirtualTopic.p"]
    assert durable_core.send(t("VirtualTopic.p"), Message(b"np")) is None
    assert len(store.ops("add")) == 2


def test_virtual_topic_in_a_transaction_is_one_record(
    durable_core: Core, store: MemoryStore
) -> None:
    durable_core.queue(q("Consumer.A.VirtualTopic.tx"))
    tx = durable_core.begin()
    durable_core.send(t("VirtualTopic.tx"), Message(b"x", persistent=True), tx=tx)
    assert durable_core.queues[q("Consumer.A.VirtualTopic.tx")].count == 0
    tx.commit()
    [record] = store.ops("transaction")
    assert [a for a, _ in record[1]] == [q("Consumer.A.VirtualTopic.tx")]
    assert durable_core.queues[q("Consumer.A.VirtualTopic.tx")].count == 1


def test_virtual_topics_configurable_and_off(make_core: MakeCore) -> None:
    core = make_core(virtual_topic_name="VT.>", virtual_topic_prefix="Q.*.")
    core.queue(q("Q.x.VT.a"))
    core.queue(q("Consumer.A.VirtualTopic.a"))
    core.send(t("VT.a"), Message(b"1"))
    core.send(t("VirtualTopic.a"), Message(b"2"))
    assert core.queues[q("Q.x.VT.a")].count == 1
    assert core.queues[q("Consumer.A.VirtualTopic.a")].count == 0
    off = make_core(virtual_topics=False)
    off.queue(q("Consumer.A.VirtualTopic.a"))
    off.send(t("VirtualTopic.a"), Message(b"3"))
    assert off.queues[q("Consumer.A.VirtualTopic.a")].count == 0


def test_wildcard_consumer_of_virtual_topic_queues(core: Core) -> None:
    core.queue(q("Consumer.A.VirtualTopic.w"))
    core.queue(q("Consumer.B.VirtualTopic.w"))
    c = RecordingConsumer()
    sub = core.subscribe(q("Consumer.*.VirtualTopic.w"), c, ack_mode=INDIVIDUAL)
    core.send(t("VirtualTopic.w"), Message(b"x"))
    # The same message id from two queues: each ack settles one of them.
    assert len(c.got) == 2 and c.got[0].id == c.got[1].id
    assert sub.ack(c.got[0].id) and sub.ack(c.got[0].id) and not sub.ack(c.got[0].id)
    assert not sub.inflight


def test_composite_send_with_a_bad_part_sends_nothing(core: Core) -> None:
    c = RecordingConsumer()
    core.subscribe(q("ok"), c, ack_mode=AUTO)
    for bad in (q("w.*"), Address("temp-queue", "gone")):
        with pytest.raises(CoreError):
            core.send_composite((q("ok"), bad), Message(b"x"))
    assert c.got == []


def test_a_wildcard_named_queue_from_an_old_journal_is_restored(core: Core) -> None:
    """Older versions let a send create `a.*`; its messages are kept at replay."""
    core.restore({q("old.*"): [Message(b"kept")]})
    assert core.queues[q("old.*")].count == 1
    with pytest.raises(CoreError):
        core.queue(q("new.*"))
