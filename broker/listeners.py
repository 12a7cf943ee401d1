"""The listener registry, and the small context a protocol is started with.

The broker never imports a protocol package (an import-linter contract): each listener is
an import string in LISTENERS naming ``async def start(ctx: ListenerContext) -> Listener``.
Adding a protocol is one line here, its settings table in broker.config, and its package.
A protocol sees only the ListenerContext, never the Broker, so what protocols may reach
of the daemon is written down in one place.

TLS is not a protocol of its own: a listener whose table has ``tls_enabled`` binds a
second endpoint, ``<name>+ssl`` on its ``tls_port``, with the broker's one SSLContext
(broker/tls.py); `ListenerContext.endpoints` lists what to bind and `serve_tcp` /
`serve_http` bind them, so a new protocol that starts through either gets TLS too.
"""

from __future__ import annotations

import asyncio
import importlib
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry

from broker.auth import Auth
from broker.config import Settings
from broker.core import Core
from broker.tcp import Connection, TcpListener
from broker.tls import server_context

# Listener name (its table under [listeners]) → "module:function", started in this order.
LISTENERS: dict[str, str] = {
    "stomp": "protocols.stomp.listener:start",
    "amqp": "protocols.amqp.listener:start",
    "openwire": "protocols.openwire.listener:start",
    "aws": "protocols.aws.listener:start",
    "console": "protocols.http.console:start",
}


class Listener(Protocol):
    """What the broker needs from a started listener."""

    # The first endpoint's address, and every endpoint's by label ("stomp", "stomp+ssl").
    address: tuple[str, int]
    addresses: dict[str, tuple[str, int]]

    def stop_accepting(self) -> None: ...

    async def drain(self, timeout: float) -> None: ...


@dataclass(frozen=True)
class ListenerContext:
    """What a protocol is given: its name, the settings, the core, the loop, metrics,
    the broker's Auth.

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
    # Users, groups, the authorization map and the login throttle: one per broker.
    auth: Auth
    # The broker's one server SSLContext when any listener has tls_enabled.
    tls: ssl.SSLContext | None = None
    # More for /healthz to say (a cluster node's role, epoch and standbys), or None.
    health: Callable[[], dict[str, Any]] | None = None
    # The live connections of every TCP listener, by listener name (the admin API's
    # connection list; broker.push.PushConnection.describe / close_by_admin).
    connections: Callable[[], dict[str, Iterable[Any]]] | None = None

    @property
    def own(self) -> Any:
        """This listener's table of settings (``[listeners.<name>]``)."""
        return getattr(self.settings.listeners, self.name)

    def endpoints(self) -> list[Endpoint]:
        """What this listener binds: its plain port when ``enabled``, its TLS port when
        ``tls_enabled`` (a table without the flags has the plain port only)."""
        own = self.own
        out = []
        if getattr(own, "enabled", True):
            out.append(Endpoint(self.name, own.port, None))
        if getattr(own, "tls_enabled", False):
            if self.tls is None:
                raise RuntimeError(f"{self.name}: tls_enabled but no TLS context was built")
            out.append(Endpoint(f"{self.name}+ssl", own.tls_port, self.tls))
        return out


class Endpoint(NamedTuple):
    """One socket a listener binds: its label (the name, or ``<name>+ssl``), port, TLS."""

    label: str
    port: int
    ssl: ssl.SSLContext | None


def enabled(settings: Settings, name: str) -> bool:
    """Whether ``[listeners.<name>]`` binds anything: ``enabled`` (true when the table
    has no flag) or ``tls_enabled``."""
    own = getattr(settings.listeners, name, None)
    return bool(getattr(own, "enabled", True) or getattr(own, "tls_enabled", False))


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server SSLContext the TLS endpoints share, or None when no listener has
    ``tls_enabled`` (raises ConfigError naming the key of a file that does not load)."""
    wanted = any(
        getattr(getattr(settings.listeners, n, None), "tls_enabled", False) for n in LISTENERS
    )
    return server_context(settings.tls) if wanted else None


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
    listener's endpoints (every TCP push protocol starts this way)."""
    settings = ctx.settings
    listener: TcpListener[C] = TcpListener(
        ctx.core,
        ctx.own,
        users=settings.auth.users,
        auth=ctx.auth,
        broker_name=settings.broker.name,
        loop=ctx.loop,
        connection=connection,
        cert_users=settings.tls.cert_users,
    )
    await listener.start(
        settings.broker.bind, ctx.endpoints(), handshake_timeout=settings.tls.handshake_timeout
    )
    return listener


async def serve_http(ctx: ListenerContext, runner: web.BaseRunner) -> dict[str, tuple[str, int]]:
    """Bind one aiohttp site per endpoint of this listener on the broker's bind address
    (HTTPS with the TLS context); their addresses by label, in endpoint order."""
    addresses: dict[str, tuple[str, int]] = {}
    for endpoint in ctx.endpoints():
        site = web.TCPSite(
            runner, ctx.settings.broker.bind, endpoint.port, ssl_context=endpoint.ssl
        )
        bound = len(runner.addresses)
        await site.start()
        # runner.addresses lists every site's sockets in the order the sites started.
        host, port = runner.addresses[bound][:2]
        addresses[endpoint.label] = (host, port)
    return addresses
