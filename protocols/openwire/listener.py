"""The OpenWire listener: a broker.tcp.TcpListener serving OpenWireConnections."""

from __future__ import annotations

from broker.listeners import ListenerContext, serve_tcp
from broker.tcp import TcpListener
from protocols.openwire.connection import OpenWireConnection

OpenWireListener = TcpListener[OpenWireConnection]


async def start(ctx: ListenerContext) -> OpenWireListener:
    """Registry entry point (broker.listeners): serve OpenWire on this listener's port."""
    return await serve_tcp(ctx, OpenWireConnection)
