"""ProducerAudit: the highest sequence number stored per producer, so that a message a
client sends again after a failover (the same producer id and sequence, because its
first send's answer never came) is not stored twice (ActiveMQ's producer audit).

Generic: a producer is a string and its messages are numbered upwards; the core does
not know who numbers them. A protocol mapping that keeps the id its producer gave a
message in property `PRODUCER_MESSAGE_ID` (OpenWire's and AMQP's mappings keep it as
JMS_AMQP_MessageId), in the JMS form `<producer id>:<sequence>`, gets it audited from
the journal: `MessageStore.recover` feeds `note_id` every ADD it replays (also those
consumed since, as long as their record is still in the journal), so a node promoted
over a replicated journal knows what the old active stored. What a protocol learns
from its own connections it adds with `note` (a connection's last sequences, when it
ends).

Policy (bounded memory): one int per producer, at most `max_producers` producers, the
least recently noted one forgotten first. 64 is the default of ActiveMQ 5.17's
persistence audit (KahaDB's producerSequenceIdTracker, an ActiveMQMessageAuditNoSync:
64 producers, whose last sequence `TransportConnection` asks for a reconnected
producer). A forgotten producer's resend is stored again, as in ActiveMQ; so is one
whose original's record compaction already removed (a consumed message in an old
segment), which ActiveMQ's checkpointed tracker would still catch.
"""

from __future__ import annotations

from collections import OrderedDict

# The property a mapping keeps its producer's own message id in (see the docstring).
PRODUCER_MESSAGE_ID = "JMS_AMQP_MessageId"
MAX_PRODUCERS = 64


def split_id(text: str) -> tuple[str, int] | None:
    """(producer, sequence) of a JMS-style id `<producer>:<sequence>`; None when the
    text does not end in a colon and a number."""
    producer, sep, seq = text.rpartition(":")
    if not sep or not producer or not seq.isdigit():
        return None
    return producer, int(seq)


class ProducerAudit:
    """The last sequence stored per producer (see the module docstring)."""

    __slots__ = ("_last", "max_producers")

    def __init__(self, max_producers: int = MAX_PRODUCERS) -> None:
        if max_producers < 1:
            raise ValueError("max_producers must be at least 1")
        self.max_producers = max_producers
        self._last: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._last)

    def last(self, producer: str) -> int:
        """The highest sequence noted for `producer`, -1 when none (ActiveMQ's
        getLastSeqId)."""
        return self._last.get(producer, -1)

    def note(self, producer: str, seq: int) -> None:
        """`producer` stored message number `seq` (a lower one than known changes
        nothing but its place in the LRU order)."""
        last = self._last
        old = last.get(producer)
        if old is None:
            last[producer] = seq
            if len(last) > self.max_producers:
                last.popitem(last=False)
        else:
            if seq > old:
                last[producer] = seq
            last.move_to_end(producer)

    def note_id(self, text: object) -> None:
        """Note a stored message by its producer's id text (anything else is ignored)."""
        if type(text) is str:
            parts = split_id(text)
            if parts is not None:
                self.note(*parts)

    def is_duplicate(self, producer: str, seq: int) -> bool:
        """Whether `seq` is at or below the last sequence noted for `producer`."""
        old = self._last.get(producer)
        return old is not None and seq <= old
