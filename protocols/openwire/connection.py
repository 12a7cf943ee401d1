"""OpenWire over TCP: asyncio glue around the sans-IO codec (protocols/openwire/codec),
with ActiveMQ's semantics, on broker.push.PushConnection (shared with STOMP and AMQP).

Mapping onto the core (messages and destinations: mapping.py):
- WireFormatInfo: ours goes out first (version 12, loose encoding, the marshalling cache,
  no stack traces, size prefix kept: a client uses an option only when both offer it;
  the cache, measured in bench/openwire/tight_cost.py, is what pays in Python, tight
  encoding does not);
  the client's sets the inactivity monitor (the lower MaxInactivityDuration: a
  KeepAliveInfo when we have written nothing for half of it, the connection dropped
  when nothing was read for all of it). BrokerInfo follows.
- ConnectionInfo → a login against `[auth]` (a refusal is java.lang.SecurityException,
  which the client raises as JMSSecurityException, and the connection closes); its
  client-id is claimed as STOMP's is (javax.jms.InvalidClientIDException when another
  connection holds it) and keys durable subscriptions.
- ProducerInfo / a Message → `core.send` (in the session's transaction when it names
  one). A message with responseRequired (a synchronous send: persistent outside a
  transaction, the JMS default) is answered once durable, in command order.
- ConsumerInfo → `core.subscribe` in individual ack mode (the client's acks say which
  messages, never the subscription), prefetch as given (0: pull, one message per
  MessagePull), selector (javax.jms.InvalidSelectorException), noLocal, exclusive,
  priority, and with a subscription name on a topic, durable. A browser gets the queue's
  messages and then a dispatch without a message, the end-of-browse mark.
- MessageAck → by type: standard (every delivery of that consumer up to the last one),
  individual, delivered (credit: ActiveMQ's prefetch extension, so a client that has
  consumed messages it acknowledges later still receives more), poison (to the DLQ),
  expired (to the core's expiry), redelivered (the client's own redelivery; nothing to
  do), unmatched (removed). Each dispatch's MessageId carries a per-connection number in
  brokerSequenceId that the client echoes back, which finds the core's id.
- TransactionInfo: local BEGIN / COMMIT_ONE_PHASE / ROLLBACK on a core Transaction; XA
  is refused with javax.transaction.xa.XAException.
- RemoveInfo of a consumer, producer, session or the connection; ShutdownInfo closes.
  DestinationInfo adds and removes temporary destinations (owned by this connection);
  RemoveSubscriptionInfo deletes a durable subscription.

A frame that does not decode, or a command this broker does not take, ends the
connection (what ActiveMQ does on an IOException from its wire format); the other
clients are not affected. Before ConnectionInfo a frame may be only
`max_connect_frame_size` long.

State ownership: a connection is only touched from the event loop, and nothing awaits
between a check and the change it guards.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from broker.auth import ADMIN, READ, WRITE, Login, exists
from broker.core import (
    INDIVIDUAL,
    TEMP_QUEUE,
    TEMP_TOPIC,
    TOPIC,
    Address,
    CoreError,
    Message,
    Schedule,
    ScheduleError,
    Selector,
    SelectorError,
    Subscription,
    is_wildcard,
    schedule_of,
)
from broker.core.advisory import AdvisoryMessage
from broker.core.errors import WriteRefused
from broker.core.transaction import Transaction
from broker.push import READ_PRODUCER, PushConnection
from protocols.openwire import advisories, mapping, xa
from protocols.openwire.codec import commands as c
from protocols.openwire.codec import fast, loose
from protocols.openwire.codec.cache import DEFAULT_SIZE, Cache
from protocols.openwire.codec.reader import CodecError
from protocols.openwire.resend import Resends

if TYPE_CHECKING:
    from broker.tcp import TcpListener

log = logging.getLogger("zonemq.openwire")

VERSION = 12
# The marshalling cache we offer (ActiveMQ's client offers 1024 too), and the bytes of
# cached structures one connection may hold (codec/cache.py).
CACHE_SIZE = 1024
CACHE_BYTES = 1 << 20
JMS_EXCEPTION = "javax.jms.JMSException"
SECURITY = "java.lang.SecurityException"
INVALID_CLIENT_ID = "javax.jms.InvalidClientIDException"
INVALID_SELECTOR = "javax.jms.InvalidSelectorException"
INVALID_DESTINATION = "javax.jms.InvalidDestinationException"
XA = "javax.transaction.xa.XAException"
_SCHEDULED = frozenset(
    {"AMQ_SCHEDULED_DELAY", "AMQ_SCHEDULED_PERIOD", "AMQ_SCHEDULED_REPEAT", "AMQ_SCHEDULED_CRON"}
)


class Refused(Exception):
    """A command answered with an ExceptionResponse: (Java class, message), and whether
    the connection closes after it."""

    def __init__(self, java_class: str, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.java_class = java_class
        self.message = message
        self.fatal = fatal


class OwConsumer:
    """The protocol side of one consumer: its ConsumerInfo, the core subscription, and
    its deliveries in order (dispatch number → core message id)."""

    __slots__ = ("extension", "info", "order", "prefetch", "pull", "pull_timer", "sub")

    def __init__(self, info: c.ConsumerInfo) -> None:
        self.info = info
        self.sub: Subscription | None = None
        self.prefetch = info.prefetch_size
        # Deliveries the client has consumed but not acknowledged yet (delivered acks):
        # they no longer count against its prefetch (ActiveMQ's prefetchExtension).
        self.extension = 0
        # An OrderedDict: acks take from the front (popitem(last=False), O(1)), where a
        # dict would rescan the deleted slots at its front on every ack.
        self.order: OrderedDict[int, str] = OrderedDict()
        # Prefetch 0: messages only on MessagePull; a pull waiting with a timeout.
        self.pull = info.prefetch_size == 0
        self.pull_timer: asyncio.TimerHandle | None = None

    @property
    def advisory_info(self) -> c.ConsumerInfo:
        """What ActiveMQ.Advisory.Consumer.* carries for it (broker/core/advisory.py)."""
        return self.info

    @property
    def advisory_id(self) -> tuple[str, int, int]:
        """Its ConsumerId as (connection, session, value), the one every advisory gives
        it (broker/core/advisory.py: the JSON and the ConsumerInfo agree)."""
        cid = self.info.consumer_id
        if cid is None:
            return ("", 0, 0)
        return (cid.connection_id or "", cid.session_id, cid.value)

    def credit(self) -> None:
        sub = self.sub
        if sub is None or self.pull:
            return
        sub.prefetch = max(1, self.prefetch + self.extension)
        if not sub.closed and not sub.paused:
            sub.source.dispatch()


class OpenWireConnection(PushConnection):
    """One JMS client connection (see the module docstring for the mapping)."""

    protocol = "openwire"

    def __init__(self, listener: TcpListener[OpenWireConnection]) -> None:
        super().__init__(listener)
        s = self.settings
        self.frames = loose.FrameReader(min(s.max_connect_frame_size, s.max_frame_size))
        self.wire_ok = False
        self.connected = False
        self.user = ""
        self.client_id: str | None = None
        self.connection_id: c.ConnectionId | None = None
        self._auth = listener.auth
        self.consumers: dict[c.ConsumerId, OwConsumer] = {}
        self.producers: dict[c.ProducerId, c.ProducerInfo] = {}
        self.txs: dict[Any, Transaction] = {}
        # Producer sequences stored, and the resend check after a failover (resend.py).
        self.resends = Resends(self.core.producer_audit)
        # Acks made in a transaction, to put back in their consumers' order on rollback.
        self._tx_acks: dict[Any, list[tuple[OwConsumer, int, str]]] = {}
        self._dests: dict[c.Destination, Address | tuple[Address, ...]] = {}
        self._dispatch_num = 0
        # The marshalling cache, once both WireFormatInfos offered it: what the client's
        # frames cached (codec/cache.py), and whether ours carry the cache's format.
        self._cache: Cache | None = None
        self._cached = False
        self._last_read = 0.0
        self._timers: list[asyncio.TimerHandle] = []
        self._inactivity = 0.0
        # Answers in command order, each written once its awaitable and all before it
        # are done (a synchronous send's Response waits for the journal).
        self._owed: deque[tuple[asyncio.Future[Any], bytes]] = deque()
        self._handlers: dict[type, Callable[[Any], None]] = {
            c.WireFormatInfo: self._on_wire_format,
            c.ConnectionInfo: self._on_connection_info,
            c.SessionInfo: self._on_session_info,
            c.ProducerInfo: self._on_producer_info,
            c.ConsumerInfo: self._on_consumer_info,
            c.Message: self._on_message,
            c.TextMessage: self._on_message,
            c.BytesMessage: self._on_message,
            c.MapMessage: self._on_message,
            c.StreamMessage: self._on_message,
            c.ObjectMessage: self._on_message,
            c.MessageAck: self._on_ack,
            c.MessagePull: self._on_pull,
            c.RemoveInfo: self._on_remove,
            c.TransactionInfo: self._on_transaction,
            c.DestinationInfo: self._on_destination_info,
            c.RemoveSubscriptionInfo: self._on_remove_subscription,
            c.KeepAliveInfo: self._on_keep_alive,
            c.ShutdownInfo: self._on_shutdown,
            c.ConsumerControl: self._on_consumer_control,
            c.ConnectionControl: self._respond_only,
            c.FlushCommand: self._respond_only,
            c.ControlCommand: self._respond_only,
        }

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._last_read = self.loop.time()
        super().connection_made(transport)
        if len(self.listener.connections) > self.settings.max_connections:
            log.info("refusing OpenWire connection from %s: too many connections", self.peer)
            self._close()
            return
        s = self.settings
        ours = c.WireFormatInfo(
            version=VERSION,
            properties={
                "TightEncodingEnabled": False,
                "CacheEnabled": True,
                "SizePrefixDisabled": False,
                "StackTraceEnabled": False,
                "TcpNoDelayEnabled": True,
                "MaxInactivityDuration": s.max_inactivity_duration,
                "MaxInactivityDurationInitalDelay": s.max_inactivity_initial_delay,
                "MaxFrameSize": s.max_frame_size,
                "CacheSize": ("int", CACHE_SIZE),
            },
        )
        self._send(fast.encode(ours))  # before any cache is negotiated
        if s.connect_timeout > 0:
            self._timers.append(self.loop.call_later(s.connect_timeout, self._connect_timeout))

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        if self.closing:
            return
        try:
            bodies = self.frames.feed(data)
        except CodecError as exc:
            self._fatal(str(exc))
            return
        handlers = self._handlers
        for body in bodies:
            if self.closing:
                return
            try:
                cmd = fast.decode(body, self._cache)
            except CodecError as exc:
                self._fatal(str(exc))
                return
            handler = handlers.get(type(cmd))
            if handler is None:
                self._fatal(f"unexpected command {type(cmd).__name__}")
                return
            if not self.wire_ok and type(cmd) is not c.WireFormatInfo:
                self._fatal("the first command must be WireFormatInfo")
                return
            if (
                not self.connected
                and self.wire_ok
                and type(cmd) not in (c.WireFormatInfo, c.ConnectionInfo, c.KeepAliveInfo)
                # A failover transport's reconnect opens with ConnectionControl
                # (faultTolerant) before its ConnectionInfo.
                and type(cmd) not in (c.ShutdownInfo, c.RemoveInfo, c.ConnectionControl)
            ):
                self._refuse(cmd, Refused(JMS_EXCEPTION, "Not connected", fatal=True))
                return
            try:
                handler(cmd)
            except Refused as exc:
                self._refuse(cmd, exc)
            except CoreError as exc:
                self._refuse(cmd, Refused(JMS_EXCEPTION, exc.message))
            except CodecError as exc:
                self._refuse(cmd, Refused(JMS_EXCEPTION, str(exc)))
            except Exception:
                # A bug of ours: this connection ends, the broker and its other clients
                # go on, and the traceback is logged.
                log.exception("OpenWire %s from %s failed", type(cmd).__name__, self.peer)
                self._fatal("internal error")
                return
        n = self.frames.buffered
        if (
            (n or self._partial)
            and not self.closing
            and not self._buffered(n, self.settings.max_partial_bytes)
        ):
            # One frame is bounded by max_frame_size; all connections' half-received
            # frames together by max_partial_bytes, and the one that would pass it goes.
            self._fatal("too many bytes of partial frames buffered")
            return
        if self._out:
            self._flush()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for consumer in self.consumers.values():
            if consumer.pull_timer is not None:
                consumer.pull_timer.cancel()
        super().connection_lost(exc)

    # -- answers --------------------------------------------------------------------------

    def _encode(self, cmd: c.Structure) -> bytes:
        """A frame in the negotiated format: every frame after WireFormatInfo is written
        here, since with the marshalling cache on each cached field changes shape."""
        return fast.encode(cmd, self._cached)

    def _answer(self, cmd: Any, data: bytes, done: Awaitable[None] | None = None) -> None:
        """Write `data` (the answer to `cmd`) once `done` and every earlier answer are."""
        if done is None and not self._owed:
            self._send(data)
            return
        if done is None:
            ready: asyncio.Future[None] = self.loop.create_future()
            ready.set_result(None)
            done = ready
        fut = self._when_durable(done, self._pay)
        self._owed.append((fut, data))

    def _pay(self, _done: asyncio.Future[Any]) -> None:
        owed = self._owed
        while owed and owed[0][0].done():
            fut, data = owed.popleft()
            self._paid(fut)
            if self.closing:
                continue
            if fut.cancelled() or fut.exception() is not None:
                exc = None if fut.cancelled() else fut.exception()
                reason = f": {exc}" if isinstance(exc, WriteRefused) else ""
                self.resends.refused = True
                log.info("closing OpenWire connection from %s: not stored%s", self.peer, reason)
                owed.clear()
                self._close()
                return
            self._send(data)

    def _respond(self, cmd: Any, done: Awaitable[None] | None = None) -> None:
        if getattr(cmd, "response_required", False):
            self._answer(cmd, self._encode(c.Response(correlation_id=cmd.command_id)), done)

    def _refuse(self, cmd: Any, exc: Refused) -> None:
        if getattr(cmd, "response_required", False):
            er = c.ExceptionResponse(
                correlation_id=cmd.command_id, exception=(exc.java_class, exc.message)
            )
            self._answer(cmd, self._encode(er))
        elif not exc.fatal:
            # Nobody waits for an answer (an asynchronous send): ActiveMQ reports it to
            # the client's exception listener as a ConnectionError.
            self._answer(
                cmd, self._encode(c.ConnectionError(exception=(exc.java_class, exc.message)))
            )
        if exc.fatal:
            self._close()

    def _fatal(self, reason: str) -> None:
        log.info("closing OpenWire connection from %s: %s", self.peer, reason)
        self._close()

    def _connect_timeout(self) -> None:
        if not self.connected and not self.closing:
            self._fatal("no ConnectionInfo in time")

    # -- connection setup ------------------------------------------------------------------

    def _on_wire_format(self, info: c.WireFormatInfo) -> None:
        if self.wire_ok:
            self._fatal("a second WireFormatInfo")
            return
        props = info.properties or {}
        self.wire_ok = True
        if props.get("CacheEnabled") is True:
            # As the client's OpenWireFormat.renegotiateWireFormat sizes its own.
            theirs = props.get("CacheSize", 0)
            theirs = theirs[1] if type(theirs) is tuple else theirs
            size = min(CACHE_SIZE, theirs) if isinstance(theirs, int) and theirs >= 0 else 0
            self._cache = Cache(size or DEFAULT_SIZE, CACHE_BYTES)
            self._cached = True
        theirs = props.get("MaxInactivityDuration", 0)
        ours = self.settings.max_inactivity_duration
        duration = min(ours, theirs) if ours > 0 and isinstance(theirs, int) and theirs > 0 else 0
        if duration > 0:
            self._inactivity = duration / 1000
            delay = self.settings.max_inactivity_initial_delay / 1000
            self._timers.append(self.loop.call_later(self._inactivity / 2, self._keep_alive))
            self._timers.append(self.loop.call_later(delay + self._inactivity, self._check_read))
        broker = self.listener.broker_name
        self._send(
            self._encode(
                c.BrokerInfo(
                    broker_id=c.BrokerId(value=f"ID:{broker}-{self.listener.started_ms}"),
                    broker_name=broker,
                    broker_url=f"tcp://{self.transport.get_extra_info('sockname')[0]}:"
                    f"{self.transport.get_extra_info('sockname')[1]}"
                    if self.transport is not None
                    else None,
                )
            )
        )

    def _keep_alive(self) -> None:
        if self.closing:
            return
        interval = self._inactivity / 2
        if self.loop.time() - self._last_write >= interval * 0.9 and not self._out:
            self._send(self._encode(c.KeepAliveInfo()))
        self._timers.append(self.loop.call_later(interval, self._keep_alive))

    def _check_read(self) -> None:
        if self.closing:
            return
        now = self.loop.time()
        idle = now - self._last_read
        if self._read_paused:
            idle = self._stalled_for(now)
            self._last_read = now - idle
        if idle >= self._inactivity:
            self._fatal(f"no data for {idle:.1f}s (MaxInactivityDuration)")
            if self.transport is not None:
                self.transport.abort()
            return
        self._timers.append(self.loop.call_later(self._inactivity - idle, self._check_read))

    def _on_connection_info(self, info: c.ConnectionInfo) -> None:
        if self.connected:
            raise Refused(JMS_EXCEPTION, "Already connected", fatal=True)
        login = info.user_name
        host = self.peer.rpartition(":")[0] or self.peer
        if not login and self.tls_user is not None:
            login, outcome = self.tls_user, Login.OK
        else:
            outcome = self._auth.login(login, info.password, host, "OpenWire")
        if outcome is Login.THROTTLED:
            raise Refused(SECURITY, "Too many failed logins; try again later.", fatal=True)
        if outcome is not Login.OK:
            raise Refused(SECURITY, f"User name [{login}] or password is invalid.", fatal=True)
        if info.connection_id is not None:
            self._take_over(info.connection_id)
        client_id = info.client_id or None
        if client_id is not None:
            held_by = self.core.durables.claim_client(client_id, self, f"tcp://{self.peer}")
            if held_by is not None:
                raise Refused(
                    INVALID_CLIENT_ID,
                    f"Broker: {self.listener.broker_name} - Client: {client_id} "
                    f"already connected from {held_by}",
                )
        self.client_id = client_id
        self.user = login or ""
        self.connection_id = info.connection_id
        self.resends.reconnected = info.failover_reconnect
        self.connected = True
        self.frames.max_frame_size = self.settings.max_frame_size
        cid = info.connection_id
        self.core.connected(
            self,
            client_id=client_id,
            user=self.user,
            detail=info,
            connection_id=cid.value if cid is not None else None,
        )
        self._respond(info)

    def _take_over(self, cid: c.ConnectionId) -> None:
        """A client that reconnects (its failover transport) may come back before this
        broker has noticed its old socket is dead: as ActiveMQ, the newer connection
        with the same ConnectionId wins and the old one is closed first, so that its
        client id, unacknowledged messages and producer sequences are released now."""
        for other in list(self.listener.connections):
            if (
                other is not self
                and isinstance(other, OpenWireConnection)
                and other.connected
                and not other.closing
                and other.connection_id == cid
            ):
                log.info(
                    "OpenWire connection %s from %s takes over from %s",
                    cid.value,
                    self.peer,
                    other.peer,
                )
                other._fatal(f"taken over by a reconnect from {self.peer}")

    def _on_session_info(self, info: c.SessionInfo) -> None:
        self._respond(info)

    def _on_keep_alive(self, info: c.KeepAliveInfo) -> None:
        if info.response_required:
            self._send(self._encode(c.KeepAliveInfo()))

    def _respond_only(self, cmd: Any) -> None:
        # ConnectionControl, FlushCommand, ControlCommand: nothing to
        # do but answer (a client asks them of brokers, never of this one's consumers).
        self._respond(cmd)

    def _on_shutdown(self, info: c.ShutdownInfo) -> None:
        self._close()

    # -- destinations and authorization ---------------------------------------------------

    def _address(self, dest: c.Destination | None, op: str) -> Address | tuple[Address, ...]:
        if dest is None:
            raise Refused(INVALID_DESTINATION, "no destination")
        address = self._dests.get(dest)
        if address is None:
            address = mapping.address_of(dest)
            if len(self._dests) < 256:
                self._dests[dest] = address
        if self._auth.authorizing:
            for part in address if type(address) is tuple else (address,):
                self._authorize(part, op)
        return address

    def _authorize(self, address: Address, op: str) -> None:
        created = not exists(self.core, address) and not is_wildcard(address.name)
        if address.kind in (TEMP_QUEUE, TEMP_TOPIC):
            created = False
        denied = self._auth.check(
            self.user, address, op, "OpenWire", created=created, peer=self.peer
        )
        if denied is not None:
            raise Refused(SECURITY, denied)

    def _on_destination_info(self, info: c.DestinationInfo) -> None:
        address = mapping.address_of(info.destination) if info.destination else None
        if type(address) is not Address or address.kind not in (TEMP_QUEUE, TEMP_TOPIC):
            # Creating or removing an ordinary destination this way is the advisory
            # machinery of network bridges; a client has nothing to wait for.
            self._respond(info)
            return
        if info.operation_type == c.DEST_ADD:
            if self._auth.authorizing:
                denied = self._auth.check(
                    self.user, address, ADMIN, "OpenWire", created=True, peer=self.peer
                )
                if denied is not None:
                    raise Refused(SECURITY, denied)
            self.core.create_temporary(address, self)
        elif info.operation_type == c.DEST_REMOVE and exists(self.core, address):
            self.core.delete(address)
        self._respond(info)

    # -- producing ------------------------------------------------------------------------

    def _on_producer_info(self, info: c.ProducerInfo) -> None:
        address = None
        if info.destination is not None:
            a = self._address(info.destination, WRITE)
            address = a if type(a) is Address else None
        if info.producer_id is not None:
            self.producers[info.producer_id] = info
            pid = info.producer_id
            ids = (pid.connection_id or "", pid.session_id, pid.value)
            self.core.producer_added(pid, address, owner=self, detail=info, ids=ids)
        self._respond(info)

    def _on_message(self, m: c.Message) -> None:
        address = self._address(m.destination, WRITE)
        tx = self._tx(m.transaction_id)
        mid = m.message_id
        resends = self.resends
        if resends.reconnected and m.persistent and mid is not None and resends.duplicate(mid):
            # Stored before the failover; answered once that is durable.
            log.debug("dropping a resent duplicate %s", mid.text())
            self._respond(m, self.core.barrier())
            self._producer_ack(m)
            return
        limit = self.settings.max_frame_size
        first = address[0] if type(address) is tuple else address
        msg = mapping.message_from(m, first, self.id, limit=limit)  # type: ignore[arg-type]
        core = self.core
        if msg.properties and not _SCHEDULED.isdisjoint(msg.properties):
            schedule = self._schedule_of(msg)
            if schedule is not None:
                if type(address) is tuple:
                    raise Refused(
                        JMS_EXCEPTION,
                        "Scheduled delivery to a composite destination is not supported.",
                    )
                self._respond(m, core.schedule(address, msg, schedule, tx=tx))
                return
        if type(address) is tuple:
            done = core.send_composite(address, msg, tx=tx)
            parts: tuple[Address, ...] = address
        else:
            done = core.send(address, msg, tx=tx)  # type: ignore[arg-type]
            parts = (address,)  # type: ignore[assignment]
        self._respond(m, done)
        info = self.producers.get(m.producer_id) if m.producer_id is not None else None
        if info is not None and info.window_size > 0:
            # The client's producer window (async sends): it may send this much more.
            size = len(m.content or b"") + len(m.properties or b"")
            self._send(self._encode(c.ProducerAck(producer_id=m.producer_id, size=size)))
        if tx is None:
            if m.persistent and mid is not None and mid.producer_id is not None:
                resends.sent[mid.producer_id] = mid.producer_sequence_id
            for part in parts:
                if core.store_full or (core.full(part) and not core.stored(part, msg)):
                    if self.transport is not None and self._when_space(part, self._resume_producer):
                        self._pause_reading(READ_PRODUCER)
                    break

    def _producer_ack(self, m: c.Message) -> None:
        """The ProducerAck of a dropped resend (the send path writes its own inline)."""
        info = self.producers.get(m.producer_id) if m.producer_id is not None else None
        if info is not None and info.window_size > 0:
            size = len(m.content or b"") + len(m.properties or b"")
            self._send(self._encode(c.ProducerAck(producer_id=m.producer_id, size=size)))

    @staticmethod
    def _schedule_of(msg: Message) -> Schedule | None:
        """The schedule AMQ_SCHEDULED_* ask for; a JMS client sets the repeat as an int
        property, which the scheduler reads as the plain number it is."""
        props = msg.properties
        for key in _SCHEDULED & props.keys():
            value = props[key]
            if type(value) is tuple and value[0] in ("int", "short", "byte"):
                props[key] = value[1]
        try:
            return schedule_of(props)
        except ScheduleError as exc:
            raise Refused(JMS_EXCEPTION, exc.message) from None

    def _resume_producer(self) -> None:
        self._resume_reading(READ_PRODUCER)

    # -- consuming ------------------------------------------------------------------------

    def _on_consumer_info(self, info: c.ConsumerInfo) -> None:
        if info.consumer_id is None:
            raise Refused(JMS_EXCEPTION, "a consumer without an id")
        if info.consumer_id in self.consumers:
            raise Refused(JMS_EXCEPTION, f"consumer {info.consumer_id} already exists")
        if len(self.consumers) >= self.settings.max_consumers:
            raise Refused(JMS_EXCEPTION, "Too many consumers on this connection")
        address = self._address(info.destination, READ)
        selector = None
        if info.selector:
            try:
                selector = Selector(info.selector)
            except SelectorError as exc:
                raise Refused(INVALID_SELECTOR, str(exc)) from None
        consumer = OwConsumer(info)
        if info.browser:
            if type(address) is tuple or is_wildcard(address.name) or not address.is_queue:
                raise Refused(INVALID_DESTINATION, "only a queue can be browsed")
            self._respond(info)
            self._browse(consumer, address, selector)
            return
        durable = None
        first = address[0] if type(address) is tuple else address
        if info.subscription_name and first.kind == TOPIC:
            # A wildcard or composite topic too (the core records its pattern).
            durable = (self.client_id or self.id, info.subscription_name)
        sub = self.core.subscribe(
            address,
            self,
            ack_mode=INDIVIDUAL,
            prefetch=max(1, info.prefetch_size),
            no_local=info.no_local,
            origin=self.id,
            tag=consumer,
            paused=True,
            selector=selector,
            durable=durable,
            priority=info.priority,
            exclusive=info.exclusive,
        )
        consumer.sub = sub
        self.consumers[info.consumer_id] = consumer
        self._respond(info)
        if not consumer.pull and not self._consumers_paused:
            sub.resume()

    def _on_consumer_control(self, control: c.ConsumerControl) -> None:
        """A new prefetch for a consumer: a failover transport restores consumers with
        prefetch 0 until the client has cleared what it held, then sends their own
        prefetch this way (ConnectionStateTracker.connectionInterruptProcessingComplete)."""
        consumer = self.consumers.get(control.consumer_id) if control.consumer_id else None
        if consumer is not None and consumer.sub is not None and not control.close:
            sub = consumer.sub
            was_pull = consumer.pull
            consumer.prefetch = control.prefetch
            consumer.pull = control.prefetch == 0
            if consumer.pull_timer is not None and not consumer.pull:
                consumer.pull_timer.cancel()
                consumer.pull_timer = None
            if consumer.pull:
                if not was_pull:
                    sub.pause()
            else:
                consumer.credit()
                if was_pull and not self._consumers_paused:
                    sub.resume()
        self._respond(control)

    def _browse(self, consumer: OwConsumer, address: Address, selector: Selector | None) -> None:
        """A QueueBrowser: the messages on the queue now, then the end-of-browse mark."""
        cid = consumer.info.consumer_id
        dest = consumer.info.destination
        now = self.core.now_ms()
        for msg in self.core.browse(address):
            if msg.expiration and msg.expiration <= now:
                continue
            if selector is not None and not selector.matches(msg):
                continue
            out = mapping.openwire_message(msg)
            self._send(
                self._encode(
                    c.MessageDispatch(
                        consumer_id=cid,
                        destination=dest,
                        message=out,
                        redelivery_counter=msg.delivery_count,
                    )
                )
            )
        self._send(self._encode(c.MessageDispatch(consumer_id=cid, destination=dest)))

    def deliver(self, sub: Subscription, msg: Message) -> None:
        consumer: OwConsumer = sub.tag  # type: ignore[assignment]
        self._dispatch_num += 1
        num = self._dispatch_num
        consumer.order[num] = msg.id
        if type(msg) is AdvisoryMessage:
            out = advisories.advisory_message(msg)
        else:
            out = mapping.openwire_message(msg)
        mid = out.message_id
        assert mid is not None
        # A MessageId of its own (mapping.message_id_of builds one per call): the number
        # the client's ack echoes back.
        mid.broker_sequence_id = num
        if msg.persistent and sub.source.durable:
            self._hold = True  # its delivery record first (broker.push: the durability rule)
        data = self._encode(
            c.MessageDispatch(
                consumer_id=consumer.info.consumer_id,
                destination=out.destination,
                message=out,
                redelivery_counter=msg.delivery_count,
            )
        )
        self._out.append(data)
        self._out_bytes += len(data)
        if not self._flush_scheduled:
            self._schedule()
        if consumer.pull:
            sub.pause()
            if consumer.pull_timer is not None:
                consumer.pull_timer.cancel()
                consumer.pull_timer = None
        if self._out_bytes > self._write_high:
            self._pause_consumers()

    def slow(self, sub: Subscription) -> None:
        if not self.closing:
            self.loop.call_soon(self._fatal, "slow consumer: subscription fell too far behind")

    def _may_resume(self, sub: Subscription) -> bool:
        consumer = sub.tag
        return not (isinstance(consumer, OwConsumer) and consumer.pull)

    def _on_pull(self, pull: c.MessagePull) -> None:
        consumer = self.consumers.get(pull.consumer_id) if pull.consumer_id else None
        if consumer is None or consumer.sub is None:
            return
        sub = consumer.sub
        if consumer.pull_timer is not None:
            consumer.pull_timer.cancel()
            consumer.pull_timer = None
        sub.prefetch = len(sub.inflight) + 1
        before = self._dispatch_num
        sub.resume()
        if self._dispatch_num != before:
            return
        if pull.timeout < 0:
            # receiveNoWait: nothing now is an empty dispatch.
            sub.pause()
            self._empty_dispatch(consumer)
        elif pull.timeout > 0:
            consumer.pull_timer = self.loop.call_later(
                pull.timeout / 1000, self._pull_expired, consumer
            )

    def _pull_expired(self, consumer: OwConsumer) -> None:
        consumer.pull_timer = None
        if self.closing or consumer.sub is None or consumer.sub.closed:
            return
        consumer.sub.pause()
        self._empty_dispatch(consumer)
        self._flush()

    def _empty_dispatch(self, consumer: OwConsumer) -> None:
        info = consumer.info
        self._send(
            self._encode(
                c.MessageDispatch(consumer_id=info.consumer_id, destination=info.destination)
            )
        )

    # -- acknowledgements -----------------------------------------------------------------

    def _tx(self, txid: Any) -> Transaction | None:
        if txid is None:
            return None
        tx = self.txs.get(txid)
        if tx is None:
            raise Refused(JMS_EXCEPTION, f"Transaction '{txid}' has not been started.")
        return tx

    def _on_ack(self, ack: c.MessageAck) -> None:
        consumer = self.consumers.get(ack.consumer_id) if ack.consumer_id else None
        last = ack.last_message_id
        if consumer is None or consumer.sub is None or last is None:
            self._respond(ack)  # a consumer already closed: its messages went back
            return
        sub = consumer.sub
        order = consumer.order
        num = last.broker_sequence_id
        kind = ack.ack_type
        tx = self._tx(ack.transaction_id)
        if kind == c.ACK_DELIVERED:
            position = 0
            for n in order:
                position += 1
                if n == num:
                    break
            else:
                position = 0
            consumer.extension = max(consumer.extension, position)
            consumer.credit()
        elif kind == c.ACK_INDIVIDUAL or kind == c.ACK_UNMATCHED:
            msg_id = order.pop(num, None)
            if msg_id is not None:
                self._settle(consumer, sub, [(num, msg_id)], tx, ack.transaction_id, kind)
        elif kind == c.ACK_REDELIVERED:
            pass  # the client redelivers it itself; it stays in flight here
        else:
            # standard, poison, expired: every delivery up to the last one.
            taken: list[tuple[int, str]] = []
            if num in order:
                while True:
                    n, msg_id = order.popitem(last=False)
                    taken.append((n, msg_id))
                    if n == num:
                        break
            if kind == c.ACK_POISON:
                cause = ack.poison_cause[1] if ack.poison_cause else ""
                taken = [t for t in taken if t[0] == num] or taken
                for n, msg_id in taken:
                    sub.dead_letter(msg_id, cause or "", tx=tx)
                    if tx is not None:
                        self._tx_acks.setdefault(ack.transaction_id, []).append(
                            (consumer, n, msg_id)
                        )
            else:
                self._settle(consumer, sub, taken, tx, ack.transaction_id, kind)
        self._respond(ack)

    def _settle(
        self,
        consumer: OwConsumer,
        sub: Subscription,
        taken: list[tuple[int, str]],
        tx: Transaction | None,
        txid: Any,
        kind: int,
    ) -> None:
        if not taken:
            return
        # The smaller prefetch first, without a dispatch of its own: each ack (or
        # expiry) below dispatches with it (Subscription.ack does), and a lower limit
        # can free nothing by itself.
        consumer.extension = max(0, consumer.extension - len(taken))
        if consumer.sub is not None and not consumer.pull:
            consumer.sub.prefetch = max(1, consumer.prefetch + consumer.extension)
        for n, msg_id in taken:
            if kind == c.ACK_EXPIRED and tx is None:
                msg = sub.take_back(msg_id)
                if msg is not None:
                    self.core.expire(sub.source, msg)
                    sub.source.dispatch()
            else:
                sub.ack(msg_id, tx=tx)
                if tx is not None:
                    self._tx_acks.setdefault(txid, []).append((consumer, n, msg_id))

    # -- transactions ---------------------------------------------------------------------

    def _on_transaction(self, info: c.TransactionInfo) -> None:
        txid = info.transaction_id
        kind = info.type
        if isinstance(txid, c.XATransactionId) or kind == c.TX_RECOVER:
            answer = xa.answer(info)  # refused: protocols/openwire/xa.py
            if isinstance(answer, tuple):
                raise Refused(*answer)
            self._answer(info, self._encode(answer))
            return
        if kind == c.TX_BEGIN:
            if txid in self.txs:
                raise Refused(JMS_EXCEPTION, f"Transaction '{txid}' already started.")
            self.txs[txid] = self.core.begin()
            self._respond(info)
        elif kind == c.TX_COMMIT_ONE_PHASE:
            tx = self._tx(txid)
            assert tx is not None
            del self.txs[txid]
            self._tx_acks.pop(txid, None)
            tx.commit()
            self._respond(info, self.core.barrier())
        elif kind == c.TX_ROLLBACK:
            tx = self._tx(txid)
            assert tx is not None
            del self.txs[txid]
            tx.abort()
            for consumer, n, msg_id in self._tx_acks.pop(txid, []):
                if consumer.sub is not None and not consumer.sub.closed:
                    consumer.order[n] = msg_id
                    consumer.order = OrderedDict(sorted(consumer.order.items()))
            self._respond(info)
        elif kind == c.TX_END:
            self._respond(info)
        else:
            raise Refused(XA, xa.NOT_SUPPORTED)

    # -- removal --------------------------------------------------------------------------

    def _on_remove(self, info: c.RemoveInfo) -> None:
        obj = info.object_id
        if isinstance(obj, c.ConsumerId):
            self._close_consumer(obj)
        elif isinstance(obj, c.ProducerId):
            if self.producers.pop(obj, None) is not None:
                self.core.producer_removed(obj)
        elif isinstance(obj, c.SessionId):
            for cid in [k for k in self.consumers if k.session_id == obj.value]:
                self._close_consumer(cid)
            for pid in [k for k in self.producers if k.session_id == obj.value]:
                del self.producers[pid]
                self.core.producer_removed(pid)
        elif isinstance(obj, c.ConnectionId):
            self._respond(info)
            self._release_all()
            self.connected = False
            return
        self._respond(info)

    def _close_consumer(self, cid: c.ConsumerId) -> None:
        consumer = self.consumers.pop(cid, None)
        if consumer is None:
            return
        if consumer.pull_timer is not None:
            consumer.pull_timer.cancel()
        if consumer.sub is not None:
            consumer.sub.close()

    def _on_remove_subscription(self, info: c.RemoveSubscriptionInfo) -> None:
        client_id = info.client_id or self.client_id or self.id
        self.core.remove_subscription(client_id, info.subscription_name or "")
        self._respond(info)

    # -- teardown (broker.push.PushConnection) --------------------------------------------

    def _subscriptions(self) -> list[Subscription]:
        return [k.sub for k in self.consumers.values() if k.sub is not None]

    def _take_subscriptions(self) -> list[Subscription]:
        subs = self._subscriptions()
        for consumer in self.consumers.values():
            if consumer.pull_timer is not None:
                consumer.pull_timer.cancel()
        self.consumers = {}
        return subs

    def _take_transactions(self) -> list[Transaction]:
        txs, self.txs = self.txs, {}
        self._tx_acks.clear()
        return list(txs.values())

    def _release_all(self) -> None:
        self.resends.hand_over()
        for pid in list(self.producers):
            self.core.producer_removed(pid)
        self.producers.clear()
        super()._release_all()
        if self.client_id is not None:
            self.core.durables.release_client(self.client_id, self)

    def shutdown(self) -> None:
        """Broker stop: flush what is queued and close."""
        if not self.closing:
            self._close()

    def login_user(self) -> str | None:
        return self.user or None

    def close_by_admin(self) -> None:
        if not self.closing:
            self._send(
                self._encode(
                    c.ConnectionError(
                        exception=(JMS_EXCEPTION, "Connection closed by an administrator"),
                        connection_id=self.connection_id,
                    )
                )
            )
            self._fatal("closed by an administrator")
