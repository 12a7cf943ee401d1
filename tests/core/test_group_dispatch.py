"""Message groups, exclusive consumers and consumer priority in the core's queue
dispatch (ActiveMQ 5.17's Queue: assignMessageGroup, the exclusive consumer of
QueueDispatchSelector, consumers sorted by priority), and how they compose with
selectors, redelivery, paging and the plain path."""

from __future__ import annotations

import pytest

from broker.core import AUTO, CLIENT, QUEUE, TOPIC, Address, Core, CoreError, Message, Selector
from broker.core.policy import Policy
from broker.core.queue import Subscription
from tests.core.conftest import MakeCore
from tests.core.fakes import MemoryStore, RecordingConsumer

Q = Address(QUEUE, "orders")


def gmsg(body: bytes, group: str | None = None, seq: int | None = None, **props: object) -> Message:
    properties: dict[str, object] = dict(props)
    if seq is not None:
        properties["JMSXGroupSeq"] = seq
    return Message(body, properties=properties, group_id=group)  # type: ignore[arg-type]


def consumer(
    core: Core, prefetch: int = 10, **kw: object
) -> tuple[RecordingConsumer, Subscription]:
    rec = RecordingConsumer()
    sub = core.subscribe(Q, rec, ack_mode=CLIENT, prefetch=prefetch, **kw)  # type: ignore[arg-type]
    return rec, sub


def ack_all(sub: Subscription) -> None:
    for m in list(sub.inflight.values()):
        sub.ack(m.id)


# -- message groups -----------------------------------------------------------------------


def test_each_group_stays_with_the_consumer_of_its_first_message(core: Core) -> None:
    (a, _), (b, _) = consumer(core), consumer(core)
    for i in range(3):
        for g in ("g1", "g2", "g3"):
            core.send(Q, gmsg(b"%s-%d" % (g.encode(), i), g))
    # New groups go round-robin (then to the consumer owning fewest groups); every later
    # message of a group follows its first. ActiveMQ 5.17 gives the same split.
    assert a.bodies == [b"g1-0", b"g3-0", b"g1-1", b"g3-1", b"g1-2", b"g3-2"]
    assert b.bodies == [b"g2-0", b"g2-1", b"g2-2"]


def test_a_group_waits_for_its_full_owner_while_other_groups_flow(core: Core) -> None:
    (a, sa), (b, _) = consumer(core, prefetch=1), consumer(core, prefetch=5)
    core.send(Q, gmsg(b"g1-0", "g1"))
    core.send(Q, gmsg(b"g1-1", "g1"))
    core.send(Q, gmsg(b"g2-0", "g2"))
    core.send(Q, gmsg(b"g2-1", "g2"))
    assert a.bodies == [b"g1-0"]
    assert b.bodies == [b"g2-0", b"g2-1"]  # g1-1 waits for A, though B has room
    assert core.queue(Q).count == 1
    sa.ack(a.got[0].id)
    assert a.bodies == [b"g1-0", b"g1-1"]


def test_a_closed_owner_frees_its_groups_and_its_messages_come_back_in_order(core: Core) -> None:
    (a, sa), (b, sb) = consumer(core), consumer(core, prefetch=2)
    for i in range(3):
        core.send(Q, gmsg(b"g1-%d" % i, "g1"))
    core.send(Q, gmsg(b"g2-0", "g2"))
    core.send(Q, gmsg(b"g2-1", "g2"))
    core.send(Q, gmsg(b"g2-2", "g2"))  # waits: B (prefetch 2) is full
    assert a.bodies == [b"g1-0", b"g1-1", b"g1-2"]
    assert b.bodies == [b"g2-0", b"g2-1"]
    sa.close()
    ack_all(sb)
    ack_all(sb)
    ack_all(sb)
    # B took g1 over: A's unacknowledged messages come back counted, in front of what
    # waited (as ActiveMQ redelivers), then g1's new ones; each group in order.
    core.send(Q, gmsg(b"g1-3", "g1"))
    ack_all(sb)
    assert b.bodies == [b"g2-0", b"g2-1", b"g1-0", b"g1-1", b"g1-2", b"g2-2", b"g1-3"]
    assert [m.redelivered for m in b.got] == [False, False, True, True, True, False, False]
    assert core.queue(Q).owners == {"g2": sb, "g1": sb}


def test_a_negative_sequence_from_the_owner_closes_the_group(core: Core) -> None:
    """ActiveMQ: JMSXGroupSeq -1 ends the group; its next message picks a consumer
    anew: here B, next in the round-robin. Without it, the group stays on A."""
    for close in (False, True):
        queue = Address(QUEUE, f"close{close}")
        a, b = RecordingConsumer(), RecordingConsumer()
        core.subscribe(queue, a, ack_mode=AUTO)
        core.subscribe(queue, b, ack_mode=AUTO)
        core.send(queue, gmsg(b"m1", "g"))
        core.send(queue, gmsg(b"m2", "g", seq=-1 if close else None))
        core.send(queue, gmsg(b"m3", "g"))
        assert (a.bodies, b.bodies) == (
            ([b"m1", b"m2"], [b"m3"]) if close else ([b"m1", b"m2", b"m3"], [])
        )


def test_sequence_one_starts_the_group_afresh(core: Core) -> None:
    (a, sa), (b, sb) = consumer(core, prefetch=1), consumer(core, prefetch=1)
    core.send(Q, gmsg(b"m1", "g"))
    assert a.bodies == [b"m1"]
    core.send(Q, gmsg(b"m2", "g", seq=1))  # A is full: a first message goes to anyone
    core.send(Q, gmsg(b"m3", "g"))
    assert b.bodies == [b"m2"]
    sa.ack(a.got[0].id)
    assert a.bodies == [b"m1"]  # m3 is B's group now
    sb.ack(b.got[0].id)
    assert b.bodies == [b"m2", b"m3"]


def test_a_sequence_arrives_as_text_from_an_old_journal(core: Core) -> None:
    a, b = RecordingConsumer(), RecordingConsumer()
    core.subscribe(Q, a, ack_mode=AUTO)
    core.subscribe(Q, b, ack_mode=AUTO)
    for body, seq in [(b"m1", None), (b"m2", "-1"), (b"m3", "junk")]:
        m = gmsg(body, "g")
        if seq is not None:
            m.properties["JMSXGroupSeq"] = seq
        core.send(Q, m)
    assert (a.bodies, b.bodies) == ([b"m1", b"m2"], [b"m3"])  # "junk" reads as 0


def test_group_owners_are_bounded_least_recently_used_first(make_core: MakeCore) -> None:
    core = make_core(policies=(("orders", Policy("ActiveMQ.DLQ", -1, False, 2)),))
    a, b = RecordingConsumer(), RecordingConsumer()
    sa = core.subscribe(Q, a, ack_mode=AUTO)
    core.subscribe(Q, b, ack_mode=AUTO)
    for g in ("g1", "g2", "g3"):  # g1 to A, g2 to B, g3 to A: g1 loses its owner
        core.send(Q, gmsg(g.encode(), g))
    q = core.queue(Q)
    assert list(q.owners) == ["g2", "g3"] and sa.groups == 1
    core.send(Q, gmsg(b"g1-again", "g1"))  # picks anew: B (fewest groups, next turn)
    assert b.bodies == [b"g2", b"g1-again"]
    assert list(q.owners) == ["g3", "g1"]  # g2, least recently used, went


def test_the_default_bound_is_activemqs_1024(core: Core) -> None:
    a = RecordingConsumer()
    sub = core.subscribe(Q, a, ack_mode=AUTO)
    for i in range(1030):
        core.send(Q, gmsg(b"", f"g{i}"))
    q = core.queue(Q)
    assert len(q.owners) == 1024 and sub.groups == 1024
    assert next(iter(q.owners)) == "g6"


def test_a_returned_message_goes_back_to_its_group_owner(core: Core) -> None:
    (a, sa), (b, _) = consumer(core, prefetch=2), consumer(core, prefetch=2)
    core.send(Q, gmsg(b"m1", "g"))
    assert sa.release(a.got[0].id)  # unchanged, as an AMQP released outcome
    assert sa.nack(a.got[1].id)  # counted, as an AMQP modified outcome
    assert a.bodies == [b"m1", b"m1", b"m1"] and b.bodies == []
    assert a.got[2].redelivered and a.got[2].delivery_count == 1


def test_a_selective_owner_holds_back_what_it_does_not_match(core: Core) -> None:
    """ActiveMQ: a group's messages go to its owner only, even one its selector
    rejects; that one waits until the owner leaves."""
    (a, sa), (b, _) = consumer(core, selector=Selector("color = 'red'")), consumer(core)
    core.send(Q, gmsg(b"red", "g", color="red"))
    core.send(Q, gmsg(b"blue", "g", color="blue"))
    core.send(Q, gmsg(b"red2", "g", color="red"))
    core.send(Q, gmsg(b"other", "h", color="blue"))
    assert a.bodies == [b"red", b"red2"]
    assert b.bodies == [b"other"]
    sa.close()
    assert b.bodies == [b"other", b"red", b"red2", b"blue"]


def test_groups_do_not_apply_to_topics(core: Core) -> None:
    t = Address(TOPIC, "news")
    a = RecordingConsumer()
    sub = core.subscribe(t, a, ack_mode=AUTO)
    core.send(t, gmsg(b"x", "g"))
    assert a.bodies == [b"x"]
    assert not sub.source.grouped and not sub.source.picky


def test_the_plain_path_stays_until_a_group_message_comes(core: Core) -> None:
    consumer(core)
    consumer(core)
    q = core.queue(Q)
    core.send(Q, gmsg(b"plain"))
    assert not q.picky
    core.send(Q, gmsg(b"grouped", "g"))
    assert q.picky and q.grouped and list(q.owners) == ["g"]


def test_recovered_group_messages_start_groups(make_core: MakeCore, store: MemoryStore) -> None:
    core = make_core(store)
    m = gmsg(b"back", "g")
    m.id = "ID:1"
    m.persistent = True
    core.restore({Q: [m]})
    assert core.queue(Q).grouped
    (a, _), (b, _) = consumer(core), consumer(core)
    core.send(Q, gmsg(b"next", "g"))
    assert (a.bodies, b.bodies) == ([b"back", b"next"], [])


# -- exclusive consumers ------------------------------------------------------------------


def test_the_first_exclusive_consumer_gets_everything_then_the_next_takes_over(
    core: Core,
) -> None:
    (a, sa), (b, sb), (c, _) = (
        consumer(core, exclusive=True),
        consumer(core, exclusive=True),
        consumer(core),
    )
    for i in range(4):
        core.send(Q, gmsg(b"e%d" % i))
    assert (a.bodies, b.bodies, c.bodies) == ([b"e0", b"e1", b"e2", b"e3"], [], [])
    sa.close()  # B, the next exclusive one, gets A's messages back (and not C)
    assert b.bodies == [b"e0", b"e1", b"e2", b"e3"] and c.bodies == []
    assert all(m.redelivered for m in b.got)
    sb.close()  # no exclusive consumer left: any consumer
    assert c.bodies == [b"e0", b"e1", b"e2", b"e3"]
    assert not core.queue(Q).picky


def test_a_later_exclusive_consumer_of_higher_priority_takes_over(core: Core) -> None:
    (a, _), (b, _) = consumer(core, exclusive=True), consumer(core, exclusive=True, priority=5)
    (c, _) = consumer(core, exclusive=True, priority=5)  # not higher: B keeps it
    core.send(Q, gmsg(b"x"))
    assert (a.bodies, b.bodies, c.bodies) == ([], [b"x"], [])
    (d, _) = consumer(core, exclusive=True, priority=127)  # 127 always takes over
    core.send(Q, gmsg(b"y"))
    assert d.bodies == [b"y"]


def test_an_exclusive_consumer_keeps_what_it_does_not_match_waiting(core: Core) -> None:
    (a, sa) = consumer(core, exclusive=True, selector=Selector("n > 1"))
    (b, _) = consumer(core)
    for i in range(4):
        core.send(Q, gmsg(b"%d" % i, n=i))
    assert (a.bodies, b.bodies) == ([b"2", b"3"], [])
    sa.close()  # what A had comes back in front of what waited
    assert b.bodies == [b"2", b"3", b"0", b"1"]


def test_a_full_exclusive_consumer_still_holds_the_queue(core: Core) -> None:
    (a, sa), (b, _) = consumer(core, prefetch=1, exclusive=True), consumer(core)
    core.send(Q, gmsg(b"1"))
    core.send(Q, gmsg(b"2"))
    assert (a.bodies, b.bodies) == ([b"1"], [])
    sa.ack(a.got[0].id)
    assert a.bodies == [b"1", b"2"]


# -- consumer priority --------------------------------------------------------------------


def test_higher_priority_consumers_first_lower_ones_when_they_are_full(core: Core) -> None:
    (lo, slo), (hi, shi) = (
        consumer(core, prefetch=1, priority=1),
        consumer(core, prefetch=1, priority=5),
    )
    core.send(Q, gmsg(b"p0"))
    assert (lo.bodies, hi.bodies) == ([], [b"p0"])
    for i in range(1, 4):
        core.send(Q, gmsg(b"p%d" % i))
    assert (lo.bodies, hi.bodies) == ([b"p1"], [b"p0"])
    slo.ack(lo.got[0].id)  # HI is still full: LO gets the next one
    assert lo.bodies == [b"p1", b"p2"]
    shi.ack(hi.got[0].id)
    assert hi.bodies == [b"p0", b"p3"]


def test_equal_priorities_share_round_robin_before_a_lower_one(core: Core) -> None:
    z = consumer(core, prefetch=2, priority=1)[0]
    x = consumer(core, prefetch=2, priority=3)[0]
    y = consumer(core, prefetch=2, priority=3)[0]
    for i in range(6):
        core.send(Q, gmsg(b"r%d" % i))
    assert (x.bodies, y.bodies, z.bodies) == ([b"r0", b"r2"], [b"r1", b"r3"], [b"r4", b"r5"])


def test_a_waiting_backlog_goes_to_the_highest_priority_newcomer(core: Core) -> None:
    for i in range(3):
        core.send(Q, gmsg(b"%d" % i))
    lo = consumer(core, prefetch=1, priority=-5)[0]
    hi, shi = consumer(core, prefetch=5, priority=9)
    ack_all(shi)
    assert lo.bodies == [b"0"] and hi.bodies == [b"1", b"2"]


def test_priority_composes_with_selectors(core: Core) -> None:
    (hi, _) = consumer(core, priority=9, selector=Selector("kind = 'a'"))
    (lo, _) = consumer(core, priority=0)
    for kind in "abab":
        core.send(Q, gmsg(kind.encode(), kind=kind))
    assert hi.bodies == [b"a", b"a"] and lo.bodies == [b"b", b"b"]


def test_priority_is_a_byte(core: Core) -> None:
    with pytest.raises(CoreError, match="-128 to 127"):
        core.subscribe(Q, RecordingConsumer(), priority=128)
    with pytest.raises(CoreError, match="-128 to 127"):
        core.subscribe(Q, RecordingConsumer(), priority=-129)
    assert not core.queue(Q).consumers


def test_leaving_consumers_take_the_queue_back_to_the_plain_path(core: Core) -> None:
    (_, s1), (_, s2) = consumer(core, priority=1), consumer(core, priority=2)
    q = core.queue(Q)
    assert q.picky and q.ranked
    s2.close()
    assert not q.picky and not q.ranked
    s1.close()
    assert q.consumers == []


# -- paging -------------------------------------------------------------------------------


def test_picky_dispatch_delivers_paged_out_stubs(make_core: MakeCore) -> None:
    store = MemoryStore(stubs=True)
    core = make_core(store, queue_memory_limit=1)
    for i in range(4):
        m = gmsg(b"%d" % i)
        m.persistent = True
        core.send(Q, m)
    assert any(c[0] == "page_out" for c in store.calls)
    hi, shi = consumer(core, prefetch=2, priority=5)
    lo = consumer(core, prefetch=1, priority=0)[0]  # now the queue is picky
    assert core.queue(Q).picky
    assert hi.bodies == [b"0", b"1"] and lo.bodies == [b"2"]
    ack_all(shi)
    assert hi.bodies == [b"0", b"1", b"3"]
    assert core.queue(Q).count == 0 and core.queue(Q).bytes == 0
