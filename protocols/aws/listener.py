"""The SQS HTTP listener: aiohttp on the broker's event loop, both wire protocols on one
port (ElasticMQ's 9324 by default).

A request with ``X-Amz-Target: AmazonSQS.<Action>`` is the JSON 1.0 protocol; any other
is the Query protocol (``Action`` in the form body or the query string, the queue URL
in ``QueueUrl`` or in the path). The handler's result or SqsError is rendered in the
request's protocol (wire.py). Stop: receivers waiting in long polls are answered with
what they have, the HTTP server is closed within the broker's shutdown timeout.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from pathlib import Path
from urllib.parse import parse_qsl

from aiohttp import web

from broker.auth import Auth
from broker.core import CoreError
from broker.listeners import ListenerContext, serve_http
from protocols.aws import authz, sigv4, wire
from protocols.aws.errors import SqsError, from_core
from protocols.aws.queues import MetadataStore, QueueRegistry
from protocols.aws.resolve import Context
from protocols.aws.sqs import SqsService

log = logging.getLogger("zonemq.aws")

_TARGET_PREFIX = "AmazonSQS."
# Largest HTTP body: a 1 MiB batch, JSON-escaped, with room to spare.
_MAX_BODY = 8 * 1024 * 1024


class AwsListener:
    """The running aiohttp sites (HTTP and/or HTTPS) and the SQS state behind them."""

    def __init__(
        self, runner: web.AppRunner, addresses: dict[str, tuple[str, int]], service: SqsService
    ) -> None:
        self.runner = runner
        self.addresses = addresses
        self.address = next(iter(addresses.values()))
        self.service = service

    def stop_accepting(self) -> None:
        pass

    async def drain(self, timeout: float) -> None:
        self.service.close()
        await self.runner.cleanup()


class SqsApp:
    """The aiohttp request handler: protocol detection, auth, dispatch, rendering."""

    def __init__(self, service: SqsService, auth: Auth, account: str) -> None:
        self.service = service
        self.auth = auth
        self.account = account
        # Request ids in UUID form, unique per broker run: a random prefix and a counter
        # (uuid4 per request cost a urandom call each).
        self._request_prefix = uuid.uuid4().hex[:20]
        self._requests = itertools.count(1)

    async def handle(self, request: web.Request) -> web.Response:
        p = self._request_prefix
        request_id = f"{p[:8]}-{p[8:12]}-{p[12:16]}-{p[16:20]}-{next(self._requests):012x}"
        target = request.headers.get("X-Amz-Target")
        as_json = target is not None
        action = ""
        try:
            body = await request.read()
            sender = self._authenticate(request, body)
            ctx = Context(f"{request.scheme}://{request.host}", sender)
            if as_json:
                assert target is not None
                action = target[len(_TARGET_PREFIX) :] if target.startswith(_TARGET_PREFIX) else ""
                handler = self.service.actions.get(action)
                if handler is None:
                    raise SqsError("UnknownOperationException", "")
                params = wire.parse_json(body)
            else:
                fields = dict(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True))
                if body:
                    fields.update(
                        parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
                    )
                action, params = wire.parse_query(fields)
                if not action:
                    raise SqsError(
                        "MissingParameter", "The request must contain the parameter Action."
                    )
                handler = self.service.actions.get(action)
                if handler is None:
                    raise SqsError(
                        "InvalidAction", f"The action {action} is not valid for this endpoint."
                    )
                segments = [s for s in request.path.split("/") if s]
                if "QueueUrl" not in params and len(segments) == 2:
                    params["QueueUrl"] = f"{ctx.base_url}/{segments[0]}/{segments[1]}"
            authz.authorize(self.auth, self.service, sender, action, params)
            result = await handler(params, ctx)
            if action == "ListQueues":
                result = authz.filter_list(self.auth, sender, result)
        except (SqsError, CoreError) as exc:
            # A refusal of the core is the client's error, with its SQS code (errors.py).
            err = exc if isinstance(exc, SqsError) else from_core(exc)
            status, headers, payload = (
                wire.json_error(err) if as_json else wire.xml_error(err, request_id)
            )
            headers["x-amzn-RequestId"] = request_id
            return web.Response(status=status, body=payload, headers=headers)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("SQS %s failed", action or "request")
            err = SqsError("InternalFailure", "The request processing has failed.")
            status, headers, payload = (
                wire.json_error(err) if as_json else wire.xml_error(err, request_id)
            )
            return web.Response(status=status, body=payload, headers=headers)
        if as_json:
            return web.json_response(
                result,
                content_type=wire.JSON_CONTENT_TYPE,
                headers={"x-amzn-RequestId": request_id},
            )
        return web.Response(
            body=wire.xml_response(action, result, request_id),
            content_type="text/xml",
            headers={"x-amzn-RequestId": request_id},
        )

    def _authenticate(self, request: web.Request, body: bytes) -> str:
        """The sender id: the verified access key when users are configured, else the
        access key the client names (unchecked), else the account id."""
        auth = self.auth
        if not auth.required:
            return sigv4.access_key(request.headers.get("Authorization")) or self.account
        source = request.remote or "?"
        if auth.throttle.blocked(source):
            auth.failed(None, source, "SQS", "too many failed logins")
            raise SqsError("AccessDenied", "Too many failed logins; try again later.")
        try:
            return sigv4.verify(
                request.method,
                request.rel_url.raw_path,
                request.rel_url.raw_query_string,
                request.headers,
                body,
                auth.signing_secrets,
            )
        except SqsError as exc:
            # Bad credentials count toward the throttle; a malformed header does too.
            key = sigv4.access_key(request.headers.get("Authorization"))
            auth.failed(key, source, "SQS", exc.name)
            raise


async def start(ctx: ListenerContext) -> AwsListener:
    """Registry entry point (broker.listeners): serve the SQS API on this listener's port."""
    settings = ctx.settings
    aws = ctx.own
    # The journal adapter, reached through the core (the context has no store of its
    # own); without one (an in-memory core) SQS metadata lives for the run only.
    core_store = ctx.core.store
    store = core_store if isinstance(core_store, MetadataStore) else None
    if ctx.core.records.persists and store is None:
        log.warning("the store keeps no destination metadata: SQS attributes live in memory")
    registry = QueueRegistry(
        ctx.core,
        store,
        account=aws.account_id,
        region=aws.region,
        max_size=aws.max_message_size,
    )
    await _import_legacy(registry, Path(settings.broker.data_dir) / "sqs" / "queues.json")
    service = SqsService(ctx.core, ctx.core.leases, registry)
    app = web.Application(client_max_size=_MAX_BODY)
    handler = SqsApp(service, ctx.auth, aws.account_id)
    app.router.add_route("*", "/{tail:.*}", handler.handle)
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=min(1.0, settings.broker.shutdown_timeout),
    )
    await runner.setup()
    # One app (one SqsService) behind both sites: "aws" on port, "aws+ssl" on tls_port.
    return AwsListener(runner, await serve_http(ctx, runner), service)


async def _import_legacy(registry: QueueRegistry, path: Path) -> None:
    """Upgrade: queue metadata a pre-journal broker kept in ``queues.json`` goes into the
    journal once (durably, before serving), then the file is renamed so it is neither
    read again nor lost."""
    if registry.store is None or not path.exists():
        return
    done = registry.import_legacy(path)
    if done is not None:
        await done
    imported = path.with_name(path.name + ".imported")
    path.replace(imported)
    log.info(
        "SQS queue metadata imported from %s into the journal (file kept as %s)", path, imported
    )
