"""The listener registry, and the small context a protocol is started with.

The broker never imports a protocol package (an import-linter contract): each listener is
an import string in LISTENERS naming ``async def start(ctx: ListenerContext) -> Listener``.
Adding a protocol is one line here, its settings table in broker.config, and its package.
A protocol sees only the ListenerContext, never the Broker, so what protocols may reach
of the daemon is written down in one place.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from prometheus_client import CollectorRegistry

from broker.config import Settings
from broker.core import Core
from broker.tcp import Connection, TcpListener

# Listener name (its table under [listeners]) → "module:function", started in this order.
LISTENERS: dict[str, str] = {
    "stomp": "protocols.stomp.listener:start",
    "amqp": "protocols.amqp.listener:start",
    "aws": "protocols.aws.listener:start",
    "console": "protocols.http.console:start",
}


class Listener(Protocol):
    """What the broker needs from a started listener."""

    address: tuple[str, int]

    def stop_accepting(self) -> None: ...

    async def drain(self, timeout: float) -> None: ...


@dataclass(frozen=True)
class ListenerContext:
    """What a protocol is given: its name, the settings, the core, the loop, metrics.

    `serving` says whether the broker has finished starting and is not stopping (the
    console's /healthz). Protocols get nothing else of the daemon: no other listener,
    no journal, no lock.
    """

    name: str
    settings: Settings
    core: Core
    loop: asyncio.AbstractEventLoop
    registry: CollectorRegistry
    serving: Callable[[], bool]

    @property
    def own(self) -> Any:
        """This listener's table of settings (``[listeners.<name>]``)."""
        return getattr(self.settings.listeners, self.name)


def enabled(settings: Settings, name: str) -> bool:
    """Whether ``[listeners.<name>] enabled`` is on (true when the table has no flag)."""
    return bool(getattr(getattr(settings.listeners, name, None), "enabled", True))


async def start_listener(ctx: ListenerContext) -> Listener:
    """Import the registered protocol for `ctx.name` and start it."""
    module_name, _, func = LISTENERS[ctx.name].partition(":")
    start = getattr(importlib.import_module(module_name), func)
    listener: Listener = await start(ctx)
    return listener


C = TypeVar("C", bound=Connection)


async def serve_tcp(
    ctx: ListenerContext, connection: Callable[[TcpListener[C]], C]
) -> TcpListener[C]:
    """Start a TcpListener of `connection`s on the broker's bind address and this
    listener's port (every TCP push protocol starts this way)."""
    settings = ctx.settings
    listener: TcpListener[C] = TcpListener(
        ctx.core,
        ctx.own,
        users=settings.auth.users,
        broker_name=settings.broker.name,
        loop=ctx.loop,
        connection=connection,
    )
    await listener.start(settings.broker.bind)
    return listener
