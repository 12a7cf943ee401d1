"""The AMQP 1.0 listener: a broker.tcp.TcpListener serving AmqpConnections."""

from __future__ import annotations

from broker.listeners import ListenerContext, serve_tcp
from broker.tcp import TcpListener
from protocols.amqp.connection import AmqpConnection

AmqpListener = TcpListener[AmqpConnection]


async def start(ctx: ListenerContext) -> AmqpListener:
    """Registry entry point (broker.listeners): serve AMQP on this listener's port."""
    return await serve_tcp(ctx, AmqpConnection)
