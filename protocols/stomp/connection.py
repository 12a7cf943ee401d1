"""STOMP 1.0–1.2 over TCP: asyncio glue around the sans-IO codec, with ActiveMQ's semantics.

Mapping onto the core (see mapping.py for headers and destinations):
- SEND → `core.send`; with `transaction` it is held in the core Transaction until COMMIT.
  A RECEIPT for a persistent SEND waits for the core's durability awaitable. A SEND
  with AMQ_SCHEDULED_* headers goes to `core.schedule` (broker/core/scheduler.py); a
  bad value is an ERROR and the connection closes (ActiveMQ closes it, without ERROR).
- SUBSCRIBE → `core.subscribe` with ack mode auto | client | client-individual,
  credit `activemq.prefetchSize` (default: the destination kind's prefetch) and the
  `selector` header compiled once (negotiate.subscribe_selector). With
  `activemq.subscriptionName` on a topic it is durable (broker/core/durable.py), keyed
  by the CONNECT's `client-id` (without one, the connection's id, as ActiveMQ does). A
  `client-id` another connection holds is refused at CONNECT, as ActiveMQ refuses it.
  ActiveMQ 5.17 reads no `durable-subscription-name` (an Artemis header): neither do we.
  On a queue
  `activemq.priority` and `activemq.exclusive` (negotiate.subscribe_dispatch).
- ACK → `Subscription.ack` (cumulative in client mode); NACK → a poison ack: the message
  goes to the dead letter queue at once, as ActiveMQ 5.x does for STOMP.
- UNSUBSCRIBE, DISCONNECT and a lost connection return unacknowledged messages, flagged
  redelivered, and abort open transactions. UNSUBSCRIBE with `activemq.subscriptionName`
  deletes that durable subscription instead (ActiveMQ: only once its consumer is gone,
  which an UNSUBSCRIBE by `id` alone does; it leaves the `id`'s subscription as it is).
- 1.2 `ack` ids are ``<subscription number>-<message id>`` so an ACK finds its
  subscription without a per-message table.

- A MESSAGE of a persistent message on a durable queue to a client or client-individual
  subscription leaves only once its delivery record is durable, so one a client saw
  before a crash comes back redelivered:true.
- Core errors are ERROR frames through `CORE_ERRORS` (by the core's error code).

Hot path: `data_received` parses every complete frame at once; outgoing frames collect
in a list that is written with one `writelines` per loop turn. When the bytes waiting for
one connection pass `write_buffer_high`, its subscriptions are paused (no credit) until
the transport drains below `write_buffer_low`; that is how a slow consumer pushes back
on dispatch. That glue (and the socket setup, producer flow control and teardown order)
is broker.push.PushConnection's, shared with AMQP.

State ownership: a StompConnection owns its subscriptions and transactions and is only
touched from the event loop; nothing awaits between a check and the change it guards.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from broker.auth import ADMIN, READ, WRITE, Login, exists
from broker.core import (
    AUTO,
    TEMP_QUEUE,
    TEMP_TOPIC,
    Address,
    CoreError,
    Message,
    ScheduleError,
    Subscription,
    is_wildcard,
    schedule_of,
)
from broker.core.errors import DELETED, INVALID, NOT_FOUND, STORE_FULL, WriteRefused
from broker.core.transaction import Transaction
from broker.push import READ_PRODUCER, PushConnection
from protocols.stomp.browser import QueueBrowser, start_browser
from protocols.stomp.codec import Frame, FrameParser, StompError, encode_frame, escaper
from protocols.stomp.mapping import (
    BadHeader,
    encode_headers,
    encode_message_head,
    message_from_send,
    needs_private_encoding,
    parse_composite,
    parse_destination,
)
from protocols.stomp.negotiate import (
    ProtocolError,
    negotiate_version,
    parse_heart_beat,
    subscribe_dispatch,
    subscribe_options,
    subscribe_selector,
)

if TYPE_CHECKING:
    from broker.tcp import TcpListener

log = logging.getLogger("zonemq.stomp")

_CONNECTS = ("CONNECT", "STOMP")

# CoreError code → (the ERROR frame's message, None: the core's own text, which names the
# destination or value as ActiveMQ's messages do; whether the connection closes). One
# table: the connection never looks at a core message's text.
CORE_ERRORS: dict[str, tuple[str | None, bool]] = {
    NOT_FOUND: (None, False),
    DELETED: (None, False),  # a temporary destination that has gone
    INVALID: (None, False),
    STORE_FULL: (None, False),  # store_full_policy "fail": this SEND is refused
}
_OTHER_CORE_ERROR: tuple[str | None, bool] = (None, False)


def _host(peer: str) -> str:
    """The host of a "host:port" peer name (the login throttle counts per host)."""
    return peer.rpartition(":")[0] or peer


class StompSub:
    """The protocol side of one subscription: its id and pre-encoded header prefixes."""

    __slots__ = ("ack_prefix", "browser", "core_sub", "id", "prefix")

    def __init__(self, sub_id: str, version: str, *, has_id: bool = True) -> None:
        self.id = sub_id
        esc = encode_headers([("subscription", sub_id)], version) if has_id else b""
        self.prefix = b"MESSAGE\n" + esc
        self.ack_prefix = b""
        self.core_sub: Subscription | None = None
        self.browser: QueueBrowser | None = None  # browser:true (browser.py)

    @property
    def acker(self) -> Subscription | QueueBrowser | None:
        """What an ACK of this subscription's messages goes to."""
        return self.core_sub or self.browser


class StompConnection(PushConnection):
    """One client connection (see module docstring for the mapping and invariants; the
    socket, output, backpressure and teardown glue is broker.push.PushConnection's)."""

    def __init__(self, listener: TcpListener[StompConnection]) -> None:
        super().__init__(listener)
        # Until CONNECT has succeeded a frame may be only max_connect_frame_size long
        # (issue 10: unauthenticated clients held 95 MB half-sent CONNECTs each).
        self._connect_limit = min(
            self.settings.max_connect_frame_size, self.settings.max_frame_size
        )
        self.parser = FrameParser(
            max_frame_size=self._connect_limit,
            max_headers=self.settings.max_headers,
            max_header_length=self.settings.max_header_length,
            strict=self.settings.strict,
        )
        self.version = "1.0"
        self.connected = False
        # The authenticated login ("" without users); authorization is for this name.
        self.user = ""
        # CONNECT's client-id: the key of this connection's durable subscriptions.
        self.client_id: str | None = None
        self._auth = listener.auth
        self.subs: dict[str, StompSub] = {}
        self.by_num: dict[int, StompSub] = {}
        self.txs: dict[str, Transaction] = {}
        self._dests: dict[str, Address] = {}
        self._last_read = 0.0
        self._timers: list[asyncio.TimerHandle] = []
        # When the half-received frame in the parser began (loop time; 0.0: none), and
        # the timer that enforces frame_timeout on it.
        self._partial_since = 0.0
        self._frame_timer: asyncio.TimerHandle | None = None
        # Receipts in frame order, each sent once its awaitable and all before it are done.
        self._owed: deque[tuple[asyncio.Future[Any], bytes, Frame]] = deque()
        self._close_when_paid = False
        self._handlers: dict[str, Callable[[Frame], None]] = {
            "SEND": self._on_send,
            "SUBSCRIBE": self._on_subscribe,
            "UNSUBSCRIBE": self._on_unsubscribe,
            "ACK": self._on_ack,
            "NACK": self._on_nack,
            "BEGIN": self._on_begin,
            "COMMIT": self._on_commit,
            "ABORT": self._on_abort,
            "DISCONNECT": self._on_disconnect,
            "CONNECT": self._on_connect,
            "STOMP": self._on_connect,
        }

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._last_read = self.loop.time()
        super().connection_made(transport)
        if len(self.listener.connections) > self.settings.max_connections:
            self._fatal("Too many connections", b"")
            return
        if self.settings.connect_timeout > 0:
            self._timers.append(
                self.loop.call_later(self.settings.connect_timeout, self._connect_timeout)
            )

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        if self.closing:
            return
        error: StompError | None = None
        completed = False
        while True:
            try:
                frames = self.parser.feed(data)
            except StompError as exc:
                # Frames completed before the bad bytes are still served, then we close.
                frames = exc.frames
                error = exc
            self._handle(frames)
            if error is not None:
                if not self.closing:
                    self._fatal(error.message, error.snippet, error.receipt)
                return
            if frames:
                completed = True
            # The parser stops after CONNECT so frames behind it use the negotiated version.
            if not (frames and frames[-1].command in _CONNECTS and self.parser.buffered()):
                break
            data = b""
        n = self.parser.buffered()
        if (n or self._partial) and not self.closing:
            self._check_partial(n, completed)
        if self._out:
            self._flush()

    def _check_partial(self, n: int, completed: bool) -> None:
        """The limits on the `n` bytes of a half-received frame left after a read: the
        size before CONNECT, the listener's budget for all connections, the time a frame
        may take (`frame_timeout`; a frame left after frames completed began in this read)."""
        if not self.connected and n > self._connect_limit:
            self._fatal(
                f"Frame exceeds maximum size of {self._connect_limit} bytes before CONNECT",
                b"",
            )
            return
        if not self._buffered(n, self.settings.max_partial_bytes):
            self._fatal("Too many bytes of partial frames buffered, try again later", b"")
            return
        if not n:
            self._partial_since = 0.0
        elif completed or not self._partial_since:
            self._partial_since = self._last_read
            timeout = self.settings.frame_timeout
            if self._frame_timer is None and timeout > 0:
                self._frame_timer = self.loop.call_later(timeout, self._frame_deadline)

    def _frame_deadline(self) -> None:
        self._frame_timer = None
        if self.closing or not self._partial_since:
            return
        now = self.loop.time()
        timeout = self.settings.frame_timeout
        if self._read_paused:
            # We stopped reading (backpressure): the client is not the slow one.
            self._partial_since = now
        late = now - self._partial_since
        if late >= timeout:
            self._fatal(f"Frame not completed within {timeout:g} seconds", b"")
        else:
            self._frame_timer = self.loop.call_later(timeout - late, self._frame_deadline)

    def _handle(self, frames: list[Frame]) -> None:
        handlers = self._handlers
        for frame in frames:
            if self.closing:
                return
            try:
                if not self.connected and frame.command not in _CONNECTS:
                    if frame.command == "DISCONNECT":
                        continue  # ActiveMQ ignores it silently before CONNECT
                    raise ProtocolError("Not connected.")
                handlers[frame.command](frame)
            except ProtocolError as exc:
                self._error(exc.message, frame, detail=exc.detail, close=exc.fatal)
            except BadHeader as exc:
                self._error(str(exc), frame, close=False)
            except CoreError as exc:
                text, fatal = CORE_ERRORS.get(exc.code, _OTHER_CORE_ERROR)
                self._error(text or exc.message, frame, close=fatal)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._frame_timer is not None:
            self._frame_timer.cancel()
            self._frame_timer = None
        super().connection_lost(exc)

    # -- the Consumer interface the core calls ------------------------------------------

    def deliver(self, sub: Subscription, msg: Message) -> None:
        ssub: StompSub = sub.tag  # type: ignore[assignment]
        version = self.version
        wire = msg.wire
        if wire is None or wire[0] != version or wire[3]:
            private = needs_private_encoding(msg)
            # msg.wire is shared by the connections of the one STOMP listener, so
            # group_headers (a listener setting) is the same for all that read it.
            head = encode_message_head(
                msg, self.id, version, group_headers=self.settings.group_headers
            )
            # The id goes into the 1.2 ack header, escaped like any header value.
            wire = (version, escaper(version)(msg.id).encode(), head, private)
            if not private:
                msg.wire = wire
        if not sub.auto and msg.persistent and sub.source.durable:
            self._hold = True  # its delivery record first (broker.push: the durability rule)
        out = self._out
        out.append(ssub.prefix)
        size = len(ssub.prefix) + len(wire[2]) + len(msg.body) + 2
        if ssub.ack_prefix:
            out.append(ssub.ack_prefix)
            out.append(wire[1])
            out.append(b"\n")
            size += len(ssub.ack_prefix) + len(wire[1]) + 1
        out.append(wire[2])
        out.append(b"\n")
        out.append(msg.body)
        out.append(b"\x00")
        self._out_bytes += size
        if not self._flush_scheduled:
            self._schedule()
        if self._out_bytes > self._write_high:
            self._pause_consumers()

    def slow(self, sub: Subscription) -> None:
        # Deferred: the core is iterating the topic's subscribers right now.
        if not self.closing:
            self.loop.call_soon(self._fatal, "Slow consumer: subscription fell too far behind", b"")

    # -- errors ---------------------------------------------------------------------------

    def _error(self, message: str, frame: Frame | None, *, detail: str = "", close: bool) -> None:
        # Header order and the missing content-length follow ActiveMQ 5.17's ERROR frames.
        headers = [("content-type", "text/plain")]
        if frame is not None and "receipt" in frame.headers:
            headers.append(("receipt-id", frame.headers["receipt"]))
        headers.append(("message", message))
        body = (detail or message).replace("\x00", "").encode()
        data = encode_frame("ERROR", headers, body, self.version)
        if self._owed and not self.closing:
            # Receipts of earlier frames are still waiting for the disk: keep frame order.
            done: asyncio.Future[Any] = self.loop.create_future()
            done.set_result(None)
            self._owed.append((done, data, frame))
            done.add_done_callback(self._pay)
            if close:
                self._close_once_paid()
            return
        self._send(data)
        if close:
            self._close()

    def _fatal(self, message: str, snippet: bytes, receipt: str | None = None) -> None:
        log.info("closing STOMP connection from %s: %s (near %r)", self.peer, message, snippet)
        bad = Frame("", {"receipt": receipt}) if receipt is not None else None
        self._error(message, bad, close=True)

    def _close_once_paid(self) -> None:
        """Close once the receipts still owed (and what queues behind them) have gone
        out; read nothing more and let go of subscriptions and transactions now."""
        self._close_when_paid = True
        self._release_all()
        self.closing = True
        if self.transport is not None:
            self.transport.pause_reading()

    def _connect_timeout(self) -> None:
        if not self.connected and not self.closing:
            self._fatal("Timed out waiting for CONNECT", b"")

    def _receipt(self, frame: Frame, done: Awaitable[None] | None = None) -> None:
        """RECEIPT for `frame` once what it wrote is durable (`done`, or the core's
        barrier), and never before the receipts of earlier frames."""
        receipt = frame.headers.get("receipt")
        if receipt is None:
            return
        data = encode_frame("RECEIPT", {"receipt-id": receipt}, b"", self.version)
        if done is None:
            done = self.core.barrier()
        if done is None and not self._owed:
            self._send(data)
            return
        if done is None:
            paid: asyncio.Future[None] = self.loop.create_future()
            paid.set_result(None)
            done = paid
        fut = self._when_durable(done, self._pay)
        self._owed.append((fut, data, frame))

    def _pay(self, _done: asyncio.Future[Any]) -> None:
        owed = self._owed
        while owed and owed[0][0].done():
            fut, data, frame = owed.popleft()
            self._paid(fut)
            if self.closing and not self._close_when_paid:
                continue
            if fut.cancelled() or fut.exception() is not None:
                owed.clear()
                self._close_when_paid = False
                self.closing = False
                exc = None if fut.cancelled() else fut.exception()
                reason = f": {exc}" if isinstance(exc, WriteRefused) else ""
                self._error(f"Message could not be stored{reason}", frame, close=True)
                return
            self._send(data)
        if not owed and self._close_when_paid:
            self._close_when_paid = False
            self.closing = False
            self._close()

    # -- CONNECT and heart-beats ----------------------------------------------------------

    def _on_connect(self, frame: Frame) -> None:
        if self.connected:
            raise ProtocolError("Already connected.")
        h = frame.headers
        version = negotiate_version(h.get("accept-version"))
        login = h.get("login")
        if login is None and self.tls_user is not None:
            # A verified client certificate mapped to a user ([tls] cert_users) stands
            # for the login, as with ActiveMQ's certificate authentication.
            login, outcome = self.tls_user, Login.OK
        else:
            outcome = self.listener.auth.login(login, h.get("passcode"), _host(self.peer), "STOMP")
        if outcome is Login.THROTTLED:
            raise ProtocolError("Too many failed logins; try again later.", fatal=True)
        if outcome is not Login.OK:
            raise ProtocolError(f"User name [{login}] or password is invalid.", fatal=True)
        cx, cy = parse_heart_beat(h.get("heart-beat"))
        client_id = h.get("client-id") or None
        if client_id is not None:
            held_by = self.core.durables.claim_client(client_id, self, f"tcp://{self.peer}")
            if held_by is not None:
                raise ProtocolError(
                    f"Broker: {self.listener.broker_name} - Client: {client_id} "
                    f"already connected from {held_by}",
                    fatal=True,
                )
        self.client_id = client_id
        self.user = login or ""
        self.version = version
        self.parser.version = version
        self.parser.max_frame_size = self.settings.max_frame_size
        self.connected = True
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        # ActiveMQ answers the client's heart-beat swapped, and names the session after
        # client-id when one is given.
        headers = [
            ("server", "ZoneMQ/0.1"),
            ("heart-beat", f"{cy},{cx}"),
            ("session", h.get("client-id") or self.id),
            ("version", version),
        ]
        self._send(encode_frame("CONNECTED", headers, b"", version))
        self.client_id = h.get("client-id")
        self.core.connected(self, client_id=self.client_id, user=self.user)
        if cx > 0:
            limit = cx / 1000 * self.settings.heartbeat_grace
            self._timers.append(self.loop.call_later(limit, self._check_read, limit))
        if cy > 0:
            interval = cy / 1000
            self._timers.append(self.loop.call_later(interval, self._heartbeat, interval))

    def _check_read(self, limit: float) -> None:
        if self.closing:
            return
        now = self.loop.time()
        idle = now - self._last_read
        if self._read_paused:
            # Not read (backpressure), so its heart-beats are not seen: idle only if it
            # takes none of our output either.
            idle = self._stalled_for(now)
            self._last_read = now - idle
        if idle >= limit:
            log.info("dropping STOMP client %s: no heart-beat for %.1fs", self.peer, idle)
            self._close()
            if self._read_paused and self.transport is not None:
                # A full outbound buffer would keep the socket open until it drained.
                self.transport.abort()
            return
        self._timers.append(self.loop.call_later(limit - idle, self._check_read, limit))

    def _heartbeat(self, interval: float) -> None:
        if self.closing:
            return
        if self.loop.time() - self._last_write >= interval * 0.9 and not self._out:
            self._send(b"\n")
        self._timers.append(self.loop.call_later(interval, self._heartbeat, interval))

    # -- frames ---------------------------------------------------------------------------

    def _destination(self, frame: Frame, op: str) -> Address | tuple[Address, ...]:
        """The frame's destination, once `op` on it is authorized (a temporary one of
        this connection is created on first use); a composite is a tuple of its parts,
        each authorized."""
        text = frame.headers.get("destination")
        if text is None or text == "":
            if frame.command == "SEND":
                raise ProtocolError("SEND received without a Destination specified!")
            raise ProtocolError("Invalid empty or 'null' Destination header")
        address = self._dests.get(text)
        if address is None:
            if "," in text:
                address = parse_composite(text, self.id)
            else:
                address = parse_destination(text, self.id)
            parts = address if type(address) is tuple else (address,)
            for part in parts:
                if self._auth.authorizing:
                    self._authorize(part, op)
                self._own_temporary(part)
            # Producers name the same few destinations over and over; bounded.
            if len(self._dests) < 256:
                self._dests[text] = address
        elif self._auth.authorizing:
            for part in address if type(address) is tuple else (address,):
                self._authorize(part, op)
        return address

    def _authorize(self, address: Address, op: str) -> None:
        """Raise ActiveMQ's denial unless this user may `op` on `address`; using a
        destination that does not exist yet creates it, which also needs admin."""
        # A wildcard subscription creates nothing (sending to one is refused later).
        created = (
            not exists(self.core, address)
            and not is_wildcard(address.name)
            and (
                address.kind not in (TEMP_QUEUE, TEMP_TOPIC)
                or address.name.startswith(self._temp_prefix)
            )
        )
        denied = self._auth.check(self.user, address, op, "STOMP", created=created, peer=self.peer)
        if denied is not None:
            raise ProtocolError(denied)

    def _transaction(self, frame: Frame) -> Transaction | None:
        txid = frame.headers.get("transaction")
        if txid is None:
            return None
        tx = self.txs.get(txid)
        if tx is None:
            raise ProtocolError(f"Invalid transaction id: {txid}")
        return tx

    def _on_send(self, frame: Frame) -> None:
        address = self._destination(frame, WRITE)
        if type(address) is tuple:
            self._send_composite(frame, address)
            return
        tx = self._transaction(frame)
        msg = message_from_send(frame.headers, frame.body, address, self.id, self.id)
        if msg.reply_to is not None:
            self._reply_to(msg.reply_to)
        if msg.properties and self._scheduled(frame, address, msg, tx):
            return
        done = self.core.send(address, msg, tx=tx)
        self._receipt(frame, done)
        core = self.core
        if tx is None and (
            core.store_full or (core.full(address) and not core.stored(address, msg))
        ):
            # Journaled messages page out instead of waiting for queue memory; past the
            # store limit (policy "block") every producer to a durable queue waits.
            self._flow_control(address)

    def _scheduled(
        self, frame: Frame, address: Address | None, msg: Message, tx: Transaction | None
    ) -> bool:
        """Hand a SEND whose headers ask for scheduled delivery to the core's scheduler
        (True), or leave it to be sent (False). `address` None: a composite, refused."""
        try:
            schedule = schedule_of(msg.properties)
        except ScheduleError as exc:
            raise ProtocolError(exc.message, fatal=True) from None
        if schedule is None:
            return False
        if address is None:
            raise ProtocolError("Scheduled delivery to a composite destination is not supported.")
        self._receipt(frame, self.core.schedule(address, msg, schedule, tx=tx))
        return True

    def _reply_to(self, reply: Address) -> None:
        if (
            self._auth.authorizing
            and reply.name.startswith(self._temp_prefix)
            and not exists(self.core, reply)
        ):
            # Naming its own temporary reply-to creates it (ActiveMQ: temp admin).
            self._authorize(reply, ADMIN)
        self._own_temporary(reply)

    def _send_composite(self, frame: Frame, parts: tuple[Address, ...]) -> None:
        """SEND to a composite destination: one message to each part, one message id."""
        tx = self._transaction(frame)
        msg = message_from_send(frame.headers, frame.body, parts[0], self.id, self.id)
        if msg.reply_to is not None:
            self._reply_to(msg.reply_to)
        if msg.properties:
            self._scheduled(frame, None, msg, tx)
        core = self.core
        done = core.send_composite(parts, msg, tx=tx)
        self._receipt(frame, done)
        if tx is None:
            for part in parts:
                if core.store_full or (core.full(part) and not core.stored(part, msg)):
                    self._flow_control(part)
                    return

    def _flow_control(self, address: Address) -> None:
        """A producer sending to a full queue stops being read until the queue drains
        (one reason among others to pause reading: broker.push)."""
        if self.transport is not None and self._when_space(address, self._resume_producer):
            self._pause_reading(READ_PRODUCER)

    def _resume_producer(self) -> None:
        self._resume_reading(READ_PRODUCER)

    def _on_subscribe(self, frame: Frame) -> None:
        h = frame.headers
        address = self._destination(frame, READ)
        sub_id = h.get("id")
        if sub_id is None:
            if self.version != "1.0":
                raise ProtocolError("SUBSCRIBE received without a subscription id!")
            # 1.0 allows it; ActiveMQ then sends MESSAGEs without a subscription header
            # and UNSUBSCRIBE names the destination instead.
            sub_id = h["destination"]
        if sub_id in self.subs:
            raise ProtocolError(f"Duplicate subscription id: {sub_id}")
        if len(self.subs) >= self.settings.max_subscriptions:
            raise ProtocolError("Too many subscriptions on this connection")
        ack, prefetch = subscribe_options(h, strict=self.settings.strict)
        selector = subscribe_selector(h)
        priority, exclusive = subscribe_dispatch(h)
        if h.get("browser") == "true":  # exactly "true", as ActiveMQ compares it
            if type(address) is tuple or is_wildcard(address.name):
                raise ProtocolError("Invalid Subscription: cannot browse a composite or wildcard")
            ssub = StompSub(sub_id, self.version)
            start_browser(self, frame, ssub, address, ack, prefetch, selector)
            return
        name = h.get("activemq.subscriptionName")
        durable = (self.client_id or self.id, name) if name is not None else None
        ssub = StompSub(sub_id, self.version, has_id="id" in h)
        core_sub = self.core.subscribe(
            address,
            self,
            ack_mode=ack,
            prefetch=prefetch,
            no_local=h.get("activemq.noLocal") == "true",
            origin=self.id,
            tag=ssub,
            paused=True,
            selector=selector,
            durable=durable,
            priority=priority,
            exclusive=exclusive,
        )
        self.subs[sub_id] = ssub
        ssub.core_sub = core_sub
        self.by_num[core_sub.num] = ssub
        if self.version == "1.2" and ack != AUTO:
            ssub.ack_prefix = b"ack:" + str(core_sub.num).encode() + b"-"
        # The RECEIPT goes out before any MESSAGE of the new subscription, as ActiveMQ's.
        self._receipt(frame)
        if not self._consumers_paused:
            core_sub.resume()

    def _on_unsubscribe(self, frame: Frame) -> None:
        h = frame.headers
        sub_id = h.get("id")
        if sub_id is None:
            if self.version == "1.0" and "destination" in h:
                sub_id = h["destination"]
            else:
                raise ProtocolError("UNSUBSCRIBE received without a subscription id!")
        name = h.get("activemq.subscriptionName")
        if name is not None:
            # As ActiveMQ's ProtocolConverter, down to STOMP 1.0 naming the client by
            # the subscription name.
            client_id = name if self.version == "1.0" else (self.client_id or self.id)
            self.core.remove_subscription(client_id, name)
            self._receipt(frame)
            return
        ssub = self.subs.pop(sub_id, None)
        if ssub is None:
            raise ProtocolError("No subscription matched.")
        if ssub.core_sub is not None:
            self.by_num.pop(ssub.core_sub.num, None)
            ssub.core_sub.close()
        if ssub.browser is not None:
            self.by_num.pop(ssub.browser.num, None)
            ssub.browser.close()
        self._receipt(frame)

    def _find_ack(self, frame: Frame) -> tuple[Subscription | QueueBrowser, str]:
        h = frame.headers
        what = frame.command
        if self.version == "1.2":
            ack_id = h.get("id")
            if ack_id is None:
                raise ProtocolError(f"{what} received without a ack id for acknowledge!")
            num, _, msg_id = ack_id.partition("-")
            ssub = self.by_num.get(int(num)) if num.isdigit() else None
            acker = ssub.acker if ssub is not None else None
            if acker is not None and msg_id in acker.inflight:
                return acker, msg_id
            raise ProtocolError(f"Unexpected {what} received for message-id [{ack_id}]")
        msg_id = h.get("message-id")
        if msg_id is None:
            raise ProtocolError(f"{what} received without a message-id to acknowledge!")
        candidates = self.subs.values()
        if self.version == "1.1" and "subscription" in h:
            one = self.subs.get(h["subscription"])
            candidates = [one] if one is not None else []
        for ssub in candidates:
            acker = ssub.acker
            if acker is not None and msg_id in acker.inflight:
                return acker, msg_id
        raise ProtocolError(f"Unexpected {what} received for message-id [{msg_id}]")

    def _on_ack(self, frame: Frame) -> None:
        sub, msg_id = self._find_ack(frame)
        sub.ack(msg_id, tx=self._transaction(frame))
        self._receipt(frame)

    def _on_nack(self, frame: Frame) -> None:
        if self.version == "1.0":
            raise ProtocolError("NACK received but connection is in v1.0 mode.")
        sub, msg_id = self._find_ack(frame)
        sub.dead_letter(msg_id, "", tx=self._transaction(frame))
        self._receipt(frame)

    def _txid(self, frame: Frame, doing: str) -> str:
        txid = frame.headers.get("transaction")
        if txid is None:
            raise ProtocolError(f"Must specify the transaction you are {doing}")
        return txid

    def _on_begin(self, frame: Frame) -> None:
        txid = self._txid(frame, "beginning")
        if txid in self.txs:
            raise ProtocolError(f"The transaction was already started: {txid}")
        self.txs[txid] = self.core.begin()
        self._receipt(frame)

    def _on_commit(self, frame: Frame) -> None:
        txid = self._txid(frame, "committing")
        tx = self.txs.pop(txid, None)
        if tx is None:
            raise ProtocolError(f"Invalid transaction id: {txid}")
        tx.commit()
        self._receipt(frame)

    def _on_abort(self, frame: Frame) -> None:
        txid = self._txid(frame, "aborting")
        tx = self.txs.pop(txid, None)
        if tx is None:
            raise ProtocolError(f"Invalid transaction id: {txid}")
        tx.abort()
        self._receipt(frame)

    def _on_disconnect(self, frame: Frame) -> None:
        self._receipt(frame)
        if self._owed:
            self._close_once_paid()
            return
        self._close()

    # -- teardown -------------------------------------------------------------------------

    def _subscriptions(self) -> list[Subscription]:
        return [s.core_sub for s in self.subs.values() if s.core_sub is not None]

    def _resume_consumers(self) -> None:
        super()._resume_consumers()
        for ssub in list(self.subs.values()):
            if ssub.browser is not None:
                ssub.browser.resume()

    def _take_subscriptions(self) -> list[Subscription]:
        subs = self._subscriptions()
        self.subs = {}
        self.by_num.clear()
        return subs

    def _release_all(self) -> None:
        super()._release_all()
        if self.client_id is not None:
            self.core.durables.release_client(self.client_id, self)

    def _take_transactions(self) -> list[Transaction]:
        txs, self.txs = self.txs, {}
        return list(txs.values())

    def shutdown(self) -> None:
        """Broker stop: flush what is queued and close."""
        if not self.closing:
            self._close()

    # -- administration (broker.push.PushConnection.describe) ----------------------------

    protocol = "stomp"

    def login_user(self) -> str | None:
        return self.user or None

    def close_by_admin(self) -> None:
        if not self.closing:
            self._fatal("Connection closed by an administrator", b"")
