"""A small etcd v3 client over etcd's own JSON gateway (grpc-gateway) on aiohttp.

Only what the coordinator needs: leases (grant, keep-alive, revoke), a read, the
campaign transaction ("create this key with my lease unless it exists") and a watch of
one key. Keys and values are bytes, sent base64-encoded as the gateway wants; int64
fields come back as JSON strings and fields equal to their default (0, false, PUT) are
left out, so every read below has a default.

Every call has its own deadline (`timeout`): the election must know, on its own clock,
whether a renewal made it in time, so no call may wait longer than it was given. A
call tries the endpoints in turn from the last one that answered, moving on only when
one refuses the connection (fast); a timeout spends the call's budget, and the next
call starts at the next endpoint. A transaction is never re-sent after a timeout (it
may have been applied): the caller decides. Why the gateway and not a gRPC client:
ARCHITECTURE.md, "Cluster".
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

# Bytes of one gateway response line we accept (watch events of one small key).
MAX_LINE = 1 << 20


class EtcdError(Exception):
    """etcd answered with an error (the gateway's message), or with something that is
    not a gateway response."""


class EtcdUnavailable(EtcdError):
    """No endpoint answered within the call's deadline (refused, reset or timed out)."""


@dataclass(frozen=True)
class KeyValue:
    """One key as etcd holds it: its revisions and the lease it is attached to."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int


@dataclass(frozen=True)
class WatchEvent:
    """A change of a watched key: ``deleted`` or a put of ``kv``; ``revision`` is the
    store revision of the response it came in."""

    deleted: bool
    kv: KeyValue
    revision: int


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _kv(raw: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=base64.b64decode(raw.get("key", "")),
        value=base64.b64decode(raw.get("value", "")),
        create_revision=int(raw.get("create_revision", 0)),
        mod_revision=int(raw.get("mod_revision", 0)),
        lease=int(raw.get("lease", 0)),
    )


def _revision(body: dict[str, Any]) -> int:
    return int(body.get("header", {}).get("revision", 0))


class EtcdClient:
    """The gateway client of one node: endpoints (``http://host:port``) and one aiohttp
    session. Made and closed on the event loop that uses it (`close`)."""

    def __init__(self, endpoints: Sequence[str]) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = tuple(e.rstrip("/") for e in endpoints)
        self._current = 0
        # Few connections: the election's renewals and campaign, and one watch.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=8), raise_for_status=False
        )

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the gateway's calls ---------------------------------------------------------------

    async def grant(self, ttl: int, *, timeout: float) -> tuple[int, int]:
        """A new lease: (its id, the TTL etcd granted, which may exceed ``ttl``)."""
        body = await self._call("/v3/lease/grant", {"TTL": ttl}, timeout)
        if body.get("error"):
            raise EtcdError(f"lease grant refused: {body['error']}")
        return int(body["ID"]), int(body.get("TTL", 0))

    async def keepalive(self, lease: int, *, timeout: float) -> int:
        """Renew a lease once: its TTL now, 0 when etcd no longer has it (expired or
        revoked). The gateway maps the keep-alive stream to one request, one answer."""
        body = await self._call("/v3/lease/keepalive", {"ID": lease}, timeout)
        return int(body.get("result", {}).get("TTL", 0))

    async def revoke(self, lease: int, *, timeout: float) -> None:
        """Drop a lease and every key attached to it (a lease already gone is fine)."""
        try:
            await self._call("/v3/lease/revoke", {"ID": lease}, timeout)
        except EtcdError as exc:
            if "not found" not in str(exc):
                raise

    async def get(self, key: bytes, *, timeout: float) -> tuple[KeyValue | None, int]:
        """The key (None when absent) and the store revision it was read at."""
        body = await self._call("/v3/kv/range", {"key": _b64(key)}, timeout)
        kvs = body.get("kvs", [])
        return (_kv(kvs[0]) if kvs else None), _revision(body)

    async def create(
        self,
        key: bytes,
        value: bytes,
        lease: int,
        *,
        timeout: float,
        guard: tuple[bytes, int] | None = None,
    ) -> tuple[bool, KeyValue | None, int]:
        """Put ``key`` attached to ``lease`` only if it does not exist (and, with
        ``guard`` = (key, mod revision), only if that key is unchanged), atomically.

        Returns (created, the holder when not created, the revision). When created the
        key's create_revision is the returned revision: this transaction wrote it."""
        k = _b64(key)
        compare = [{"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": 0}]
        if guard is not None:
            compare.append(
                {
                    "key": _b64(guard[0]),
                    "target": "MOD",
                    "result": "EQUAL",
                    "mod_revision": guard[1],
                }
            )
        body = await self._call(
            "/v3/kv/txn",
            {
                "compare": compare,
                "success": [{"request_put": {"key": k, "value": _b64(value), "lease": lease}}],
                "failure": [{"request_range": {"key": k}}],
            },
            timeout,
        )
        revision = _revision(body)
        if body.get("succeeded", False):
            return True, None, revision
        responses = body.get("responses", [])
        kvs = responses[0].get("response_range", {}).get("kvs", []) if responses else []
        # Failed but no key: it vanished between the compare and the range (impossible in
        # one txn); reported as a loss to no one, and the caller simply tries again.
        return False, (_kv(kvs[0]) if kvs else None), revision

    async def put(self, key: bytes, value: bytes, *, timeout: float) -> int:
        """Put ``key`` unconditionally; returns the revision."""
        body = await self._call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)}, timeout)
        return _revision(body)

    async def put_if(
        self, key: bytes, value: bytes, holder: bytes, create_revision: int, *, timeout: float
    ) -> bool:
        """Put ``key`` only while ``holder`` is the key created at ``create_revision``
        (the active writes cluster state only while it is still the active)."""
        body = await self._call(
            "/v3/kv/txn",
            {
                "compare": [
                    {
                        "key": _b64(holder),
                        "target": "CREATE",
                        "result": "EQUAL",
                        "create_revision": create_revision,
                    }
                ],
                "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}],
            },
            timeout,
        )
        return bool(body.get("succeeded", False))

    async def watch(
        self, key: bytes, start_revision: int, *, idle: float
    ) -> AsyncIterator[WatchEvent]:
        """Events of ``key`` from ``start_revision`` on, as they happen.

        Ends (without error) when nothing at all arrives for ``idle`` seconds, so a
        connection cut silently cannot hide a change forever: the caller reads the key
        again and watches anew. Raises EtcdUnavailable when etcd cannot be reached."""
        request = {"create_request": {"key": _b64(key), "start_revision": start_revision}}
        url = self.endpoints[self._current] + "/v3/watch"
        try:
            async with asyncio.timeout(idle):
                response = await self._session.post(url, json=request)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self._next_endpoint()
            raise EtcdUnavailable(f"watch on {url}: {exc!r}") from None
        async with response:
            if response.status != 200:
                raise EtcdError(f"watch on {url}: HTTP {response.status}")
            while True:
                try:
                    async with asyncio.timeout(idle):
                        line = await response.content.readuntil(b"\n")
                except TimeoutError:
                    return
                except (aiohttp.ClientError, OSError, ValueError) as exc:
                    raise EtcdUnavailable(f"watch on {url}: {exc!r}") from None
                if not line:
                    return  # the server ended the stream
                if len(line) > MAX_LINE:
                    raise EtcdError(f"watch on {url}: a response of {len(line)} bytes")
                body = json.loads(line)
                if "error" in body:
                    raise EtcdError(f"watch on {url}: {body['error']}")
                result = body.get("result", {})
                if result.get("canceled"):
                    # Compacted past start_revision, or refused: read the key again.
                    reason = result.get("cancel_reason", "canceled")
                    raise EtcdError(f"watch on {url}: {reason}")
                revision = _revision(result)
                for event in result.get("events", []):
                    yield WatchEvent(
                        deleted=event.get("type") == "DELETE",
                        kv=_kv(event.get("kv", {})),
                        revision=revision,
                    )

    # -- transport -----------------------------------------------------------------------

    def _next_endpoint(self) -> None:
        self._current = (self._current + 1) % len(self.endpoints)

    async def _call(self, path: str, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        errors: list[str] = []
        for _ in self.endpoints:
            url = self.endpoints[self._current] + path
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    async with self._session.post(url, json=request) as response:
                        text = await response.text()
            except TimeoutError:
                # The budget is spent; the next call tries the next endpoint first.
                self._next_endpoint()
                raise EtcdUnavailable(f"{url}: no answer within {timeout:.2f}s") from None
            except (aiohttp.ClientError, OSError) as exc:
                errors.append(f"{url}: {exc!r}")
                self._next_endpoint()
                continue
            try:
                body = json.loads(text)
            except ValueError:
                raise EtcdError(
                    f"{url}: HTTP {response.status}, not JSON: {text[:200]!r}"
                ) from None
            if response.status != 200:
                message = body.get("message") or body.get("error") or text[:200]
                raise EtcdError(f"{url}: HTTP {response.status}: {message}")
            return body
        raise EtcdUnavailable("; ".join(errors) or f"{path}: no time left to try an endpoint")
