"""The console port (ActiveMQ's 8161): the web console at ``/``, Prometheus /metrics,
/healthz and the admin REST API under /api/ (protocols/http/admin.py), on aiohttp.

With users configured every route needs HTTP Basic credentials (checked, logged and
throttled by broker.auth as any login), except a bare ``/healthz`` (no query), which
says only up or down, for load-balancers.

The web console is a static page and script (protocols/http/static/) over the admin
API: the broker serves the files, the browser calls /api/ with the credentials it was
asked for. A browser sends those credentials on any request to this origin, whoever's
page makes it, so a request that changes state (any method but GET, HEAD, OPTIONS) is
refused (403) when the browser says it comes from another site (`Origin` not this
origin, or `Sec-Fetch-Site` cross-site or same-site): cross-site request forgery.
Clients that are not browsers send neither header and are not affected.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from broker.auth import Auth, Login
from broker.listeners import ListenerContext, serve_http
from broker.metrics import render
from broker.version import broker_version
from protocols.http.admin import USER, AdminApi, json_errors
from protocols.http.history import History

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger(__name__)
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="ZoneMQ", charset="UTF-8"'}
_STATIC = Path(__file__).with_name("static")
# The console's files, by the name they are served under (nothing else is).
_FILES = {
    "console.js": "text/javascript",
    "console.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The page loads only what this origin serves and cannot be framed (clickjacking).
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@web.middleware
async def same_origin(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Refuse a state-changing request a browser made for another site's page."""
    if request.method not in _SAFE_METHODS:
        fetch_site = request.headers.get("Sec-Fetch-Site")
        origin = request.headers.get("Origin")
        if fetch_site in ("cross-site", "same-site") or (
            origin is not None and origin != f"{request.scheme}://{request.host}"
        ):
            log.info(
                "console: cross-origin %s %s refused (Origin %s, Sec-Fetch-Site %s, from %s)",
                request.method,
                request.path,
                origin,
                fetch_site,
                request.remote,
            )
            return _refusal(request, 403, "cross-origin", "cross-origin request refused")
    return await handler(request)


def basic_auth(auth: Auth) -> Callable[[web.Request, _Handler], Awaitable[web.StreamResponse]]:
    """aiohttp middleware: HTTP Basic against `auth` when users are configured."""

    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if not auth.required or (request.path == "/healthz" and not request.query_string):
            request[USER] = ""
            return await handler(request)
        user = password = None
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(encoded, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            if ":" in decoded:
                user, _, password = decoded.partition(":")
        source = request.remote or "?"
        if user is None and not auth.throttle.blocked(source):
            # No credentials at all is a browser's first try, not a failed login.
            return _refusal(request, 401, "unauthorized", "credentials required", _CHALLENGE)
        outcome = auth.login(user, password, source, "console")
        if outcome is Login.THROTTLED:
            return _refusal(request, 429, "throttled", "too many failed logins")
        if outcome is not Login.OK:
            return _refusal(request, 401, "unauthorized", "invalid credentials", _CHALLENGE)
        # Who is asking, for the admin API's authorization checks.
        request[USER] = user
        return await handler(request)

    return middleware


def _refusal(
    request: web.Request, status: int, code: str, text: str, headers: dict[str, str] | None = None
) -> web.Response:
    """Plain text, except under /api/, where every answer is JSON."""
    if request.path.startswith("/api/"):
        return web.json_response({"error": code, "message": text}, status=status, headers=headers)
    return web.Response(status=status, text=text + "\n", headers=headers)


class ConsoleListener:
    """The running aiohttp sites on the console port (and its HTTPS port)."""

    def __init__(
        self,
        runner: web.AppRunner,
        addresses: dict[str, tuple[str, int]],
        sampler: asyncio.Task[None] | None = None,
    ) -> None:
        self.runner = runner
        self.addresses = addresses
        self.address = next(iter(addresses.values()))
        self.sampler = sampler

    def stop_accepting(self) -> None:
        pass

    async def drain(self, timeout: float) -> None:
        if self.sampler is not None:
            self.sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sampler
        await self.runner.cleanup()


async def _sample(ctx: ListenerContext, history: History, interval: float) -> None:
    """Every `interval` seconds, every destination's counters into `history`."""
    while True:
        history.take(time.time(), ctx.core.stats())
        await asyncio.sleep(interval)


async def _page(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(_STATIC / "index.html", headers=_PAGE_HEADERS)


async def _asset(request: web.Request) -> web.FileResponse:
    name = request.match_info["file"]
    kind = _FILES.get(name)
    if kind is None:
        raise web.HTTPNotFound()
    return web.FileResponse(_STATIC / name, headers={**_PAGE_HEADERS, "Content-Type": kind})


async def start(ctx: ListenerContext) -> ConsoleListener:
    """Registry entry point (broker.listeners): serve /metrics and /healthz."""
    registry = ctx.registry

    async def metrics(_request: web.Request) -> web.Response:
        body = render(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        body: dict[str, object] = {"status": "ok" if ctx.serving() else "starting"}
        # Details only with a query (authenticated when users are configured).
        if ctx.health is not None and request.query_string:
            body["cluster"] = ctx.health()
        return web.json_response(body, status=200 if ctx.serving() else 503)

    own = ctx.settings.listeners.console
    history = History(own.samples, own.sampled_destinations)
    # Cross-site refusals come before the login, so a forged request costs no attempt.
    app = web.Application(middlewares=[same_origin, basic_auth(ctx.auth), json_errors])
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", _page)
    app.router.add_get("/console/{file}", _asset)
    AdminApi(ctx, broker_version(), history, own.sample_interval).install(app)
    # Keep-alive HTTP clients must not hold a broker stop past its shutdown timeout.
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=min(1.0, ctx.settings.broker.shutdown_timeout),
    )
    await runner.setup()
    # "console" on port, "console+ssl" (HTTPS) on tls_port, as configured.
    addresses = await serve_http(ctx, runner)
    sampler = ctx.loop.create_task(_sample(ctx, history, own.sample_interval))
    return ConsoleListener(runner, addresses, sampler)
