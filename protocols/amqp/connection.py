"""AMQP 1.0 over TCP: python-qpid-proton's engine driven by an asyncio Protocol.

The engine is sans-IO: `data_received` pushes bytes into a `proton.Transport` (after our
SASL layer, see sasl.py), drains the `proton.Collector`'s events, and the output the
engine produced is collected and written with one `writelines` per loop turn. No proton
reactor or Container runs in the broker.

Semantics onto the core (messages and addresses: see mapping.py):
- A link the client receives on (our sender) is a core Subscription. Its link credit is
  the consumer's credit: the subscription is paused whenever the credit is used up (or
  the connection's write buffer is over `write_buffer_high`) and resumed by a flow that
  grants more; a drain request is answered once dispatch has stopped. Unsettled
  deliveries are additionally bounded by the destination kind's prefetch.
  Outcomes: accepted = ack, released = back unchanged, modified with delivery-failed =
  redelivery count + 1 (dead letter queue past the limit), modified without it =
  released, rejected = dead letter queue at once; settled with no outcome = accepted.
  A pre-settled (at-most-once, snd-settle-mode settled) link uses the core's auto ack.
  A source with distribution-mode copy browses: a snapshot of the queue, pre-settled.
- A link the client sends on (our receiver) routes each transfer with `core.send`; an
  unsettled transfer of a persistent message is accepted and settled only after the
  core's durability awaitable completes. A null target is the anonymous relay: each
  message's `to` names its destination. Producer credit is a window of
  `PRODUCER_CREDIT`, withheld while a (non-persistent) destination is over its memory
  limit.
- Dynamic source or target: a temporary queue (temporary topic with the
  `temporary-topic` or `topic` capability) owned by the connection, deleted when its
  link closes or the connection ends.
- A coordinator target is the transaction controller: declare = `core.begin()`,
  discharge = commit (accepted once the commit is durable) or abort. Transfers and
  dispositions carrying transactional-state join that transaction.
- Refused with amqp:not-implemented (the core does not have them yet): selectors and
  other source filters, durable topic subscriptions (a topic source with terminus
  durability), scheduled delivery.

Errors: the engine closes a connection that breaks framing (wrong protocol header,
garbage, frames over `max_frame_size`, channels over `channel_max`, transfers on an
unattached handle) with the spec's condition; we refuse bad attaches by attaching with a
null terminus and detaching with a condition, reject undeliverable messages, and close
the connection with amqp:resource-limit-exceeded for too many connections. Idle timeout
is the engine's `tick`, scheduled on the event loop. A connection that goes away returns
its unsettled messages (flagged redelivered) and aborts its transactions.

Per-message cost: transfers and dispositions are handled on proton's C API (cproton) with
the raw event, link and delivery pointers, not through proton's Event/Link/Delivery wrapper
objects (several Python objects per event otherwise); messages are encoded and decoded by
hand for the usual shapes (mapping.py), proton's Message being the fallback.

State ownership: an AmqpConnection owns its engine, links and transactions and is only
touched from the event loop; nothing awaits between a check and the change it guards.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from cproton import (
    pn_collector_peek,
    pn_collector_pop,
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
    pn_event_type,
    pn_incref,
    pn_link_advance,
    pn_link_credit,
    pn_link_drained,
    pn_link_flow,
    pn_link_get_drain,
    pn_link_is_sender,
    pn_link_recv,
    pn_link_send,
)
from proton import (
    Array,
    Collector,
    Condition,
    Connection,
    Delivery,
    Described,
    Endpoint,
    Event,
    Link,
    Terminus,
    Transport,
    symbol,
    ulong,
)
from proton import Message as AmqpMessage

from broker.core import (
    AUTO,
    INDIVIDUAL,
    TEMP_QUEUE,
    TEMP_TOPIC,
    TOPIC,
    Address,
    CoreError,
    Message,
    Subscription,
    Transaction,
)
from protocols.amqp.mapping import (
    CAPABILITY_KINDS,
    MappingError,
    decode_message,
    destination_of,
    encode_header,
    encode_message,
    encode_sections,
    format_address,
    message_from_amqp,
    parse_address,
)
from protocols.amqp.sasl import DONE, FAILED, NEGOTIATING, SKIPPED, WAITING, SaslServer

if TYPE_CHECKING:
    from protocols.amqp.listener import AmqpListener

log = logging.getLogger("zonemq.amqp")

PRODUCER_CREDIT = 1000
# Delivery states beyond the four outcomes (AMQP 1.0 part 4, transactions).
DECLARED = 0x33
TRANSACTIONAL = 0x34
_ACCEPTED_OUTCOME = Described(ulong(0x24), [])
_DECLARE = (ulong(0x31), symbol("amqp:declare:list"))
_DISCHARGE = (ulong(0x32), symbol("amqp:discharge:list"))
_OUTCOME_CODES = {0x24: Delivery.ACCEPTED, 0x25: Delivery.REJECTED, 0x26: Delivery.RELEASED}
_OUTCOME_CODES[0x27] = Delivery.MODIFIED
_ACCEPTED = int(Delivery.ACCEPTED)
_ACTIVE = Endpoint.LOCAL_ACTIVE
_LOCAL_UNINIT = Endpoint.LOCAL_UNINIT

# Core error codes → AMQP error conditions (one table, as STYLE.md asks).
CORE_CONDITIONS = {
    "not-found": "amqp:not-found",
    "deleted": "amqp:resource-deleted",
    "invalid": "amqp:invalid-field",
    "limit": "amqp:resource-limit-exceeded",
    "state": "amqp:illegal-state",
}
_conn_ids = itertools.count(1)


def _data_object(data: Any) -> Any:
    """The value held by a terminus field's `proton.Data` (None when empty)."""
    if data is None:
        return None
    data.rewind()
    return data.get_object() if data.next() else None


def _wrapping(handler: Callable[[Event], None]) -> Callable[[Any], None]:
    """`handler` (which takes proton's Event) as one taking the raw pn_event_t."""

    def call(impl: Any) -> None:
        handler(Event.wrap(impl))

    return call


class Refused(Exception):
    """An attach or transfer we refuse with an AMQP error condition."""

    def __init__(self, condition: str, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description


class OutLink:
    """A link we send on: one core subscription (or a queue browser)."""

    __slots__ = (
        "address",
        "browse",
        "dynamic",
        "impl",
        "link",
        "presettled",
        "sub",
        "tags",
        "unacked",
    )

    def __init__(self, link: Link, address: Address, *, dynamic: bool, presettled: bool) -> None:
        self.link = link
        # The engine's pn_link_t: the per-message paths call proton's C API on it directly
        # rather than through Link/Delivery wrapper objects (one per call, and costly).
        self.impl = link._impl
        self.address = address
        self.dynamic = dynamic
        self.presettled = presettled
        self.sub: Subscription | None = None
        # A browser's snapshot, sent as credit allows; None for a consumer.
        self.browse: list[Message] | None = None
        self.tags = itertools.count(1)
        # Unsettled deliveries (their pn_delivery_t) → core message id. Popped before the
        # delivery is settled, so a freed delivery's address never stays here.
        self.unacked: dict[Any, str] = {}


class InLink:
    """A link we receive on: a fixed destination, the anonymous relay or a coordinator."""

    __slots__ = ("address", "blocked", "coordinator", "dynamic", "impl", "link")

    def __init__(
        self, link: Link, address: Address | None, *, dynamic: bool, coordinator: bool
    ) -> None:
        self.link = link
        self.impl = link._impl
        self.address = address
        self.dynamic = dynamic
        self.coordinator = coordinator
        # Credit is withheld while the destination is over its memory limit.
        self.blocked = False


class AmqpConnection(asyncio.Protocol):
    """One client connection (see the module docstring for mapping and invariants)."""

    def __init__(self, listener: AmqpListener) -> None:
        self.listener = listener
        self.core = listener.core
        self.settings = settings = listener.settings
        self.loop = listener.loop
        self.id = f"ID:{listener.broker_name}-{listener.started_ms}-{next(_conn_ids)}"
        self.sasl = SaslServer(listener.users)
        self.engine = Transport(Transport.SERVER)
        self.engine.max_frame_size = settings.max_frame_size
        self.engine.channel_max = settings.channel_max
        if settings.idle_timeout > 0:
            self.engine.idle_timeout = settings.idle_timeout
        self.conn = Connection()
        self.collector = Collector()
        self.conn.collect(self.collector)
        self.engine.bind(self.conn)
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.closing = False
        self.over_limit = False
        self.out_links: dict[Link, OutLink] = {}
        self.in_links: dict[Link, InLink] = {}
        # Both kinds by their pn_link_t, for events handled without wrapper objects.
        self.by_impl: dict[Any, OutLink | InLink] = {}
        self.txs: dict[bytes, Transaction] = {}
        # Deliveries acknowledged inside each transaction, settled when it ends.
        self.tx_deliveries: dict[bytes, list[tuple[OutLink, Delivery]]] = {}
        self._tx_ids = itertools.count(1)
        self._temp_ids = itertools.count(1)
        self._decoder = AmqpMessage()
        self._encoder = AmqpMessage()
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._flush_scheduled = False
        self._write_paused = False
        self._consumers_paused = False
        self._tick_handle: asyncio.TimerHandle | None = None
        # Durability awaitables whose disposition is still owed (a graceful stop waits).
        self.pending: set[asyncio.Future[Any]] = set()
        # By event type number, taking the raw pn_event_t: the per-message events (flow,
        # delivery) are handled on it directly, the rest through proton's Event wrapper;
        # every other event (most of them) is popped without being looked at.
        wrapped: dict[Any, Callable[[Event], None]] = {
            Event.CONNECTION_REMOTE_OPEN: self._on_connection_open,
            Event.CONNECTION_REMOTE_CLOSE: self._on_connection_close,
            Event.SESSION_REMOTE_OPEN: self._on_session_open,
            Event.SESSION_REMOTE_CLOSE: self._on_session_close,
            Event.LINK_REMOTE_OPEN: self._on_link_open,
            Event.LINK_REMOTE_CLOSE: self._on_link_close,
            Event.LINK_REMOTE_DETACH: self._on_link_close,
            Event.TRANSPORT_ERROR: self._on_transport_error,
        }
        self._handlers: dict[int, Callable[[Any], None]] = {
            etype.number: _wrapping(handler) for etype, handler in wrapped.items()
        }
        self._handlers[Event.LINK_FLOW.number] = self._on_link_flow
        self._handlers[Event.DELIVERY.number] = self._on_delivery

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        transport.set_write_buffer_limits(  # type: ignore[attr-defined]
            high=self.settings.write_buffer_high, low=self.settings.write_buffer_low
        )
        self.listener.connections.add(self)
        # Refused in open (with a condition the client can show), after SASL.
        self.over_limit = len(self.listener.connections) > self.settings.max_connections
        self._tick()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        sasl = self.sasl
        if sasl.state == WAITING or sasl.state == NEGOTIATING:
            sasl.feed(data)
            out = sasl.data_to_send()
            if out:
                self._out.append(out)
            if sasl.state == FAILED:
                log.info("AMQP SASL failed from %s: %s", self.peer, sasl.error)
                self._close_socket()
                return
            if sasl.state != DONE and sasl.state != SKIPPED:
                self._flush()
                return
            # SASL done (or skipped): proton's engine takes every byte from here on.
            self.engine.require_auth(sasl.state == SKIPPED and bool(self.listener.users))
            data, sasl.leftover = sasl.leftover, b""
        engine = self.engine
        try:
            while data:
                capacity = engine.capacity()
                if capacity <= 0:
                    break  # input side closed after an error; the engine says why
                engine.push(data[:capacity])
                data = data[capacity:]
        except Exception as exc:  # TransportException: the engine has set its condition
            log.debug("AMQP input error from %s: %r", self.peer, exc)
        self._flush()

    def eof_received(self) -> bool | None:
        self.engine.close_tail()
        self._schedule()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        self._release_all()
        self.listener.connections.discard(self)
        self.collector.release()
        self.engine.unbind()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._pause_consumers()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._out_bytes < self.settings.write_buffer_high:
            self._resume_consumers()

    # -- the engine pump and output -------------------------------------------------------

    def _schedule(self) -> None:
        if not self._flush_scheduled and not self.closing:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Handle the engine's events, then write all its output at once."""
        self._flush_scheduled = False
        if self.transport is None or self.closing:
            return
        collector = self.collector._impl
        handlers = self._handlers
        engine = self.engine
        pending = 0
        for _ in range(4):  # events may follow output processing; bounded all the same
            while True:
                event = pn_collector_peek(collector)
                if not event:
                    break
                handler = handlers.get(pn_event_type(event))
                if handler is not None:
                    try:
                        handler(event)
                    except Exception:
                        log.exception("AMQP connection %s: internal error", self.peer)
                        self._close_connection("amqp:internal-error", "internal error")
                pn_collector_pop(collector)
            while True:
                pending = engine.pending()
                if pending <= 0:
                    break
                self._out.append(engine.peek(pending))
                engine.pop(pending)
            if not pn_collector_peek(collector):
                break
        out = self._out
        if out:
            self._out = []
            self._out_bytes = 0
            self.transport.writelines(out)
        if pending < 0:
            self._close_socket()
            return
        if self._consumers_paused and not self._write_paused:
            self._resume_consumers()

    def _tick(self) -> None:
        """Idle timeout both ways: the engine says when it next needs the clock."""
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        self._tick_handle = None
        if self.closing:
            return
        now = self.loop.time()
        deadline = self.engine.tick(now)
        if deadline:
            self._tick_handle = self.loop.call_at(deadline, self._tick)
        self._flush()

    def _close_socket(self) -> None:
        if self.closing:
            return
        out = self._out
        if out and self.transport is not None:
            self.transport.writelines(out)
        self._out = []
        self.closing = True
        self._release_all()
        if self.transport is not None:
            self.transport.close()

    def _close_connection(self, condition: str, description: str) -> None:
        """Close the AMQP connection (not the broker) with an error condition."""
        log.info("closing AMQP connection from %s: %s %s", self.peer, condition, description)
        conn = self.conn
        if conn.state & _LOCAL_UNINIT:
            conn.open()
        if conn.state & _ACTIVE:
            conn.condition = Condition(condition, description)
            conn.close()
        self._release_all()
        self._schedule()

    def _pause_consumers(self) -> None:
        if self._consumers_paused:
            return
        self._consumers_paused = True
        for out in self.out_links.values():
            if out.sub is not None:
                out.sub.paused = True

    def _resume_consumers(self) -> None:
        if not self._consumers_paused:
            return
        self._consumers_paused = False
        for out in list(self.out_links.values()):
            if out.sub is not None and out.link.credit > 0:
                out.sub.set_paused(False)

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
        if pn_link_credit(impl) <= 0:
            sub.paused = True
        self._out_bytes += len(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        if self._out_bytes > self.settings.write_buffer_high:
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

    # -- connection and sessions ----------------------------------------------------------

    def _on_connection_open(self, event: Event) -> None:
        conn = self.conn
        conn.container = self.listener.broker_name
        conn.offered_capabilities = symbol("ANONYMOUS-RELAY")  # type: ignore[assignment]
        if self.over_limit:
            self._close_connection("amqp:resource-limit-exceeded", "too many connections")
            return
        conn.open()
        # The remote's idle-time-out is known now: start the keepalive / liveness clock.
        self.loop.call_soon(self._tick)

    def _on_connection_close(self, event: Event) -> None:
        self._release_all()
        if self.conn.state & _ACTIVE:
            self.conn.close()

    def _on_session_open(self, event: Event) -> None:
        session = event.session
        if session.state & _LOCAL_UNINIT:
            session.open()

    def _on_session_close(self, event: Event) -> None:
        session = event.session
        for link in [lk for lk in self.out_links if lk.session == session]:
            self._drop_out(link)
        for link in [lk for lk in self.in_links if lk.session == session]:
            self._drop_in(link)
        if session.state & _ACTIVE:
            session.close()

    def _on_transport_error(self, event: Event) -> None:
        cond = self.engine.condition
        if cond is not None:
            log.info(
                "AMQP connection from %s closed by the engine: %s %s",
                self.peer,
                cond.name,
                cond.description,
            )

    # -- attach ---------------------------------------------------------------------------

    def _on_link_open(self, event: Event) -> None:
        link = event.link
        if not link.state & _LOCAL_UNINIT:
            return
        try:
            if link.is_sender:
                self._attach_sender(link)
            else:
                self._attach_receiver(link)
        except (Refused, MappingError) as exc:
            self._refuse(link, exc.condition, exc.description)
        except CoreError as exc:
            self._refuse(link, CORE_CONDITIONS.get(exc.code, "amqp:internal-error"), exc.message)

    def _refuse(self, link: Link, condition: str, description: str) -> None:
        # The spec's refusal: attach with a null terminus, then detach with the error.
        if link.is_sender:
            link.source.type = Terminus.UNSPECIFIED
            link.target.copy(link.remote_target)
        else:
            link.target.type = Terminus.UNSPECIFIED
            link.source.copy(link.remote_source)
        link.open()
        link.condition = Condition(condition, description)
        link.close()

    def _kind_from_capabilities(self, terminus: Terminus) -> str | None:
        caps = _data_object(terminus.capabilities)
        if caps is None:
            return None
        if isinstance(caps, Array):
            caps = caps.elements
        for cap in caps if isinstance(caps, list | tuple) else [caps]:
            kind = CAPABILITY_KINDS.get(str(cap))
            if kind is not None:
                return kind
        return None

    def _dynamic_address(self, terminus: Terminus) -> Address:
        kind = self._kind_from_capabilities(terminus)
        temp_kind = TEMP_TOPIC if kind in (TOPIC, TEMP_TOPIC) else TEMP_QUEUE
        address = Address(temp_kind, f"{self.id}:{next(self._temp_ids)}")
        self.core.create_temporary(address, self)
        return address

    def _attach_sender(self, link: Link) -> None:
        remote = link.remote_source
        dynamic = remote.dynamic
        if dynamic:
            address = self._dynamic_address(remote)
        else:
            if remote.address is None:
                raise Refused("amqp:invalid-field", "a receiver needs a source address")
            address = parse_address(remote.address, self._kind_from_capabilities(remote))
        filters = _data_object(remote.filter)
        if filters:
            raise Refused(
                "amqp:not-implemented", "source filters (JMS selectors) are not supported yet"
            )
        if address.kind == TOPIC and remote.durability != Terminus.NONDURABLE:
            raise Refused(
                "amqp:not-implemented", "durable topic subscriptions are not supported yet"
            )
        browse = remote.distribution_mode == Terminus.DIST_MODE_COPY and address.is_queue
        presettled = link.remote_snd_settle_mode == Link.SND_SETTLED or browse
        out = OutLink(link, address, dynamic=dynamic, presettled=presettled)
        if browse:
            out.browse = list(reversed(self.core.browse(address)))
        else:
            out.sub = self.core.subscribe(
                address,
                self,
                ack_mode=AUTO if presettled else INDIVIDUAL,
                origin=self,
                tag=out,
                paused=True,
            )
        self.out_links[link] = out
        self.by_impl[out.impl] = out
        link.source.copy(remote)
        if dynamic:
            link.source.address = format_address(address)
        link.target.copy(link.remote_target)
        link.snd_settle_mode = Link.SND_SETTLED if presettled else Link.SND_UNSETTLED
        link.open()

    def _attach_receiver(self, link: Link) -> None:
        remote = link.remote_target
        coordinator = remote.type == Terminus.COORDINATOR
        address: Address | None = None
        dynamic = False
        if coordinator:
            pass
        elif remote.dynamic:
            dynamic = True
            address = self._dynamic_address(remote)
        elif remote.address is not None:
            address = parse_address(remote.address, self._kind_from_capabilities(remote))
            # Destinations are created on first use; temporary ones must exist.
            if address.is_queue:
                self.core.queue(address)
            else:
                self.core.topic(address)
        inl = InLink(link, address, dynamic=dynamic, coordinator=coordinator)
        self.in_links[link] = inl
        self.by_impl[inl.impl] = inl
        link.target.copy(remote)
        if dynamic and address is not None:
            link.target.address = format_address(address)
        link.source.copy(link.remote_source)
        link.max_message_size = self.settings.max_message_size
        link.open()
        link.flow(PRODUCER_CREDIT)

    # -- detach ---------------------------------------------------------------------------

    def _on_link_close(self, event: Event) -> None:
        link = event.link
        if link in self.out_links:
            self._drop_out(link)
        elif link in self.in_links:
            self._drop_in(link)
        if link.state & _ACTIVE:
            if event.type == Event.LINK_REMOTE_DETACH:
                link.detach()
            else:
                link.close()

    def _drop_out(self, link: Link) -> None:
        out = self.out_links.pop(link)
        self.by_impl.pop(out.impl, None)
        out.unacked.clear()
        if out.sub is not None:
            out.sub.close()
            out.sub = None
        if out.dynamic:
            self.core.delete(out.address)

    def _drop_in(self, link: Link) -> None:
        inl = self.in_links.pop(link)
        self.by_impl.pop(inl.impl, None)
        if inl.dynamic and inl.address is not None:
            self.core.delete(inl.address)

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
            out.sub.set_paused(False)
        if pn_link_get_drain(impl) and pn_link_credit(impl) > 0:
            pn_link_drained(impl)

    def _browse_more(self, out: OutLink) -> None:
        link = out.link
        snapshot = out.browse
        assert snapshot is not None
        while snapshot and link.credit > 0:
            msg = snapshot.pop()
            if msg.body is None:  # paged out: read it back, leaving the queue's copy as is
                source = self.core.queues.get(out.address)
                if source is None:
                    continue
                msg = msg.copy()
                msg.body = self.core.page_in(source, msg)
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
            if pn_link_is_sender(link) and pn_delivery_settled(dlv):
                pn_delivery_settle(dlv)
            return
        inl: InLink = entry  # type: ignore[assignment]
        if pn_delivery_aborted(dlv):
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
            return
        n, data = pn_link_recv(link, pending)
        if n < 0:
            data = b""
        pn_link_advance(link)
        if inl.coordinator:
            self._on_control(Delivery.wrap(dlv), bytes(data))
        else:
            self._on_transfer(inl, dlv, data)
        if not inl.blocked:
            credit = pn_link_credit(link)
            if credit < PRODUCER_CREDIT // 2:
                pn_link_flow(link, PRODUCER_CREDIT - credit)

    def _on_transfer(self, inl: InLink, dlv: Any, data: bytes | bytearray) -> None:
        """A whole message on a link we receive on; `dlv` is its pn_delivery_t."""
        presettled = pn_delivery_settled(dlv)
        tx: Transaction | None = None
        txid: bytes | None = None
        try:
            if pn_delivery_remote_state(dlv) == TRANSACTIONAL:
                txid = self._txid_of(Delivery.wrap(dlv))
                tx = self.txs.get(txid)
                if tx is None:
                    raise Refused("amqp:transaction:unknown-id", f"unknown transaction {txid!r}")
            now_ms = self.core.now_ms()
            msg = decode_message(data, inl.address, now_ms=now_ms, origin=self)
            if msg is not None:
                address = msg.destination
                assert address is not None
            else:  # a shape the hand decoder leaves to proton
                pm = self._decoder
                pm.clear()
                pm.decode(data)
                address = inl.address if inl.address is not None else destination_of(pm)
                msg = message_from_amqp(pm, address, now_ms=now_ms, origin=self)
            reply = msg.reply_to
            if (
                reply is not None
                and reply.kind in (TEMP_QUEUE, TEMP_TOPIC)
                and reply.name.startswith(self.id + ":")
            ):
                self.core.create_temporary(reply, self)
            done = self.core.send(address, msg, tx=tx)
        except (Refused, MappingError) as exc:
            self._reject(dlv, exc.condition, exc.description, presettled)
            return
        except CoreError as exc:
            cond = CORE_CONDITIONS.get(exc.code, "amqp:internal-error")
            self._reject(dlv, cond, exc.message, presettled)
            return
        except Exception as exc:  # proton's decoder on a malformed message
            self._reject(dlv, "amqp:decode-error", f"cannot decode message: {exc}", presettled)
            return
        if inl.address is not None and tx is None and inl.address.is_queue:
            self._flow_control(inl, inl.address)
        if presettled:
            pn_delivery_settle(dlv)
            return
        if txid is not None:
            wrapped = Delivery.wrap(dlv)
            wrapped.local.data = [txid, _ACCEPTED_OUTCOME]
            wrapped.update(TRANSACTIONAL)
            wrapped.settle()
            return
        self._settle_when(done, dlv, _ACCEPTED)

    def _settle_when(self, done: Awaitable[None] | None, dlv: Any, state: int) -> None:
        """Settle `dlv` (a pn_delivery_t) with `state` once `done` (the core's durability
        awaitable) has completed: nothing is acknowledged before it is on disk."""
        if done is None:
            pn_delivery_update(dlv, state)
            pn_delivery_settle(dlv)
            return
        fut = asyncio.ensure_future(done)
        self.pending.add(fut)
        pn_incref(dlv)  # the engine must not free it while the disk has not answered

        def settle(f: asyncio.Future[Any]) -> None:
            self.pending.discard(f)
            try:
                if self.closing:
                    return
                if f.cancelled() or f.exception() is not None:
                    self._close_connection("amqp:internal-error", "message could not be stored")
                    return
                pn_delivery_update(dlv, state)
                pn_delivery_settle(dlv)
                self._schedule()
            finally:
                pn_decref(dlv)

        fut.add_done_callback(settle)

    def _flow_control(self, inl: InLink, address: Address) -> None:
        """A producer sending to a full queue gets no more credit until it drains."""

        def resume() -> None:
            inl.blocked = False
            if not self.closing and inl.link in self.in_links:
                link = inl.link
                if link.credit < PRODUCER_CREDIT:
                    link.flow(PRODUCER_CREDIT - link.credit)
                self._schedule()

        if not inl.blocked and self.core.when_space(address, resume):
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
            data = dlv.remote.data or []
            txid = bytes(data[0]) if data else b""
            tx = self.txs.get(txid)
            outcome = data[1] if len(data) > 1 else None
            code = int(outcome.descriptor) if isinstance(outcome, Described) else 0
            if tx is None:
                self._close_connection(
                    "amqp:transaction:unknown-id", f"unknown transaction {txid!r}"
                )
                return
            kind = _OUTCOME_CODES.get(code)
            if kind == Delivery.ACCEPTED:
                sub.ack(msg_id, tx=tx)
            elif kind == Delivery.REJECTED:
                sub.dead_letter(msg_id, "rejected", tx=tx)
            elif kind == Delivery.MODIFIED:
                sub.nack(msg_id, tx=tx)
            elif kind == Delivery.RELEASED:
                sub.release(msg_id)
            else:
                return  # no outcome yet
            if not settle:
                # Settled when the transaction ends; a rollback makes it ours again.
                self.tx_deliveries.setdefault(txid, []).append((out, dlv))
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

    # -- transactions ---------------------------------------------------------------------

    @staticmethod
    def _txid_of(dlv: Delivery) -> bytes:
        data = dlv.remote.data or []
        return bytes(data[0]) if data else b""

    def _on_control(self, dlv: Delivery, data: bytes) -> None:
        pm = self._decoder
        pm.clear()
        try:
            pm.decode(data)
        except Exception:
            self._reject(
                dlv._impl, "amqp:decode-error", "cannot decode control message", dlv.settled
            )
            return
        body = pm.body
        descriptor = body.descriptor if isinstance(body, Described) else None
        fields = list(body.value or []) if isinstance(body, Described) else []
        if descriptor in _DECLARE:
            txid = str(next(self._tx_ids)).encode()
            self.txs[txid] = self.core.begin()
            dlv.local.data = [txid]
            dlv.update(DECLARED)
            dlv.settle()
            return
        if descriptor not in _DISCHARGE:
            self._reject(dlv._impl, "amqp:not-implemented", "unknown control message", dlv.settled)
            return
        txid = bytes(fields[0]) if fields and fields[0] is not None else b""
        fail = bool(fields[1]) if len(fields) > 1 else False
        tx = self.txs.pop(txid, None)
        if tx is None:
            self._reject(
                dlv._impl, "amqp:transaction:unknown-id", f"unknown transaction {txid!r}", False
            )
            return
        acked = self.tx_deliveries.pop(txid, [])
        if fail:
            tx.abort()
            done = None
        else:
            tx.commit()
            done = self.core.barrier()
        for out, d in acked:
            if not fail:
                out.unacked.pop(d._impl, None)
                d.settle()
        self._settle_when(done, dlv._impl, _ACCEPTED)

    # -- teardown -------------------------------------------------------------------------

    def _release_all(self) -> None:
        """Return unsettled messages, abort open transactions, drop temp destinations.

        Subscriptions close first so that messages an aborted transaction gives back are
        not dispatched to this dying connection."""
        outs, self.out_links = self.out_links, {}
        self.by_impl = {}
        for out in outs.values():
            out.unacked.clear()
            if out.sub is not None:
                out.sub.close()
                out.sub = None
        self.in_links = {}
        txs, self.txs = self.txs, {}
        self.tx_deliveries.clear()
        for tx in txs.values():
            tx.abort()
        self.core.delete_owned(self)

    def shutdown(self) -> None:
        """Broker stop: close the connection with amqp:connection:forced."""
        if not self.closing:
            self._close_connection("amqp:connection:forced", "broker is shutting down")
            self._flush()
            self._close_socket()
