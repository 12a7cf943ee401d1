"""Local transactions: sends and acknowledgements that take effect together at commit.

A Transaction belongs to one protocol session. Sends are held (not routed) until commit;
acknowledged messages leave the subscription's in-flight set at once, so the consumer's
credit is freed as ActiveMQ frees prefetch for transacted acks, but are only counted as
consumed at commit. Abort drops the sends; a message acknowledged in the transaction
becomes unacknowledged again on its subscription (ActiveMQ 5.17 does the same for STOMP:
no new MESSAGE, the client may ACK it again, and it is redelivered if the subscription
closes), or goes back to its queue for redelivery if that subscription has closed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.core.durable import Offer, targets
from broker.core.message import Address, Message

if TYPE_CHECKING:
    from broker.core.core import Core
    from broker.core.queue import MessageQueue, Subscription
    from broker.core.scheduler import Schedule


class Transaction:
    """One open transaction; `finished` once committed or aborted."""

    __slots__ = ("acks", "core", "finished", "scheduled", "sends")

    def __init__(self, core: Core) -> None:
        self.core = core
        self.sends: list[tuple[Address, Message]] = []
        # (subscription, messages, outcome): outcome "ack", "redeliver" or a poison cause.
        self.acks: list[tuple[Subscription, list[Message], str]] = []
        # Sends that asked for scheduled delivery: their jobs are created at commit.
        self.scheduled: list[tuple[Address, Message, Schedule]] = []
        self.finished = False

    def add_send(self, address: Address, msg: Message) -> None:
        self.sends.append((address, msg))

    def add_scheduled(self, address: Address, msg: Message, schedule: Schedule) -> None:
        self.scheduled.append((address, msg, schedule))

    def add_acks(self, sub: Subscription, msgs: list[Message], *, redeliver: bool) -> None:
        self.acks.append((sub, msgs, "redeliver" if redeliver else "ack"))

    def add_poison(self, sub: Subscription, msgs: list[Message], cause: str) -> None:
        self.acks.append((sub, msgs, "poison:" + cause))

    def commit(self) -> None:
        """Route the held sends and settle the held acknowledgements; what the journal
        must know of both is written as one record, so a crash keeps all or nothing (a
        topic send's copies for durable subscriptions too: chosen first, then routed
        where the record says)."""
        self.finished = True
        core = self.core
        chosen: list[Offer | None] = [None] * len(self.sends)
        if core.records.persists:
            acks = [
                (sub.source, m)
                for sub, msgs, outcome in self.acks
                if outcome == "ack"
                for m in msgs
            ]
            offered: list[tuple[MessageQueue, Message]] = []
            for i, (address, msg) in enumerate(self.sends):
                topic = core.topics.get(address) if not address.is_queue else None
                if topic is not None and topic.durables and msg.persistent:
                    queues = chosen[i] = targets(topic.durables, msg)
                    offered += [(q, msg) for q in queues]
            core.records.committed(self.sends, acks, offered)
        for (address, msg), durable in zip(self.sends, chosen, strict=True):
            core.route(address, msg, durable)
        for address, msg, schedule in self.scheduled:
            core.scheduler.add(address, msg, schedule)
        for sub, msgs, outcome in self.acks:
            source = sub.source
            if outcome == "ack":
                source.acked += len(msgs)
            elif outcome == "redeliver":
                core.redeliver(source, msgs, counted=True)
            else:
                for msg in msgs:
                    core.dead_letter(source, msg, outcome[len("poison:") :])
            source.dispatch()
        self.sends.clear()
        self.scheduled.clear()
        self.acks.clear()

    def abort(self) -> None:
        """Drop the held sends; acknowledged messages become unacknowledged again."""
        self.finished = True
        for sub, msgs, _outcome in self.acks:
            if not sub.closed:
                sub.restore(msgs)
            elif sub.topic is None:
                self.core.redeliver(sub.source, msgs, counted=True)
                sub.source.dispatch()
        self.sends.clear()
        self.scheduled.clear()
        self.acks.clear()
