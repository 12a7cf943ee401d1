"""The load scenarios: queue, receipts, latency, fanout, idle (STOMP); queue and receipts
over AMQP 1.0 (bench.amqp); sqs-batch and sqs-single (bench.sqs).

Every message body starts with its index (12 digits) and a send time in ns (20 digits);
each consumer side marks indices in a bytearray, so every run counts lost and duplicated
messages exactly. A run stops by itself at its deadline and then reports `timed_out`.

Ownership: everything except the latency scenario's paced sender runs on one event loop;
counters in `Tally` and `Flow` are changed only there, with no await between a check and
its change. The paced sender thread only writes to its own blocking socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import math
import socket
import threading
import time
from array import array
from dataclasses import dataclass
from typing import Any

from bench import progress
from bench.procstat import proc_rss_mib
from bench.stompclient import (
    PREFIX,
    Frame,
    StompProtocol,
    connect,
    frame,
    header,
    send_template,
    subscribe_headers,
)
from bench.target import Target

perf_ns = time.perf_counter_ns

# Quantiles kept for latency CDF plots.
CDF_QUANTILES = (
    [i / 100 for i in range(100)] + [0.99 + i / 1000 for i in range(10)] + [0.9995, 0.9999, 1.0]
)


@dataclass(slots=True)
class Options:
    """Scenario parameters (the command line fills every field)."""

    messages: int = 100_000
    size: int = 256
    producers: int = 1
    consumers: int = 1
    subscribers: int = 8
    ack: str = "auto"
    prefetch: int | None = None
    persistent: bool = False
    receipts: bool = False
    window: int = 0
    batch: int = 64
    rate: int = 1000
    warmup: float = 1.0
    connections: int = 1000
    heartbeat: int = 10_000
    hold: float = 5.0
    duration: float = 60.0
    inflight: int = 4
    wait: int = 1
    patterns: int = 1000
    matching: int = 10
    # "batched" (bench's own pipelined traffic) or "client" (bench.stompshape).
    shape: str = "batched"
    filter: bool = False
    raw: bool = False


def percentiles(samples_ns: list[int] | array[int], prefix: str) -> dict[str, Any]:
    """p50/p90/p99/p99.9/max in ms, and the CDF points, of latency samples in ns."""
    if not samples_ns:
        return {}
    s = sorted(samples_ns)
    n = len(s)

    def q(x: float) -> float:
        return s[min(n - 1, max(0, math.ceil(x * n) - 1))] / 1e6

    out: dict[str, Any] = {
        f"{prefix}_p50_ms": round(q(0.5), 3),
        f"{prefix}_p90_ms": round(q(0.9), 3),
        f"{prefix}_p99_ms": round(q(0.99), 3),
        f"{prefix}_p999_ms": round(q(0.999), 3),
        f"{prefix}_max_ms": round(s[-1] / 1e6, 3),
        f"{prefix}_samples": n,
    }
    out[f"{prefix}_cdf"] = [[x, round(q(x), 4)] for x in CDF_QUANTILES]
    return out


class Tally:
    """Exactly-once accounting for one stream of messages (a queue, or one subscriber)."""

    __slots__ = ("dup", "expected", "first_ns", "last_ns", "received", "seen", "unique")

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen = bytearray(expected)
        self.unique = 0
        self.dup = 0
        self.received = 0
        self.first_ns = 0
        self.last_ns = 0


class Flow:
    """One run's shared state: tallies, producer counters and the end-to-end window."""

    def __init__(self, tallies: list[Tally], window: int) -> None:
        self.tallies = tallies
        self.window = window
        self.sent = 0
        self.first_send_ns = 0
        self.last_send_ns = 0
        self.latencies: list[int] = []
        self.receipt_latencies: list[int] = []
        # Messages a selector-scenario consumer got for another's selector (None: not
        # the selector scenario).
        self.misrouted: int | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._credit: asyncio.Future[None] | None = None

    def consumed(self) -> int:
        """Messages received by the slowest subscriber (all consumers, for a queue)."""
        tallies = self.tallies
        if len(tallies) == 1:
            return tallies[0].received
        return min(t.received for t in tallies)

    def progress(self) -> None:
        """Called by consumers after each batch: wake a waiting producer, detect the end."""
        credit = self._credit
        if credit is not None and self.sent - self.consumed() < self.window:
            self._credit = None
            if not credit.done():
                credit.set_result(None)
        if not self.done.done() and all(t.unique >= t.expected for t in self.tallies):
            self.done.set_result(None)

    async def wait_credit(self) -> None:
        """Wait until fewer than `window` messages are sent but not yet consumed."""
        while self.window and self.sent - self.consumed() >= self.window:
            if self._credit is None or self._credit.done():
                self._credit = asyncio.get_running_loop().create_future()
            await self._credit


class Consumer(StompProtocol):
    """Counts MESSAGE frames into a Tally and acknowledges them per the ack mode."""

    def __init__(
        self, flow: Flow, tally: Tally, ack: str, latency: bool, shard: bytes | None = None
    ) -> None:
        super().__init__()
        self.flow = flow
        self.tally = tally
        self.ack = ack
        self.latency = latency
        # The selector scenario: the `shard` header this consumer's selector asks for;
        # a MESSAGE with another one is counted as misrouted.
        self.shard = shard

    def on_frames(self, frames: list[Frame]) -> None:
        now = perf_ns()
        tally = self.tally
        seen = tally.seen
        ack = self.ack
        lat = self.flow.latencies if self.latency else None
        acks: list[bytes] = []
        last_head = b""
        new = dup = 0
        for f in frames:
            command, head, body = f
            if command != b"MESSAGE":
                self.setup_frame(f)
                continue
            g = int(body[:12])
            if self.shard is not None and header(head, b"shard") != self.shard:
                self.flow.misrouted = (self.flow.misrouted or 0) + 1
            if seen[g]:
                dup += 1
            else:
                seen[g] = 1
                new += 1
            if lat is not None:
                lat.append(now - int(body[12:32]))
            if ack == "client-individual":
                acks.append(b"ACK\nid:" + (header(head, b"ack") or b"") + b"\n\n\x00")
            elif ack == "client":
                last_head = head
        if last_head:
            acks.append(b"ACK\nid:" + (header(last_head, b"ack") or b"") + b"\n\n\x00")
        if acks and self.transport is not None:
            self.transport.write(b"".join(acks))
        if new or dup:
            if not tally.first_ns:
                tally.first_ns = now
            tally.last_ns = now
            tally.unique += new
            tally.dup += dup
            tally.received += new + dup
            self.flow.progress()


class Producer(StompProtocol):
    """Sends batches of SEND frames; with receipts, keeps at most `window` unanswered."""

    def __init__(self, flow: Flow, window: int = 0) -> None:
        super().__init__()
        self.flow = flow
        self.window = window
        self.outstanding = 0
        self.sent_ns: dict[int, int] = {}
        self._room: asyncio.Future[None] | None = None

    def on_frames(self, frames: list[Frame]) -> None:
        now = perf_ns()
        lat = self.flow.receipt_latencies
        sent_ns = self.sent_ns
        for f in frames:
            command, head, _ = f
            if command == b"RECEIPT":
                rid = header(head, b"receipt-id") or b""
                if rid[:1].isdigit():
                    t = sent_ns.pop(int(rid), None)
                    if t is not None:
                        lat.append(now - t)
                        self.outstanding -= 1
                    continue
            self.setup_frame(f)
        room = self._room
        if room is not None and self.outstanding < self.window and not room.done():
            self._room = None
            room.set_result(None)

    async def run(
        self, template: bytes, indices: range, batch: int, receipts: bool, shards: int = 0
    ) -> None:
        """Send `indices`; with `shards`, message g carries `shard:g % shards` (the
        template's first placeholder)."""
        flow = self.flow
        loop_batch = batch
        i = indices.start
        stop = indices.stop
        while i < stop:
            n = min(loop_batch, stop - i)
            if receipts:
                while self.outstanding >= self.window:
                    self._room = self.loop.create_future()
                    await self._room
                n = min(n, self.window - self.outstanding)
            if flow.window:
                await flow.wait_credit()
            now = perf_ns()
            if receipts:
                sent_ns = self.sent_ns
                for g in range(i, i + n):
                    sent_ns[g] = now
                if shards:
                    data = b"".join([template % (g % shards, g, g, now) for g in range(i, i + n)])
                else:
                    data = b"".join([template % (g, g, now) for g in range(i, i + n)])
                self.outstanding += n
            elif shards:
                data = b"".join([template % (g % shards, g, now) for g in range(i, i + n)])
            else:
                data = b"".join([template % (g, now) for g in range(i, i + n)])
            self.write(data)
            if not flow.first_send_ns:
                flow.first_send_ns = now
            flow.sent += n
            i += n
            if self.paused:
                await self.drain()
            else:
                # Let consumers on this loop run between batches.
                await asyncio.sleep(0)
        flow.last_send_ns = perf_ns()
        # Wait for the last receipts before this producer counts as finished.
        while receipts and self.outstanding > 0:
            self._room = self.loop.create_future()
            self.window = 1
            await self._room


def destination(kind: str, name: str) -> str:
    return f"/{kind}/{name}"


# The wildcard scenario's topic below the run's name: patterns over these segments.
WILD_SEGMENTS = ("fan", "hot", "x")


def wildcard_patterns(name: str, total: int, matching: int) -> tuple[list[str], list[str]]:
    """`matching` distinct wildcard patterns that match topic `name`.fan.hot.x and
    `total - matching` distinct ones that do not (each shares a prefix with the topic,
    so a broker cannot reject them by the first segment); every pattern starts with
    `name`, so no other traffic on a shared broker matches."""
    hits: list[str] = []
    full = len(WILD_SEGMENTS)
    # Plainest first: every segment given ("*" somewhere), then a prefix and ">", then
    # every segment and a ">" (which matches zero more: ActiveMQ's `a.>` matches `a`).
    shapes = [(full, "")] + [(k, ">") for k in range(full - 1, -1, -1)] + [(full, ">")]
    for fixed, tail in shapes:
        for mask in range((1 << fixed) - 1, -1, -1):
            segs = [WILD_SEGMENTS[i] if mask >> i & 1 else "*" for i in range(fixed)]
            if "*" not in segs and not tail:
                continue  # the topic's own name is no wildcard
            hits.append(".".join([name, *segs, *([tail] if tail else [])]))
    if matching > len(hits):
        raise ValueError(f"at most {len(hits)} distinct matching patterns, asked {matching}")
    misses = []
    shapes = ("{n}.fan.c{i}.*", "{n}.*.c{i}.x", "{n}.c{i}.>", "{n}.fan.hot.c{i}.>")
    for i in range(total - matching):
        misses.append(shapes[i % len(shapes)].format(n=name, i=i))
    return hits[:matching], misses


async def _close_all(protos: list[StompProtocol], graceful: bool = True) -> None:
    if graceful:
        await asyncio.gather(*(p.disconnect(3) for p in protos), return_exceptions=True)
    for p in protos:
        p.closing = True
        if p.transport is not None:
            p.transport.close()


async def flow_run(
    target: Target,
    opts: Options,
    name: str,
    *,
    topic: bool = False,
    paced: bool = False,
    selectors: bool = False,
    wildcard: bool = False,
    deadline: float,
) -> dict[str, Any]:
    """Producers → queue (or topic) → consumers; returns the run's figures.

    `paced`: one producer thread sending at `opts.rate` (the latency scenario).
    `selectors`: consumer i subscribes with the selector `shard = 'i'` and message g is
    sent with `shard:g % consumers`, so each message matches exactly one consumer (the
    selector scenario: disjoint selectors on one queue).
    `wildcard`: a topic with `opts.patterns` wildcard subscriptions, `opts.matching` of
    them matching it (the wildcard scenario).
    """
    kind = "topic" if topic or wildcard else "queue"
    dest = destination(kind, name)
    n = opts.messages
    fan = opts.subscribers if topic else opts.consumers
    hits: list[str] = []
    misses: list[str] = []
    if wildcard:
        # One connection per matching pattern; the others spread over those connections.
        dest = destination("topic", ".".join([name, *WILD_SEGMENTS]))
        hits, misses = wildcard_patterns(name, opts.patterns, opts.matching)
        fan = len(hits)
        topic = True
    tallies = [Tally(n) for _ in range(fan)] if topic else [Tally(n)]
    # With receipts the window is each producer's receipt window, not an end-to-end one.
    flow = Flow(tallies, 0 if opts.receipts or paced else opts.window)
    if selectors:
        flow.misrouted = 0
    latency = paced
    consumers: list[StompProtocol] = []
    producers: list[StompProtocol] = []
    timed_out = False
    errors: list[str] = []
    sender: threading.Thread | None = None
    stop_sender = threading.Event()
    try:
        for i in range(fan):
            tally = tallies[i] if topic else tallies[0]

            shard = str(i).encode() if selectors else None

            def make(tally: Tally = tally, shard: bytes | None = shard) -> Consumer:
                return Consumer(flow, tally, opts.ack, latency, shard)

            c = await connect(target, make)
            consumers.append(c)
            if wildcard:
                for j, miss in enumerate(misses[i::fan]):
                    head = subscribe_headers(f"/topic/{miss}", f"m{j}", opts.ack, opts.prefetch)
                    c.write(frame("SUBSCRIBE", head))
                mine = f"/topic/{hits[i]}"
                await c.request(
                    "SUBSCRIBE", subscribe_headers(mine, f"s{i}", opts.ack, opts.prefetch)
                )
                continue
            sub = subscribe_headers(dest, f"s{i}", opts.ack, opts.prefetch)
            if selectors:
                sub["selector"] = f"shard = '{i}'"
            await c.request("SUBSCRIBE", sub)
        loop = asyncio.get_running_loop()
        if paced:
            sender = threading.Thread(
                target=_paced_sender,
                args=(target, dest, opts, flow, stop_sender, loop),
                daemon=True,
            )
            sender.start()
            work: Any = flow.done
        else:
            template = send_template(
                dest, opts.size, persistent=opts.persistent, receipt=opts.receipts, shard=selectors
            )
            shards = fan if selectors else 0
            per = math.ceil(n / opts.producers)
            tasks = []
            for p in range(opts.producers):
                window = opts.window if opts.receipts else 0
                prod = await connect(target, lambda window=window: Producer(flow, window))
                producers.append(prod)
                indices = range(p * per, min(n, (p + 1) * per))
                tasks.append(
                    prod.run(template, indices, opts.batch, opts.receipts, shards)  # type: ignore[attr-defined]
                )

            async def work_fn() -> None:
                await asyncio.gather(*tasks)
                await flow.done

            work = work_fn()
        ticker = progress.start(
            lambda: sum(t.unique for t in flow.tallies), sum(t.expected for t in flow.tallies)
        )
        try:
            await asyncio.wait_for(work, max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            timed_out = True
        finally:
            ticker.cancel()
        # Late duplicates (e.g. redeliveries) still count; timing ends at the last new one.
        await asyncio.sleep(0.1)
    except Exception as exc:  # a broker error ends this run, not the whole benchmark
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        stop_sender.set()
        if sender is not None:
            await asyncio.to_thread(sender.join, 5)
        for p in consumers + producers:
            errors.extend(e.decode("utf-8", "replace") for e in p.errors)
        await _close_all(consumers + producers)
    return _figures(flow, opts, fan if topic else 1, timed_out, errors, latency, paced)


def _figures(
    flow: Flow,
    opts: Options,
    fan: int,
    timed_out: bool,
    errors: list[str],
    latency: bool,
    paced: bool,
) -> dict[str, Any]:
    unique = sum(t.unique for t in flow.tallies)
    dup = sum(t.dup for t in flow.tallies)
    expected = sum(t.expected for t in flow.tallies)
    owed = expected
    if 0 <= flow.sent < opts.messages:
        owed = round(expected * flow.sent / opts.messages)
    last = max((t.last_ns for t in flow.tallies), default=0)
    first = flow.first_send_ns
    elapsed = (last - first) / 1e9 if last and first and last > first else 0.0
    out: dict[str, Any] = {
        "messages": opts.messages,
        "size": opts.size,
        "sent": flow.sent,
        "delivered": unique,
        # A message never sent (a run that timed out) is unsent, not lost: what the
        # consumers were owed shrinks with what the producers sent.
        "lost": max(0, owed - unique),
        "unsent": max(0, opts.messages - flow.sent),
        "duplicated": dup,
        "timed_out": timed_out,
        "elapsed_s": round(elapsed, 3),
    }
    if flow.misrouted is not None:
        out["misrouted"] = flow.misrouted
    if errors:
        out["errors"] = sorted(set(errors))[:5]
    if elapsed > 0 and not paced:
        out["msgs_per_s"] = round(unique / fan / elapsed)
        out["MB_per_s"] = round(unique * opts.size / elapsed / 1e6, 2)
        if fan > 1:
            out["deliveries_per_s"] = round(unique / elapsed)
        if flow.last_send_ns > first:
            out["send_per_s"] = round(flow.sent / ((flow.last_send_ns - first) / 1e9))
    if flow.receipt_latencies:
        out.update(percentiles(flow.receipt_latencies, "receipt"))
    if latency:
        skip = int(opts.warmup * opts.rate)
        out.update(percentiles(flow.latencies[skip:], "latency"))
    return out


def _set_timer_slack() -> None:
    """Ask Linux for 1 ns timer slack on this thread so sleeps end on time (best effort)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK


def _paced_sender(
    target: Target,
    dest: str,
    opts: Options,
    flow: Flow,
    stop: threading.Event,
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Send `opts.messages` at `opts.rate`/s from a blocking socket, stamping each with its
    *intended* send time, so a stall of the broker (or of this client) shows up as latency
    of every message that should have gone out meanwhile (coordinated omission)."""
    _set_timer_slack()
    with socket.create_connection((target.host, target.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(
            frame(
                "CONNECT",
                {
                    "accept-version": "1.2",
                    "host": target.vhost,
                    "login": target.login,
                    "passcode": target.passcode,
                },
            )
        )
        got = b""
        while b"\x00" not in got:
            chunk = sock.recv(65536)
            if not chunk:
                return
            got += chunk
        template = send_template(dest, opts.size, persistent=opts.persistent)
        period = 1e9 / opts.rate
        t0 = perf_ns() + 50_000_000
        send = sock.sendall
        sleep = time.sleep
        for i in range(opts.messages):
            if stop.is_set():
                break
            intended = t0 + int(i * period)
            wait = intended - perf_ns()
            if wait > 0:
                sleep(wait / 1e9)
            send(template % (i, intended))
            if i == 0:
                loop.call_soon_threadsafe(_mark_first, flow, intended)
            if i % 256 == 0:
                loop.call_soon_threadsafe(_mark_sent, flow, i + 1)
        loop.call_soon_threadsafe(_mark_sent, flow, opts.messages)
        with contextlib.suppress(OSError):
            sock.sendall(b"DISCONNECT\n\n\x00")


def _mark_first(flow: Flow, t: int) -> None:
    flow.first_send_ns = t


def _mark_sent(flow: Flow, n: int) -> None:
    flow.sent = max(flow.sent, n)
    flow.last_send_ns = perf_ns()


class Idle(StompProtocol):
    """An idle connection that only heart-beats."""


async def idle_run(target: Target, opts: Options, name: str, *, deadline: float) -> dict[str, Any]:
    """1→1 throughput alone, then with `opts.connections` idle heart-beating connections."""
    one = dataclasses.replace(opts, producers=1, consumers=1, receipts=False)
    base = await flow_run(target, one, name + ".base", deadline=deadline)
    hb = opts.heartbeat
    idle: list[StompProtocol] = []
    failed = 0
    connect_errors: list[str] = []
    chunk = 200
    t_open = time.perf_counter()
    opened_late = False
    for start in range(0, opts.connections, chunk):
        if time.monotonic() > deadline:
            # The run's time limit also bounds opening the idle connections.
            opened_late = True
            break
        count = min(chunk, opts.connections - start)
        results = await asyncio.gather(
            *(connect(target, Idle, heartbeat=(hb, hb), timeout=30) for _ in range(count)),
            return_exceptions=True,
        )
        for r in results:
            if isinstance(r, BaseException):
                failed += 1
                connect_errors.append(f"{type(r).__name__}: {r}")
            else:
                idle.append(r)
    open_s = time.perf_counter() - t_open

    async def beat() -> None:
        while True:
            await asyncio.sleep(hb / 3000)
            for p in idle:
                if p.transport is not None and not p.transport.is_closing():
                    p.transport.write(b"\n")

    beater = asyncio.get_running_loop().create_task(beat())
    try:
        await asyncio.sleep(opts.hold)
        rss_idle = proc_rss_mib(target.pid) if target.pid else None
        loaded = await flow_run(target, one, name + ".loaded", deadline=deadline)
    finally:
        beater.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beater
    dropped = sum(1 for p in idle if p.lost_unexpectedly)
    await _close_all(idle, graceful=False)
    out: dict[str, Any] = {
        "idle_connections": len(idle),
        "idle_connect_failed": failed,
        "idle_dropped": dropped,
        "idle_open_s": round(open_s, 2),
        "unloaded_msgs_per_s": base.get("msgs_per_s", 0),
    }
    if connect_errors:
        out["errors"] = sorted(set(connect_errors))[:5]
    if rss_idle is not None:
        out["broker_rss_idle_mib"] = round(rss_idle, 1)
    for key in ("msgs_per_s", "lost", "duplicated", "timed_out", "delivered", "messages"):
        if key in loaded:
            out[key] = loaded[key]
    if loaded.get("msgs_per_s") and base.get("msgs_per_s"):
        out["loaded_ratio"] = round(loaded["msgs_per_s"] / base["msgs_per_s"], 3)
    out["lost"] = out.get("lost", 0) + base.get("lost", 0)
    out["duplicated"] = out.get("duplicated", 0) + base.get("duplicated", 0)
    out["timed_out"] = bool(base.get("timed_out") or loaded.get("timed_out") or opened_late)
    return out


# Scenarios each protocol can run.
PROTOCOL_SCENARIOS = {
    "stomp": ("queue", "receipts", "latency", "fanout", "wildcard", "idle", "selector"),
    "amqp": ("queue", "receipts"),
    "sqs": ("sqs-batch", "sqs-single", "sns-fanout", "sns-fanout-batch"),
}
# Scenarios `--shape client` runs (STOMP only).
CLIENT_SHAPE_SCENARIOS = ("queue", "receipts")


def _worker_figures(opts: Options, figures: dict[str, Any], receipts: bool) -> dict[str, Any]:
    """Common fields of a multi-process run, with receipt latencies as percentiles."""
    latencies = figures.pop("latencies_ns", None)
    out: dict[str, Any] = {"messages": opts.messages, "size": opts.size, **figures}
    if out.get("msgs_per_s"):
        out["MB_per_s"] = round(out["msgs_per_s"] * opts.size / 1e6, 2)
    if receipts and latencies:
        out.update(percentiles(latencies, "receipt"))
    return out


async def _declare_durable(target: Target, name: str) -> None:
    """Declare queue `name` durable through STOMP: RabbitMQ's SUBSCRIBE to /queue/NAME
    declares it durable and not auto-deleted; the subscription is then dropped."""
    proto = await connect(target, StompProtocol)
    headers = {"destination": f"/queue/{name}", "id": "declare", "durable": "true"}
    headers["auto-delete"] = "false"
    await proto.request("SUBSCRIBE", headers)
    await proto.request("UNSUBSCRIBE", {"id": "declare"})
    await proto.disconnect(3)


async def amqp_run(
    target: Target, opts: Options, name: str, *, receipts: bool, deadline: float
) -> dict[str, Any]:
    """Producers → queue → consumers over AMQP 1.0, one process each (bench.amqp)."""
    from bench import amqp
    from bench.workers import Job, run_workers

    base = {
        "host": target.host,
        "port": target.port,
        "login": target.login,
        "passcode": target.passcode,
        "vhost": None if target.vhost == "/" else target.vhost,
    }
    props = {} if target.address else await asyncio.to_thread(amqp.probe, base)
    address = amqp.address_for(target.address, props, name)
    if target.declare_port:
        await _declare_durable(dataclasses.replace(target, port=target.declare_port), name)
    n = opts.messages
    per = math.ceil(n / opts.producers)
    jobs = [
        Job(
            amqp.worker,
            "consumer",
            {**base, "address": address, "messages": n, "ack": opts.ack, "prefetch": opts.prefetch},
        )
        for _ in range(opts.consumers)
    ]
    for p in range(opts.producers):
        params = {
            **base,
            "address": address,
            "indices": (p * per, min(n, (p + 1) * per)),
            "size": opts.size,
            "persistent": opts.persistent or receipts,
            "receipts": receipts,
            "window": opts.window,
        }
        jobs.append(Job(amqp.worker, "producer", params))
    figures = await run_workers(jobs, n, deadline)
    out = _worker_figures(opts, figures, receipts)
    out["address"] = address
    return out


async def sqs_run(
    target: Target, opts: Options, name: str, *, batch: bool, deadline: float
) -> dict[str, Any]:
    """SQS producers → queue → consumers over HTTP (AWS JSON 1.0), one process each."""
    from bench import sqs
    from bench.workers import Job, run_workers

    endpoint = f"http://{target.host}:{target.port}/"
    queue_name = name.replace(".", "-")[-80:]
    queue_url = await sqs.create_queue(endpoint, queue_name)
    n = opts.messages
    per = math.ceil(n / opts.producers)
    base = {
        "endpoint": endpoint,
        "queue_url": queue_url,
        "batch": batch,
        "inflight": opts.inflight,
    }
    jobs = [
        Job(
            sqs.worker,
            "consumer",
            {**base, "messages": n, "wait": opts.wait, "deadline": deadline},
        )
        for _ in range(opts.consumers)
    ]
    for p in range(opts.producers):
        params = {**base, "indices": (p * per, min(n, (p + 1) * per)), "size": opts.size}
        jobs.append(Job(sqs.worker, "producer", params))
    try:
        figures = await run_workers(jobs, n, deadline)
    finally:
        with contextlib.suppress(Exception):
            await sqs.delete_queue(endpoint, queue_url)
    return _worker_figures(opts, figures, False)


async def sns_run(
    target: Target, opts: Options, name: str, *, batch: bool, deadline: float
) -> dict[str, Any]:
    """SNS publishers → one topic → K SQS subscriptions → queue drainers (bench.sns)."""
    from bench import sns
    from bench.workers import Job, run_workers

    endpoint = f"http://{target.host}:{target.port}/"
    topic = name.replace(".", "-")[-60:]
    k = 2 if opts.filter else 1  # with the filter each message matches 1 in k queues
    n = math.ceil(opts.messages / k) * k
    subs = opts.subscribers
    made = await sns.setup(endpoint, topic, subs, raw=opts.raw, filtered=opts.filter)
    slots = subs * (n // k)
    per = math.ceil(n / opts.producers)
    base = {"endpoint": endpoint, "topic_arn": made["topic_arn"], "inflight": opts.inflight}
    jobs: list[Job] = []
    queues = list(enumerate(made["queues"]))
    for c in range(opts.consumers):
        params = {
            **base,
            "queues": queues[c :: opts.consumers],
            "published": n,
            "groups": k,
            "messages": slots,
            "raw": opts.raw,
            "wait": opts.wait,
            "deadline": deadline,
        }
        jobs.append(Job(sns.worker, "consumer", params))
    for p in range(opts.producers):
        params = {
            **base,
            "indices": (p * per, min(n, (p + 1) * per)),
            "size": opts.size,
            "batch": batch,
            # run_workers counts in deliveries: a publish owes this many.
            "fanout": slots / n,
        }
        jobs.append(Job(sns.worker, "producer", params))
    try:
        figures = await run_workers(jobs, slots, deadline)
    finally:
        with contextlib.suppress(Exception):
            await sns.teardown(endpoint, made)
    out = _worker_figures(opts, figures, False)
    out["published"] = n
    out["subscriptions"] = subs
    out["deliveries_expected"] = slots
    out.pop("MB_per_s", None)
    if out.get("msgs_per_s"):
        out["deliveries_per_s"] = out.pop("msgs_per_s")
        out["publishes_per_s"] = round(out["deliveries_per_s"] * k / subs)
    return out


async def run_scenario(scenario: str, target: Target, opts: Options, name: str) -> dict[str, Any]:
    """Run one scenario once against `target`, bounded by `opts.duration` seconds."""
    deadline = time.monotonic() + opts.duration
    if scenario not in PROTOCOL_SCENARIOS[target.scheme]:
        raise ValueError(f"{target.scheme}:// targets do not run the {scenario} scenario")
    if target.scheme == "amqp":
        receipts = scenario == "receipts"
        return await amqp_run(target, opts, name, receipts=receipts, deadline=deadline)
    if scenario.startswith("sns"):
        batch = scenario == "sns-fanout-batch"
        return await sns_run(target, opts, name, batch=batch, deadline=deadline)
    if target.scheme == "sqs":
        batch = scenario == "sqs-batch"
        return await sqs_run(target, opts, name, batch=batch, deadline=deadline)
    if opts.shape == "client":
        if scenario not in CLIENT_SHAPE_SCENARIOS:
            raise ValueError(f"--shape client runs {', '.join(CLIENT_SHAPE_SCENARIOS)} only")
        from bench.stompshape import client_run

        receipts = scenario == "receipts"
        figures = await client_run(target, opts, name, receipts=receipts, deadline=deadline)
        return _worker_figures(opts, figures, receipts)
    if scenario == "idle":
        return await idle_run(target, opts, name, deadline=deadline)
    if scenario == "latency":
        return await flow_run(target, opts, name, paced=True, deadline=deadline)
    if scenario == "fanout":
        return await flow_run(target, opts, name, topic=True, deadline=deadline)
    if scenario == "selector":
        return await flow_run(target, opts, name, selectors=True, deadline=deadline)
    if scenario == "wildcard":
        return await flow_run(target, opts, name, wildcard=True, deadline=deadline)
    return await flow_run(target, opts, name, deadline=deadline)


__all__ = ["PREFIX", "Options", "run_scenario"]
