"""Selective dispatch in the core: a consumer is offered only what its selector matches,
and never holds up messages other consumers match (queues), or filters alone (topics)."""

from __future__ import annotations

from broker.core import (
    AUTO,
    CLIENT,
    INDIVIDUAL,
    QUEUE,
    TOPIC,
    Address,
    Core,
    Message,
    Selector,
    Subscription,
)
from tests.core.conftest import MakeCore
from tests.core.fakes import MemoryStore, RecordingConsumer

Q = Address(QUEUE, "orders")
T = Address(TOPIC, "news")


def msg(body: bytes, **props: object) -> Message:
    return Message(body, properties=dict(props))  # type: ignore[arg-type]


def test_selective_consumer_gets_only_its_messages(core: Core) -> None:
    for i in range(6):
        core.send(Q, msg(b"%d" % i, color="red" if i % 2 else "blue"))
    red = RecordingConsumer()
    core.subscribe(Q, red, ack_mode=AUTO, selector=Selector("color = 'red'"))
    assert red.bodies == [b"1", b"3", b"5"]
    assert core.queue(Q).count == 3  # the blue ones wait for someone else
    plain = RecordingConsumer()
    core.subscribe(Q, plain, ack_mode=AUTO)
    assert plain.bodies == [b"0", b"2", b"4"]


def test_unmatched_head_does_not_starve_a_busy_consumer(core: Core) -> None:
    """A backlog nobody matches sits in front; B's messages behind it still flow, one at a
    time as B acknowledges (prefetch 1), in order."""
    for i in range(100):
        core.send(Q, msg(b"x%d" % i, kind="nobody"))
    b = RecordingConsumer()
    sub = core.subscribe(Q, b, ack_mode=CLIENT, prefetch=1, selector=Selector("kind = 'b'"))
    for i in range(5):
        core.send(Q, msg(b"b%d" % i, kind="b"))
    for i in range(5):
        assert b.bodies[-1] == b"b%d" % i
        sub.ack(b.got[-1].id)
    assert b.bodies == [b"b%d" % i for i in range(5)]
    assert core.queue(Q).count == 100


def test_two_disjoint_selectors_share_one_queue_without_waiting(core: Core) -> None:
    a, b = RecordingConsumer(), RecordingConsumer()
    sa = core.subscribe(Q, a, ack_mode=CLIENT, prefetch=2, selector=Selector("n % 2 = 0"))
    sb = core.subscribe(Q, b, ack_mode=CLIENT, prefetch=2, selector=Selector("n % 2 = 1"))
    for i in range(20):
        core.send(Q, msg(b"%d" % i, n=i))
    # Each got its first two at once, though the other's messages are interleaved.
    assert a.bodies == [b"0", b"2"] and b.bodies == [b"1", b"3"]
    while len(a.got) < 10 or len(b.got) < 10:
        for sub in (sa, sb):
            for m in list(sub.inflight.values()):
                sub.ack(m.id)
    assert a.bodies == [b"%d" % i for i in range(0, 20, 2)]
    assert b.bodies == [b"%d" % i for i in range(1, 20, 2)]
    assert core.queue(Q).count == 0


def test_round_robin_among_consumers_that_match(core: Core) -> None:
    a, b, c = RecordingConsumer(), RecordingConsumer(), RecordingConsumer()
    core.subscribe(Q, a, ack_mode=AUTO, selector=Selector("n > 0"))
    core.subscribe(Q, b, ack_mode=AUTO, selector=Selector("n > 0"))
    core.subscribe(Q, c, ack_mode=AUTO, selector=Selector("n < 0"))
    for i in range(1, 7):
        core.send(Q, msg(b"%d" % i, n=i))
    assert len(a.got) == 3 and len(b.got) == 3 and c.got == []


def test_settled_consumer_is_woken_by_a_returned_message(core: Core) -> None:
    """A consumer that matched nothing pending is not walked again, until messages come
    back to the front (a closing consumer's in-flight ones)."""
    plain = RecordingConsumer()
    psub = core.subscribe(Q, plain, ack_mode=CLIENT, prefetch=10)
    core.send(Q, msg(b"r", color="red"))
    assert plain.bodies == [b"r"]
    red = RecordingConsumer()
    core.subscribe(Q, red, ack_mode=AUTO, selector=Selector("color = 'red'"))
    core.send(Q, msg(b"g", color="green"))  # to plain (round-robin: red does not match)
    assert red.got == [] and plain.bodies == [b"r", b"g"]
    psub.close()  # r and g come back redelivered; red takes r, g waits
    assert red.bodies == [b"r"] and red.got[0].redelivered
    assert core.queue(Q).count == 1


def test_selective_queue_keeps_no_stubs(make_core: MakeCore) -> None:
    store = MemoryStore(stubs=True)
    core = make_core(store=store, queue_memory_limit=1)
    for i in range(5):
        core.send(Q, Message(b"body%d" % i, persistent=True, properties={"n": i}))
    q = core.queue(Q)
    assert any(type(e) is int for e in q.entries())
    got = RecordingConsumer()
    core.subscribe(Q, got, ack_mode=AUTO, selector=Selector("n >= 3"))
    assert got.bodies == [b"body3", b"body4"]
    assert not any(type(e) is int for e in q.entries())
    core.subscribe(Q, rest := RecordingConsumer(), ack_mode=AUTO)
    assert rest.bodies == [b"body0", b"body1", b"body2"]


def test_expired_messages_are_not_offered(core: Core, clock: object) -> None:
    red = RecordingConsumer()
    core.subscribe(Q, red, ack_mode=CLIENT, prefetch=1, selector=Selector("color = 'red'"))
    core.send(Q, Message(b"first", properties={"color": "red"}))
    core.send(Q, Message(b"old", properties={"color": "red"}, expiration=core.now_ms() + 10))
    clock.advance(1)  # type: ignore[attr-defined]
    sub = core.queue(Q).consumers[0]
    sub.ack(red.got[0].id)
    assert red.bodies == [b"first"] and core.queue(Q).expired == 1


def test_leaving_selective_mode(core: Core) -> None:
    red = RecordingConsumer()
    sub = core.subscribe(Q, red, ack_mode=AUTO, selector=Selector("color = 'red'"))
    core.send(Q, msg(b"blue", color="blue"))
    sub.close()
    q = core.queue(Q)
    assert q.selective == 0 and not q.settled
    plain = RecordingConsumer()
    core.subscribe(Q, plain, ack_mode=AUTO)
    assert plain.bodies == [b"blue"]


def test_topic_subscribers_filter_each_alone(core: Core) -> None:
    red, blue, every = RecordingConsumer(), RecordingConsumer(), RecordingConsumer()
    core.subscribe(T, red, ack_mode=AUTO, selector=Selector("color = 'red'"))
    core.subscribe(T, blue, ack_mode=AUTO, selector=Selector("color = 'blue'"))
    core.subscribe(T, every, ack_mode=AUTO)
    for color in ("red", "blue", "green", "red"):
        core.send(T, msg(color.encode(), color=color))
    assert red.bodies == [b"red", b"red"] and blue.bodies == [b"blue"]
    assert every.bodies == [b"red", b"blue", b"green", b"red"]


class PausingConsumer(RecordingConsumer):
    """One connection's consumer: its buffer fills at the first delivery, pausing every
    subscription it has (as PushConnection pauses its consumers)."""

    def __init__(self) -> None:
        super().__init__()
        self.subs: list[Subscription] = []

    def deliver(self, sub: Subscription, msg: Message) -> None:
        assert not sub.paused, "delivered to a paused subscription"
        super().deliver(sub, msg)
        for s in self.subs:
            s.pause()


def test_a_delivery_that_pauses_other_subscriptions_stops_the_walk(core: Core) -> None:
    conn = PausingConsumer()
    a = core.subscribe(Q, conn, ack_mode=AUTO, selector=Selector("k = 'a'"), paused=True)
    b = core.subscribe(Q, conn, ack_mode=AUTO, selector=Selector("k = 'b'"), paused=True)
    conn.subs = [a, b]
    core.send(Q, msg(b"a1", k="a"))
    core.send(Q, msg(b"b1", k="b"))
    b.paused = False  # both ready when the walk starts
    a.resume()
    assert conn.bodies == [b"a1"]
    b.resume()
    assert conn.bodies == [b"a1", b"b1"]


class CountingSelector:
    """A Selector whose verdicts are counted (the walk's cost is selector evaluations)."""

    def __init__(self, text: str) -> None:
        self.inner = Selector(text)
        self.text = text
        self.calls = 0

    def matches(self, m: Message) -> bool:
        self.calls += 1
        return self.inner.matches(m)


def test_an_ack_does_not_re_walk_a_backlog_the_selector_refused(core: Core) -> None:
    """Disjoint selectors, the slow consumer's backlog at the head: each ack of the fast
    one looks only past what its selector already refused (the refusal memo), so its
    selector is asked about each waiting message about once, not once per ack."""
    slow = RecordingConsumer()
    core.subscribe(Q, slow, ack_mode=CLIENT, prefetch=1, selector=Selector("shard = 'a'"))
    for i in range(500):
        core.send(Q, msg(b"a%d" % i, shard="a"))  # one in flight to slow, 499 wait
    for i in range(100):
        core.send(Q, msg(b"b%d" % i, shard="b"))
    fast = RecordingConsumer()
    sel = CountingSelector("shard = 'b'")
    sub = core.subscribe(Q, fast, ack_mode=INDIVIDUAL, prefetch=1, selector=sel)  # type: ignore[arg-type]
    for _ in range(99):
        sub.ack(fast.got[-1].id)
    assert fast.bodies == [b"b%d" % i for i in range(100)]
    assert sel.calls < 2 * 600, sel.calls  # without the memo: about 100 × 500
    # Messages returned to the front are asked about again (numbered below the memo).
    slow_sub = (
        core.queue(Q).consumers[0]
        if core.queue(Q).consumers[0].consumer is slow
        else core.queue(Q).consumers[1]
    )
    slow_sub.close()
    assert core.queue(Q).count == 500


def test_a_returned_message_is_seen_again_by_a_consumer_that_refused_its_place(
    core: Core,
) -> None:
    """A message returned to the front is numbered below what a selector had refused
    (the memo): the memo is dropped, so the consumer that matches it gets it."""
    holder = RecordingConsumer()
    h = core.subscribe(Q, holder, ack_mode=INDIVIDUAL, prefetch=1, selector=Selector("kind = 'k'"))
    watcher = RecordingConsumer()
    w = core.subscribe(Q, watcher, ack_mode=INDIVIDUAL, prefetch=1, selector=Selector("redo = 'y'"))
    core.send(Q, msg(b"m1", kind="k", redo="y"))  # to the holder, first in turn
    core.send(Q, msg(b"m2", kind="k"))
    core.send(Q, msg(b"m3", kind="k"))  # both wait: the holder is full
    core.send(Q, msg(b"first", kind="z", redo="y"))
    assert holder.bodies == [b"m1"] and watcher.bodies == [b"first"]
    w.ack(watcher.got[0].id)  # the watcher walks m2, m3 and refuses them
    assert watcher.bodies == [b"first"]
    h.pause()
    h.release(holder.got[0].id)  # m1 back at the front; only the watcher is ready
    assert watcher.bodies == [b"first", b"m1"]
