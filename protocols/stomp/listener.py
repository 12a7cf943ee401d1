"""The STOMP listener: a broker.tcp.TcpListener serving StompConnections."""

from __future__ import annotations

import asyncio

from broker.tcp import TcpListener
from protocols.stomp.connection import StompConnection

StompListener = TcpListener[StompConnection]


async def start(broker: object) -> StompListener:
    """Registry entry point: start the STOMP listener for `broker` (a broker.server.Broker)."""
    from broker.server import Broker

    assert isinstance(broker, Broker)
    settings = broker.settings
    listener: StompListener = TcpListener(
        broker.core,
        settings.listeners.stomp,
        users=settings.auth.users,
        broker_name=settings.broker.name,
        loop=asyncio.get_running_loop(),
        connection=StompConnection,
    )
    await listener.start(settings.broker.bind)
    return listener
