"""The AMQP 1.0 listener: a broker.tcp.TcpListener serving AmqpConnections."""

from __future__ import annotations

import asyncio

from broker.tcp import TcpListener
from protocols.amqp.connection import AmqpConnection

AmqpListener = TcpListener[AmqpConnection]


async def start(broker: object) -> AmqpListener:
    """Registry entry point: start the AMQP listener for `broker` (a broker.server.Broker)."""
    from broker.server import Broker

    assert isinstance(broker, Broker)
    settings = broker.settings
    listener: AmqpListener = TcpListener(
        broker.core,
        settings.listeners.amqp,
        users=settings.auth.users,
        broker_name=settings.broker.name,
        loop=asyncio.get_running_loop(),
        connection=AmqpConnection,
    )
    await listener.start(settings.broker.bind)
    return listener
