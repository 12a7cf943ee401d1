"""STOMP queue browsing (`browser:true` on SUBSCRIBE), as ActiveMQ 5.17 does it.

A browser gets the messages pending on the queue when it subscribed, in dispatch order,
without consuming them, then ActiveMQ's end-of-browse marker: a MESSAGE with the headers
`browser:end`, `destination`, `message-id:0` and `subscription`, in that order (ActiveMQ
writes them from a Java HashMap, which puts them so) and an empty body without
`content-length`. Nothing arriving later is sent; the subscription stays until
UNSUBSCRIBE, as ActiveMQ's does.

Invariants:
- the snapshot is the queue's entries (`MessageQueue.entries()`: a Message, or an int
  stub for a paged-out one), references only; a message is read back (`peek`) and
  encoded only when it is about to be written, so memory stays bounded for a deep queue;
- sending stops while the connection's subscriptions are paused for a full outbound
  buffer (broker.push) and resumes with them (`StompConnection._resume_consumers`), and
  at most `BATCH` messages go per loop turn, so a browse of a deep queue of small
  messages does not hold the loop;
- the queue is never changed: no delivery count, no ack, no removal. A stub consumed
  since the snapshot is skipped (`peek` raises LookupError); a message still in memory
  is shown as it was in the snapshot.
- ack mode auto needs no ACK. With client / client-individual ActiveMQ keeps each browsed
  message unacknowledged on the subscription and stops at its prefetch (500, or
  `activemq.prefetchSize`) until ACKs come; so does this one, and an ACK only frees the
  window (client: cumulative). The marker waits for room too, as ActiveMQ's does.

State ownership: a QueueBrowser belongs to its connection's StompSub and is only touched
on the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.core import AUTO, CLIENT, Address, Message, Selector
from broker.core.queue import Entry
from broker.core.transaction import Transaction
from protocols.stomp.codec import Frame, encode_frame, escaper
from protocols.stomp.mapping import (
    encode_message_head,
    format_destination,
    needs_private_encoding,
)
from protocols.stomp.negotiate import ProtocolError

if TYPE_CHECKING:
    from protocols.stomp.connection import StompConnection, StompSub

# ActiveMQPrefetchPolicy.DEFAULT_QUEUE_BROWSER_PREFETCH.
BROWSER_PREFETCH = 500
# Messages written per loop turn at most (each may be a read from the journal).
BATCH = 256


def start_browser(
    conn: StompConnection,
    frame: Frame,
    ssub: StompSub,
    address: Address,
    ack: str,
    prefetch: int | None,
    selector: Selector | None = None,
) -> None:
    """SUBSCRIBE with `browser:true` (already authorized for read): register `ssub` as a
    browser of `address` on `conn`, answer the receipt, then start sending (only what
    `selector` matches, when there is one, as ActiveMQ's browser)."""
    if conn.version == "1.0":
        raise ProtocolError("Queue Browser feature only valid for Stomp v1.1+ clients!")
    if not address.is_queue:
        # ActiveMQ 5.17 answers an ERROR too (a ClassCastException in its broker) and
        # never delivers to it; refused here before anything is registered.
        raise ProtocolError("Invalid Subscription: cannot browse a Topic destination!")
    browser = QueueBrowser(conn, ssub, address, ack, prefetch)
    browser.selector = selector
    ssub.browser = browser
    conn.subs[ssub.id] = ssub
    conn.by_num[browser.num] = ssub
    if conn.version == "1.2" and ack != AUTO:
        ssub.ack_prefix = b"ack:%d-" % browser.num
    conn._receipt(frame)
    owed = conn._owed
    if owed and owed[-1][2] is frame:
        # The RECEIPT goes before the first MESSAGE, as ActiveMQ's does; it waits for the
        # journal (a new queue's record, or earlier receipts), so the browse waits after
        # it (callbacks run in the order added: the receipt's first).
        browser._scheduled = True  # and no drain of the output starts it earlier
        owed[-1][0].add_done_callback(lambda _done: browser.pump())
    else:
        browser.pump()


class QueueBrowser:
    """One browsing subscription: what is left of its snapshot and its ack window."""

    __slots__ = (
        "_conn",
        "_entries",
        "_scheduled",
        "ack_mode",
        "address",
        "closed",
        "done",
        "inflight",
        "num",
        "selector",
        "sub",
        "window",
    )

    def __init__(
        self,
        conn: StompConnection,
        sub: StompSub,
        address: Address,
        ack_mode: str,
        prefetch: int | None,
    ) -> None:
        self._conn = conn
        self.sub = sub
        self.address = address
        self.ack_mode = ack_mode
        self.window = prefetch or BROWSER_PREFETCH
        # Its number in 1.2 ack ids, from the core's subscription numbers (no clash).
        self.num = conn.core.subscription_num()
        # The snapshot, reversed so that the next entry pops off the end.
        self._entries: list[Entry] = list(reversed(conn.core.queue(address).entries()))
        # Ids of browsed messages not yet ACKed (client modes only), in delivery order.
        self.inflight: dict[str, None] = {}
        self.done = False
        self.closed = False
        self._scheduled = False
        self.selector: Selector | None = None

    def close(self) -> None:
        self.closed = True
        self._entries = []

    def ack(self, msg_id: str, *, tx: Transaction | None = None) -> None:
        """Free the window up to `msg_id` (client: every earlier one too); the queue keeps
        the message, as ActiveMQ's browser acknowledges nothing (so a transaction, `tx`,
        has nothing to hold back either)."""
        if self.ack_mode == CLIENT:
            for mid in list(self.inflight):
                del self.inflight[mid]
                if mid == msg_id:
                    break
        else:
            self.inflight.pop(msg_id, None)
        self.pump()

    def dead_letter(self, msg_id: str, cause: str = "", *, tx: Transaction | None = None) -> None:
        # ActiveMQ's browser refuses it; the message stays on the queue either way.
        raise ProtocolError("Cannot Nack a message on a Queue Browser Subscription.")

    def pump(self) -> None:
        """Write what the outbound buffer and the ack window allow, then the marker."""
        self._scheduled = False
        conn = self._conn
        if self.closed or self.done or conn.closing:
            return
        entries = self._entries
        source = conn.core.queues.get(self.address)
        sent = 0
        while entries and not conn._consumers_paused:
            if self.ack_mode != AUTO and len(self.inflight) >= self.window:
                return
            if sent >= BATCH:
                # The rest in a later turn: others on this loop get their share.
                self._scheduled = True
                conn.loop.call_soon(self.pump)
                return
            entry = entries.pop()
            if source is None:
                entries.clear()
                break
            try:
                msg = source.peek(entry)
            except LookupError:
                continue  # consumed since the snapshot: a browser skips it
            if self.selector is not None and not self.selector.matches(msg):
                continue
            self._write(msg)
            sent += 1
        if entries or conn._consumers_paused:
            return
        if self.ack_mode != AUTO and len(self.inflight) >= self.window:
            return
        self.done = True
        conn._send(self._marker())

    def resume(self) -> None:
        """The connection's output has drained: go on (once per turn)."""
        if not self._scheduled and not self.done and not self.closed:
            self.pump()

    def _write(self, msg: Message) -> None:
        conn = self._conn
        version = conn.version
        wire = msg.wire
        if wire is None or wire[0] != version or wire[3]:
            private = needs_private_encoding(msg)
            head = encode_message_head(
                msg, conn.id, version, group_headers=conn.settings.group_headers
            )
            wire = (version, escaper(version)(msg.id).encode(), head, private)
            if not private:
                msg.wire = wire
        parts = [self.sub.prefix]
        if self.ack_mode != AUTO:
            self.inflight[msg.id] = None
            if self.sub.ack_prefix:
                parts += (self.sub.ack_prefix, wire[1], b"\n")
        parts += (wire[2], b"\n", msg.body, b"\x00")
        conn._send(b"".join(parts))

    def _marker(self) -> bytes:
        conn = self._conn
        headers = [
            ("browser", "end"),
            ("destination", format_destination(self.address, conn.id)),
            ("message-id", "0"),
            ("subscription", self.sub.id),
        ]
        return encode_frame("MESSAGE", headers, b"", conn.version)
