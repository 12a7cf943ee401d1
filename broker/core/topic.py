"""Topics: every current subscriber gets each message.

Each subscription owns a private MessageQueue bounded by the slow-consumer limit; the
topic offers every message to each of them. The Message object is shared among the
subscribers and therefore never mutated (see message.py). Durable subscriptions
(broker/core/durable.py) are offered each message after the current subscribers.
"""

from __future__ import annotations

from broker.core.durable import DurableSub, Offer, offer
from broker.core.message import Address, Message
from broker.core.queue import MessageQueue, Subscription


class Topic:
    """A topic and its subscriptions; counters mirror MessageQueue's for stats."""

    __slots__ = ("address", "durable", "durables", "enqueued", "forward", "gone", "owner", "subs")

    def __init__(self, address: Address, owner: object = None) -> None:
        self.address = address
        self.subs: list[Subscription] = []
        # The durable subscriptions to this topic (Durables keeps this list), and
        # whether a persistent message sent here is journaled (it is, for them, when
        # there are some and a store): Core.send reads it as it reads MessageQueue.durable.
        self.durables: list[DurableSub] = []
        self.durable = False
        self.owner = owner
        # A virtual topic's consumer queues (Core.send forwards each message to them);
        # None: not a virtual topic.
        self.forward: list[MessageQueue] | None = None
        self.enqueued = 0
        # Counters of subscriptions that have closed (see Core.unsubscribe).
        self.gone = dict.fromkeys(
            ("dispatched", "acked", "redelivered", "dlq", "expired", "discarded"), 0
        )

    def put(self, msg: Message, durable: Offer | None = None) -> None:
        """Offer `msg` to every subscriber, then to the durable subscriptions (`durable`:
        the ones a committed transaction has journaled it for, durable.targets)."""
        self.enqueued += 1
        origin = msg.origin
        for sub in self.subs:
            if sub.no_local and origin is not None and origin == sub.origin:
                continue
            sel = sub.selector
            if sel is not None and not sel.matches(msg):
                continue
            sub.source.put(msg)
        if self.durables:
            offer(self.durables, msg, durable)
