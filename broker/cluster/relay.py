"""Relay: a standby's client port that pipes each connection to the active's (issue 11).

Every node accepts clients on every listener. On a standby, a listener's port is a
`Relay`: each client connection is joined to a new connection to the active's client
address for that listener (`target()`, from the election) and bytes are copied both
ways unchanged, so STOMP, AMQP and HTTP (SQS) clients without failover support keep
working through any live node. The relay parses nothing; TLS is not terminated here.

Connecting. A client's socket is not read until its upstream connection is made, so
at most one read waits in memory meanwhile (uvloop starts reading after
`connection_made` whatever it asked, so a first read may come: it is held, reading
paused, and written upstream first). With no active known (`target()` is None) the
connection waits up to `connect_timeout` seconds for one, woken by `changed()` (and a
re-check every POLL seconds, so a caller that forgets to call it only costs latency);
a refused or timed-out connect to the active closes the client's connection at once,
unless `target()` already names another address (tried within the same deadline). Why
is logged once per connection (WARNING); a client learns only that its connection was
closed, which is what it would see from a node that is down.

Buffering policy, per connection and per direction: what is read from one side is
written to the other side's transport at once; when that transport's write buffer
passes `high_water` (asyncio calls `pause_writing`) the relay stops reading the first
side, and reads it again once the buffer is below `low_water` (`resume_writing`). So
a side that does not read pushes back over TCP on the side that sends, as if the two
were connected directly, and the relay holds at most `high_water` plus one socket read
(READ_MAX: asyncio's and uvloop's read size) per direction: with the defaults, 512 KiB
each way, 1 MiB per connection, whatever the peers do (the kernel's socket buffers
come on top, as for any connection). `peak_buffered` records the largest write buffer
seen, `buffered` what is held now.

Closing. An EOF from one side is passed on as an EOF to the other (`write_eof`, after
what is buffered for it), and both sockets close once both sides have sent EOF; a
reset (or any error) on either side resets both, so a cut is never passed on as a
clean end. `drop(reason)` closes every connection (what is buffered is flushed for up
to `linger` seconds, then they are reset): on a role change the relayed connections to
the old active must go, so their clients reconnect and reach the new one. `stop()`
stops accepting and drops the rest.

A target that is this relay itself (the node's own address, while its role changes)
would chain connections through us until descriptors ran out: a connection accepted
from one of our own upstream sockets is closed at once, which closes the original.

Ownership: everything runs on the event loop that called `start()`; callbacks never
await, and the connect task only ever touches its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Callable

log = logging.getLogger("zonemq.cluster")

HIGH_WATER = 256 * 1024
# The most one data_received hands us (asyncio's selector transports and uvloop both
# read at most this), so what a direction can hold past high_water before it pauses.
READ_MAX = 256 * 1024
# Seconds between re-checks of target() while a connection waits for an active.
POLL = 0.25
# Seconds drop() lets buffered bytes go out before it resets a connection.
LINGER = 1.0

Address = tuple[str, int]
# SO_LINGER on, zero seconds: close() sends a RST.
_RESET = struct.pack("ii", 1, 0)


class _Side(asyncio.Protocol):
    """One socket of a relayed connection: the client's, or ours to the active."""

    def __init__(self, pipe: _Pipe, upstream: bool) -> None:
        self.pipe = pipe
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        # The other socket, once both exist.
        self.peer: _Side | None = None
        self.eof = False
        self.lost = False
        # Our write buffer is past high_water (between pause_writing and resume_writing).
        self.full = False
        # A client's bytes read before its upstream existed (one read at most).
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check.
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Frames are small and latency-bound (receipts, acks); Nagle would hold them.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        relay = self.pipe.relay
        transport.set_write_buffer_limits(  # type: ignore[attr-defined]
            high=relay.high_water, low=relay.low_water
        )
        if self.upstream:
            self.pipe.joined(self)
        else:
            # Nothing is read from the client until its upstream exists (no buffering).
            transport.pause_reading()  # type: ignore[attr-defined]
            relay._accepted(self.pipe, transport)

    def data_received(self, data: bytes) -> None:
        if self.peer is None and not self.pipe.closing:
            self.hold(data)
        else:
            self.pipe.forward(self, data)

    def hold(self, data: bytes) -> None:
        # Before the upstream exists (the one read uvloop makes); no more until then.
        self.early.append(data)
        assert self.transport is not None
        self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.pipe.eof_from(self)
        return True  # keep the socket open: the other direction may still carry data

    def pause_writing(self) -> None:
        # Our buffer is full: stop reading the side that fills it.
        self.full = True
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.pause_reading()
            self.pipe.relay.pauses += 1

    def resume_writing(self) -> None:
        self.full = False
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.pipe.lost(self, exc)


class _Pipe:
    """One client connection and, once made, its connection to the active."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.client = _Side(self, upstream=False)
        self.active: _Side | None = None
        self.peer = "?"
        # Set once closing began (a drop, an end, a reset): nothing may join us then.
        self.closing = False
        self.task: asyncio.Task[None] | None = None
        # Our end of the upstream socket, from its connect() on (Relay._outbound).
        self.local: Address | None = None
        self._linger: asyncio.TimerHandle | None = None

    def joined(self, active: _Side) -> None:
        """The upstream connection is made: link the two sides, start reading."""
        assert active.transport is not None
        if self.closing or self.client.lost:
            active.transport.abort()
            return
        self.active = active
        active.peer, self.client.peer = self.client, active
        client = self.client
        early, client.early = client.early, []
        for data in early:
            self.forward(client, data)
        assert client.transport is not None
        if client.eof:
            self.eof_from(client)
        elif not active.full:  # else the early bytes filled it: resume_writing will
            client.transport.resume_reading()

    def forward(self, src: _Side, data: bytes) -> None:
        dst = src.peer
        if dst is None or dst.transport is None or dst.transport.is_closing():
            return  # the other side is going; so are we (its connection_lost closes us)
        dst.transport.write(data)
        relay = self.relay
        if src.upstream:
            relay.bytes_to_client += len(data)
        else:
            relay.bytes_to_active += len(data)
        size = dst.transport.get_write_buffer_size()
        if size > relay.peak_buffered:
            relay.peak_buffered = size

    def eof_from(self, src: _Side) -> None:
        src.eof = True
        dst = src.peer
        if dst is None and not src.upstream and not self.closing:
            return  # passed on once the upstream exists (joined)
        if dst is not None and dst.transport is not None and dst.transport.is_closing():
            return  # we are closing both anyway
        if dst is None or dst.transport is None or dst.eof or not dst.transport.can_write_eof():
            self.end()
        else:
            dst.transport.write_eof()  # sent after what is already buffered for it

    def end(self) -> None:
        """Both sides are done (or one cannot be half-closed): close both, flushing."""
        self.closing = True
        for side in self.sides():
            if side.transport is not None and not side.lost:
                side.transport.close()

    def drop(self) -> None:
        """Close both sockets now; abort what has not flushed within the linger."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.end()
        if not self.done() and self._linger is None:
            self._linger = self.relay._loop.call_later(self.relay.linger, self.abort)

    def abort(self) -> None:
        """Reset both sockets: what was cut short must not look like a clean end (a
        response delimited by the close would look complete after a FIN)."""
        self.closing = True
        for side in self.sides():
            if side.transport is not None and not side.lost:
                sock = side.transport.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                side.transport.abort()

    def lost(self, side: _Side, exc: Exception | None) -> None:
        if side is self.active or side is self.client:
            if exc is not None:
                self.abort()  # a reset on either side closes both
            else:
                self.end()
        if side is self.client and self.task is not None and not self.task.done():
            self.task.cancel()
        if self.done():
            if self._linger is not None:
                self._linger.cancel()
            self.relay._forget(self)

    def done(self) -> bool:
        return self.client.lost and (self.active is None or self.active.lost)

    def sides(self) -> list[_Side]:
        return [self.client] if self.active is None else [self.client, self.active]


class Relay:
    """One listener's relay on a standby: accept clients, pipe each to the active.

    `target()` gives the active's client address for this listener, or None when no
    active is known; call `changed()` when its answer may have changed. Counters are
    plain attributes: `connections` (client connections held now, connecting or
    relayed), `accepted`, `refused` (closed for want of an active), `bytes_to_active`,
    `bytes_to_client`, `pauses` (times a full buffer stopped reading a side),
    `peak_buffered` and `buffered` (see the module docstring's buffering policy).
    """

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        target: Callable[[], Address | None],
        *,
        connect_timeout: float = 5.0,
        high_water: int = HIGH_WATER,
        low_water: int | None = None,
        linger: float = LINGER,
    ) -> None:
        self.name = name
        self.host = host
        self.requested_port = port
        self.target = target
        self.connect_timeout = connect_timeout
        self.high_water = high_water
        self.low_water = high_water // 4 if low_water is None else low_water
        self.linger = linger
        # The bound address (port 0 asks for an ephemeral one), known after start().
        self.address: Address = (host, port)
        self.accepted = 0
        self.refused = 0
        self.bytes_to_active = 0
        self.bytes_to_client = 0
        self.pauses = 0
        self.peak_buffered = 0
        self._pipes: set[_Pipe] = set()
        # Local addresses of our upstream sockets, to recognize ourselves as a target.
        self._outbound: set[Address] = set()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # start()
        # Completed by changed(): connections waiting for an active look again.
        self._change: asyncio.Future[None] | None = None
        self._all_gone: asyncio.Future[None] | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        return self.address[1]

    @property
    def connections(self) -> int:
        """Client connections held now (waiting for the active, or relayed)."""
        return len(self._pipes)

    @property
    def buffered(self) -> int:
        """Bytes in the relay's write buffers now, both directions, every connection."""
        total = 0
        for pipe in self._pipes:
            for side in pipe.sides():
                if side.transport is not None and not side.lost:
                    total += side.transport.get_write_buffer_size()
            total += sum(map(len, pipe.client.early))
        return total

    async def start(self) -> None:
        """Bind and accept (on the running loop, which then owns the relay)."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: _Pipe(self).client, self.host, self.requested_port, backlog=1024
        )
        self.address = tuple(self._server.sockets[0].getsockname()[:2])  # type: ignore[assignment]

    async def stop(self) -> None:
        """Stop accepting, drop every connection, wait (bounded) for them to close."""
        if self._server is not None:
            self._server.close()
        self.drop("relay stopped")
        if self._pipes:
            gone = self._all_gone = self._loop.create_future()
            await asyncio.wait([gone], timeout=self.linger + 1.0)
            self._all_gone = None
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), self.linger + 1.0)
            self._server = None

    def changed(self) -> None:
        """`target()` may answer differently now: waiting connections ask it again."""
        change, self._change = self._change, None
        if change is not None and not change.done():
            change.set_result(None)

    def drop(self, reason: str) -> int:
        """Close every client connection (relayed, or still waiting for an active), so
        their clients reconnect; how many. Used when the active changes, and when this
        node stops being a standby."""
        pipes = list(self._pipes)
        if pipes:
            log.info("relay %s: dropping %d connections: %s", self.name, len(pipes), reason)
        for pipe in pipes:
            pipe.drop()
        return len(pipes)

    # -- connections ------------------------------------------------------------------

    def _accepted(self, pipe: _Pipe, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        pipe.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self._pipes.add(pipe)
        self.accepted += 1
        if peer is not None and (peer[0], peer[1]) in self._outbound:
            # Our own upstream socket: the target is this relay (see the module docstring).
            log.warning("relay %s: the active's address is this relay; closing", self.name)
            self.refused += 1
            pipe.drop()
            return
        pipe.task = self._loop.create_task(self._open(pipe))

    def _forget(self, pipe: _Pipe) -> None:
        self._pipes.discard(pipe)
        if pipe.local is not None:
            self._outbound.discard(pipe.local)
        gone = self._all_gone
        if not self._pipes and gone is not None and not gone.done():
            gone.set_result(None)

    async def _open(self, pipe: _Pipe) -> None:
        """Connect `pipe` to the active within connect_timeout, or close the client."""
        error = False
        try:
            failure = await self._reach(pipe)
        except Exception as exc:  # the caller's target(), say: the client must not hang
            failure, error = f"finding the active failed: {exc!r}", True
        if not failure:
            return
        log.warning("relay %s: closing %s: %s", self.name, pipe.peer, failure, exc_info=error)
        self.refused += 1
        pipe.task = None  # this task: drop() must not cancel it
        pipe.drop()

    async def _reach(self, pipe: _Pipe) -> str:
        """Connect `pipe` upstream; why not ("" once connected)."""
        loop = self._loop
        deadline = loop.time() + self.connect_timeout
        tried: set[Address] = set()
        failure = ""
        while True:
            address = self.target()
            left = deadline - loop.time()
            if address is not None and address not in tried and left > 0:
                tried.add(address)
                host, port = address
                try:
                    async with asyncio.timeout(left):
                        await self._connect(pipe, host, port)
                except TimeoutError:
                    failure = f"connecting to the active at {host}:{port} timed out"
                except OSError as exc:
                    failure = f"cannot connect to the active at {host}:{port}: {exc}"
                else:
                    log.debug("relay %s: %s relayed to %s:%d", self.name, pipe.peer, host, port)
                    return ""
                continue  # a new address may be known by now; else we give up below
            if failure:
                return failure
            if left <= 0:
                return f"no active known within {self.connect_timeout:g}s"
            await self._wait_for_change(left)

    async def _connect(self, pipe: _Pipe, host: str, port: int) -> None:
        """Connect `pipe` upstream to the first of `host`'s addresses that answers.

        By hand rather than `create_connection`: our end's address must be known (in
        `_outbound`) from the connect() call on, before the loop can accept a
        connection from it, or a relay targeting itself is not recognized in time.
        """
        loop = self._loop
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"{host} has no address")
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                with contextlib.suppress(BlockingIOError):
                    sock.connect(sockaddr)  # picks our address and port at once
                local = sock.getsockname()
                pipe.local = (local[0], local[1])
                self._outbound.add(pipe.local)
                await self._writable(sock)
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, os.strerror(err))
                await loop.create_connection(lambda: _Side(pipe, upstream=True), sock=sock)
                return
            except BaseException as exc:
                sock.close()
                if pipe.local is not None:
                    self._outbound.discard(pipe.local)
                    pipe.local = None
                if not isinstance(exc, OSError):
                    raise
                error = exc
        raise error

    async def _writable(self, sock: socket.socket) -> None:
        """Until a connecting socket is writable (connected, or failed: SO_ERROR)."""
        done = self._loop.create_future()
        fd = sock.fileno()
        self._loop.add_writer(fd, lambda: done.done() or done.set_result(None))
        try:
            await done
        finally:
            self._loop.remove_writer(fd)

    async def _wait_for_change(self, left: float) -> None:
        change = self._change
        if change is None or change.done():
            change = self._change = self._loop.create_future()
        await asyncio.wait([change], timeout=min(left, POLL))
