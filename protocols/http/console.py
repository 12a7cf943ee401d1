"""The console port (ActiveMQ's 8161): Prometheus /metrics, /healthz and the admin REST
API under /api/ (protocols/http/admin.py), on aiohttp.

With users configured every route needs HTTP Basic credentials (checked, logged and
throttled by broker.auth as any login), except a bare ``/healthz`` (no query), which
says only up or down, for load-balancers.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from broker.auth import Auth, Login
from broker.listeners import ListenerContext, serve_http
from broker.metrics import render
from broker.version import broker_version
from protocols.http.admin import USER, AdminApi, json_errors

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="ZoneMQ", charset="UTF-8"'}


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

    def __init__(self, runner: web.AppRunner, addresses: dict[str, tuple[str, int]]) -> None:
        self.runner = runner
        self.addresses = addresses
        self.address = next(iter(addresses.values()))

    def stop_accepting(self) -> None:
        pass

    async def drain(self, timeout: float) -> None:
        await self.runner.cleanup()


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

    app = web.Application(middlewares=[basic_auth(ctx.auth), json_errors])
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    AdminApi(ctx, broker_version()).install(app)
    # Keep-alive HTTP clients must not hold a broker stop past its shutdown timeout.
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=min(1.0, ctx.settings.broker.shutdown_timeout),
    )
    await runner.setup()
    # "console" on port, "console+ssl" (HTTPS) on tls_port, as configured.
    return ConsoleListener(runner, await serve_http(ctx, runner))
