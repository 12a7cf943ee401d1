"""The console port (ActiveMQ's 8161): Prometheus /metrics and /healthz, on aiohttp.

The web console and admin REST API will join these routes; for now the port serves
what operators and load-balancers need to watch a broker.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from broker.listeners import ListenerContext, serve_http
from broker.metrics import render


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

    async def healthz(_request: web.Request) -> web.Response:
        if ctx.serving():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "starting"}, status=503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
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
