"""The SQS HTTP listener: aiohttp on the broker's event loop, both wire protocols on one
port (ElasticMQ's 9324 by default).

A request with ``X-Amz-Target: AmazonSQS.<Action>`` is the JSON 1.0 protocol; any other
is the Query protocol (``Action`` in the form body or the query string, the queue URL
in ``QueueUrl`` or in the path). The handler's result or SqsError is rendered in the
request's protocol (wire.py). Stop: receivers waiting in long polls are answered with
what they have, requests already accepted are answered and later ones refused (503),
all within the broker's shutdown timeout (AwsListener).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import HttpVersion11, web
from aiohttp.hdrs import CONTENT_TYPE, EXPECT
from aiohttp.http_exceptions import HttpProcessingError

from broker.auth import REQUEST_PEER, Auth
from broker.core import CoreError
from broker.core.errors import WriteRefused
from broker.listeners import ListenerContext, serve_http
from protocols.aws import authz, shapes, sigv4, sns_authz, sns_wire, wire
from protocols.aws.errors import SqsError, from_core
from protocols.aws.queues import MetadataStore, QueueRegistry
from protocols.aws.requestmetrics import ACTION, RequestMetrics
from protocols.aws.resolve import Context
from protocols.aws.serverlog import ServerLog
from protocols.aws.sns import SnsService
from protocols.aws.sns_envelope import Signer
from protocols.aws.sns_topics import TopicRegistry
from protocols.aws.sqs import SqsService

log = logging.getLogger("zonemq.aws")

_TARGET_PREFIX = "AmazonSQS."
_JSON_CONTENT_TYPE = f"{wire.JSON_CONTENT_TYPE}; charset=utf-8"


class AwsListener:
    """The running aiohttp sites (HTTP and/or HTTPS) and the SQS state behind them.

    Graceful stop (uvicorn's order): `stop_accepting` refuses every request whose
    handler starts from then on (503 ServiceUnavailable, connection closed) and stops
    everything that waits (SqsService.stop_waiting); `drain` closes the listening
    sockets, waits (bounded) until every request accepted before has been handled, so
    its response is owed no more (a SendMessage waiting for its journal barrier, a
    body still arriving), and only then lets aiohttp close the connections. aiohttp's
    own shutdown cannot be that wait: it stops reading every connection first, so a
    request whose body was still arriving never completes, and it cancels handlers
    after its short timeout.
    """

    def __init__(
        self,
        runner: web.BaseRunner,
        addresses: dict[str, tuple[str, int]],
        service: SqsService,
        app: SqsApp,
        sns: SnsService | None = None,
    ) -> None:
        self.sns = sns
        self.runner = runner
        self.addresses = addresses
        self.address = next(iter(addresses.values()))
        self.service = service
        self.app = app

    def stop_accepting(self) -> None:
        self.app.draining = True
        self.service.stop_waiting()

    async def drain(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.stop_accepting()  # idempotent; the broker has called it already
        for site in list(self.runner.sites):
            await site.stop()  # closes the listening socket; connections stay
        # What is left of the bound after this wait is aiohttp's (`grace`).
        if not await self.app.idle(deadline - grace(timeout) - loop.time()):
            log.warning(
                "SQS: %d requests still unanswered after %.1fs; closing their connections",
                self.app.active,
                timeout,
            )
        self.service.close()
        if self.sns is not None:
            await self.sns.close()
        # Handlers are done: aiohttp writes their responses, then closes every
        # connection (idle keep-alive ones at once), cancelling what is left.
        await self.runner.cleanup()


class SqsApp:
    """The aiohttp request handler: protocol detection, auth, dispatch, rendering.

    It runs on aiohttp's low-level server (`web.Server`), not behind an Application: one
    handler takes every method and path, so the router, match info and middleware
    chain an Application runs per request bought nothing (they were ≈ 4 % of the
    broker's CPU under SQS load: bench/README.md "SQS"). What the Application did that
    matters is done here: the ``Expect: 100-continue`` answer (`_expect`) and 404 for a
    request target that is not a path.
    """

    def __init__(
        self,
        service: SqsService,
        auth: Auth,
        account: str,
        region: str = "us-east-1",
        max_body: int = 8 * 1024 * 1024,
        sns: SnsService | None = None,
        metrics: RequestMetrics | None = None,
    ) -> None:
        self.sns = sns
        self.metrics = metrics
        self.service = service
        self.auth = auth
        self.account = account
        self.region = region
        self.max_body = max_body
        # Request ids in UUID form, unique per broker run: a random prefix and a counter
        # (uuid4 per request cost a urandom call each).
        self._request_prefix = uuid.uuid4().hex[:20]
        self._requests = itertools.count(1)
        # Graceful stop: requests whose handler starts once `draining` is set are
        # refused; `active` counts the ones accepted and not yet handled, and `_idle`
        # completes when it falls to 0 during a drain.
        self.draining = False
        self.active = 0
        self._idle: asyncio.Future[None] | None = None

    async def handle(self, request: web.BaseRequest) -> web.Response:
        # Before anything of ours runs, as the Application did (no metrics for these).
        if not request.path.startswith("/"):
            # "OPTIONS *" and the like: not matched by the Application's catch-all route.
            raise web.HTTPNotFound()
        if request.headers.get(EXPECT):
            await _expect(request)
        p = self._request_prefix
        request_id = f"{p[:8]}-{p[8:12]}-{p[12:16]}-{p[16:20]}-{next(self._requests):012x}"
        as_json = "X-Amz-Target" in request.headers
        if self.draining:
            # Not accepted: nothing of it has run. Connection closed after the answer.
            refused = SqsError("ServiceUnavailable", "The broker is shutting down.")
            response = self._refusal(refused, as_json, request_id, request)
            response.force_close()
            return response
        self.active += 1
        REQUEST_PEER.set(request.remote or "?")
        started = time.perf_counter()
        response = None
        try:
            response = await self._handle(request, request_id)
            return response
        finally:
            if self.metrics is not None:
                self.metrics.observe(request, response, time.perf_counter() - started)
            self.active -= 1
            idle = self._idle
            if not self.active and idle is not None and not idle.done():
                idle.set_result(None)

    async def idle(self, timeout: float) -> bool:
        """Wait until no accepted request is being handled (at most `timeout` s);
        False if some still are."""
        if self.active:
            self._idle = asyncio.get_running_loop().create_future()
            await asyncio.wait([self._idle], timeout=max(timeout, 0.0))
        return not self.active

    async def _handle(self, request: web.BaseRequest, request_id: str) -> web.Response:
        target = request.headers.get("X-Amz-Target")
        as_json = target is not None
        action = ""
        sns = self.sns
        if sns is not None and not as_json:
            if request.method == "GET" and request.path == sns.signer.cert_path:
                # SigningCertURL: public, as AWS's certificates are.
                return web.Response(body=sns.signer.pem, content_type="application/x-pem-file")
            scope = sigv4.scope_service(
                request.headers.get("Authorization"), request.rel_url.raw_query_string
            )
            if scope == "sns":
                return await self._handle_sns(request, request_id)
        try:
            head = self._check_head(request)
            body = await self._read_body(request, head)
            sender = self._authenticate(request, head, body)
            ctx = Context(f"{request.scheme}://{request.host}", sender, self._region(request, head))
            if head is not None and head.service != sigv4.SERVICE:
                # An SNS-scoped signature on an SQS JSON request.
                raise SqsError(
                    "SignatureDoesNotMatch",
                    f"Credential should be scoped to correct service: '{sigv4.SERVICE}'.",
                )
            if as_json:
                assert target is not None
                action = target[len(_TARGET_PREFIX) :] if target.startswith(_TARGET_PREFIX) else ""
                handler = self.service.actions.get(action)
                if handler is None:
                    raise SqsError("UnknownOperationException", "")
                params = wire.parse_json(body)
            else:
                fields = dict(wire.form_fields(request.rel_url.raw_query_string))
                if body:
                    try:
                        text = body.decode("utf-8")
                    except UnicodeDecodeError:
                        raise SqsError(
                            "InvalidParameterValue", "The request body is not valid UTF-8."
                        ) from None
                    fields.update(wire.form_fields(text))
                if sns is not None and _is_sns(fields, self.service.actions, sns.actions):
                    # Unsigned (or signed for no service we know): SNS by its Action.
                    return await self._dispatch_sns(fields, ctx, request_id, request)
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
            request[ACTION] = ("sqs", action)
            shapes.check(action, params, as_json)
            authz.authorize(self.auth, self.service, sender, action, params, ctx.region)
            result = await handler(params, ctx)
            if action == "ListQueues":
                result = authz.filter_list(self.auth, self.service, sender, result, ctx.region)
        except (SqsError, CoreError) as exc:
            # A refusal of the core is the client's error, with its SQS code (errors.py).
            # No local names the exception: its traceback holds this frame (the body),
            # and a cycle would keep that until the next garbage collection.
            return self._refusal(
                exc if isinstance(exc, SqsError) else from_core(exc), as_json, request_id, request
            )
        except WriteRefused as exc:
            # In our journal but not replicated: 503 (SDKs retry it) with the reason.
            err = SqsError("ServiceUnavailable", str(exc))
            status, headers, payload = (
                wire.json_error(err) if as_json else wire.xml_error(err, request_id)
            )
            return web.Response(status=status, body=payload, headers=headers)
        except (web.HTTPException, ConnectionError):
            # ConnectionError: the client went away mid-body; aiohttp drops the request
            # (and logs it, as one DEBUG line: serverlog.py).
            raise
        except Exception:
            log.exception("SQS %s failed", action or "request")
            err = SqsError("InternalFailure", "The request processing has failed.")
            status, headers, payload = (
                wire.json_error(err) if as_json else wire.xml_error(err, request_id)
            )
            return web.Response(status=status, body=payload, headers=headers)
        if as_json:
            # The bytes and headers web.json_response made (json.dumps with its defaults,
            # the charset it adds), without its text → bytes and content-type parsing.
            return web.Response(
                body=json.dumps(result).encode(),
                headers={"x-amzn-RequestId": request_id, CONTENT_TYPE: _JSON_CONTENT_TYPE},
            )
        return web.Response(
            body=wire.xml_response(action, result, request_id),
            content_type="text/xml",
            headers={"x-amzn-RequestId": request_id},
        )

    async def _handle_sns(self, request: web.BaseRequest, request_id: str) -> web.Response:
        """A request whose credential scope names SNS: authenticated as an SQS one, read
        as SNS's Query protocol, answered in SNS's XML (errors included)."""
        try:
            head = self._check_head(request)
            body = await self._read_body(request, head)
            sender = self._authenticate(request, head, body)
            ctx = Context(f"{request.scheme}://{request.host}", sender, self._region(request, head))
            fields = dict(wire.form_fields(request.rel_url.raw_query_string))
            if body:
                try:
                    fields.update(wire.form_fields(body.decode("utf-8")))
                except UnicodeDecodeError:
                    raise sns_wire.invalid("the request body is not valid UTF-8") from None
        except SqsError as exc:
            return self._sns_refusal(exc.query_code, exc.message, exc.status, request_id, request)
        except sns_wire.SnsError as exc:
            return self._sns_refusal(exc.code, exc.message, exc.status, request_id, request)
        return await self._dispatch_sns(fields, ctx, request_id, request)

    async def _dispatch_sns(
        self, fields: dict[str, str], ctx: Context, request_id: str, request: web.BaseRequest
    ) -> web.Response:
        sns = self.sns
        assert sns is not None
        action = fields.get("Action", "")
        try:
            if not action:
                raise sns_wire.SnsError(
                    "MissingAction", "The request must contain the parameter Action."
                )
            handler = sns.actions.get(action)
            if handler is None:
                raise sns_wire.SnsError(
                    "InvalidAction", f"The action {action} is not valid for this endpoint."
                )
            request[ACTION] = ("sns", action)
            _, params = sns_wire.parse_params(fields)
            sns_authz.authorize(self.auth, sns, ctx.sender_id, action, params, ctx.region)
            result = await handler(params, ctx)
            result = sns_authz.filter_list(self.auth, sns, ctx.sender_id, action, result)
        except sns_wire.SnsError as exc:
            status, headers, payload = sns_wire.xml_error(
                exc.code, exc.message, exc.status, request_id
            )
            return web.Response(status=status, body=payload, headers=headers)
        except SqsError as exc:
            status, headers, payload = sns_wire.xml_error(
                exc.query_code, exc.message, exc.status, request_id
            )
            return web.Response(status=status, body=payload, headers=headers)
        except WriteRefused as exc:
            status, headers, payload = sns_wire.xml_error(
                "ServiceUnavailable", str(exc), 503, request_id
            )
            return web.Response(status=status, body=payload, headers=headers)
        except Exception:
            log.exception("SNS %s failed", action or "request")
            status, headers, payload = sns_wire.xml_error(
                "InternalError", "The request processing has failed.", 500, request_id
            )
            return web.Response(status=status, body=payload, headers=headers)
        return web.Response(
            body=sns_wire.xml_response(action, result, request_id),
            content_type="text/xml",
            headers={"x-amzn-RequestId": request_id},
        )

    def _sns_refusal(
        self, code: str, message: str, status: int, request_id: str, request: web.BaseRequest
    ) -> web.Response:
        status, headers, payload = sns_wire.xml_error(code, message, status, request_id)
        response = web.Response(status=status, body=payload, headers=headers)
        if not request.content.is_eof():
            response.force_close()
        return response

    def _refusal(
        self, err: SqsError, as_json: bool, request_id: str, request: web.BaseRequest
    ) -> web.Response:
        status, headers, payload = (
            wire.json_error(err) if as_json else wire.xml_error(err, request_id)
        )
        headers["x-amzn-RequestId"] = request_id
        response = web.Response(status=status, body=payload, headers=headers)
        if not request.content.is_eof():
            # Refused before its body was read (or part-way): close rather than let
            # aiohttp read on through the unwanted rest.
            response.force_close()
        return response

    def _check_head(self, request: web.BaseRequest) -> sigv4.Head | None:
        """With users set: the signature checks that need no body (sigv4.check_head), run
        before any of the body is read, so a request that cannot be genuine (no signature
        at all included) is refused without the broker buffering what it sends. None when
        no users are set."""
        auth = self.auth
        if not auth.required:
            return None
        source = request.remote or "?"
        if auth.throttle.blocked(source):
            auth.failed(None, source, "SQS", "too many failed logins")
            raise SqsError("AccessDenied", "Too many failed logins; try again later.")
        try:
            return sigv4.check_head(
                request.rel_url.raw_query_string,
                request.headers,
                auth.signing_secrets,
                datetime.now(UTC),
            )
        except SqsError as exc:
            self._failed(request, exc)
            raise

    async def _read_body(self, request: web.BaseRequest, head: sigv4.Head | None) -> bytes:
        """The body, refused (RequestEntityTooLarge) past the cap from Content-Length
        before any of it is read, or as soon as a chunked body passes it."""
        limit = self.max_body
        declared = request.content_length
        if declared is not None and declared > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    chunks.clear()  # not kept alive by the exception's traceback
                    raise _too_large(limit)
                chunks.append(chunk)
        except HttpProcessingError as exc:
            # Broken chunked framing: the client's HTTP error, as aiohttp's parser answers.
            raise web.HTTPBadRequest(text=f"Malformed request body: {exc.message}") from None
        return b"".join(chunks)

    def _authenticate(self, request: web.BaseRequest, head: sigv4.Head | None, body: bytes) -> str:
        """The sender id: the verified access key when users are configured, else the
        access key the client names (unchecked), else the account id."""
        auth = self.auth
        query = request.rel_url.raw_query_string
        if not auth.required:
            return sigv4.access_key(request.headers.get("Authorization"), query) or self.account
        assert head is not None  # _check_head returned one or raised
        try:
            return sigv4.check_signature(
                head,
                request.method,
                request.rel_url.raw_path,
                query,
                request.headers,
                body,
            )
        except SqsError as exc:
            self._failed(request, exc)
            raise

    def _region(self, request: web.BaseRequest, head: sigv4.Head | None) -> str:
        """The request's region (regions.py): its verified credential scope's, or with no
        users the scope it names (checked for shape), or the default when unsigned."""
        if head is not None:
            return head.region
        return sigv4.scope_region(
            request.headers.get("Authorization"), request.rel_url.raw_query_string, self.region
        )

    def _failed(self, request: web.BaseRequest, exc: SqsError) -> None:
        # Bad credentials count toward the throttle; a malformed header does too.
        key = sigv4.access_key(
            request.headers.get("Authorization"), request.rel_url.raw_query_string
        )
        self.auth.failed(key, request.remote or "?", "SQS", exc.name)


def _is_sns(fields: dict[str, str], sqs_actions: object, sns_actions: object) -> bool:
    """An unsigned Query request is SNS's when its Action is SNS's alone, or is shared
    (none is, today) and it names a topic."""
    action = fields.get("Action", "")
    assert isinstance(sqs_actions, dict) and isinstance(sns_actions, dict)
    if action not in sns_actions:
        return False
    return action not in sqs_actions or "TopicArn" in fields


def grace(timeout: float) -> float:
    """The part of the drain's bound left to aiohttp to write the last answers and
    close the connections (the rest waits for accepted requests to be handled)."""
    return min(1.0, timeout / 4)


async def _expect(request: web.BaseRequest) -> None:
    """An ``Expect`` header, answered as aiohttp's Application answers it: ``100
    Continue`` for ``100-continue`` on HTTP/1.1 (the client then sends its body), 417
    for any other expectation; HTTP/1.0 ignores it."""
    expect = request.headers.get(EXPECT, "")
    if request.version == HttpVersion11:
        if expect.lower() != "100-continue":
            raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        # Not part of the response's size (aiohttp resets it too).
        request.writer.output_size = 0
        await request.writer.drain()


def _too_large(limit: int) -> SqsError:
    return SqsError("RequestEntityTooLarge", f"Request body must be at most {limit} bytes.")


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
    service = SqsService(
        ctx.core,
        ctx.core.leases,
        registry,
        send_block_timeout=aws.send_block_timeout,
        max_blocked_sends=aws.max_blocked_sends,
    )
    topics = TopicRegistry(store, account=aws.account_id, region=aws.region)
    signer_dir = Path(settings.broker.data_dir) / "sns" if ctx.core.records.persists else None
    sns = SnsService(
        ctx.core,
        service,
        topics,
        Signer.load_or_create(signer_dir),
        pending_expiry=aws.sns_pending_expiry,
        token_expiry=aws.sns_token_expiry,
    )
    # The body cap is SqsApp's (checked from Content-Length before reading).
    handler = SqsApp(
        service,
        ctx.auth,
        aws.account_id,
        aws.region,
        aws.max_request_size,
        sns,
        RequestMetrics(ctx.registry),
    )
    server = web.Server(
        handler.handle,
        access_log=None,
        # A request aiohttp's parser refuses is one INFO line, not an ERROR traceback.
        logger=ServerLog(log, ctx.name),
    )
    runner = web.ServerRunner(
        server,
        handle_signals=False,
        # aiohttp waits up to this twice (handlers to finish, then cancelled ones); by
        # then AwsListener.drain has waited for the handlers, so it only writes answers.
        shutdown_timeout=grace(settings.broker.shutdown_timeout) / 2,
    )
    await runner.setup()
    # One app (one SqsService) behind both sites: "aws" on port, "aws+ssl" on tls_port.
    addresses = await serve_http(ctx, runner)
    host, port = next(iter(addresses.values()))
    scheme = "https" if next(iter(addresses)) != ctx.name else "http"
    sns.base_url = f"{scheme}://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    return AwsListener(runner, addresses, service, handler, sns)


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
