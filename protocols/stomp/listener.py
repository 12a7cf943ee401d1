"""The STOMP listener: a broker.tcp.TcpListener serving StompConnections."""

from __future__ import annotations

import logging

from broker.listeners import ListenerContext, serve_tcp
from broker.tcp import TcpListener
from protocols.stomp import _ext, codec, mapping
from protocols.stomp.connection import StompConnection

StompListener = TcpListener[StompConnection]

log = logging.getLogger("zonemq.stomp")

_logged = False


def implementation() -> str:
    """Which STOMP codec and mapping are in use, in one line (issue 15)."""
    if codec.IMPLEMENTATION == mapping.IMPLEMENTATION == "compiled":
        return "STOMP codec and mapping: compiled (Cython)"
    return (
        f"STOMP codec: {codec.IMPLEMENTATION}, mapping: {mapping.IMPLEMENTATION}"
        f" (pure Python: {_ext.reason})"
    )


async def start(ctx: ListenerContext) -> StompListener:
    """Registry entry point (broker.listeners): serve STOMP on this listener's port."""
    global _logged
    if not _logged:
        # Once per process, however many STOMP listeners it starts.
        _logged = True
        log.info(implementation())
    return await serve_tcp(ctx, StompConnection)
