"""The STOMP listener: a broker.tcp.TcpListener serving StompConnections."""

from __future__ import annotations

from broker.listeners import ListenerContext, serve_tcp
from broker.tcp import TcpListener
from protocols.stomp.connection import StompConnection

StompListener = TcpListener[StompConnection]


async def start(ctx: ListenerContext) -> StompListener:
    """Registry entry point (broker.listeners): serve STOMP on this listener's port."""
    return await serve_tcp(ctx, StompConnection)
