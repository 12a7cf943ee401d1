"""The failover checker: what every producer sent and had acknowledged, what every
consumer was delivered, and the verdict per protocol.

A message is identified by (protocol, producer, seq); its body carries producer and seq
(`encode_body` / `decode_body`), so a consumer needs nothing but the body to report it.
The counts, per protocol:

- sent: distinct messages a producer sent at least once; `resent` counts the extra
  sends of a message whose acknowledgement did not arrive before the connection dropped;
- acknowledged: distinct messages whose receipt / accepted disposition / SendMessage
  response the producer saw (the broker promised them);
- consumed: distinct messages delivered at least once;
- lost: acknowledged, never delivered (must be 0);
- duplicated: deliveries not flagged redelivered beyond one per send of that message
  (a resent message may legitimately arrive once per send, unflagged);
- reordered: a first delivery of a seq lower than one already delivered from the same
  producer to the same consumer, not flagged redelivered;
- redelivered: deliveries flagged redelivered (STOMP `redelivered`, AMQP
  delivery-count > 0, SQS ApproximateReceiveCount > 1);
- unexpected: deliveries of a message no producer of this run sent.

Thread-safe: producers and consumers call it from their own threads.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import defaultdict

Key = tuple[str, int]  # (producer, seq) within one protocol


def encode_body(producer: str, seq: int) -> str:
    """The body every demo producer sends: producer id and seq, as JSON."""
    return json.dumps({"producer": producer, "seq": seq}, separators=(",", ":"))


def decode_body(body: str | bytes) -> tuple[str, int]:
    """(producer, seq) of a body made by `encode_body`; ValueError for anything else."""
    try:
        data = json.loads(body)
        return str(data["producer"]), int(data["seq"])
    except (TypeError, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a demo message body: {body!r:.80}") from exc


@dataclasses.dataclass(frozen=True)
class ProtocolReport:
    """The verdict for one protocol (see the module docstring for each count)."""

    protocol: str
    sent: int
    resent: int
    acknowledged: int
    consumed: int
    lost: int
    duplicated: int
    reordered: int
    redelivered: int
    unexpected: int

    @property
    def ok(self) -> bool:
        """Nothing lost, duplicated without the flag, reordered or unexpected."""
        return not (self.lost or self.duplicated or self.reordered or self.unexpected)


COLUMNS = [f.name for f in dataclasses.fields(ProtocolReport)]


@dataclasses.dataclass
class _Protocol:
    """Everything recorded for one protocol (guarded by the Checker's lock)."""

    sends: dict[Key, int] = dataclasses.field(default_factory=lambda: defaultdict(int))
    acked: set[Key] = dataclasses.field(default_factory=set)
    delivered: set[Key] = dataclasses.field(default_factory=set)
    # Deliveries not flagged redelivered, per message.
    unflagged: dict[Key, int] = dataclasses.field(default_factory=lambda: defaultdict(int))
    # Highest seq delivered so far per (producer, consumer).
    highest: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    reordered: int = 0
    redelivered: int = 0
    unexpected: int = 0


class Checker:
    """Thread-safe records of sends, acknowledgements and deliveries, and `report()`.

    `event(source, text)` adds a line to a timeline (connections lost and made, the
    demo's kill), so a run can be told as it happened."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._protocols: dict[str, _Protocol] = {}
        self._started = time.monotonic()
        self._timeline: list[tuple[float, str, str]] = []

    def _of(self, protocol: str) -> _Protocol:
        p = self._protocols.get(protocol)
        if p is None:
            p = self._protocols[protocol] = _Protocol()
        return p

    def sent(self, protocol: str, producer: str, seq: int) -> None:
        """A producer put (producer, seq) on the wire; again for a resend."""
        with self._cond:
            self._of(protocol).sends[(producer, seq)] += 1

    def acknowledged(self, protocol: str, producer: str, seq: int) -> None:
        """The broker acknowledged (producer, seq): it must be delivered eventually."""
        with self._cond:
            self._of(protocol).acked.add((producer, seq))
            self._cond.notify_all()

    def delivered(
        self, protocol: str, producer: str, seq: int, redelivered: bool, consumer: str = ""
    ) -> None:
        """A consumer was handed (producer, seq), flagged redelivered or not. Order is
        checked per consumer: several consumers of one queue share a producer's
        messages, each in order, but their threads report in any interleaving."""
        key = (producer, seq)
        with self._cond:
            p = self._of(protocol)
            first = key not in p.delivered
            if key not in p.sends:
                p.unexpected += 1
            stream = (producer, consumer)
            highest = p.highest.get(stream, -1)
            if redelivered:
                p.redelivered += 1
            else:
                p.unflagged[key] += 1
                # A repeat is a duplicate (counted in report()), not also a reordering.
                if first and seq < highest:
                    p.reordered += 1
            if seq > highest:
                p.highest[stream] = seq
            p.delivered.add(key)
            if first and key in p.acked:
                self._cond.notify_all()

    def event(self, source: str, text: str) -> None:
        """A timeline line: `source` (a client's name, "demo") and what happened."""
        with self._cond:
            self._timeline.append((time.monotonic() - self._started, source, text))

    def timeline(self) -> list[tuple[float, str, str]]:
        """(seconds since the Checker was made, source, text), oldest first."""
        with self._cond:
            return list(self._timeline)

    def _undelivered(self) -> int:
        return sum(len(p.acked - p.delivered) for p in self._protocols.values())

    def wait_for_drain(self, timeout: float) -> bool:
        """Wait until every acknowledged message has been delivered; False on timeout.
        Meaningful once the producers have stopped (else more acknowledgements come)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._undelivered() == 0, timeout)

    def wait_for_acknowledged(self, at_least: dict[str, int], timeout: float) -> bool:
        """Wait until each protocol named has at least that many messages acknowledged
        (progress under load, or after a failover); False on timeout."""

        def reached() -> bool:
            return all(len(self._of(protocol).acked) >= n for protocol, n in at_least.items())

        with self._cond:
            return self._cond.wait_for(reached, timeout)

    def acknowledged_counts(self) -> dict[str, int]:
        """Messages acknowledged so far, per protocol."""
        with self._cond:
            return {name: len(p.acked) for name, p in self._protocols.items()}

    def report(self) -> dict[str, ProtocolReport]:
        """The counts so far, per protocol, in the order protocols were first seen."""
        with self._cond:
            return {name: self._report(name, p) for name, p in self._protocols.items()}

    @staticmethod
    def _report(name: str, p: _Protocol) -> ProtocolReport:
        # Each send of a message explains one unflagged delivery of it.
        duplicated = sum(max(0, n - p.sends.get(k, 1)) for k, n in p.unflagged.items())
        return ProtocolReport(
            protocol=name,
            sent=len(p.sends),
            resent=sum(n - 1 for n in p.sends.values()),
            acknowledged=len(p.acked),
            consumed=len(p.delivered),
            lost=len(p.acked - p.delivered),
            duplicated=duplicated,
            reordered=p.reordered,
            redelivered=p.redelivered,
            unexpected=p.unexpected,
        )

    def table(self) -> str:
        """`report()` as a fixed-width text table, one row per protocol."""
        rows = [COLUMNS] + [
            [r.protocol, *(str(getattr(r, c)) for c in COLUMNS[1:])] for r in self.report().values()
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
        lines = [
            "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
        ]
        return "\n".join(lines)
