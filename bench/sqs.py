"""SQS load over raw HTTP: AWS JSON 1.0 (`X-Amz-Target: AmazonSQS.<Action>`) via aiohttp.

One process per producer and per consumer (bench.workers), each on uvloop with one
aiohttp session whose connector keeps at most `--inflight` keep-alive connections, and
as many request loops as that: the number of concurrent requests per worker is bounded.

- `sqs-batch`: producers send SendMessageBatch of 10; consumers loop ReceiveMessage
  (MaxNumberOfMessages 10, WaitTimeSeconds 1: long polling) → DeleteMessageBatch of what
  they got.
- `sqs-single`: SendMessage, ReceiveMessage (MaxNumberOfMessages 1, long polling),
  DeleteMessage, one message per request.

Bodies start with a 12-digit index and a 20-digit send time (ASCII, so a body is put in
the JSON request verbatim), so lost and duplicated messages are exact. A message counts
as delivered when a ReceiveMessage returns it; its delete is sent before that request
loop polls again, so the rate includes the deletes. Failed batch entries are resent (up
to 5 times) and counted in `send_retries`.

Requests carry a SigV4-shaped `Authorization` with a dummy signature: ZoneMQ accepts it
unchecked when no users are configured, and moto_server uses only its credential scope
(service `sqs`) to pick the service (it routes an unsigned request to S3).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from bench.workers import COUNT, LAST_NS, READY, Job, Shared, cpu_seconds, mark, wait_go

perf_ns = time.perf_counter_ns

AUTH = (
    "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/sqs/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64
)


def headers(action: str) -> dict[str, str]:
    return {
        "X-Amz-Target": f"AmazonSQS.{action}",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": AUTH,
        "X-Amz-Date": "20260101T000000Z",
    }


_HEADERS = {
    a: headers(a)
    for a in (
        "SendMessage",
        "SendMessageBatch",
        "ReceiveMessage",
        "DeleteMessage",
        "DeleteMessageBatch",
        "CreateQueue",
        "DeleteQueue",
        "ListQueues",
    )
}


class SqsError(Exception):
    """An error response of the SQS API."""


async def call(
    session: aiohttp.ClientSession, url: str, action: str, payload: bytes
) -> dict[str, Any]:
    """POST one action; the decoded JSON answer, or SqsError for an error status."""
    async with session.post(url, data=payload, headers=_HEADERS[action]) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise SqsError(f"{action}: HTTP {resp.status} {body[:200]!r}")
    return json.loads(body) if body else {}


def _session(inflight: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=inflight, force_close=False),
        timeout=aiohttp.ClientTimeout(total=30),
        skip_auto_headers=("User-Agent",),
    )


async def create_queue(endpoint: str, name: str) -> str:
    """Create queue `name`; its QueueUrl."""
    async with _session(1) as s:
        r = await call(s, endpoint, "CreateQueue", json.dumps({"QueueName": name}).encode())
    return str(r["QueueUrl"])


async def delete_queue(endpoint: str, url: str) -> None:
    async with _session(1) as s:
        await call(s, endpoint, "DeleteQueue", json.dumps({"QueueUrl": url}).encode())


async def probe(endpoint: str) -> str:
    """The `Server` header of the SQS endpoint, checking it answers ListQueues."""
    async with (
        _session(1) as s,
        s.post(endpoint, data=b"{}", headers=_HEADERS["ListQueues"]) as resp,
    ):
        await resp.read()
        if resp.status != 200:
            raise SqsError(f"ListQueues: HTTP {resp.status}")
        return resp.headers.get("Server", "?")


def _body(g: int, now: int, filler: str) -> str:
    return f"{g:012d}{now:020d}{filler}"


async def _produce(job: Job, shared: Shared) -> dict[str, Any]:
    p = job.params
    endpoint, qurl = p["endpoint"], p["queue_url"]
    batch = 10 if p["batch"] else 1
    filler = "x" * (p["size"] - 32)
    start, stop = p["indices"]
    chunks = iter(range(start, stop, batch))
    q = json.dumps(qurl)
    sent = 0
    retries = 0
    errors: list[str] = []
    first_ns = 0
    last_ns = 0
    async with _session(p["inflight"]) as session:
        # One request first: the connection is open before the clock starts.
        await call(session, endpoint, "ListQueues", b"{}")
        if not await asyncio.to_thread(wait_go, shared):
            return {"sent": 0}

        async def loop() -> None:
            nonlocal sent, retries, first_ns, last_ns
            for i in chunks:
                if shared.stop.is_set():
                    return
                now = perf_ns()
                if not first_ns:
                    first_ns = now
                if batch == 1:
                    payload = f'{{"QueueUrl":{q},"MessageBody":"{_body(i, now, filler)}"}}'
                    await call(session, endpoint, "SendMessage", payload.encode())
                    sent += 1
                else:
                    todo = {str(g): _body(g, now, filler) for g in range(i, min(stop, i + batch))}
                    for _attempt in range(6):
                        entries = ",".join(
                            f'{{"Id":"{k}","MessageBody":"{v}"}}' for k, v in todo.items()
                        )
                        payload = f'{{"QueueUrl":{q},"Entries":[{entries}]}}'
                        r = await call(session, endpoint, "SendMessageBatch", payload.encode())
                        for ok in r.get("Successful", ()):
                            todo.pop(ok["Id"], None)
                            sent += 1
                        if not todo:
                            break
                        retries += 1
                    else:
                        errors.append(f"SendMessageBatch: {len(todo)} entries failed 6 times")
                last_ns = perf_ns()
                mark(shared, sent, last_ns)

        results = await asyncio.gather(
            *(loop() for _ in range(p["inflight"])), return_exceptions=True
        )
    errors.extend(f"{type(e).__name__}: {e}" for e in results if isinstance(e, BaseException))
    return {
        "sent": sent,
        "first_ns": first_ns,
        "last_ns": last_ns,
        "send_retries": retries,
        "errors": errors,
    }


async def _consume(job: Job, shared: Shared) -> dict[str, Any]:
    p = job.params
    endpoint, qurl = p["endpoint"], p["queue_url"]
    batch = 10 if p["batch"] else 1
    seen = bytearray(p["messages"])
    counters = shared.counters
    q = json.dumps(qurl)
    wait = int(p["wait"])
    receive = f'{{"QueueUrl":{q},"MaxNumberOfMessages":{batch},"WaitTimeSeconds":{wait}}}'.encode()
    received = 0
    receives = 0
    empty = 0
    errors: list[str] = []
    last_ns = 0
    deadline = p["deadline"]
    async with _session(p["inflight"]) as session:
        await call(session, endpoint, "ListQueues", b"{}")
        counters[3] = READY

        async def loop() -> None:
            nonlocal received, receives, empty, last_ns
            while not shared.stop.is_set() and time.monotonic() < deadline:
                r = await call(session, endpoint, "ReceiveMessage", receive)
                msgs = r.get("Messages") or ()
                if not msgs:
                    empty += 1
                    continue
                now = perf_ns()
                for m in msgs:
                    g = int(m["Body"][:12])
                    if seen[g] < 255:
                        seen[g] += 1
                received += len(msgs)
                receives += 1
                last_ns = now
                counters[LAST_NS] = now
                counters[COUNT] = received
                if batch == 1:
                    handle = json.dumps(msgs[0]["ReceiptHandle"])
                    payload = f'{{"QueueUrl":{q},"ReceiptHandle":{handle}}}'
                    await call(session, endpoint, "DeleteMessage", payload.encode())
                else:
                    entries = ",".join(
                        f'{{"Id":"{k}","ReceiptHandle":{json.dumps(m["ReceiptHandle"])}}}'
                        for k, m in enumerate(msgs)
                    )
                    payload = f'{{"QueueUrl":{q},"Entries":[{entries}]}}'
                    r = await call(session, endpoint, "DeleteMessageBatch", payload.encode())
                    if r.get("Failed"):
                        errors.append(f"DeleteMessageBatch failed: {r['Failed'][:1]}")

        results = await asyncio.gather(
            *(loop() for _ in range(p["inflight"])), return_exceptions=True
        )
    errors.extend(f"{type(e).__name__}: {e}" for e in results if isinstance(e, BaseException))
    return {
        "seen": bytes(seen),
        "last_ns": last_ns,
        "receives": receives,
        "empty_receives": empty,
        "errors": errors,
    }


def worker(job: Job, shared: Shared) -> dict[str, Any]:
    """Run one SQS producer or consumer process until done or stopped; its figures."""
    import uvloop

    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    fn = _produce if job.role == "producer" else _consume
    out = uvloop.run(fn(job, shared))
    out["cpu_s"] = cpu_seconds() - cpu0
    out["busy_s"] = time.perf_counter() - t0
    return out


__all__ = ["COUNT", "create_queue", "delete_queue", "probe", "worker"]
