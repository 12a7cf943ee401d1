"""TcpListener: the bound server sockets and the live connections of one wire protocol.

Shared by the TCP protocols (STOMP, AMQP): each passes its asyncio.Protocol class, which
is built with the listener and reads what it needs from it (core, settings, users,
broker name, loop) and registers itself in `connections` (and `forget`s itself when
its socket has closed).

Stop order (issue 10: a SIGTERM under load used to store messages whose RECEIPT never
left, because connections kept reading while the drain waited on a snapshot of what was
owed, and closing dropped what came later):
1. `stop_accepting`: no new connection, and every connection stops reading, so no new
   work arrives and what is owed can only shrink;
2. `drain`: wait (bounded by the deadline) until no connection has a `pending`
   durability future left (receipts, dispositions, output held for a delivery record),
   re-collecting them until none is left, since the journal keeps committing each turn;
3. ask each connection to `shutdown` (its owed frames were queued by the futures'
   callbacks and go out first), then wait (bounded) for the sockets to close, so the
   last bytes are written before the broker closes the journal and exits.

A listener binds one socket per endpoint (the plain port, the TLS port or both: TLS is
asyncio's transport, so a connection never knows which); its connections are one set,
so `max_connections` counts both. A TLS connection exists for the protocol only once its
handshake is done; a handshake that fails (a plaintext client, no client certificate
when one is required, TLS 1.1) closes that socket alone, and one that has not finished
within `handshake_timeout` is dropped; the closing TLS exchange has the same bound.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from broker.auth import Auth
from broker.core import Core


class Connection(Protocol):
    """What a listener needs from one of its connections."""

    pending: set[asyncio.Future[Any]]
    transport: asyncio.Transport | None

    def stop_reading(self) -> None: ...

    def shutdown(self) -> None: ...


C = TypeVar("C", bound=Connection)

# Seconds a graceful stop waits for peers to close after the EOF it sent them.
LINGER = 1.0


class TcpListener(Generic[C]):
    """Bound server sockets (one per endpoint) and their connections (one event loop)."""

    def __init__(
        self,
        core: Core,
        settings: Any,
        *,
        users: Mapping[str, str],
        auth: Auth,
        broker_name: str,
        loop: asyncio.AbstractEventLoop,
        connection: Callable[[TcpListener[C]], C],
        cert_users: Mapping[str, str] | None = None,
    ) -> None:
        self.core = core
        # The protocol's settings table; it has at least `port`.
        self.settings = settings
        self.users = users
        # Logins and the authorization map (broker/auth.py), shared by every listener.
        self.auth = auth
        self.broker_name = broker_name
        self.started_ms = int(time.time() * 1000)
        self.loop = loop
        self.connections: set[C] = set()
        # Bytes of half-received frames its connections hold together (they keep it:
        # broker.push.PushConnection._buffered), bounded by the protocol's budget.
        self.partial_bytes = 0
        # [tls] cert_users: a verified client certificate's CN -> user (broker/tls.py).
        self.cert_users: Mapping[str, str] = cert_users or {}
        self.servers: list[asyncio.Server] = []
        # The first endpoint's address, and each endpoint's by label ("stomp+ssl").
        self.address: tuple[str, int] = ("", 0)
        self.addresses: dict[str, tuple[str, int]] = {}
        self._connection = connection
        # Set by `drain` while it waits for the last sockets to close.
        self._all_gone: asyncio.Future[None] | None = None

    async def start(
        self,
        host: str,
        endpoints: Iterable[tuple[str, int, ssl.SSLContext | None]],
        *,
        handshake_timeout: float = 10.0,
    ) -> None:
        """Bind each endpoint (label, port, TLS context or None) on `host`."""
        for label, port, tls in endpoints:
            server = await self.loop.create_server(
                lambda: self._connection(self),  # type: ignore[arg-type,return-value]
                host,
                port,
                backlog=1024,
                ssl=tls,
                ssl_handshake_timeout=handshake_timeout if tls is not None else None,
                # Bounds the closing exchange too: a peer whose close_notify never
                # comes (seen with stomp.py closing as the broker stops) is cut off then.
                ssl_shutdown_timeout=handshake_timeout if tls is not None else None,
            )
            self.servers.append(server)
            self.addresses[label] = server.sockets[0].getsockname()[:2]
        self.address = next(iter(self.addresses.values()))

    def forget(self, conn: C) -> None:
        """`conn`'s socket has closed (its connection_lost)."""
        self.connections.discard(conn)
        gone = self._all_gone
        if not self.connections and gone is not None and not gone.done():
            gone.set_result(None)

    def stop_accepting(self) -> None:
        """Accept no new connection, and read no new frame on the ones we have."""
        for server in self.servers:
            server.close()
        for conn in self.connections:
            conn.stop_reading()

    async def drain(self, timeout: float) -> None:
        """Pay what connections owe (bounded by `timeout`), then close every one."""
        loop = self.loop
        deadline = loop.time() + timeout
        self.stop_accepting()  # idempotent; the broker has called it already
        while True:
            # A future's callback can owe another (a receipt queued behind held output),
            # so collect again until nothing is owed.
            owed = [f for c in self.connections for f in c.pending if not f.done()]
            left = deadline - loop.time()
            if not owed or left <= 0:
                break
            await asyncio.wait(owed, timeout=left)
        # The futures' done-callbacks (which queue the frames) ran before we woke; one more
        # turn lets the flushes they scheduled run too.
        await asyncio.sleep(0)
        for conn in list(self.connections):
            conn.shutdown()
        if self.connections:
            # A connection half-closes (PushConnection._end_transport): the peer gets
            # every byte, then EOF. One that closes then goes at once; one that keeps its
            # socket open is closed after LINGER (its input was read and dropped meanwhile,
            # so that close is a FIN, not a RST); one that reads nothing is cut off at the
            # deadline (with a short grace when the waits used it all).
            gone = self._all_gone = loop.create_future()
            await asyncio.wait([gone], timeout=min(LINGER, max(deadline - loop.time(), 0.5)))
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.close()
            if self.connections:
                await asyncio.wait([gone], timeout=max(deadline - loop.time(), 0.5))
            self._all_gone = None
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.abort()
        for server in self.servers:
            await server.wait_closed()
