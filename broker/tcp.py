"""TcpListener: a bound server socket and the live connections of one wire protocol.

Shared by the TCP protocols (STOMP, AMQP): each passes its asyncio.Protocol class, which
is built with the listener and reads what it needs from it (core, settings, users,
broker name, loop) and registers itself in `connections`. Stop order: stop accepting,
wait (bounded) for what connections still owe (their `pending` durability futures:
receipts, dispositions), then ask each to shut down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from broker.core import Core


class Connection(Protocol):
    """What a listener needs from one of its connections."""

    pending: set[asyncio.Future[Any]]

    def shutdown(self) -> None: ...


C = TypeVar("C", bound=Connection)


class TcpListener(Generic[C]):
    """A bound server socket and its connections (all on one event loop)."""

    def __init__(
        self,
        core: Core,
        settings: Any,
        *,
        users: Mapping[str, str],
        broker_name: str,
        loop: asyncio.AbstractEventLoop,
        connection: Callable[[TcpListener[C]], C],
    ) -> None:
        self.core = core
        # The protocol's settings table; it has at least `port`.
        self.settings = settings
        self.users = users
        self.broker_name = broker_name
        self.started_ms = int(time.time() * 1000)
        self.loop = loop
        self.connections: set[C] = set()
        self.server: asyncio.Server | None = None
        self.address: tuple[str, int] = ("", 0)
        self._connection = connection

    async def start(self, host: str) -> None:
        self.server = await self.loop.create_server(
            lambda: self._connection(self),  # type: ignore[arg-type,return-value]
            host,
            self.settings.port,
            backlog=1024,
        )
        self.address = self.server.sockets[0].getsockname()[:2]

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) for what connections still owe, then close every one."""
        owed = [f for c in self.connections for f in c.pending]
        if owed:
            await asyncio.wait(owed, timeout=timeout)
            # Let the futures' done-callbacks queue their frames before closing.
            await asyncio.sleep(0)
        for conn in list(self.connections):
            conn.shutdown()
        if self.server is not None:
            await self.server.wait_closed()
