"""Durable topic subscriptions in the core (broker/core/durable.py), on a fake clock and
an in-memory store that logs every record the core writes."""

from __future__ import annotations

import pytest

from broker.core import AUTO, CLIENT, INDIVIDUAL, QUEUE, TOPIC, Address, Core, CoreError, Message
from broker.core.durable import DURABLE_PREFETCH, queue_address
from broker.core.message import DURABLE
from broker.core.selector import Selector
from tests.core.conftest import MakeCore
from tests.core.fakes import MemoryStore, RecordingConsumer

T = Address(TOPIC, "prices")
KEY = ("client-a", "sub-1")
QA = queue_address(*KEY)


def _sub(core: Core, consumer: RecordingConsumer, **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("ack_mode", INDIVIDUAL)
    return core.subscribe(T, consumer, durable=KEY, **kw)  # type: ignore[arg-type]


def test_offline_messages_wait_and_persistent_ones_are_journaled(
    durable_core: Core, store: MemoryStore
) -> None:
    core = durable_core
    first = RecordingConsumer()
    sub = _sub(core, first)
    assert store.ops("subscription_saved") == [
        ("subscription_saved", *KEY, ("topic", "prices", None, False, False))
    ]
    assert sub.prefetch == DURABLE_PREFETCH
    sub.close()
    assert core.send(T, Message(b"p1", persistent=True)) is None  # the fake's barrier
    core.send(T, Message(b"np", persistent=False))
    adds = store.ops("add")
    assert [(a[1], store.held[(a[1], a[2])]) for a in adds] == [(QA, b"p1")]
    back = RecordingConsumer()
    _sub(core, back)
    assert back.bodies == [b"p1", b"np"]


def test_a_topic_without_durable_subscriptions_journals_nothing(
    durable_core: Core, store: MemoryStore
) -> None:
    core = durable_core
    core.subscribe(T, RecordingConsumer())
    core.send(T, Message(b"x", persistent=True))
    assert store.ops("add") == []
    assert not core.topic(T).durable


def test_second_consumer_is_refused_as_activemq(durable_core: Core) -> None:
    core = durable_core
    _sub(core, RecordingConsumer())
    with pytest.raises(CoreError) as err:
        _sub(core, RecordingConsumer())
    assert err.value.message == (
        "Durable consumer is in use for client: client-a and subscriptionName: sub-1"
    )


def test_durable_on_a_queue_is_refused(durable_core: Core) -> None:
    with pytest.raises(CoreError, match="cannot durably subscribe to a Queue"):
        durable_core.subscribe(Address(QUEUE, "q"), RecordingConsumer(), durable=KEY)


def test_unacknowledged_messages_come_back_redelivered(durable_core: Core) -> None:
    core = durable_core
    one = RecordingConsumer()
    sub = _sub(core, one, ack_mode=CLIENT)
    core.send(T, Message(b"a", persistent=True))
    assert one.bodies == [b"a"]
    sub.close()
    two = RecordingConsumer()
    _sub(core, two)
    assert two.bodies == [b"a"]
    assert two.got[0].redelivered and two.got[0].delivery_count == 1


def test_remove_needs_inactive_and_existing(durable_core: Core, store: MemoryStore) -> None:
    core = durable_core
    sub = _sub(core, RecordingConsumer())
    with pytest.raises(CoreError, match=r"^Durable consumer is in use$"):
        core.durables.remove(*KEY)
    sub.close()
    core.send(T, Message(b"gone", persistent=True))
    core.durables.remove(*KEY)
    assert store.held == {}
    calls = store.ops("remove", "subscription_deleted")
    assert calls[-1] == ("subscription_deleted", *KEY)
    assert calls[0][0] == "remove"  # its messages' removals come first
    with pytest.raises(CoreError) as err:
        core.durables.remove(*KEY)
    assert err.value.message == (
        "No durable subscription exists for clientID: client-a and subscriptionName: sub-1"
    )
    core.send(T, Message(b"after", persistent=True))
    assert core.stats() and all(s.kind != DURABLE for s in core.stats())


def test_changed_selector_replaces_and_drops_messages(durable_core: Core) -> None:
    core = durable_core
    _sub(core, RecordingConsumer()).close()
    core.send(T, Message(b"old", properties={"color": "red"}))
    red = Selector("color = 'red'")
    c = RecordingConsumer()
    _sub(core, c, selector=red).close()
    assert c.bodies == []  # the replaced subscription's message went with it
    core.send(T, Message(b"blue", properties={"color": "blue"}))
    core.send(T, Message(b"red", properties={"color": "red"}))
    again = RecordingConsumer()
    _sub(core, again, selector=Selector("color = 'red'"))  # same text: kept
    assert again.bodies == [b"red"]


def test_changed_topic_or_no_local_replaces(durable_core: Core) -> None:
    core = durable_core
    _sub(core, RecordingConsumer()).close()
    core.send(T, Message(b"kept?"))
    c = RecordingConsumer()
    core.subscribe(Address(TOPIC, "other"), c, durable=KEY, ack_mode=AUTO).close()
    assert c.bodies == []
    core.send(Address(TOPIC, "other"), Message(b"o"))
    c2 = RecordingConsumer()
    core.subscribe(Address(TOPIC, "other"), c2, durable=KEY, no_local=True, ack_mode=AUTO)
    assert c2.bodies == []


def test_no_local_skips_the_consumers_own_connection(durable_core: Core) -> None:
    core = durable_core
    c = RecordingConsumer()
    _sub(core, c, no_local=True, origin="conn-1")
    core.send(T, Message(b"mine", origin="conn-1"))
    core.send(T, Message(b"theirs", origin="conn-2"))
    assert c.bodies == [b"theirs"]


def test_paging_a_shared_message_leaves_other_subscribers_whole(make_core: MakeCore) -> None:
    store = MemoryStore(stubs=False)
    core = make_core(store, queue_memory_limit=1)
    live = RecordingConsumer()
    core.subscribe(T, live, ack_mode=INDIVIDUAL, prefetch=1)
    _sub(core, RecordingConsumer()).close()
    for i in range(3):
        core.send(T, Message(b"body%d" % i, persistent=True))
    d = core.durables.find(*KEY)
    assert d is not None
    assert any(m.body is None for lane in d.queue.lanes for m in lane)  # paged there
    ours = core.topic(T).subs[0].source
    assert all(m.body is not None for lane in ours.lanes for m in lane)
    back = RecordingConsumer()
    _sub(core, back)
    assert back.bodies == [b"body0", b"body1", b"body2"]


def test_stats_show_depth_and_consumers(durable_core: Core) -> None:
    core = durable_core
    sub = _sub(core, RecordingConsumer())
    (s,) = [s for s in core.stats() if s.kind == DURABLE]
    assert (s.name, s.consumers, s.depth) == ("client-a:sub-1", 1, 0)
    sub.close()
    core.send(T, Message(b"1"))
    core.send(T, Message(b"2"))
    (s,) = [s for s in core.stats() if s.kind == DURABLE]
    assert (s.consumers, s.depth, s.enqueued) == (0, 2, 2)


def test_restore_recreates_subscriptions_and_drops_orphans(
    make_core: MakeCore, store: MemoryStore
) -> None:
    core = make_core(store)
    m = Message(b"kept", persistent=True)
    m.id = "m1"
    orphan = Message(b"orphan", persistent=True)
    orphan.id = "m2"
    gone = queue_address("client-x", "old")
    info = ("topic", "prices", "color = 'red'", True, False)
    core.restore({QA: [m], gone: [orphan]}, {}, {KEY: info})
    assert store.ops("remove") == [("remove", gone, "m2")]
    d = core.durables.find(*KEY)
    assert d is not None and d.selector is not None and d.selector.convert_strings
    c = RecordingConsumer()
    _sub(core, c, selector=Selector("color = 'red'", convert_strings=True))
    assert c.bodies == [b"kept"]
    assert store.ops("subscription_saved") == []  # unchanged: nothing written again


def test_a_transaction_journals_its_topic_sends_for_durable_subs_in_its_record(
    durable_core: Core, store: MemoryStore
) -> None:
    core = durable_core
    _sub(core, RecordingConsumer(), selector=Selector("keep = 'yes'")).close()
    other = ("client-b", "sub-2")
    core.subscribe(T, RecordingConsumer(), durable=other).close()
    tx = core.begin()
    kept = Message(b"kept", persistent=True, properties={"keep": "yes"})
    skipped = Message(b"skipped", persistent=True, properties={"keep": "no"})
    core.send(T, kept, tx=tx)
    core.send(T, skipped, tx=tx)
    assert store.ops("transaction", "add") == []
    tx.commit()
    (record,) = store.ops("transaction", "add")
    assert record[0] == "transaction"
    assert sorted(record[1]) == sorted(
        [(QA, kept.id), (queue_address(*other), kept.id), (queue_address(*other), skipped.id)]
    )
    back = RecordingConsumer()
    _sub(core, back, selector=Selector("keep = 'yes'"))
    assert back.bodies == [b"kept"]


def test_a_transaction_paging_a_durable_queue_leaves_shared_messages_whole(
    make_core: MakeCore,
) -> None:
    store = MemoryStore(stubs=False)
    core = make_core(store, queue_memory_limit=600)
    live = RecordingConsumer()
    core.subscribe(T, live, ack_mode=INDIVIDUAL, prefetch=1)
    _sub(core, RecordingConsumer()).close()
    tx = core.begin()
    for i in range(6):
        core.send(T, Message(b"body%d" % i, persistent=True), tx=tx)
    tx.commit()
    d = core.durables.find(*KEY)
    assert d is not None and any(m.body is None for lane in d.queue.lanes for m in lane)
    ours = core.topic(T).subs[0].source
    assert all(m.body is not None for lane in ours.lanes for m in lane)
    back = RecordingConsumer()
    _sub(core, back)
    assert back.bodies == [b"body%d" % i for i in range(6)]
