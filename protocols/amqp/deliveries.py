"""AMQP 1.0 transfers and dispositions onto the core (the delivery half of a connection).

- Our senders: link credit is the consumer's credit. The subscription is paused whenever
  the credit is used up (or the connection's write buffer is over `write_buffer_high`)
  and resumed by a flow that grants more; a drain request is answered once dispatch has
  stopped. Unsettled deliveries are additionally bounded by the destination kind's
  prefetch. A delivery of a persistent message on a durable queue to an unsettled link
  is journaled as delivered (its delivery count) and leaves only once that record is
  durable (broker.push's durability rule), so after a crash it comes back with
  delivery-count > 0 and first-acquirer false.
  Outcomes: accepted = ack, released = back unchanged, modified with delivery-failed =
  redelivery count + 1 (dead letter queue past the limit), modified without it =
  released, rejected = dead letter queue at once; settled with no outcome = accepted.
- Our receivers route each transfer with `core.send` (`core.schedule` when its
  properties or annotations ask for scheduled delivery); an unsettled transfer of a
  persistent message is accepted and settled only after the core's durability awaitable
  completes. Undeliverable messages are rejected with a condition. Producer credit is a
  window of `PRODUCER_CREDIT`, withheld while a destination is over its memory limit; a
  transfer beyond the link's credit (proton takes it) detaches the link with
  amqp:link:transfer-limit-exceeded, or withholding credit would bound nothing.
- A message split over several transfer frames is buffered by proton until its last
  frame: each link's incomplete delivery is counted (`InLink.partial`, the connection's
  `_delivery_bytes`) with the half-received frames against the listener's
  `max_partial_bytes`, and timed against `frame_timeout` (connection.py acts on both).
  A link we detach (message too large, the session ends) settles its incomplete delivery
  and every transfer that still comes on it, so proton drops their bytes instead of
  buffering them for a peer that ignores the detach.

Per-message cost: transfers and dispositions are handled on proton's C API (cproton) with
the raw event, link and delivery pointers, not through proton's Event/Link/Delivery wrapper
objects (several Python objects per event otherwise); messages are encoded and decoded by
hand for the usual shapes (protocols.amqp.codec), proton's Message being the fallback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from cproton import (
    pn_decref,
    pn_delivery,
    pn_delivery_aborted,
    pn_delivery_link,
    pn_delivery_partial,
    pn_delivery_pending,
    pn_delivery_readable,
    pn_delivery_remote_state,
    pn_delivery_settle,
    pn_delivery_settled,
    pn_delivery_update,
    pn_event_delivery,
    pn_event_link,
    pn_incref,
    pn_link_advance,
    pn_link_credit,
    pn_link_current,
    pn_link_drained,
    pn_link_flow,
    pn_link_get_drain,
    pn_link_is_sender,
    pn_link_recv,
    pn_link_send,
)
from proton import Condition, Delivery, Link
from proton import Message as AmqpMessage

from broker.auth import WRITE, exists
from broker.core import Address, CoreError, Message, Subscription, Transaction, schedule_of
from broker.core.errors import WriteRefused
from broker.tcp import TcpListener
from protocols.amqp.links import PRODUCER_CREDIT, AmqpLinks, InLink, OutLink, Refused
from protocols.amqp.mapping import (
    CORE_CONDITIONS,
    MappingError,
    decode_message,
    destination_of,
    encode_header,
    encode_message,
    encode_sections,
    message_from_amqp,
    parse_composite,
)
from protocols.amqp.transactions import TRANSACTIONAL, Coordinator, UnknownTransaction

_ACCEPTED = int(Delivery.ACCEPTED)
_TRANSFER_LIMIT = "amqp:link:transfer-limit-exceeded"


class AmqpDeliveries(AmqpLinks):
    """Transfers and dispositions both ways on an AMQP connection's links (see the module
    docstring); the Consumer the core delivers to."""

    def __init__(self, listener: TcpListener[Any]) -> None:
        super().__init__(listener)
        self.coordinator = Coordinator(self)
        self._decoder = AmqpMessage()
        self._encoder = AmqpMessage()
        # Bytes of incomplete multi-frame deliveries on all links, and the links holding
        # one (almost always none: a message usually fits in one frame).
        self._delivery_bytes = 0
        self._partial_links: set[InLink] = set()

    def _close_connection(self, condition: str, description: str) -> None:
        """Close the AMQP connection with an error condition (the engine's business)."""
        raise NotImplementedError

    def _arm_frame_timer(self) -> None:
        """Start the frame_timeout clock if it is not running (the engine's business)."""
        raise NotImplementedError

    def _take_transactions(self) -> list[Transaction]:
        return self.coordinator.take()

    # -- the Consumer interface the core calls ------------------------------------------

    def deliver(self, sub: Subscription, msg: Message) -> None:
        out: OutLink = sub.tag  # type: ignore[assignment]
        impl = out.impl
        data = self._wire(msg)
        dlv = pn_delivery(impl, b"%d" % next(out.tags))
        pn_link_send(impl, data)
        pn_link_advance(impl)
        if out.presettled:
            pn_delivery_settle(dlv)
        else:
            out.unacked[dlv] = msg.id
            if msg.persistent and sub.source.durable:
                self._hold = True  # its delivery record first (broker.push: durability rule)
        if pn_link_credit(impl) <= 0:
            # The link's subscription: for a wildcard or composite source that is the
            # group over every member queue, not just the member that delivered.
            held = out.sub
            (held if held is not None else sub).pause()
        self._out_bytes += len(data)
        if not self._flush_scheduled:
            self._schedule()
        if self._out_bytes > self._write_high:
            self._pause_consumers()

    def _wire(self, msg: Message) -> bytes:
        """The transfer payload of `msg`. The sections after the header are encoded once per
        message (cached in `msg.wire`, shared by every AMQP subscriber of a topic and by
        redeliveries); the header (delivery-count, first-acquirer, ttl) per delivery. Shapes
        the hand encoder does not take go through proton's Message, cached per state."""
        wire = msg.wire
        if wire is not None and wire[0] == "amqp":
            sections = wire[1]
        elif (
            wire is not None
            and wire[0] == "amqp-proton"
            and wire[1] == msg.delivery_count
            and wire[2] == msg.redelivered
        ):
            return wire[3]  # type: ignore[no-any-return]
        else:
            sections = encode_sections(msg)
            if sections is not None:
                msg.wire = ("amqp", sections)
        if sections is not None:
            header = encode_header(msg, self.core.now_ms() if msg.expiration else 0)
            if header is not None:
                return header + sections
        data = encode_message(self._encoder, msg, self.core.now_ms())
        if not msg.expiration:  # the ttl written depends on the time of sending
            msg.wire = ("amqp-proton", msg.delivery_count, msg.redelivered, data)
        return data

    def slow(self, sub: Subscription) -> None:
        # Deferred: the core is iterating the topic's subscribers right now.
        self.loop.call_soon(
            self._close_connection,
            "amqp:resource-limit-exceeded",
            "slow consumer: subscription fell too far behind",
        )

    # -- flow -----------------------------------------------------------------------------

    def _on_link_flow(self, event: Any) -> None:
        """A flow frame (raw pn_event_t): credit for one of our senders."""
        impl = pn_event_link(event)
        out = self.by_impl.get(impl)
        if type(out) is not OutLink:
            return
        if out.browse is not None:
            self._browse_more(out)
        elif out.sub is not None and pn_link_credit(impl) > 0 and not self._consumers_paused:
            out.sub.resume()
        if pn_link_get_drain(impl) and pn_link_credit(impl) > 0:
            pn_link_drained(impl)

    def _browse_more(self, out: OutLink) -> None:
        link = out.link
        snapshot = out.browse
        assert snapshot is not None
        while snapshot and link.credit > 0:
            entry = snapshot.pop()
            if type(entry) is int or entry.body is None:
                # Paged out: read it back, leaving the queue's copy as is.
                source = self.core.queues.get(out.address)
                if source is None:
                    continue
                try:
                    msg = source.peek(entry)
                except LookupError:
                    continue  # consumed since the snapshot: a browser skips it
            else:
                msg = entry
            if out.selector is not None and not out.selector.matches(msg):
                continue
            dlv = link.delivery(str(next(out.tags)))
            link.stream(self._wire(msg))
            link.advance()
            dlv.settle()

    # -- deliveries -----------------------------------------------------------------------

    def _on_delivery(self, event: Any) -> None:
        """A transfer to us or a disposition for one of ours (raw pn_event_t). The usual
        cases (a whole transfer, an accepted outcome) run on proton's C API without
        Delivery/Link wrapper objects; the rare ones wrap."""
        dlv = pn_event_delivery(event)
        link = pn_delivery_link(dlv)
        entry = self.by_impl.get(link)
        if type(entry) is OutLink:
            sub = entry.sub
            if sub is None:
                if pn_delivery_settled(dlv):
                    pn_delivery_settle(dlv)
                return
            msg_id = entry.unacked.get(dlv)
            if msg_id is None:
                return  # pre-settled, or its outcome was handled already
            state = pn_delivery_remote_state(dlv)
            if state == _ACCEPTED or (state == 0 and pn_delivery_settled(dlv)):
                del entry.unacked[dlv]
                sub.ack(msg_id)
                pn_delivery_settle(dlv)
            elif state:
                self._on_outcome(entry, sub, msg_id, Delivery.wrap(dlv))
            return
        if entry is None:
            if not pn_link_is_sender(link) or pn_delivery_settled(dlv):
                # A transfer on a link we detached: settled, proton drops its bytes (and
                # those of the frames that continue it) rather than buffer them.
                pn_delivery_settle(dlv)
            return
        inl: InLink = entry  # type: ignore[assignment]
        if pn_delivery_aborted(dlv):
            if inl.partial:
                self._hold_partial(inl, 0)
            pn_delivery_settle(dlv)
            return
        pending = pn_delivery_pending(dlv)
        if pending > self.settings.max_message_size:
            inl.link.condition = Condition(
                "amqp:link:message-size-exceeded",
                f"message larger than {self.settings.max_message_size} bytes",
            )
            inl.link.close()
            self._drop_in(inl.link)
            return
        if pn_delivery_partial(dlv) or not pn_delivery_readable(dlv):
            if pending != inl.partial:
                self._hold_partial(inl, pending)
            return
        if inl.partial:
            self._hold_partial(inl, 0)
        n, data = pn_link_recv(link, pending)
        if n < 0:
            data = b""
        pn_link_advance(link)
        credit = pn_link_credit(link)
        if credit < 0:
            # Proton takes a transfer the peer had no credit for, and withheld credit is
            # how a full queue holds its producers back: refused, and the link detached
            # with the spec's condition (2.6.7), so such a peer cannot bypass it.
            why = "transfer sent without link credit"
            self._reject(dlv, _TRANSFER_LIMIT, why, pn_delivery_settled(dlv))
            inl.link.condition = Condition(_TRANSFER_LIMIT, why)
            inl.link.close()
            self._drop_in(inl.link)
            return
        if inl.coordinator:
            self.coordinator.control(Delivery.wrap(dlv), bytes(data))
        else:
            self._on_transfer(inl, dlv, data)
        if not inl.blocked and credit < PRODUCER_CREDIT // 2:
            pn_link_flow(link, PRODUCER_CREDIT - credit)

    def _hold_partial(self, inl: InLink, n: int) -> None:
        """`inl`'s incomplete delivery now holds `n` bytes in proton (0: it completed or
        went). The budget is checked after the read (AmqpConnection._check_partial)."""
        self._delivery_bytes += n - inl.partial
        if not n:
            self._partial_links.discard(inl)
        elif not inl.partial:
            inl.since = self.loop.time()
            self._partial_links.add(inl)
            self._arm_frame_timer()
        inl.partial = n

    def _drop_in(self, link: Link) -> None:
        inl = self.in_links.get(link)
        if inl is not None:
            if inl.partial:
                self._hold_partial(inl, 0)
            current = pn_link_current(inl.impl)
            if current:
                # The delivery not read yet (incomplete, or too large): settled, proton
                # frees its bytes and ignores the frames that continue it.
                pn_delivery_settle(current)
        super()._drop_in(link)

    def _on_transfer(self, inl: InLink, dlv: Any, data: bytes | bytearray) -> None:
        """A whole message on a link we receive on; `dlv` is its pn_delivery_t."""
        presettled = pn_delivery_settled(dlv)
        tx: Transaction | None = None
        txid: bytes | None = None
        try:
            if pn_delivery_remote_state(dlv) == TRANSACTIONAL:
                txid, tx = self.coordinator.transaction(Delivery.wrap(dlv))
            now_ms = self.core.now_ms()
            msg = decode_message(data, inl.address, now_ms=now_ms, origin=self.id)
            if msg is not None:
                address = msg.destination
                assert address is not None
            else:  # a shape the hand decoder leaves to proton
                pm = self._decoder
                pm.clear()
                pm.decode(data)
                address = inl.address if inl.address is not None else destination_of(pm)
                msg = message_from_amqp(pm, address, now_ms=now_ms, origin=self.id)
            parts = inl.parts
            if inl.address is None:
                if "," in address.name:
                    # A relay message's `to` naming a composite (a link's is parsed at attach).
                    whole = parse_composite(str(address))
                    parts = whole if type(whole) is tuple else None
                    address = whole[0] if type(whole) is tuple else whole
                if self.listener.auth.authorizing:
                    # The anonymous relay: each message's `to` is checked, not the link.
                    for part in parts or (address,):
                        self._authorize(part, WRITE, created=not exists(self.core, part))
            if msg.reply_to is not None:
                self._own_temporary(msg.reply_to)
            schedule = schedule_of(msg.properties) if msg.properties else None
            if schedule is not None:
                if parts is not None:
                    raise Refused(
                        "amqp:not-implemented",
                        "scheduled delivery to a composite destination is not supported",
                    )
                done = self.core.schedule(address, msg, schedule, tx=tx)
            elif parts is None:
                done = self.core.send(address, msg, tx=tx)
            else:
                done = self.core.send_composite(parts, msg, tx=tx)
        except (Refused, MappingError, UnknownTransaction) as exc:
            self._reject(dlv, exc.condition, exc.description, presettled)
            return
        except CoreError as exc:
            cond = CORE_CONDITIONS.get(exc.code, "amqp:internal-error")
            self._reject(dlv, cond, exc.message, presettled)
            return
        except Exception as exc:  # proton's decoder on a malformed message
            self._reject(dlv, "amqp:decode-error", f"cannot decode message: {exc}", presettled)
            return
        address = inl.address
        if address is not None and tx is None and address.is_queue:
            core = self.core
            if core.store_full or (core.full(address) and not core.stored(address, msg)):
                # As STOMP's: a journaled message pages out rather than wait for queue
                # memory; past the store limit (policy "block") every producer waits.
                self._flow_control(inl, address)
        if presettled:
            pn_delivery_settle(dlv)
            return
        if txid is not None:
            self.coordinator.accept_transfer(Delivery.wrap(dlv), txid)
            return
        self._settle_when(done, dlv, _ACCEPTED)

    def _settle_when(self, done: Awaitable[None] | None, dlv: Any, state: int) -> None:
        """Settle `dlv` (a pn_delivery_t) with `state` once `done` (the core's durability
        awaitable) has completed: nothing is acknowledged before it is on disk."""
        if done is None:
            pn_delivery_update(dlv, state)
            pn_delivery_settle(dlv)
            return
        pn_incref(dlv)  # the engine must not free it while the disk has not answered

        def settle(f: asyncio.Future[Any]) -> None:
            self._paid(f)
            try:
                if self.closing:
                    return
                if f.cancelled() or f.exception() is not None:
                    exc = None if f.cancelled() else f.exception()
                    if isinstance(exc, WriteRefused):
                        # Stored here but not replicated: the sender is told per delivery.
                        self._reject(dlv, "amqp:resource-limit-exceeded", str(exc), False)
                        self._schedule()
                        return
                    self._close_connection("amqp:internal-error", "message could not be stored")
                    return
                pn_delivery_update(dlv, state)
                pn_delivery_settle(dlv)
                self._schedule()
            finally:
                pn_decref(dlv)

        self._when_durable(done, settle)

    def _flow_control(self, inl: InLink, address: Address) -> None:
        """A producer sending to a full queue gets no more credit until it drains."""

        def resume() -> None:
            inl.blocked = False
            if inl.link in self.in_links:
                link = inl.link
                if link.credit < PRODUCER_CREDIT:
                    link.flow(PRODUCER_CREDIT - link.credit)
                self._schedule()

        if not inl.blocked and self._when_space(address, resume):
            inl.blocked = True

    def _reject(self, dlv: Any, condition: str, description: str, presettled: bool) -> None:
        """Refuse a transfer (`dlv` a pn_delivery_t) with rejected and an error condition."""
        if presettled:
            pn_delivery_settle(dlv)
            return
        wrapped = Delivery.wrap(dlv)
        wrapped.local.condition = Condition(condition, description)
        wrapped.update(Delivery.REJECTED)
        wrapped.settle()

    def _on_outcome(self, out: OutLink, sub: Subscription, msg_id: str, dlv: Delivery) -> None:
        """A consumer's disposition, other than a plain accept, for a message we delivered."""
        state = dlv.remote_state
        settle = dlv.settled
        if state == TRANSACTIONAL:
            if not self.coordinator.outcome(out, sub, msg_id, dlv):
                return
        elif state == Delivery.ACCEPTED or (state == 0 and settle):
            sub.ack(msg_id)
        elif state == Delivery.RELEASED:
            sub.release(msg_id)
        elif state == Delivery.MODIFIED:
            if dlv.remote.failed:
                sub.nack(msg_id)
            else:
                sub.release(msg_id)
        elif state == Delivery.REJECTED:
            cond = dlv.remote.condition
            sub.dead_letter(msg_id, cond.description or cond.name if cond else "rejected")
        else:
            return  # received (non-terminal) or nothing yet
        out.unacked.pop(dlv._impl, None)
        dlv.settle()
