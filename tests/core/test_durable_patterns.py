"""Durable subscriptions on wildcard and composite topics in the core (issue 12;
broker/core/durable.py), on a fake clock and an in-memory store that logs every record.
The behaviours asserted were compared with ActiveMQ 5.17.2 over STOMP (see
tests/stomp/test_stomp_durable_patterns.py for the table)."""

from __future__ import annotations

import pytest

from broker.core import AUTO, INDIVIDUAL, QUEUE, TOPIC, Address, Core, CoreError, Message
from broker.core.durable import queue_address
from broker.core.message import TEMP_TOPIC
from broker.core.selector import Selector
from tests.core.conftest import MakeCore
from tests.core.fakes import MemoryStore, RecordingConsumer

KEY = ("client-w", "sub-w")
QA = queue_address(*KEY)


def t(name: str) -> Address:
    return Address(TOPIC, name)


def durable(core: Core, address: Address | tuple[Address, ...], **kw: object) -> RecordingConsumer:
    """Subscribe KEY to `address`, take what waits (auto ack), leave; the consumer."""
    c = RecordingConsumer()
    kw.setdefault("ack_mode", AUTO)
    core.subscribe(address, c, durable=KEY, **kw).close()  # type: ignore[arg-type]
    return c


def test_a_wildcard_covers_existing_and_later_topics_and_journals_each_once(
    durable_core: Core, store: MemoryStore
) -> None:
    core = durable_core
    core.topic(t("w.a.old"))
    durable(core, t("w.a.*"))
    assert store.ops("subscription_saved") == [
        ("subscription_saved", *KEY, ("topic", "w.a.*", None, False, False))
    ]
    for name in ("w.a.old", "w.a.new", "w.a.b.c", "w.a", "w.b.x"):
        core.send(t(name), Message(name.encode(), persistent=True))
    assert [a[1] for a in store.ops("add")] == [QA, QA]
    assert durable(core, t("w.a.*")).bodies == [b"w.a.old", b"w.a.new"]
    assert core.topic(t("w.a.new")).durable and not core.topic(t("w.b.x")).durable


def test_a_final_gt_covers_the_topic_itself_and_every_depth(durable_core: Core) -> None:
    core = durable_core
    durable(core, t("g.>"))
    for name in ("g", "g.x", "g.x.y", "h.x"):
        core.send(t(name), Message(name.encode()))
    assert durable(core, t("g.>")).bodies == [b"g", b"g.x", b"g.x.y"]


def test_a_topic_matched_by_two_parts_of_a_composite_gets_it_once(durable_core: Core) -> None:
    core = durable_core
    both = (t("k.x"), t("k.*"))
    durable(core, both)
    core.send(t("k.x"), Message(b"matched-twice", persistent=True))
    core.send(t("k.y"), Message(b"matched-once", persistent=True))
    assert durable(core, both).bodies == [b"matched-twice", b"matched-once"]
    assert len(core.topic(t("k.x")).durables) == 1


def test_a_composite_send_reaches_a_durable_composite_once_and_a_plain_one_twice(
    durable_core: Core, store: MemoryStore
) -> None:
    """As ActiveMQ 5.17.2: its durable subscription keeps the first copy, a plain
    subscriber of the same composite gets one per topic."""
    core = durable_core
    parts = (t("m.x"), t("m.y"))
    durable(core, parts)
    plain = RecordingConsumer()
    core.subscribe(parts, plain, ack_mode=AUTO)
    core.send_composite(parts, Message(b"c", persistent=True))
    assert [a[1] for a in store.ops("add")] == [QA]
    assert len(plain.got) == 2
    (got,) = durable(core, parts).got
    assert got.destination == t("m.x")
    # A transaction's composite send: the same, in its one record.
    tx = core.begin()
    core.send_composite(parts, Message(b"tx", persistent=True), tx=tx)
    tx.commit()
    (record,) = store.ops("transaction")
    assert [a for a, _ in record[1]] == [QA]
    assert durable(core, parts).bodies == [b"tx"]


def test_another_pattern_or_part_order_replaces_the_subscription(durable_core: Core) -> None:
    core = durable_core
    durable(core, t("r.*"))
    core.send(t("r.x"), Message(b"stored"))
    assert durable(core, t("r.>")).bodies == []  # replaced: its messages dropped
    core.send(t("r.x.y"), Message(b"deep"))
    durable(core, (t("o.a"), t("o.b")))
    core.send(t("o.a"), Message(b"o"))
    assert durable(core, (t("o.b"), t("o.a"))).bodies == []  # as ActiveMQ: another topic
    core.send(t("o.a"), Message(b"kept"))
    assert durable(core, (t("o.b"), t("o.a"))).bodies == [b"kept"]
    # The replaced patterns feed it no more.
    core.send(t("r.z"), Message(b"old-pattern"))
    assert core.durables.find(*KEY) is not None
    assert not core.topic(t("r.z")).durables


def test_selector_and_no_local_apply_on_every_topic_covered(durable_core: Core) -> None:
    core = durable_core
    c = RecordingConsumer()
    core.subscribe(
        t("s.*"),
        c,
        durable=KEY,
        ack_mode=INDIVIDUAL,
        selector=Selector("k = 'y'"),
        no_local=True,
        origin="me",
    )
    core.send(t("s.a"), Message(b"nomatch", properties={"k": "n"}))
    core.send(t("s.b"), Message(b"match", properties={"k": "y"}))
    core.send(t("s.c"), Message(b"mine", properties={"k": "y"}, origin="me"))
    assert c.bodies == [b"match"]


def test_remove_takes_it_off_every_topic_and_out_of_the_trie(
    durable_core: Core, store: MemoryStore
) -> None:
    core = durable_core
    durable(core, (t("x.*"), t("y.one")))
    core.send(t("x.a"), Message(b"1", persistent=True))
    core.remove_subscription(*KEY)
    assert store.held == {}
    for name in ("x.a", "y.one"):
        assert not core.topic(t(name)).durables and not core.topic(t(name)).durable
    core.send(t("x.later"), Message(b"2", persistent=True))
    assert store.ops("add")[-1][1] == QA  # only the first send was ever journaled
    assert not core.topic(t("x.later")).durables


def test_a_deleted_topic_created_again_feeds_it_once(durable_core: Core) -> None:
    core = durable_core
    durable(core, t("d.*"))
    core.send(t("d.a"), Message(b"before"))
    core.delete(t("d.a"))
    d = core.durables.find(*KEY)
    assert d is not None and not d.topics
    core.send(t("d.a"), Message(b"after"))
    assert [x.address for x in d.topics] == [t("d.a")]
    assert durable(core, t("d.*")).bodies == [b"before", b"after"]


def test_only_matching_topics_list_it(durable_core: Core) -> None:
    """Routing stays by trie: a topic lists just the subscriptions covering it, however
    many wildcard durable subscriptions exist."""
    core = durable_core
    for i in range(300):
        core.subscribe(t(f"many.{i}.*"), RecordingConsumer(), durable=("c", f"n{i}")).close()
    core.subscribe(t("many.*.hot"), RecordingConsumer(), durable=("c", "hot")).close()
    topic = core.topic(t("many.7.hot"))
    assert sorted(d.name for d in topic.durables) == ["hot", "n7"]


def test_restore_brings_back_patterns_composites_and_old_records(
    make_core: MakeCore, store: MemoryStore
) -> None:
    core = make_core(store)
    m = Message(b"kept", persistent=True)
    m.id = "m1"
    subs = {
        KEY: ("topic", ("p.a", "p.b.*"), None, False, False),
        ("client-w", "wild"): ("topic", "q.>", None, False, False),
        ("client-w", "old"): ("topic", "plain", None, False, False),  # as before wildcards
    }
    core.restore({QA: [m]}, {}, subs)
    assert store.ops("subscription_saved") == []
    core.send(t("p.b.new"), Message(b"new"))
    core.send(t("q"), Message(b"q"))
    core.send(t("plain"), Message(b"plain"))
    assert durable(core, (t("p.a"), t("p.b.*"))).bodies == [b"kept", b"new"]
    for name, topic, body in (("wild", t("q.>"), b"q"), ("old", t("plain"), b"plain")):
        c = RecordingConsumer()
        core.subscribe(topic, c, durable=("client-w", name), ack_mode=AUTO)
        assert c.bodies == [body]
    assert store.ops("subscription_saved") == []  # all unchanged


def test_what_cannot_be_durable_is_refused(durable_core: Core) -> None:
    core = durable_core
    with pytest.raises(CoreError, match="cannot durably subscribe to a Queue"):
        core.subscribe((Address(QUEUE, "z"), t("zt")), RecordingConsumer(), durable=KEY)
    tmp = Address(TEMP_TOPIC, "tmp-1")
    core.create_temporary(tmp, "owner")
    with pytest.raises(CoreError, match="temporary topic"):
        core.subscribe((t("zt"), tmp), RecordingConsumer(), durable=KEY)
    assert core.durables.find(*KEY) is None
    # A composite of a topic and a queue is the topic's (its first part's kind).
    durable(core, (t("zt"), Address(QUEUE, "z")))
    d = core.durables.find(*KEY)
    assert d is not None and d.parts == (t("zt"),)
