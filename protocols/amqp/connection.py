"""AMQP 1.0 over TCP: python-qpid-proton's engine driven by an asyncio Protocol.

The engine is sans-IO: `data_received` pushes bytes into a `proton.Transport` (after our
SASL layer, see sasl.py), drains the `proton.Collector`'s events, and the output the
engine produced is collected and written with one `writelines` per loop turn. No proton
reactor or Container runs in the broker.

Semantics onto the core, by module (messages and addresses: mapping.py):
- links.py: attach and detach; a link the client receives on is a core Subscription, one
  it sends on routes to a destination (or is the anonymous relay, or a coordinator);
  dynamic nodes are temporary destinations owned by the connection.
- deliveries.py: transfers and dispositions; link credit is consumer credit, outcomes are
  acks, releases, redeliveries and dead-lettering; durable transfers are accepted once
  journaled, and persistent deliveries leave once their delivery record is.
- transactions.py: the coordinator (declare = `core.begin()`, discharge = commit or
  abort).
- Refused with amqp:not-implemented (the core does not have them yet): selectors and
  other source filters, durable topic subscriptions, scheduled delivery.
The asyncio glue shared with STOMP (socket options, the outbound list, backpressure on
dispatch, the durability rule for deliveries, producer flow control, teardown order) is
broker.push.PushConnection's.

Errors: the engine closes a connection that breaks framing (wrong protocol header,
garbage, frames over `max_frame_size`, channels over `channel_max`, transfers on an
unattached handle) with the spec's condition; we refuse bad attaches by attaching with a
null terminus and detaching with a condition, reject undeliverable messages, and close
the connection with amqp:resource-limit-exceeded for too many connections. Idle timeout
is the engine's `tick`, scheduled on the event loop. A connection that goes away returns
its unsettled messages (flagged redelivered) and aborts its transactions.

Half-received input (issue 10): what proton holds of a frame not yet complete (followed
by a FrameMeter over the same bytes; before the engine, what the SASL layer holds) and of
multi-frame deliveries not yet complete (deliveries.py) is this connection's share of
the listener's `partial_bytes`, checked after each read against `max_partial_bytes`; the
connection that would pass it is closed with amqp:resource-limit-exceeded, so the others
go on. Proton's idle timeout counts any byte, so a frame (and a multi-frame message) must
also complete within `frame_timeout` of its first byte, or the same close follows.

State ownership: an AmqpConnection owns its engine, links and transactions and is only
touched from the event loop; nothing awaits between a check and the change it guards.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cproton import pn_collector_peek, pn_collector_pop, pn_event_type
from proton import Collector, Condition, Connection, Endpoint, Event, Transport, symbol

from protocols.amqp.deliveries import AmqpDeliveries
from protocols.amqp.frames import FrameMeter
from protocols.amqp.sasl import DONE, FAILED, NEGOTIATING, SKIPPED, WAITING, SaslServer

if TYPE_CHECKING:
    from broker.tcp import TcpListener

log = logging.getLogger("zonemq.amqp")

_ACTIVE = Endpoint.LOCAL_ACTIVE
_LOCAL_UNINIT = Endpoint.LOCAL_UNINIT


def _wrapping(handler: Callable[[Event], None]) -> Callable[[Any], None]:
    """`handler` (which takes proton's Event) as one taking the raw pn_event_t."""

    def call(impl: Any) -> None:
        handler(Event.wrap(impl))

    return call


class AmqpConnection(AmqpDeliveries):
    """One client connection (see the module docstring for mapping and invariants)."""

    def __init__(self, listener: TcpListener[AmqpConnection]) -> None:
        super().__init__(listener)
        settings = self.settings
        self.sasl = SaslServer(listener.users, self._login, lambda: self.tls_user)
        self.engine = Transport(Transport.SERVER)
        self.engine.max_frame_size = settings.max_frame_size
        self.engine.channel_max = settings.channel_max
        if settings.idle_timeout > 0:
            self.engine.idle_timeout = settings.idle_timeout
        self.conn = Connection()
        self.collector = Collector()
        self.conn.collect(self.collector)
        self.engine.bind(self.conn)
        self.over_limit = False
        self._tick_handle: asyncio.TimerHandle | None = None
        # The frames of the engine's input, and when its incomplete one (or the SASL
        # layer's) began (loop time; 0.0: none); the timer enforcing frame_timeout.
        self._meter = FrameMeter()
        self._frame_since = 0.0
        self._frame_timer: asyncio.TimerHandle | None = None
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

    def _login(self, user: str, password: str) -> str:
        """SASL PLAIN's check: broker.auth (hashes, logging, the per-address throttle)."""
        host = self.peer.rpartition(":")[0] or self.peer
        return self.listener.auth.login(user, password, host, "AMQP").value

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
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
                self._close()
                return
            if sasl.state != DONE and sasl.state != SKIPPED:
                self._flush()
                self._check_partial(sasl.buffered(), False)
                return
            # SASL done (or skipped): proton's engine takes every byte from here on.
            self.engine.require_auth(sasl.state == SKIPPED and bool(self.listener.users))
            data, sasl.leftover = sasl.leftover, b""
        completed = self._meter.feed(data)
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
        held = self._meter.held
        if (held or self._partial or self._delivery_bytes) and not self.closing:
            self._check_partial(held, completed)

    def eof_received(self) -> bool | None:
        self.engine.close_tail()
        self._schedule()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        if self._frame_timer is not None:
            self._frame_timer.cancel()
            self._frame_timer = None
        super().connection_lost(exc)
        self.collector.release()
        self.engine.unbind()

    # -- the engine pump ------------------------------------------------------------------

    def _schedule(self) -> None:
        if not self.closing:
            super()._schedule()

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
                    except UnicodeDecodeError:
                        # proton decodes string fields (addresses, names) lazily, so a
                        # peer's invalid UTF-8 surfaces wherever a handler reads one; the
                        # spec's answer is a decode-error close (2.8.15), not a bug of ours.
                        log.info("AMQP connection %s: invalid UTF-8 in a string", self.peer)
                        self._close_connection("amqp:decode-error", "invalid UTF-8 in a string")
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
        if pending < 0:  # the engine is done: write what it said last, then close
            self._close()
            return
        self._write()

    def _tick(self) -> None:
        """Idle timeout both ways: the engine says when it next needs the clock."""
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        self._tick_handle = None
        if self.closing:
            return
        now = self.loop.time()
        if self._read_paused and self._stalled_for(now) < self.settings.idle_timeout:
            # Not read (backpressure), so the engine would take the peer for idle; it is
            # not while it takes our output (or we stopped reading for our own reasons).
            self._tick_handle = self.loop.call_at(now + 1.0, self._tick)
            return
        deadline = self.engine.tick(now)
        if deadline:
            self._tick_handle = self.loop.call_at(deadline, self._tick)
        self._flush()

    # -- half-received input ----------------------------------------------------------------

    def _check_partial(self, held: int, completed: bool) -> None:
        """After a read: `held` bytes of an incomplete frame (the engine's or the SASL
        layer's) plus the incomplete deliveries are this connection's share of the
        listener's budget; a frame left after one completed began in this read."""
        if not self._buffered(held + self._delivery_bytes, self.settings.max_partial_bytes):
            self._exceeded("too many bytes of partial frames buffered, try again later")
            return
        if not held:
            self._frame_since = 0.0
        elif completed or not self._frame_since:
            self._frame_since = self.loop.time()
            self._arm_frame_timer()

    def _arm_frame_timer(self) -> None:
        timeout = self.settings.frame_timeout
        if self._frame_timer is None and timeout > 0 and not self.closing:
            self._frame_timer = self.loop.call_later(timeout, self._frame_deadline)

    def _frame_deadline(self) -> None:
        self._frame_timer = None
        if self.closing:
            return
        now = self.loop.time()
        timeout = self.settings.frame_timeout
        links = self._partial_links
        if self._read_paused or self._reading_stopped:
            # We stopped reading (backpressure, a graceful stop): the peer is not the slow one.
            if self._frame_since:
                self._frame_since = now
            for inl in links:
                inl.since = now
        starts = [inl.since for inl in links]
        if self._frame_since:
            starts.append(self._frame_since)
        if not starts:
            return
        late = now - min(starts)
        if late >= timeout:
            what = "message" if late > now - self._frame_since else "frame"
            self._exceeded(f"{what} not completed within {timeout:g} seconds")
        else:
            self._frame_timer = self.loop.call_later(timeout - late, self._frame_deadline)

    def _exceeded(self, description: str) -> None:
        """Close this connection for holding too much or too long, with the spec's
        amqp:resource-limit-exceeded (before SASL is done: the socket alone)."""
        if self.sasl.state in (WAITING, NEGOTIATING):
            log.info("closing AMQP connection from %s during SASL: %s", self.peer, description)
            self._close()
            return
        self._close_connection("amqp:resource-limit-exceeded", description)
        self._flush()
        self._close()

    def _close_connection(
        self, condition: str, description: str, info: dict[Any, Any] | None = None
    ) -> None:
        """Close the AMQP connection (not the broker) with an error condition."""
        log.info("closing AMQP connection from %s: %s %s", self.peer, condition, description)
        conn = self.conn
        if conn.state & _LOCAL_UNINIT:
            conn.open()
        if conn.state & _ACTIVE:
            conn.condition = Condition(condition, description, info)
            conn.close()
        self._release_all()
        self._schedule()

    # -- connection and sessions ----------------------------------------------------------

    def _on_connection_open(self, event: Event) -> None:
        conn = self.conn
        conn.container = self.listener.broker_name
        conn.offered_capabilities = symbol("ANONYMOUS-RELAY")  # type: ignore[assignment]
        if self.over_limit:
            self._close_connection("amqp:resource-limit-exceeded", "too many connections")
            return
        container = conn.remote_container or None
        if container is not None:
            # One connection per container-id at a time, as JMS client ids (ActiveMQ's
            # RegionBroker.addConnection; STOMP's client-id shares the namespace).
            held_by = self.core.durables.claim_client(container, self, f"tcp://{self.peer}")
            if held_by is not None:
                # ActiveMQ's AmqpConnection: open flagged as failed, then close with
                # amqp:invalid-field naming the container-id field.
                conn.properties = {symbol("amqp:connection-establishment-failed"): True}
                self._close_connection(
                    "amqp:invalid-field",
                    f"Broker: {self.listener.broker_name} - Client: {container} "
                    f"already connected from {held_by}",
                    {symbol("invalid-field"): symbol("container-id")},
                )
                return
        conn.open()
        self.client_id = conn.remote_container
        self.core.connected(self, client_id=self.client_id, user=self.sasl.user)
        # The remote's idle-time-out is known now: start the keepalive / liveness clock.
        self.loop.call_soon(self._tick)

    def _release_all(self) -> None:
        super()._release_all()
        if self.client_id:
            self.core.durables.release_client(self.client_id, self)

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

    # -- teardown -------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Broker stop: close the connection with amqp:connection:forced."""
        if not self.closing:
            self._close_connection("amqp:connection:forced", "broker is shutting down")
            self._flush()
            self._close()

    # -- administration (broker.push.PushConnection.describe) ----------------------------

    protocol = "amqp"

    def login_user(self) -> str | None:
        return self.sasl.user or None

    def close_by_admin(self) -> None:
        # amqp:connection:forced: "an operator intervened to close the connection".
        self._close_connection("amqp:connection:forced", "closed by an administrator")
        self._flush()
        self._close()
