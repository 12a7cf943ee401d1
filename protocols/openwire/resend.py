"""Resends after a failover: what one OpenWire connection stored per producer, and the
duplicate check of a reconnected connection (ActiveMQ's ProducerBrokerExchange).

A JMS client with a failover transport that loses its connection sends, on the next
one, a ConnectionInfo with failoverReconnect set, its sessions, producers and
consumers, and then every command whose Response it had not seen: synchronous
(persistent) sends again, with the same MessageId. ActiveMQ 5.17 drops such a message
when its producer sequence is at or below the last one stored for its producer
(`TransportConnection.getProducerBrokerExchange` asks the persistence adapter's audit
for a reconnected connection only; `ProducerBrokerExchange.canDispatch`, persistent
messages only) and answers it as if stored. So do we, against the core's
ProducerAudit (broker/core/audit.py: filled from the journal at start or promotion)
and what this connection itself stored.

A connection notes the last sequence of each producer's stored (persistent, not
transacted) sends and hands them to the core's audit when it ends, so a client that
reconnects to the same node is covered too; not when a write of this connection was
refused (the message may not be stored, and its resend must be).
"""

from __future__ import annotations

from broker.core.audit import ProducerAudit
from protocols.openwire.codec import commands as c


def producer_key(pid: c.ProducerId) -> str:
    """The producer as the audit keys it: its part of the JMSMessageID the mapping
    stores (mapping.ORIGINAL_ID, with its "ID:")."""
    text = f"{pid.connection_id}:{pid.session_id}:{pid.value}"
    return text if text.startswith("ID:") else "ID:" + text


class Resends:
    """One connection's producer sequences and its duplicate check (module docstring)."""

    __slots__ = ("audit", "reconnected", "refused", "sent")

    def __init__(self, audit: ProducerAudit) -> None:
        self.audit = audit
        # ConnectionInfo.failoverReconnect: only then are sends checked (as ActiveMQ).
        self.reconnected = False
        # A write of this connection was refused: what it noted may not be stored.
        self.refused = False
        # Producer -> the sequence of its last stored send on this connection.
        self.sent: dict[c.ProducerId, int] = {}

    def duplicate(self, mid: c.MessageId) -> bool:
        """Whether a persistent message on a reconnected connection was stored before
        (its sequence at or below its producer's last stored one)."""
        pid = mid.producer_id
        if pid is None:
            return False
        last = self.sent.get(pid)
        if last is None:
            last = self.sent[pid] = self.audit.last(producer_key(pid))
        return mid.producer_sequence_id <= last

    def hand_over(self) -> None:
        """The connection ends: its producers' last sequences go to the core's audit."""
        sent, self.sent = self.sent, {}
        if self.refused:
            return
        for pid, seq in sent.items():
            if seq >= 0:
                self.audit.note(producer_key(pid), seq)
