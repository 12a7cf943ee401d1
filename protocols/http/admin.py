"""The admin REST API under /api/ on the console port: JSON, described by the OpenAPI 3
document it serves at /api/openapi.json.

It is a protocol like the others: it talks to the core through its ListenerContext
(Core calls, the broker's Auth, the live connections of the TCP listeners, the cluster
status) and knows no other protocol. Every route is one row of ROUTES, which both
registers it and describes it (protocols/http/openapi.py builds the document from the
rows), so the document cannot list a route the app lacks or miss one it has.

Names go in path segments URL-encoded (`a%2Fb` is queue `a/b`); aiohttp decodes them.
Operations that change state answer once their journal records are durable
(`Core.barrier`, as STOMP's receipts). Errors are ``{"error": code, "message": text}``:
404 for an unknown destination, message or connection, 400 for bad input, 403 when the
authorization map denies, 503 when a write was not replicated.

Rights, from the broker's one authorization map (broker/auth.py): browsing needs `read`
on the queue, sending `write` (and `admin` when the send would create it), and changing
a destination (purge, delete, move, retry, pause) `admin` on it; moving also needs
`write` on the target. Broker-wide actions (listing or closing connections) need
`admin` on every queue, that is on the wildcard `>`. Listing destinations and the
cluster status need a login only (as /metrics, which shows the same counters).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from broker.auth import ADMIN, READ, WRITE, exists
from broker.core import QUEUE, TOPIC, Address, CoreError, Message, Selector, SelectorError
from broker.core.admin import by_ids
from broker.core.errors import WriteRefused
from broker.listeners import ListenerContext
from broker.push import PushConnection
from protocols.http import views
from protocols.http.history import TOTAL, History
from protocols.http.openapi import document

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Core refusal codes -> HTTP status.
_CORE_STATUS = {"not-found": 404, "invalid": 400, "deleted": 404, "store-full": 507}
MAX_PAGE = 1000
# The logged-in user (console.basic_auth sets it; "" without users). aiohttp before
# 3.11 has no RequestKey and takes a plain string key.
USER: Any = web.RequestKey("user", str) if hasattr(web, "RequestKey") else "zonemq.user"
# Broker-wide rights are admin on every queue.
_EVERYTHING = Address(QUEUE, ">")


class ApiError(Exception):
    """A refusal of the admin API: its HTTP status, code and text."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Route:
    """One route: what registers it and what the OpenAPI document says of it."""

    method: str
    path: str
    handler: str  # the AdminApi method's name
    summary: str
    tag: str
    query: tuple[tuple[str, str, str], ...] = ()  # (name, type, description)
    body: dict[str, Any] | None = None  # JSON schema of the request body
    body_required: bool = True
    responses: dict[int, str] = field(default_factory=lambda: {200: "OK"})


_NAME = {"type": "string"}
_SELECTION = {
    "type": "object",
    "description": "exactly one of id, selector, all",
    "properties": {
        "to": {"type": "string", "description": "target queue (created if absent)"},
        "id": {"type": "string"},
        "selector": {"type": "string", "description": "JMS selector (ActiveMQ's rules)"},
        "all": {"type": "boolean"},
    },
    "required": ["to"],
    "additionalProperties": False,
}
_SEND = {
    "type": "object",
    "properties": {
        "body": {"type": "string"},
        "base64": {"type": "boolean", "description": "body is base64 (a bytes message)"},
        "persistent": {"type": "boolean", "default": True},
        "priority": {"type": "integer", "minimum": 0, "maximum": 9, "default": 4},
        "ttl_ms": {"type": "integer", "minimum": 0, "description": "0: never expires"},
        "correlation_id": {"type": "string"},
        "type": {"type": "string"},
        "group_id": {"type": "string"},
        "properties": {
            "type": "object",
            "additionalProperties": {"type": ["string", "integer", "number", "boolean"]},
        },
    },
    "additionalProperties": False,
}
_DEST = {404: "no such destination"}
_RETRY = {
    "type": "object",
    "description": "without a body (or without id) every message is retried",
    "properties": {"id": {"type": "string", "description": "retry this message only"}},
    "additionalProperties": False,
}
_HISTORY_KINDS = (QUEUE, TOPIC, "durable", "temp-queue", "temp-topic")

ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/openapi.json", "openapi", "This document", "meta"),
    Route("GET", "/api/broker", "broker", "Broker name, version and totals", "meta"),
    Route(
        "GET",
        "/api/cluster",
        "cluster",
        "Role, epoch, in-sync zones and standby lag",
        "meta",
        responses={200: "OK", 404: "not a cluster node"},
    ),
    Route(
        "GET",
        "/api/destinations",
        "destinations",
        "Queues and topics with their counters",
        "destinations",
        query=(("kind", "string", "queue, topic, temp-queue or temp-topic"),),
    ),
    Route(
        "GET",
        "/api/queues/{name}",
        "queue",
        "One queue",
        "destinations",
        responses={200: "OK", **_DEST},
    ),
    Route(
        "DELETE",
        "/api/queues/{name}",
        "delete_queue",
        "Delete a queue, its messages and consumers",
        "destinations",
        responses={200: "deleted", 409: "an SQS queue (delete it with DeleteQueue)", **_DEST},
    ),
    Route(
        "GET",
        "/api/topics/{name}",
        "topic",
        "One topic",
        "destinations",
        responses={200: "OK", **_DEST},
    ),
    Route(
        "DELETE",
        "/api/topics/{name}",
        "delete_topic",
        "Delete a topic and its subscriptions",
        "destinations",
        responses={200: "deleted", **_DEST},
    ),
    Route(
        "POST",
        "/api/topics/{name}/messages",
        "send_topic",
        "Publish a message",
        "messages",
        body=_SEND,
        responses={201: "sent", 400: "bad input"},
    ),
    Route(
        "GET",
        "/api/queues/{name}/messages",
        "browse",
        "Pending messages, in dispatch order",
        "messages",
        query=(
            ("offset", "integer", "messages to skip (default 0)"),
            ("limit", "integer", f"at most this many (default 100, at most {MAX_PAGE})"),
        ),
        responses={200: "OK", 400: "bad paging", **_DEST},
    ),
    Route(
        "POST",
        "/api/queues/{name}/messages",
        "send_queue",
        "Send a message (the queue is created if absent)",
        "messages",
        body=_SEND,
        responses={201: "sent", 400: "bad input"},
    ),
    Route(
        "DELETE",
        "/api/queues/{name}/messages",
        "purge",
        "Purge: delete every pending message",
        "messages",
        responses={200: "purged", **_DEST},
    ),
    Route(
        "GET",
        "/api/queues/{name}/messages/{id}",
        "message",
        "One pending message",
        "messages",
        responses={200: "OK", 404: "no such destination or message"},
    ),
    Route(
        "DELETE",
        "/api/queues/{name}/messages/{id}",
        "delete_message",
        "Delete one pending message",
        "messages",
        responses={200: "deleted", 404: "no such destination or message"},
    ),
    Route(
        "POST",
        "/api/queues/{name}/move",
        "move",
        "Move pending messages (one, by selector, or all) to another queue",
        "messages",
        body=_SELECTION,
        responses={200: "moved", 400: "bad input", 404: "no such destination or message"},
    ),
    Route(
        "POST",
        "/api/queues/{name}/copy",
        "copy",
        "Copy pending messages (one, by selector, or all) to another queue",
        "messages",
        body=_SELECTION,
        responses={200: "copied", 400: "bad input", 404: "no such destination or message"},
    ),
    Route(
        "POST",
        "/api/queues/{name}/retry",
        "retry",
        "Move each message of a dead letter queue (or one) back to its originalDestination",
        "messages",
        body=_RETRY,
        body_required=False,
        responses={200: "moved and left counts", 400: "bad input", **_DEST},
    ),
    Route(
        "POST",
        "/api/queues/{name}/pause",
        "pause",
        "Hold dispatch (consumers stay attached; kept in memory only)",
        "destinations",
        responses={200: "paused", **_DEST},
    ),
    Route(
        "POST",
        "/api/queues/{name}/resume",
        "resume",
        "Dispatch again",
        "destinations",
        responses={200: "resumed", **_DEST},
    ),
    Route(
        "GET",
        "/api/history",
        "history_total",
        "The broker's recent totals (queues and topics), sampled every few seconds",
        "history",
    ),
    Route(
        "GET",
        "/api/history/{kind}/{name}",
        "history",
        "One destination's recent depth, consumers and rates (kind: queue, topic, durable)",
        "history",
        responses={200: "OK", 400: "unknown kind", **_DEST},
    ),
    Route("GET", "/api/connections", "connections", "Client connections", "connections"),
    Route(
        "DELETE",
        "/api/connections/{id}",
        "close_connection",
        "Close a client connection",
        "connections",
        responses={200: "closed", 404: "no such connection"},
    ),
)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Every answer under /api/ is JSON, refusals included (aiohttp's own 404 and 405)."""
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.status, exc.code, exc.message)
    except CoreError as exc:
        return _error(_CORE_STATUS.get(str(exc.code), 400), str(exc.code), exc.message)
    except WriteRefused as exc:
        return _error(503, "not-replicated", str(exc))
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        return _error(exc.status, exc.reason.lower().replace(" ", "-"), exc.reason)


class AdminApi:
    """The handlers of ROUTES over one broker's ListenerContext."""

    def __init__(
        self,
        ctx: ListenerContext,
        version: str,
        history: History | None = None,
        interval: float = 0.0,
    ) -> None:
        self.ctx = ctx
        self.core = ctx.core
        self.auth = ctx.auth
        self.version = version
        # The console's samples (protocols/http/history.py) and how often it takes them.
        self.recent = history if history is not None else History(2)
        self.interval = interval
        self.started = time.monotonic()

    def install(self, app: web.Application) -> None:
        for route in ROUTES:
            app.router.add_route(route.method, route.path, getattr(self, route.handler))

    # -- helpers --------------------------------------------------------------------------

    def _allow(
        self, request: web.Request, address: Address, op: str, *, created: bool = False
    ) -> None:
        user: str = request.get(USER) or ""
        denied = self.auth.check(
            user, address, op, "admin API", created=created, peer=request.remote or "?"
        )
        if denied is not None:
            raise ApiError(403, "forbidden", denied)

    @staticmethod
    def _address(request: web.Request, kind: str) -> Address:
        return Address(kind, request.match_info["name"])

    def _queue(self, request: web.Request) -> Address:
        address = self._address(request, QUEUE)
        self.core.queue(address, create=False)  # not-found -> 404
        return address

    async def _durable(self, done: Awaitable[None] | None = None) -> None:
        """Answer only once what this request wrote is durable."""
        if done is None:
            done = self.core.barrier()
        if done is not None:
            await done

    @staticmethod
    async def _json(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, "bad-json", f"request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "bad-json", "request body must be a JSON object")
        return body

    @staticmethod
    def _only(body: dict[str, Any], allowed: dict[str, Any]) -> None:
        extra = sorted(set(body) - set(allowed["properties"]))
        if extra:
            raise ApiError(400, "invalid", f"unknown field(s): {', '.join(extra)}")

    def _stats(self, address: Address, *, detail: bool) -> dict[str, Any]:
        for stats in self.core.stats():
            if stats.kind == address.kind and stats.name == address.name:
                return self._view(stats, detail=detail)
        raise ApiError(404, "not-found", f"no such {address.kind}: {address.name}")

    def _view(self, stats: Any, *, detail: bool) -> dict[str, Any]:
        address = Address(stats.kind, stats.name)
        q = self.core.queues.get(address) if address.is_queue else None
        oldest = views.oldest_timestamp(q, read_stubs=detail) if q is not None else None
        age = max(0, self.core.now_ms() - oldest) if oldest else None
        paused = self.core.queue_paused(address) if stats.kind == QUEUE else None
        out = views.destination(stats, paused=paused, oldest_ms=age)
        if stats.kind == QUEUE:
            # The core's own test (a DLQ's failures are dropped, not dead-lettered again).
            policy = self.core.policies.for_name(stats.name)
            out["dead_letter"] = policy.is_dead_letter_queue(stats.name)
        return out

    # -- meta -----------------------------------------------------------------------------

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(document(ROUTES, self.version))

    async def broker(self, request: web.Request) -> web.Response:
        stats = self.core.stats()
        return web.json_response(
            {
                "name": self.ctx.settings.broker.name,
                "version": self.version,
                "serving": self.ctx.serving(),
                "queues": sum(1 for s in stats if s.kind == QUEUE),
                "topics": sum(1 for s in stats if s.kind == TOPIC),
                "messages": sum(s.depth for s in stats if s.kind == QUEUE),
                "clustered": self.ctx.health is not None,
                "uptime_s": round(time.monotonic() - self.started, 1),
                "connections": len(self._connections()),
                "durable_subscriptions": sum(1 for s in stats if s.kind == "durable"),
            }
        )

    async def cluster(self, request: web.Request) -> web.Response:
        if self.ctx.health is None:
            raise ApiError(404, "not-clustered", "this broker has no [cluster] settings")
        return web.json_response(self.ctx.health())

    # -- destinations ---------------------------------------------------------------------

    async def destinations(self, request: web.Request) -> web.Response:
        kind = request.query.get("kind")
        if kind is not None and kind not in (QUEUE, TOPIC, "temp-queue", "temp-topic"):
            raise ApiError(400, "invalid", f"unknown kind {kind!r}")
        out = [
            self._view(s, detail=False)
            for s in sorted(self.core.stats(), key=lambda s: (s.kind, s.name))
            if kind is None or s.kind == kind
        ]
        return web.json_response({"destinations": out})

    async def queue(self, request: web.Request) -> web.Response:
        address = self._address(request, QUEUE)
        out = self._stats(address, detail=True)
        q = self.core.queues.get(address)
        out["consumer_list"] = [views.consumer(s) for s in q.consumers] if q else []
        return web.json_response(out)

    async def topic(self, request: web.Request) -> web.Response:
        address = self._address(request, TOPIC)
        out = self._stats(address, detail=True)
        t = self.core.topics.get(address)
        out["consumer_list"] = [views.consumer(s) for s in t.subs] if t else []
        return web.json_response(out)

    async def _delete(self, request: web.Request, kind: str) -> web.Response:
        address = self._address(request, kind)
        self._allow(request, address, ADMIN)
        self._stats(address, detail=False)  # 404 if absent
        if kind == QUEUE and self.core.queue(address, create=False).own_limit:
            # A pull owner (SQS) keeps its own state of the queue (attributes, leases):
            # deleting it under that owner would leave the owner pointing at nothing.
            raise ApiError(
                409,
                "conflict",
                f"{address.name} is a pull (SQS) queue: delete it with SQS DeleteQueue",
            )
        self.core.delete(address)
        await self._durable()
        return web.json_response({"deleted": address.name, "kind": kind})

    async def delete_queue(self, request: web.Request) -> web.Response:
        return await self._delete(request, QUEUE)

    async def delete_topic(self, request: web.Request) -> web.Response:
        return await self._delete(request, TOPIC)

    async def pause(self, request: web.Request) -> web.Response:
        address = self._queue(request)
        self._allow(request, address, ADMIN)
        self.core.pause_queue(address)
        return web.json_response({"name": address.name, "paused": True})

    async def resume(self, request: web.Request) -> web.Response:
        address = self._queue(request)
        self._allow(request, address, ADMIN)
        self.core.resume_queue(address)
        return web.json_response({"name": address.name, "paused": False})

    # -- messages -------------------------------------------------------------------------

    async def browse(self, request: web.Request) -> web.Response:
        address = self._queue(request)
        self._allow(request, address, READ)
        offset = _int_query(request, "offset", 0, 0, None)
        limit = _int_query(request, "limit", 100, 1, MAX_PAGE)
        q = self.core.queue(address, create=False)
        entries = q.entries()
        page = [views.message(q.peek(e)) for e in entries[offset : offset + limit]]
        return web.json_response(
            {"name": address.name, "total": len(entries), "offset": offset, "messages": page}
        )

    async def message(self, request: web.Request) -> web.Response:
        address = self._queue(request)
        self._allow(request, address, READ)
        msg = self.core.find_pending(address, request.match_info["id"])
        return web.json_response(views.message(msg))

    async def _send(self, request: web.Request, address: Address) -> web.Response:
        body = await self._json(request)
        self._only(body, _SEND)
        self._allow(request, address, WRITE, created=not exists(self.core, address))
        msg = _message(body, self.core.now_ms())
        done = self.core.send(address, msg)
        await self._durable(done)
        return web.json_response(
            {"id": msg.id, "kind": address.kind, "name": address.name}, status=201
        )

    async def send_queue(self, request: web.Request) -> web.Response:
        return await self._send(request, self._address(request, QUEUE))

    async def send_topic(self, request: web.Request) -> web.Response:
        return await self._send(request, self._address(request, TOPIC))

    async def purge(self, request: web.Request) -> web.Response:
        address = self._queue(request)
        self._allow(request, address, ADMIN)
        n = self.core.remove_pending(address, None)
        await self._durable()
        return web.json_response({"name": address.name, "purged": n})

    async def delete_message(self, request: web.Request) -> web.Response:
        address = self._queue(request)
        self._allow(request, address, ADMIN)
        msg_id = request.match_info["id"]
        if not self.core.remove_pending(address, by_ids({msg_id}), 1):
            raise ApiError(404, "not-found", f"no pending message {msg_id} on {address.name}")
        await self._durable()
        return web.json_response({"name": address.name, "deleted": msg_id})

    async def _move(self, request: web.Request, *, copy: bool) -> web.Response:
        address = self._queue(request)
        body = await self._json(request)
        self._only(body, _SELECTION)
        target_name = body.get("to")
        if not isinstance(target_name, str) or not target_name:
            raise ApiError(400, "invalid", "'to' must name the target queue")
        target = Address(QUEUE, target_name)
        chosen = [k for k in ("id", "selector", "all") if k in body]
        if len(chosen) != 1:
            raise ApiError(400, "invalid", "give exactly one of 'id', 'selector', 'all'")
        pick: Callable[[Message], bool] | None
        how = chosen[0]
        if how == "id":
            if not isinstance(body["id"], str):
                raise ApiError(400, "invalid", "'id' must be a string")
            pick = by_ids({body["id"]})
        elif how == "selector":
            if not isinstance(body["selector"], str):
                raise ApiError(400, "invalid", "'selector' must be a string")
            try:
                pick = Selector(body["selector"]).matches
            except SelectorError as exc:
                raise ApiError(400, "invalid-selector", str(exc)) from None
        else:
            if body["all"] is not True:
                raise ApiError(400, "invalid", "'all' must be true")
            pick = None
        self._allow(request, address, ADMIN)
        self._allow(request, target, WRITE, created=not exists(self.core, target))
        n = self.core.move_pending(address, target, pick, copy=copy)
        if how == "id" and n == 0:
            raise ApiError(404, "not-found", f"no pending message {body['id']} on {address.name}")
        await self._durable()
        return web.json_response(
            {"name": address.name, "to": target.name, "copied" if copy else "moved": n}
        )

    async def move(self, request: web.Request) -> web.Response:
        return await self._move(request, copy=False)

    async def copy(self, request: web.Request) -> web.Response:
        return await self._move(request, copy=True)

    async def retry(self, request: web.Request) -> web.Response:
        address = self._queue(request)
        body = await self._json(request)
        self._only(body, _RETRY)
        pick: Callable[[Message], bool] | None = None
        if "id" in body:
            if not isinstance(body["id"], str):
                raise ApiError(400, "invalid", "'id' must be a string")
            pick = by_ids({body["id"]})
        self._allow(request, address, ADMIN)
        if pick is not None:
            self.core.find_pending(address, body["id"])  # 404 when it is not pending
        moved, left = self.core.retry_dead_letters(address, pick)
        await self._durable()
        return web.json_response({"name": address.name, "moved": moved, "left": left})

    # -- history --------------------------------------------------------------------------

    def _samples(self, kind: str, name: str) -> web.Response:
        return web.json_response(
            {
                "kind": kind,
                "name": name,
                "interval_s": self.interval,
                # False past listeners.console.sampled_destinations: no chart for it.
                "sampled": self.recent.sampled(kind, name),
                "samples": self.recent.series(kind, name) or [],
            }
        )

    async def history_total(self, request: web.Request) -> web.Response:
        return self._samples(*TOTAL)

    async def history(self, request: web.Request) -> web.Response:
        kind, name = request.match_info["kind"], request.match_info["name"]
        if kind not in _HISTORY_KINDS:
            raise ApiError(400, "invalid", f"unknown kind {kind!r}")
        if not any(s.kind == kind and s.name == name for s in self.core.stats()):
            raise ApiError(404, "not-found", f"no such {kind}: {name}")
        return self._samples(kind, name)

    # -- connections ----------------------------------------------------------------------

    def _connections(self) -> dict[str, PushConnection]:
        source = self.ctx.connections
        found: dict[str, PushConnection] = {}
        if source is None:
            return found
        for conns in source().values():
            for conn in list(conns):
                if isinstance(conn, PushConnection) and not conn.closing:
                    found[conn.id] = conn
        return found

    async def connections(self, request: web.Request) -> web.Response:
        self._allow(request, _EVERYTHING, ADMIN)
        out = [c.describe() for c in self._connections().values()]
        out.sort(key=lambda c: c["id"])
        return web.json_response({"connections": out})

    async def close_connection(self, request: web.Request) -> web.Response:
        self._allow(request, _EVERYTHING, ADMIN)
        conn_id = request.match_info["id"]
        conn = self._connections().get(conn_id)
        if conn is None:
            raise ApiError(404, "not-found", f"no such connection: {conn_id}")
        conn.close_by_admin()
        return web.json_response({"closed": conn_id})


def _int_query(request: web.Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid", f"{name} must be an integer, not {raw!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ApiError(400, "invalid", f"{name} must be {bound}, not {value}")
    return value


def _message(body: dict[str, Any], now_ms: int) -> Message:
    """A Message from the send body (checked field by field: 400 naming the field)."""

    def typed(key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = body.get(key, default)
        # bool is an int in Python; an integer field must not take true/false.
        if value is not default and (
            not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        ):
            raise ApiError(400, "invalid", f"'{key}' has the wrong type")
        return value

    raw = typed("body", str, "")
    if typed("base64", bool, False):
        try:
            data = base64.b64decode(raw, validate=True)
        except binascii.Error:
            raise ApiError(400, "invalid", "'body' is not valid base64") from None
        text = False
    else:
        data, text = raw.encode(), True
    priority = typed("priority", int, 4)
    if not 0 <= priority <= 9:
        raise ApiError(400, "invalid", "'priority' must be 0-9")
    ttl = typed("ttl_ms", int, 0)
    if ttl < 0:
        raise ApiError(400, "invalid", "'ttl_ms' must be >= 0")
    props = typed("properties", dict, {})
    for key, value in props.items():
        if not key or not isinstance(value, str | int | float | bool):
            raise ApiError(400, "invalid", f"property {key!r} must be a string, number or boolean")
    return Message(
        data,
        properties=dict(props),
        persistent=typed("persistent", bool, True),
        priority=priority,
        expiration=now_ms + ttl if ttl else 0,
        text=text,
        correlation_id=typed("correlation_id", str, None),
        type=typed("type", str, None),
        group_id=typed("group_id", str, None),
    )
