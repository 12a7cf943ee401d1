"""Pull delivery on the fake clock: lease deadlines, deletes, redrive, delays."""

from __future__ import annotations

from broker.core import QUEUE, Address, Core, Message
from broker.core.leases import PullPolicy, PullQueue
from tests.core.conftest import MakeCore
from tests.core.fakes import FakeLoop, MemoryStore, RecordingConsumer, run

Q = Address(QUEUE, "pull")
DEAD = Address(QUEUE, "pull-dead")


def _pull(core: Core) -> PullQueue:
    return core.leases.get(Q)


def test_visibility_timeout_makes_message_visible_again(core: Core, clock: FakeLoop) -> None:
    pq = _pull(core)
    pq.send(Message(b"m", persistent=True))
    (lease,) = run(pq.receive(10, 30.0, 0))
    assert lease.receive_count == 1 and lease.deadline == clock.time() + 30.0
    assert run(pq.receive(10, 30.0, 0)) == []  # invisible while leased
    clock.advance(29.9)
    assert run(pq.receive(10, 30.0, 0)) == []
    clock.advance(0.2)
    (again,) = run(pq.receive(10, 30.0, 0))
    assert again.msg.body == b"m" and again.receive_count == 2 and again.msg.redelivered
    assert again.token != lease.token
    assert pq.queue.redelivered == 1


def test_delete_before_deadline_consumes(core: Core, clock: FakeLoop) -> None:
    pq = _pull(core)
    pq.send(Message(b"m"))
    (lease,) = run(pq.receive(1, 5.0, 0))
    assert pq.delete(lease)
    clock.advance(10.0)
    assert run(pq.receive(1, 5.0, 0)) == []
    assert pq.queue.acked == 1 and pq.queue.count == 0


def test_change_visibility_zero_returns_at_once(core: Core) -> None:
    pq = _pull(core)
    pq.send(Message(b"m"))
    (lease,) = run(pq.receive(1, 60.0, 0))
    pq.change_visibility(lease, 0)
    (again,) = run(pq.receive(1, 60.0, 0))
    assert again.receive_count == 2


def test_expired_lease_journals_a_counted_return(make_core: MakeCore, clock: FakeLoop) -> None:
    store = MemoryStore()
    core = make_core(store)
    pq = core.leases.get(Q)
    pq.send(Message(b"m", persistent=True))
    (lease,) = run(pq.receive(1, 1.0, 0))
    clock.advance(1.5)
    assert store.ops("returned") == [("returned", Q, lease.msg.id, 1)]


def test_max_receives_redrives_to_dead_letter(core: Core, clock: FakeLoop) -> None:
    pq = _pull(core)
    pq.policy.max_receives = 2
    pq.policy.dead_letter = DEAD
    pq.policy.origin_property = "source"
    pq.send(Message(b"m"))
    for _ in range(2):
        assert len(run(pq.receive(1, 1.0, 0))) == 1
        clock.advance(1.5)
    assert run(pq.receive(1, 1.0, 0)) == []
    (dead,) = core.browse(DEAD)
    assert dead.body == b"m" and dead.properties["source"] == "pull"
    assert dead.delivery_count == 0


def test_delayed_send_is_invisible_until_due(core: Core, clock: FakeLoop) -> None:
    pq = _pull(core)
    pq.send(Message(b"later"), delay=10.0)
    assert run(pq.receive(1, 30.0, 0)) == []
    clock.advance(10.0)
    (lease,) = run(pq.receive(1, 30.0, 0))
    assert lease.msg.body == b"later"


def test_pull_and_push_compete_for_one_queue(core: Core) -> None:
    pq = _pull(core)
    c = RecordingConsumer()
    core.subscribe(Q, c)
    core.send(Q, Message(b"a"))
    # The pull subscription is paused while nobody waits: the push consumer gets it.
    assert c.bodies == [b"a"] and run(pq.receive(1, 1.0, 0)) == []


def test_a_send_between_a_long_poll_timing_out_and_resuming_stays_queued(
    core: Core, clock: FakeLoop
) -> None:
    """The wait ran out (its future resolved empty) but the receive has not resumed yet:
    a send then must find the pull subscription paused, not hand the message to the
    waiter that left (it was an IndexError, and the message was lost to SQS)."""
    pq = _pull(core)
    waiting = pq.receive(10, 30.0, 1.0)
    waiting.send(None)  # waits on its future
    clock.advance(1.0)  # _time_up: answered with nothing
    assert pq.sub.paused
    pq.send(Message(b"late", persistent=True))
    try:
        waiting.send(None)
    except StopIteration as stop:
        assert stop.value == []
    (lease,) = run(pq.receive(10, 30.0, 0))
    assert lease.msg.body == b"late"


def test_core_close_ends_leases(core: Core, clock: FakeLoop) -> None:
    pq = _pull(core)
    pq.send(Message(b"m"))
    (lease,) = run(pq.receive(1, 30.0, 0))
    core.close()
    assert not lease.active and pq.sub.closed and core.leases.queues == {}
    # The leased message went back to its queue (counted, as a closed subscription's).
    (back,) = core.browse(Q)
    assert back.delivery_count == 1
    clock.advance(60.0)  # its deadline timer was cancelled: nothing happens
    assert core.queue(Q).count == 1


def test_grouped_queue_past_its_memory_limit_delivers_each_message_once(
    make_core: MakeCore,
) -> None:
    """A group pick over paged messages: none is a stub (keep_fields), the body-less
    ones are picked as themselves and leave the queue (a copy would stay behind)."""
    store = MemoryStore(stubs=True)
    core = make_core(store, queue_memory_limit=600)
    pq = core.leases.get(Q)
    core.send(Q, Message(b"plain", persistent=True))  # queued before the policy: a stub later
    for i in range(20):
        core.send(Q, Message(f"m{i}".encode(), persistent=True, group_id=f"g{i % 2}"))
    pq.policy = PullPolicy(grouped=True)
    assert not any(type(e) is int for e in pq.queue.entries())
    got: list[bytes] = []
    while True:
        leases = run(pq.receive(10, 30.0, 0))
        if not leases:
            break
        for lease in leases:
            got.append(lease.msg.body)
            assert pq.delete(lease)
    assert sorted(got) == sorted([b"plain"] + [f"m{i}".encode() for i in range(20)])
    assert pq.queue.count == 0
