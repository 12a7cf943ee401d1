"""SNS → SQS fan-out load: one topic, K SQS subscriptions, publishers and queue drainers.

Set-up (the parent, not timed): CreateTopic, K queues (SQS JSON 1.0), their QueueArn,
Subscribe each (protocol ``sqs``; RawMessageDelivery with ``--raw``; with ``--filter``
a FilterPolicy). Producers (one process each, ``--inflight`` request loops) send
Publish, or PublishBatch of 10 (``sns-fanout-batch``), over the SNS Query API
(form-encoded, a SigV4-shaped dummy ``Authorization`` whose credential scope names
``sns``: that is how both ZoneMQ and moto_server pick the service). Consumers (one
process each) drain their share of the K queues: ReceiveMessage(10, long poll) →
DeleteMessageBatch, ``--inflight`` loops per queue.

Every message carries the attributes ``parity`` (String, ``even``/``odd`` by its
index) and ``amount`` (Number, its index). With ``--filter`` subscription q has the
policy ``{"parity": [even|odd by q], "amount": [{"numeric": [">=", 0]}]}``, so each
message goes to half the subscriptions (the other half is evaluated and refused);
without it every subscription gets every message. A delivery is one (queue, message)
pair: a consumer reads the index from the body (raw) or from the envelope's
``Message`` (json), marks its slot, and counts a message that its queue's policy
should have refused as ``misrouted``. So `lost` and `duplicated` are exact per
delivery, and ``deliveries_per_s`` is deliveries / (last delivery − first publish).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.sqs import call as sqs_call
from bench.workers import COUNT, LAST_NS, READY, Job, Shared, cpu_seconds, mark, wait_go

perf_ns = time.perf_counter_ns

SNS_AUTH = (
    "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/sns/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, Signature=" + "0" * 64
)
SNS_HEADERS = {
    "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    "Authorization": SNS_AUTH,
    "X-Amz-Date": "20260101T000000Z",
}
_FAILED = re.compile(rb"<Failed>(.*?)</Failed>", re.S)
_ID = re.compile(rb"<Id>([^<]*)</Id>")
_ARN = re.compile(rb"<(?:TopicArn|SubscriptionArn)>([^<]*)</")


class SnsError(Exception):
    """An error response of the SNS API."""


def _session(limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit),
        timeout=aiohttp.ClientTimeout(total=30),
        skip_auto_headers=("User-Agent",),
    )


def _form(params: dict[str, str]) -> bytes:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items()).encode()


async def sns_call(session: aiohttp.ClientSession, url: str, payload: bytes) -> bytes:
    async with session.post(url, data=payload, headers=SNS_HEADERS) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise SnsError(f"HTTP {resp.status} {body[:300]!r}")
    return body


def policy(q: int) -> str:
    """Subscription q's filter policy (--filter)."""
    parity = "even" if q % 2 == 0 else "odd"
    return json.dumps({"parity": [parity], "amount": [{"numeric": [">=", 0]}]})


async def setup(
    endpoint: str, name: str, subscriptions: int, *, raw: bool, filtered: bool
) -> dict[str, Any]:
    """The topic, its queues and subscriptions; what the workers and `teardown` need."""
    async with _session(4) as s:
        body = await sns_call(s, endpoint, _form({"Action": "CreateTopic", "Name": name}))
        topic = _ARN.search(body)
        if topic is None:
            raise SnsError(f"CreateTopic: no TopicArn in {body[:300]!r}")
        topic_arn = topic.group(1).decode()
        queues: list[str] = []
        for q in range(subscriptions):
            qname = f"{name}-q{q}"
            made = json.dumps({"QueueName": qname}).encode()
            url = str((await sqs_call(s, endpoint, "CreateQueue", made))["QueueUrl"])
            queues.append(url)
            params = {
                "Action": "Subscribe",
                "TopicArn": topic_arn,
                "Protocol": "sqs",
                "Endpoint": await _queue_arn(s, endpoint, url),
            }
            n = 0
            if raw:
                n += 1
                params[f"Attributes.entry.{n}.key"] = "RawMessageDelivery"
                params[f"Attributes.entry.{n}.value"] = "true"
            if filtered:
                n += 1
                params[f"Attributes.entry.{n}.key"] = "FilterPolicy"
                params[f"Attributes.entry.{n}.value"] = policy(q)
            await sns_call(s, endpoint, _form(params))
    return {"topic_arn": topic_arn, "queues": queues}


async def _queue_arn(s: aiohttp.ClientSession, endpoint: str, url: str) -> str:
    headers = {
        "X-Amz-Target": "AmazonSQS.GetQueueAttributes",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": SNS_AUTH.replace("/sns/", "/sqs/"),
        "X-Amz-Date": "20260101T000000Z",
    }
    payload = json.dumps({"QueueUrl": url, "AttributeNames": ["QueueArn"]}).encode()
    async with s.post(endpoint, data=payload, headers=headers) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise SnsError(f"GetQueueAttributes: HTTP {resp.status} {body[:200]!r}")
    return str(json.loads(body)["Attributes"]["QueueArn"])


async def teardown(endpoint: str, made: dict[str, Any]) -> None:
    async with _session(4) as s:
        await sns_call(s, endpoint, _form({"Action": "DeleteTopic", "TopicArn": made["topic_arn"]}))
        for url in made["queues"]:
            await sqs_call(s, endpoint, "DeleteQueue", json.dumps({"QueueUrl": url}).encode())


def _attributes(prefix: str, g: int) -> dict[str, str]:
    return {
        f"{prefix}MessageAttributes.entry.1.Name": "parity",
        f"{prefix}MessageAttributes.entry.1.Value.DataType": "String",
        f"{prefix}MessageAttributes.entry.1.Value.StringValue": "even" if g % 2 == 0 else "odd",
        f"{prefix}MessageAttributes.entry.2.Name": "amount",
        f"{prefix}MessageAttributes.entry.2.Value.DataType": "Number",
        f"{prefix}MessageAttributes.entry.2.Value.StringValue": str(g),
    }


async def _produce(job: Job, shared: Shared) -> dict[str, Any]:
    p = job.params
    endpoint, topic_arn = p["endpoint"], p["topic_arn"]
    batch = 10 if p["batch"] else 1
    filler = "x" * (p["size"] - 32)
    start, stop = p["indices"]
    chunks = iter(range(start, stop, batch))
    sent = 0
    retries = 0
    errors: list[str] = []
    first_ns = 0
    last_ns = 0
    async with _session(p["inflight"]) as session:
        # One request first: the connection is open before the clock starts.
        await sns_call(session, endpoint, _form({"Action": "ListTopics"}))
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
                    params = {"Action": "Publish", "TopicArn": topic_arn}
                    params["Message"] = f"{i:012d}{now:020d}{filler}"
                    params.update(_attributes("", i))
                    await sns_call(session, endpoint, _form(params))
                    sent += 1
                else:
                    todo = list(range(i, min(stop, i + batch)))
                    for _attempt in range(6):
                        params = {"Action": "PublishBatch", "TopicArn": topic_arn}
                        for k, g in enumerate(todo, 1):
                            e = f"PublishBatchRequestEntries.member.{k}."
                            params[e + "Id"] = f"m{g}"
                            params[e + "Message"] = f"{g:012d}{now:020d}{filler}"
                            params.update(_attributes(e, g))
                        body = await sns_call(session, endpoint, _form(params))
                        failed = _FAILED.search(body)
                        bad = (
                            {int(x[1:]) for x in _ID.findall(failed.group(1))} if failed else set()
                        )
                        sent += len(todo) - len(bad)
                        todo = [g for g in todo if g in bad]
                        if not todo:
                            break
                        retries += 1
                    else:
                        errors.append(f"PublishBatch: {len(todo)} entries failed 6 times")
                last_ns = perf_ns()
                mark(shared, sent, last_ns)

        results = await asyncio.gather(
            *(loop() for _ in range(p["inflight"])), return_exceptions=True
        )
    errors.extend(f"{type(e).__name__}: {e}" for e in results if isinstance(e, BaseException))
    return {
        # In deliveries, as the drainers count: lost and unsent compare the two.
        "sent": round(sent * p.get("fanout", 1)),
        "first_ns": first_ns,
        "last_ns": last_ns,
        "send_retries": retries,
        "errors": errors,
    }


async def _consume(job: Job, shared: Shared) -> dict[str, Any]:
    p = job.params
    endpoint = p["endpoint"]
    n, k = p["published"], p["groups"]
    per = n // k  # messages each queue is owed
    seen = bytearray(p["messages"])
    counters = shared.counters
    raw = p["raw"]
    wait = int(p["wait"])
    received = 0
    receives = 0
    empty = 0
    misrouted = 0
    errors: list[str] = []
    deadline = p["deadline"]
    loops = p["inflight"]
    mine: list[tuple[int, str]] = p["queues"]
    async with _session(loops * len(mine)) as session:
        await sqs_call(session, endpoint, "ListQueues", b"{}")
        counters[3] = READY

        async def loop(q: int, url: str) -> None:
            nonlocal received, receives, empty, misrouted
            qj = json.dumps(url)
            receive = (
                f'{{"QueueUrl":{qj},"MaxNumberOfMessages":10,"WaitTimeSeconds":{wait}}}'.encode()
            )
            base = q * per
            while not shared.stop.is_set() and time.monotonic() < deadline:
                r = await sqs_call(session, endpoint, "ReceiveMessage", receive)
                msgs = r.get("Messages") or ()
                if not msgs:
                    empty += 1
                    continue
                now = perf_ns()
                for m in msgs:
                    text = m["Body"] if raw else json.loads(m["Body"])["Message"]
                    g = int(text[:12])
                    if g % k != q % k:
                        misrouted += 1
                        continue
                    slot = base + g // k
                    if seen[slot] < 255:
                        seen[slot] += 1
                received += len(msgs)
                receives += 1
                counters[LAST_NS] = now
                counters[COUNT] = received
                entries = ",".join(
                    f'{{"Id":"{i}","ReceiptHandle":{json.dumps(m["ReceiptHandle"])}}}'
                    for i, m in enumerate(msgs)
                )
                payload = f'{{"QueueUrl":{qj},"Entries":[{entries}]}}'
                r = await sqs_call(session, endpoint, "DeleteMessageBatch", payload.encode())
                if r.get("Failed"):
                    errors.append(f"DeleteMessageBatch failed: {r['Failed'][:1]}")

        results = await asyncio.gather(
            *(loop(q, url) for q, url in mine for _ in range(loops)), return_exceptions=True
        )
    errors.extend(f"{type(e).__name__}: {e}" for e in results if isinstance(e, BaseException))
    if misrouted:
        errors.append(f"{misrouted} deliveries their queue's filter policy should have refused")
    return {
        "seen": bytes(seen),
        "last_ns": counters[LAST_NS],
        "receives": receives,
        "empty_receives": empty,
        "misrouted": misrouted,
        "errors": errors,
    }


def worker(job: Job, shared: Shared) -> dict[str, Any]:
    """Run one SNS publisher or queue drainer process until done or stopped."""
    import uvloop

    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    fn = _produce if job.role == "producer" else _consume
    out = uvloop.run(fn(job, shared))
    out["cpu_s"] = cpu_seconds() - cpu0
    out["busy_s"] = time.perf_counter() - t0
    return out


__all__ = ["policy", "setup", "teardown", "worker"]
