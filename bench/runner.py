"""Command line: parse options, run targets interleaved (A B A B ...), record and report.

Each (run, target) gets its own destination name, so runs never see each other's
messages. Results go to <out>/results.jsonl (one JSON object per run, appended), a
table on stdout (medians, ratio to the first target) and PNG plots in <out>/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import resource
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from bench.procstat import BrokerSampler, ClientUsage
from bench.report import plot_results, print_table
from bench.scenarios import CLIENT_SHAPE_SCENARIOS, PROTOCOL_SCENARIOS, Options, run_scenario
from bench.stompclient import StompProtocol, connect, header
from bench.target import Target, parse_target

SCENARIOS = (
    "queue",
    "receipts",
    "latency",
    "fanout",
    "wildcard",
    "idle",
    "selector",
    "sqs-batch",
    "sqs-single",
    "sns-fanout",
    "sns-fanout-batch",
)

SHAPES = ("batched", "client")

# Scenario defaults; anything given on the command line wins.
DEFAULTS: dict[str, dict[str, Any]] = {
    "queue": {"messages": 100_000},
    "receipts": {
        "messages": 50_000,
        "producers": 4,
        "consumers": 4,
        "persistent": True,
        "receipts": True,
        "window": 100,
    },
    "latency": {"rate": 1000, "size": 4096, "messages": 10_000, "warmup": 1.0},
    "fanout": {"messages": 50_000, "subscribers": 8, "window": 5000},
    "wildcard": {"messages": 50_000, "patterns": 1000, "matching": 10, "window": 5000},
    "idle": {"messages": 100_000, "connections": 1000},
    "selector": {"messages": 100_000, "producers": 4, "consumers": 4, "window": 5000},
    "sqs-batch": {"messages": 50_000},
    "sqs-single": {"messages": 10_000},
    "sns-fanout": {"messages": 5_000, "subscribers": 10, "producers": 2, "consumers": 2},
    "sns-fanout-batch": {"messages": 20_000, "subscribers": 10, "producers": 2, "consumers": 2},
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Load-test STOMP, AMQP 1.0 and SQS brokers; several --target run interleaved.",
    )
    p.add_argument("scenario", choices=SCENARIOS)
    p.add_argument(
        "--target",
        action="append",
        required=True,
        help="stomp|amqp|sqs://127.0.0.1:PORT[?pid=PID&name=NAME&login=U&passcode=P"
        "&host=VHOST&n=MESSAGES&addr=AMQP_ADDRESS_WITH_{}]",
    )
    p.add_argument("--runs", type=int, default=3, help="runs per target (interleaved)")
    p.add_argument(
        "--out",
        help="results folder (default bench/results/<stamp> in a source checkout, else "
        "./zonemq-bench-results/<stamp>)",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="accept targets that are not on this machine (loopback only by default)",
    )
    p.add_argument("--duration", type=float, default=60.0, help="time limit per run, s")
    p.add_argument("--messages", "-n", type=int, help="messages per run")
    p.add_argument("--size", "-s", type=int, help="body bytes (at least 32)")
    p.add_argument("--producers", "-p", type=int, help="producer connections")
    p.add_argument("--consumers", "-c", type=int, help="consumer connections (queue)")
    p.add_argument("--subscribers", "-k", type=int, help="topic subscribers (fanout)")
    p.add_argument("--patterns", type=int, help="wildcard: topic subscriptions, each a pattern")
    p.add_argument("--matching", type=int, help="wildcard: how many patterns match the topic")
    p.add_argument("--ack", choices=("auto", "client", "client-individual"))
    p.add_argument("--prefetch", type=int, help="activemq.prefetchSize / prefetch-count")
    p.add_argument("--persistent", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--receipts", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument(
        "--window",
        "-w",
        type=int,
        help="receipts: unanswered SENDs per producer; queue/fanout: messages sent but "
        "not yet consumed (0 = unbounded)",
    )
    p.add_argument("--batch", type=int, help="SEND frames per write (default 64)")
    p.add_argument("--rate", type=int, help="latency: messages per second")
    p.add_argument("--warmup", type=float, help="latency: seconds of samples to discard")
    p.add_argument("--connections", type=int, help="idle: idle connections to hold")
    p.add_argument("--heartbeat", type=int, help="idle: heart-beat interval, ms")
    p.add_argument("--hold", type=float, help="idle: seconds to hold before the traffic run")
    p.add_argument(
        "--inflight", type=int, help="sqs: concurrent requests per worker process (default 4)"
    )
    p.add_argument("--wait", type=int, help="sqs: ReceiveMessage WaitTimeSeconds (default 1)")
    p.add_argument(
        "--shape",
        default="batched",
        help="STOMP traffic shape: batched (pipelined, 64 SENDs per write), client (one "
        "frame per write, an ACK per message, varied headers, one receipt in flight; "
        "queue and receipts only), or both as 'batched,client' (interleaved in one run)",
    )
    p.add_argument(
        "--filter",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sns: a filter policy on every subscription (each message matches half)",
    )
    p.add_argument(
        "--raw",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sns: RawMessageDelivery on every subscription (else the JSON envelope)",
    )
    p.add_argument("--label", help="name of this configuration in tables and plots")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument(
        "--warmup-run",
        action="store_true",
        help="one unrecorded run per target first (JIT warm-up of Java brokers)",
    )
    return p


def options_from(args: argparse.Namespace) -> Options:
    values: dict[str, Any] = dict(DEFAULTS[args.scenario])
    for field in dataclasses.fields(Options):
        given = getattr(args, field.name, None)
        if given is not None:
            values[field.name] = given
    return Options(**values)


def describe(scenario: str, o: Options, schemes: set[str] | None = None) -> str:
    """A short label for a configuration, e.g. ``queue 4→4 256B client-individual``;
    prefixed with the protocols when any target is not STOMP (``amqp/stomp queue ...``)."""
    proto = "/".join(sorted(schemes)) + " " if schemes and schemes != {"stomp"} else ""
    return proto + _describe(scenario, o)


def _describe(scenario: str, o: Options) -> str:
    pers = " persistent" if o.persistent else ""
    if scenario == "queue":
        return f"queue {o.producers}→{o.consumers} {o.size}B {o.ack}{pers}"
    if scenario == "receipts":
        return f"receipts {o.producers}→{o.consumers} {o.size}B w{o.window}{pers}"
    if scenario == "latency":
        return f"latency {o.rate}/s {o.size}B{pers}"
    if scenario == "fanout":
        return f"fanout 1→{o.subscribers} {o.size}B"
    if scenario == "selector":
        return f"selector {o.producers}→{o.consumers} disjoint {o.size}B {o.ack}{pers}"
    if scenario == "wildcard":
        return f"wildcard 1→{o.matching} of {o.patterns} patterns {o.size}B"
    if scenario.startswith("sns"):
        how = ("filtered " if o.filter else "") + ("raw" if o.raw else "envelope")
        return (
            f"{scenario} 1 topic → {o.subscribers} sqs subscriptions {how} {o.producers}→"
            f"{o.consumers} {o.size}B inflight {o.inflight}"
        )
    if scenario.startswith("sqs"):
        return f"{scenario} {o.producers}→{o.consumers} {o.size}B inflight {o.inflight}"
    return f"idle {o.connections} conns + 1→1 {o.size}B"


async def probe(target: Target) -> str:
    """The broker's name and version (STOMP `server` header, AMQP open properties, HTTP
    `Server` header), checking it answers."""
    if target.scheme == "amqp":
        from bench import amqp

        props = await asyncio.to_thread(
            amqp.probe,
            {
                "host": target.host,
                "port": target.port,
                "login": target.login,
                "passcode": target.passcode,
            },
        )
        product = " ".join(props.get(k, "") for k in ("product", "version")).strip()
        return product or "AMQP 1.0 (no product property)"
    if target.scheme == "sqs":
        from bench import sqs

        return await sqs.probe(f"http://{target.host}:{target.port}/")
    proto = await connect(target, StompProtocol)
    head = await proto.connected
    await proto.disconnect(3)
    server = header(head, b"server")
    return server.decode("utf-8", "replace") if server else "?"


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def shapes_from(arg: str) -> list[str]:
    """The traffic shapes of `--shape` (a comma-separated list), validated."""
    shapes = [s.strip() for s in arg.split(",") if s.strip()]
    bad = [s for s in shapes if s not in SHAPES]
    if bad or not shapes:
        raise ValueError(f"--shape takes {' or '.join(SHAPES)} (comma-separated), not {arg!r}")
    return list(dict.fromkeys(shapes))


async def run_all(args: argparse.Namespace) -> int:
    targets = [parse_target(t, allow_remote=args.allow_remote) for t in args.target]
    opts = options_from(args)
    for t in targets:
        if args.scenario not in PROTOCOL_SCENARIOS[t.scheme]:
            print(f"error: {t.url}: {t.scheme}:// does not run {args.scenario}", file=sys.stderr)
            return 1
    try:
        shapes = shapes_from(args.shape)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if "client" in shapes and (
        args.scenario not in CLIENT_SHAPE_SCENARIOS or any(t.scheme != "stomp" for t in targets)
    ):
        print(
            f"error: --shape client runs {'/'.join(CLIENT_SHAPE_SCENARIOS)} on stomp:// targets",
            file=sys.stderr,
        )
        return 1
    # Each (shape, target) pair is one column; with one shape the names stay as they are.
    runs_of = [
        (shape, t, f"{t.name}/{shape}" if len(shapes) > 1 else t.name)
        for shape in shapes
        for t in targets
    ]
    label = args.label or describe(args.scenario, opts, {t.scheme for t in targets})
    if not args.label and shapes != ["batched"]:
        label += f" shape {','.join(shapes)}"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else default_out(stamp)
    out.mkdir(parents=True, exist_ok=True)
    servers = {}
    for t in targets:
        servers[t.name] = await probe(t)
        print(f"# {t.name}: {servers[t.name]} at {t.host}:{t.port} pid={t.pid}", flush=True)
    print(f"# {label}: {args.runs} run(s) per target, interleaved; results in {out}", flush=True)
    token = secrets.token_hex(3)
    if args.warmup_run:
        for ti, (shape, target, column) in enumerate(runs_of):
            name = f"bench.{args.scenario}.{stamp}.{token}.warmup.t{ti}"
            await run_scenario(args.scenario, target, _for(opts, target, shape), name)
            print(f"  warm-up run {column} done", flush=True)
    records: list[dict[str, Any]] = []
    for run in range(args.runs):
        for ti, (shape, target, column) in enumerate(runs_of):
            name = f"bench.{args.scenario}.{stamp}.{token}.r{run}.t{ti}"
            sampler = BrokerSampler(target.pid)
            usage = ClientUsage()
            wall0 = time.perf_counter()
            sampler.start()
            topts = _for(opts, target, shape)
            try:
                figures = await run_scenario(args.scenario, target, topts, name)
            except Exception as exc:  # e.g. a broker refusing the queue: record, go on
                figures = {"errors": [f"{type(exc).__name__}: {exc}"], "timed_out": True}
            figures.update(await sampler.stop())
            figures.update(usage.stop())
            _derived(figures, time.perf_counter() - wall0)
            record = {
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "scenario": args.scenario,
                "label": label,
                "target": column,
                "shape": shape,
                "url": target.url,
                "server": servers[target.name],
                "run": run,
                "protocol": target.scheme,
                "options": dataclasses.asdict(topts),
                "client": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "loop": type(asyncio.get_running_loop()).__module__,
                },
                **figures,
            }
            records.append(record)
            with open(out / "results.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            print(_progress(record), flush=True)
            # Let the broker settle (GC, closing sockets) before the next target's run.
            await asyncio.sleep(0.5)
    print_table(records, [c for _, _, c in runs_of], label)
    if not args.no_plots:
        try:
            paths = plot_results(out)
        except ImportError:
            # Plots need the `bench` extra; the table and results.jsonl do not.
            print("# plots skipped: matplotlib is not installed (pip install '.[bench]')")
            paths = []
        for path in paths:
            print(f"# wrote {path}")
    bad = any(r.get("lost") or r.get("duplicated") or r.get("timed_out") for r in records)
    return 2 if bad else 0


def default_out(stamp: str, cwd: Path | None = None) -> Path:
    """Where results go without --out: bench/results/<stamp> in a source checkout (the
    current directory holds bench/runner.py), else zonemq-bench-results/<stamp> in the
    current directory: never inside an installed package."""
    cwd = cwd or Path.cwd()
    if (cwd / "bench" / "runner.py").is_file():
        return cwd / "bench" / "results" / stamp
    return cwd / "zonemq-bench-results" / stamp


def _for(opts: Options, target: Target, shape: str = "batched") -> Options:
    """The options for one target (its URL may set its own message count with `n=`) and
    traffic shape."""
    if target.messages:
        opts = dataclasses.replace(opts, messages=target.messages)
    return dataclasses.replace(opts, shape=shape)


def _derived(figures: dict[str, Any], wall: float) -> None:
    """Client CPU including worker processes; broker CPU per delivered message."""
    workers = figures.get("workers_cpu_s")
    if workers is not None:
        figures["client_cpu_s"] = round(figures.get("client_cpu_s", 0.0) + workers, 3)
        if wall > 0:
            figures["client_cpu_pct"] = round(100 * figures["client_cpu_s"] / wall, 1)
    delivered = figures.get("delivered")
    if delivered and figures.get("broker_cpu_s") is not None:
        figures["broker_cpu_us_per_msg"] = round(1e6 * figures["broker_cpu_s"] / delivered, 2)


def _progress(r: dict[str, Any]) -> str:
    keys = (
        "msgs_per_s",
        "deliveries_per_s",
        "publishes_per_s",
        "receipt_p99_ms",
        "latency_p99_ms",
        "loaded_ratio",
        "lost",
        "unsent",
        "duplicated",
        "timed_out",
        "client_cpu_pct",
        "workers_cpu_max_pct",
        "msgs_per_receive",
        "broker_cpu_pct",
        "broker_cpu_us_per_msg",
    )
    shown = " ".join(f"{k}={r[k]}" for k in keys if k in r)
    errors = f" errors={r['errors']}" if r.get("errors") else ""
    return f"  run {r['run']} {r['target']}: {shown}{errors}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for t in args.target:
            parse_target(t, allow_remote=args.allow_remote)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _raise_fd_limit()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(run_all(args))
    return uvloop.run(run_all(args))
