"""The AMQP 1.0 listener: binds the port and owns the set of live AmqpConnections."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from broker.config import AmqpSettings
from broker.core import Core
from protocols.amqp.connection import AmqpConnection

log = logging.getLogger("zonemq.amqp")


class AmqpListener:
    """A bound AMQP server socket and its connections (all on one event loop)."""

    def __init__(
        self,
        core: Core,
        settings: AmqpSettings,
        *,
        users: Mapping[str, str],
        broker_name: str,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.core = core
        self.settings = settings
        self.users = users
        self.broker_name = broker_name
        self.started_ms = int(time.time() * 1000)
        self.loop = loop
        self.connections: set[AmqpConnection] = set()
        self.server: asyncio.Server | None = None
        self.address: tuple[str, int] = ("", 0)

    async def start(self, host: str) -> None:
        self.server = await self.loop.create_server(
            lambda: AmqpConnection(self), host, self.settings.port, backlog=1024
        )
        self.address = self.server.sockets[0].getsockname()[:2]

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) for dispositions still owed, then close every connection."""
        owed = [f for c in self.connections for f in c.pending]
        if owed:
            await asyncio.wait(owed, timeout=timeout)
            # Let the dispositions' done-callbacks run before closing.
            await asyncio.sleep(0)
        for conn in list(self.connections):
            conn.shutdown()
        if self.server is not None:
            await self.server.wait_closed()


async def start(broker: object) -> AmqpListener:
    """Registry entry point: start the AMQP listener for `broker` (a broker.server.Broker)."""
    from broker.server import Broker

    assert isinstance(broker, Broker)
    settings = broker.settings
    listener = AmqpListener(
        broker.core,
        settings.listeners.amqp,
        users=settings.auth.users,
        broker_name=settings.broker.name,
        loop=asyncio.get_running_loop(),
    )
    await listener.start(settings.broker.bind)
    return listener
