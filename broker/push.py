"""PushConnection: the asyncio glue every push protocol's TCP connection shares.

A push protocol is one where the core hands messages to a connection's subscriptions as
they become available (`Consumer.deliver`), as STOMP and AMQP 1.0 do; SQS, where clients
pull, has no use for it. Each protocol subclasses PushConnection for its wire format and
its semantics; what is the same whatever the wire says is written here once:

- the socket: TCP_NODELAY, the transport's write buffer watermarks, the peer's name, the
  user its verified TLS client certificate maps to (`tls_user`, broker/tls.py) and the
  listener's registry of live connections (`connection_made`, `connection_lost`);
- the outbound list: bytes collect in `_out` during a loop turn and are written with one
  `writelines` per turn (`_schedule`, `_flush`, `_write`); `_out_bytes` counts them, and
  a protocol's `deliver` pauses dispatch (`_pause_consumers`) once they pass
  `_write_high` (inline, like `_hold` below: `deliver` is the hot path);
- backpressure on dispatch: when the transport's buffer passes the high watermark
  (`pause_writing`) every subscription of the connection is paused, and resumed once the
  buffer is below the low one and the outbound list has been written;
- backpressure on the peer: for as long as the subscriptions are paused for a full
  outbound buffer, the socket is not read either (issue 10: a producer that never read
  its receipts made the broker buffer them without bound); reading stops for more than
  one reason (`_pause_reading` / `_resume_reading` with a reason bit: the outbound
  buffer, producer flow control, more than OWED_HIGH answers waiting for the journal),
  and resumes only when no reason holds;
- the durability rule for deliveries: a delivery whose delivery-count record the core
  journals (a persistent message on a durable queue, to a subscription that is not auto
  ack) must not leave before that record is durable, or a message a client saw before a
  crash would come back without `redelivered` and with its count one short. The
  protocol's `deliver` sets `_hold` for such a delivery (inline: it is the hot path);
  `_write` then keeps the whole turn's output back until the core's barrier completes;
- durability futures a graceful stop waits for (`pending`, `_when_durable`; a held
  turn's barrier is one of them too), and `stop_reading`, its first step: no new frame
  is read, so what is owed can only shrink;
- producer flow control (`_when_space`): a send to a queue over its memory limit holds
  the producer back (how is the protocol's: STOMP stops reading, AMQP withholds credit)
  until the queue has room;
- a temporary destination named with this connection's id (a reply-to, a destination) is
  created on first use and owned by the connection, as in ActiveMQ (`_own_temporary`);
- teardown order (`_release_all`): subscriptions close first, then transactions abort,
  then the connection's temporary destinations go.

A subclass provides `_subscriptions`, `_take_subscriptions` and `_take_transactions`, and
may refine `_may_resume`. State ownership: a connection is only touched from its event
loop, and nothing awaits between a check and the change it guards.
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import socket
import sys
import termios
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from broker.core import TEMP_QUEUE, TEMP_TOPIC, Address, Subscription, Transaction
from broker.tcp import TcpListener
from broker.tls import peer_user

_TEMP = (TEMP_QUEUE, TEMP_TOPIC)
# Why reading is paused (bits of `_read_paused`): reading resumes when none is left.
READ_OUTBOUND = 1  # the outbound buffer is past its high watermark
READ_PRODUCER = 2  # producer flow control: a queue this connection sends to is full
READ_OWED = 4  # too many answers (receipts, dispositions) still wait for the journal
# Answers owed for the journal (`pending`) past which reading stops, and below which it
# resumes: each holds its frame until paid, and a producer that never reads its receipts
# must not make the broker hold them without bound while the journal catches up.
OWED_HIGH = 4096
OWED_LOW = 1024
# One sequence for every protocol: connection ids name temporary destinations, which
# are shared by all protocols, so two connections must never have the same id.
_conn_ids = itertools.count(1)


def _kernel_outq(transport: asyncio.BaseTransport) -> int:
    """Bytes in the socket's kernel send queue not yet acknowledged by the peer (Linux
    SIOCOUTQ; 0 where it cannot be read)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        out = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    return int.from_bytes(out, sys.byteorder)


class PushConnection(asyncio.Protocol):
    """One client connection of a push protocol (see the module docstring)."""

    def __init__(self, listener: TcpListener[Any]) -> None:
        self.listener = listener
        self.core = listener.core
        self.settings = listener.settings
        self.loop = listener.loop
        self.id = f"ID:{listener.broker_name}-{listener.started_ms}-{next(_conn_ids)}"
        # Temporary destinations named with this prefix belong to this connection.
        self._temp_prefix = self.id + ":"
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        # The user a verified TLS client certificate maps to ([tls] cert_users), if any.
        self.tls_user: str | None = None
        self.closing = False
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._flush_scheduled = False
        # _hold: this turn's output has a delivery needing the journal; _held: waiting.
        self._hold = False
        self._held = False
        # A close waiting for held output to go first (see `_close`).
        self._close_when_written = False
        self._write_paused = False
        self._consumers_paused = False
        # A graceful stop has begun: nothing may resume reading (see `stop_reading`).
        self._reading_stopped = False
        # Reasons reading is paused (READ_* bits); 0: reading.
        self._read_paused = 0
        # While reading is paused for the outbound buffer: the backlog last seen and since
        # when the peer has taken none of it (see `_stalled_for`).
        self._backlog_seen = 0
        self._stalled_since = 0.0
        # Bytes of a half-received frame this connection holds (its share of the
        # listener's `partial_bytes`).
        self._partial = 0
        # Past this many queued bytes a delivery pauses dispatch to this connection.
        self._write_high = self.settings.write_buffer_high
        self._last_write = 0.0
        # Durability awaitables whose answer (a receipt, a disposition) is still owed:
        # a graceful stop waits for them (TcpListener.drain).
        self.pending: set[asyncio.Future[Any]] = set()
        # The client's own name for itself (STOMP client-id, AMQP container-id), if any.
        self.client_id: str | None = None

    # -- what a protocol provides -------------------------------------------------------

    def _subscriptions(self) -> Iterable[Subscription]:
        """This connection's core subscriptions (a snapshot: resuming one may dispatch)."""
        raise NotImplementedError

    def _may_resume(self, sub: Subscription) -> bool:
        """Whether `sub` may take messages once the write buffer has drained (AMQP: only
        with link credit)."""
        return True

    def _take_subscriptions(self) -> Iterable[Subscription]:
        """Forget every subscription (the protocol's side of them) and return them."""
        raise NotImplementedError

    def _take_transactions(self) -> Iterable[Transaction]:
        """Forget every open transaction and return them."""
        raise NotImplementedError

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check.
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        # A TLS connection is made after its handshake, so the peer's certificate is known.
        self.tls_user = peer_user(transport.get_extra_info("ssl_object"), self.listener.cert_users)
        transport.set_write_buffer_limits(  # type: ignore[attr-defined]
            high=self.settings.write_buffer_high, low=self.settings.write_buffer_low
        )
        self.listener.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.listener.partial_bytes -= self._partial
        self._partial = 0
        self._release_all()
        self.listener.forget(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._pause_consumers()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._out_bytes < self._write_high:
            self._resume_consumers()

    # -- output -------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        """Queue `data` for this turn's write."""
        self._out.append(data)
        self._out_bytes += len(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        if self._out_bytes > self._write_high:
            # Receipts and replies held back (for the journal) count too.
            self._pause_consumers()

    def _schedule(self) -> None:
        """Flush once at the end of this loop turn (however often it is asked)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        """The end of a turn: write what it queued. A protocol with more to do first (AMQP
        runs its engine) overrides this and ends with `_write`."""
        self._flush_scheduled = False
        self._write()

    def _write(self) -> None:
        """Write the outbound list at once, unless it holds a delivery whose record is not
        durable yet: then everything waits for the core's barrier (frame order is kept,
        and the next batch waits behind this one)."""
        if self._held:
            return
        out = self._out
        if out:
            if self._hold:
                # A persistent message goes out only once the journal has its delivery
                # record, so one delivered before a crash comes back redelivered.
                self._hold = False
                done = self.core.barrier()
                if done is not None:
                    self._held = True
                    # Owed like a receipt: a graceful stop waits for it (TcpListener.drain).
                    fut = asyncio.ensure_future(done)
                    self.pending.add(fut)
                    fut.add_done_callback(self.pending.discard)
                    fut.add_done_callback(self._release_held)
                    return
            self._out = []
            self._out_bytes = 0
            self._last_write = self.loop.time()
            transport = self.transport
            if transport is not None and not transport.is_closing():
                transport.writelines(out)
        if self._consumers_paused and not self._write_paused and not self.closing:
            self._resume_consumers()

    def _release_held(self, done: asyncio.Future[Any]) -> None:
        self._held = False
        failed = done.cancelled() or done.exception() is not None
        if failed:
            # The journal failed (the broker stops): what was held must not go out.
            self._out.clear()
        if self._close_when_written:
            self._write()
            if not self._held:
                self._close_when_written = False
                self._end_transport()
        elif failed:
            self._close()
        else:
            self._flush()

    def _close(self) -> None:
        """Let go of subscriptions and transactions, write what is queued (the last
        frames: an error, a close), then close the socket; when the output is held for
        the journal, the socket closes once it has gone."""
        if self.closing:
            return
        self.closing = True
        self._release_all()
        self._write()
        if self._held:
            self._close_when_written = True
        else:
            self._end_transport()

    def _end_transport(self) -> None:
        """Close the socket once what is queued has been written. In a graceful stop
        (`stop_reading`), half-close instead: the peer gets every byte and then EOF, and
        what it still sends is read and dropped (`closing`) until it closes its side or
        the listener's drain deadline aborts it. Closing a socket with unread input makes
        the kernel send a RST, and a RST can destroy receipts the peer has not read yet
        (what a SIGTERM under load showed)."""
        transport = self.transport
        if transport is None:
            return
        if self._reading_stopped and not transport.is_closing() and transport.can_write_eof():
            transport.write_eof()
            transport.resume_reading()  # eof_received returns None: the transport closes
        else:
            transport.close()

    # -- backpressure on dispatch -------------------------------------------------------

    def _pause_consumers(self) -> None:
        """The outbound buffer is past its high watermark: no dispatch to this connection,
        and no reading from it (what it sends would only add receipts and replies)."""
        if self._consumers_paused:
            return
        self._consumers_paused = True
        self._pause_reading(READ_OUTBOUND)
        for sub in self._subscriptions():
            sub.pause()

    def _resume_consumers(self) -> None:
        if not self._consumers_paused:
            return
        self._consumers_paused = False
        self._resume_reading(READ_OUTBOUND)
        for sub in self._subscriptions():
            if self._may_resume(sub):
                sub.resume()

    # -- backpressure on the peer -------------------------------------------------------

    def _buffered(self, n: int, budget: int) -> bool:
        """This connection now holds `n` bytes of half-received frames. False if it grew
        and takes its listener past `budget` bytes for all connections together: the
        caller closes it (the one that would grow pays, not the others)."""
        listener = self.listener
        grew = n > self._partial
        listener.partial_bytes += n - self._partial
        self._partial = n
        if grew and listener.partial_bytes > budget:
            # Refused: its share is dropped with it, so the others may go on at once.
            listener.partial_bytes -= n
            self._partial = 0
            return False
        return True

    def _pause_reading(self, reason: int) -> None:
        """Stop reading the socket for `reason` (a READ_* bit)."""
        if not self._read_paused:
            transport = self.transport
            if transport is not None and not transport.is_closing():
                transport.pause_reading()
            self._backlog_seen = -1
        self._read_paused |= reason

    def _stalled_for(self, now: float) -> float:
        """While reading is paused the peer's input (heart-beats too) is not seen, so an
        idle check must not count that time against it unless the peer is stalled: for
        how long it has taken none of our output, when that is the only reason reading is
        paused (0.0 otherwise: producer flow control and the journal are our doing)."""
        if self._read_paused != READ_OUTBOUND:
            return 0.0
        transport = self.transport
        backlog = self._out_bytes
        if transport is not None:
            # The kernel's unsent and unacknowledged bytes too: a peer that reads a little
            # at a time frees them long before the transport's own buffer moves.
            backlog += transport.get_write_buffer_size() + _kernel_outq(transport)
        if self._backlog_seen < 0 or backlog < self._backlog_seen:
            self._stalled_since = now
        self._backlog_seen = backlog
        return now - self._stalled_since

    def _resume_reading(self, reason: int) -> None:
        """`reason` no longer holds; read again if no other does (and no graceful stop or
        close has stopped reading for good)."""
        if not self._read_paused & reason:
            return
        self._read_paused &= ~reason
        if self._read_paused or self._reading_stopped or self.closing:
            return
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    # -- durability, producers, temporary destinations ------------------------------------

    def _when_durable(
        self, done: Awaitable[None], callback: Callable[[asyncio.Future[Any]], None]
    ) -> asyncio.Future[Any]:
        """`callback` once `done` (a durability awaitable of the core) completes; until then
        a graceful stop waits for it. The callback calls `_paid` first."""
        fut = asyncio.ensure_future(done)
        pending = self.pending
        pending.add(fut)
        fut.add_done_callback(callback)
        if len(pending) > OWED_HIGH:
            self._pause_reading(READ_OWED)
        return fut

    def _paid(self, fut: asyncio.Future[Any]) -> None:
        """`fut` (from `_when_durable`) is answered: forget it, and read again once few
        enough answers are owed."""
        pending = self.pending
        pending.discard(fut)
        if self._read_paused & READ_OWED and len(pending) <= OWED_LOW:
            self._resume_reading(READ_OWED)

    def _when_space(self, address: Address, resume: Callable[[], None]) -> bool:
        """Producer flow control: True if `address` is a queue over its memory limit, and
        then `resume` runs once it has room (unless this connection has closed by then)."""

        def wake() -> None:
            if not self.closing and not self._reading_stopped:
                resume()

        return self.core.when_space(address, wake)

    def _own_temporary(self, address: Address) -> None:
        """A temporary destination named with this connection's id (a destination, a
        reply-to) is created on first use and owned by this connection, as in ActiveMQ."""
        if address.kind in _TEMP and address.name.startswith(self._temp_prefix):
            self.core.create_temporary(address, self)

    # -- teardown -----------------------------------------------------------------------

    def stop_reading(self) -> None:
        """A graceful stop's first step: read no more frames (so no new work arrives and
        what is owed, `pending`, can only shrink), keep writing what is owed. Nothing
        resumes reading afterwards: producer flow control checks `_reading_stopped`."""
        self._reading_stopped = True
        transport = self.transport
        if transport is not None and not self.closing and not transport.is_closing():
            transport.pause_reading()

    def _release_all(self) -> None:
        """Return unacknowledged messages, abort open transactions, drop temporary
        destinations. Subscriptions close first so that messages an aborted transaction
        gives back are not dispatched to this dying connection (and counted twice)."""
        for sub in self._take_subscriptions():
            sub.close()
        for tx in self._take_transactions():
            tx.abort()
        self.core.delete_owned(self)
        self.core.disconnected(self)

    # -- administration (the admin API lists connections and closes one) ----------------

    # The wire protocol's name, as the admin API shows it ("stomp", "amqp").
    protocol = ""

    def login_user(self) -> str | None:
        """The user this connection logged in as (None: none, or not yet)."""
        return None

    def describe(self) -> dict[str, Any]:
        """What the admin API shows of this connection."""
        return {
            "id": self.id,
            "protocol": self.protocol,
            "user": self.login_user(),
            "peer": self.peer,
            "client_id": self.client_id,
            "subscriptions": sum(1 for _ in self._subscriptions()),
        }

    def close_by_admin(self) -> None:
        """An operator closes this connection: the protocol says so on the wire where
        it can, then the socket closes as for any error."""
        self._close()
