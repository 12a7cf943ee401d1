"""Per-destination policies (ActiveMQ's policyEntry) at the core: dead-letter strategy,
memory and pending limits, prefetch, expired handling, kinds, and garbage collection of
inactive destinations on the fake clock."""

from __future__ import annotations

from dataclasses import replace

from broker.core import AUTO, INDIVIDUAL, QUEUE, TOPIC, Address, Core, Message
from broker.core.core import CoreLimits, default_policy
from broker.core.policy import DLQ_INDIVIDUAL
from tests.core.conftest import MakeCore
from tests.core.fakes import FakeLoop, RecordingConsumer

BASE = default_policy(CoreLimits())
INDIVIDUAL_DLQ = replace(BASE, dead_letter_strategy=DLQ_INDIVIDUAL)


def q(name: str) -> Address:
    return Address(QUEUE, name)


def test_individual_strategy_names_the_dlq_after_the_destination(make_core: MakeCore) -> None:
    core = make_core(policies=((">", INDIVIDUAL_DLQ),))
    c = RecordingConsumer()
    sub = core.subscribe(q("orders.eu"), c, ack_mode=INDIVIDUAL)
    core.send(q("orders.eu"), Message(b"x", persistent=True))
    assert sub.dead_letter(c.got[0].id, "poison")
    (dead,) = core.browse(q("DLQ.orders.eu"))
    assert dead.body == b"x"
    assert dead.properties["originalDestination"] == "queue://orders.eu"
    assert q("ActiveMQ.DLQ") not in core.queues


def test_a_message_failing_on_an_individual_dlq_is_dropped(make_core: MakeCore) -> None:
    core = make_core(policies=((">", INDIVIDUAL_DLQ),))
    core.send(q("DLQ.orders"), Message(b"x", persistent=True))
    c = RecordingConsumer()
    sub = core.subscribe(q("DLQ.orders"), c, ack_mode=INDIVIDUAL)
    assert sub.dead_letter(c.got[0].id, "poison again")
    assert q("DLQ.DLQ.orders") not in core.queues
    assert q("ActiveMQ.DLQ") not in core.queues
    assert core.queue(q("DLQ.orders")).dlq == 1


def test_topic_subscription_dead_letters_to_a_queue_named_after_the_topic(
    make_core: MakeCore,
) -> None:
    core = make_core(policies=((">", INDIVIDUAL_DLQ, "topic"),))
    c = RecordingConsumer()
    sub = core.subscribe(Address(TOPIC, "prices"), c, ack_mode=INDIVIDUAL)
    core.send(Address(TOPIC, "prices"), Message(b"p", persistent=True))
    assert sub.dead_letter(c.got[0].id)
    assert [m.body for m in core.browse(q("DLQ.prices"))] == [b"p"]


def test_a_kind_restricted_rule_leaves_the_other_kind_to_the_defaults(
    make_core: MakeCore,
) -> None:
    core = make_core(policies=((">", INDIVIDUAL_DLQ, "topic"),))
    c = RecordingConsumer()
    sub = core.subscribe(q("work"), c, ack_mode=INDIVIDUAL)
    core.send(q("work"), Message(b"w", persistent=True))
    assert sub.dead_letter(c.got[0].id)
    assert [m.body for m in core.browse(q("ActiveMQ.DLQ"))] == [b"w"]
    assert q("DLQ.work") not in core.queues


def test_first_matching_rule_wins(make_core: MakeCore) -> None:
    small = replace(BASE, memory_limit=1000)
    big = replace(BASE, memory_limit=5000)
    core = make_core(policies=(("a.>", small), ("a.b", big), (">", big)))
    assert core.queue(q("a.b")).memory_limit == 1000
    assert core.queue(q("c")).memory_limit == 5000
    assert core.queue(q("a")).memory_limit == 5000  # ">" after "a." needs one more part


def test_memory_limit_makes_a_queue_full_sooner(make_core: MakeCore) -> None:
    core = make_core(policies=(("tiny", replace(BASE, memory_limit=2000)),))
    for _ in range(3):
        core.send(q("tiny"), Message(b"x" * 1000))
        core.send(q("roomy"), Message(b"x" * 1000))
    assert core.full(q("tiny"))
    assert not core.full(q("roomy"))


def test_policy_prefetch_applies_when_the_consumer_asks_none(make_core: MakeCore) -> None:
    core = make_core(policies=(("slow", replace(BASE, queue_prefetch=1)),))
    for i in range(3):
        core.send(q("slow"), Message(b"%d" % i))
    first, second = RecordingConsumer(), RecordingConsumer()
    core.subscribe(q("slow"), first, ack_mode=INDIVIDUAL)
    core.subscribe(q("slow"), second, ack_mode=INDIVIDUAL)
    assert first.bodies == [b"0"] and second.bodies == [b"1"]
    asked = RecordingConsumer()
    core.subscribe(q("slow"), asked, ack_mode=INDIVIDUAL, prefetch=10)
    assert asked.bodies == [b"2"]


def test_topic_pending_limit_per_policy(make_core: MakeCore) -> None:
    core = make_core(policies=(("ticks", replace(BASE, topic_pending_limit=2), "topic"),))
    c = RecordingConsumer()
    sub = core.subscribe(Address(TOPIC, "ticks"), c, ack_mode=INDIVIDUAL, prefetch=1)
    for i in range(5):
        core.send(Address(TOPIC, "ticks"), Message(b"%d" % i))
    assert c.bodies == [b"0"]
    assert sub.source.count == 2  # the oldest pending dropped past the limit
    assert sub.source.discarded == 2


def test_expired_to_dlq_off_drops_expired_persistent_messages(
    make_core: MakeCore, clock: FakeLoop
) -> None:
    core = make_core(policies=(("ttl", replace(BASE, expired_to_dlq=False)),))
    soon = core.now_ms() + 100
    core.send(q("ttl"), Message(b"gone", persistent=True, expiration=soon))
    core.send(q("other"), Message(b"kept", persistent=True, expiration=soon))
    clock.advance(1.0)
    for name in ("ttl", "other"):
        core.subscribe(q(name), RecordingConsumer(), ack_mode=AUTO)
    assert [m.body for m in core.browse(q("ActiveMQ.DLQ"))] == [b"kept"]


GC = replace(BASE, gc_inactive_destinations=True, inactive_timeout_before_gc=5.0)


def gc_core(make_core: MakeCore) -> Core:
    return make_core(inactive_purge_period=1.0, policies=(("gc.>", GC),))


def test_inactive_destinations_are_collected_after_the_timeout(
    make_core: MakeCore, clock: FakeLoop
) -> None:
    core = gc_core(make_core)
    core.queue(q("gc.idle"))
    core.topic(Address(TOPIC, "gc.idle"))
    core.queue(q("kept"))
    clock.advance(4.5)
    assert q("gc.idle") in core.queues
    clock.advance(2.0)
    assert q("gc.idle") not in core.queues
    assert Address(TOPIC, "gc.idle") not in core.topics
    assert q("kept") in core.queues


def test_destinations_in_use_are_not_collected(make_core: MakeCore, clock: FakeLoop) -> None:
    core = gc_core(make_core)
    core.send(q("gc.full"), Message(b"waiting"))
    sub = core.subscribe(q("gc.consumed"), RecordingConsumer(), ack_mode=AUTO)
    core.subscribe(Address(TOPIC, "gc.heard"), RecordingConsumer(), ack_mode=AUTO)
    core.queue(q("gc.busy"))
    for _ in range(8):
        clock.advance(1.0)
        core.send(q("gc.busy"), Message(b"x"))
        core.subscribe(q("gc.busy"), RecordingConsumer(), ack_mode=AUTO).close()
    assert {q("gc.full"), q("gc.consumed"), q("gc.busy")} <= set(core.queues)
    assert Address(TOPIC, "gc.heard") in core.topics
    sub.close()  # idle from now: collected a timeout later
    clock.advance(7.0)
    assert q("gc.consumed") not in core.queues
    assert q("gc.full") in core.queues


def test_queues_with_their_own_limit_are_never_collected(
    make_core: MakeCore, clock: FakeLoop
) -> None:
    core = gc_core(make_core)
    core.set_own_limit(q("gc.sqs"))
    clock.advance(20.0)
    assert q("gc.sqs") in core.queues
