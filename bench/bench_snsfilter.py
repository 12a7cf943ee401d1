"""SNS filter-policy cost per message: policies of five keys, N matches each, the
median of R runs as microseconds per `FilterPolicy.matches` call (and the one-off
compile), for scope MessageAttributes and MessageBody.

    python -m bench.bench_snsfilter [-n 10000] [-r 5]

The figures go into the report of issue 13's filter-policy work. The mixed row's
String.Array value is the same str every call, so its parse is the reused one (as for
a publish's second and later subscriptions); the first body row parses every call.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Mapping

from protocols.aws.snsfilter import FilterPolicy, compile_policy

Attrs = Mapping[str, tuple[str, str]]

EXACT = json.dumps(
    {
        "store": ["example_corp", "other_corp"],
        "event": ["order_placed", "order_cancelled"],
        "region": ["eu-west-1", "us-east-1"],
        "channel": ["web"],
        "tier": ["gold", "silver"],
    }
)
MIXED = json.dumps(
    {
        "store": [{"prefix": "example"}],
        "event": [{"anything-but": ["order_cancelled", "order_refunded"]}],
        "price_usd": [{"numeric": [">=", 100, "<", 500]}],
        "interests": ["rugby", {"suffix": "ball"}],
        "source_ip": [{"cidr": "10.0.0.0/8"}],
    }
)
BODY = json.dumps(
    {
        "store": ["example_corp"],
        "order": {
            "event": [{"anything-but": "order_cancelled"}],
            "total": [{"numeric": [">", 10]}],
        },
        "customer": {"tier": [{"equals-ignore-case": "GOLD"}], "interests": [{"prefix": "rug"}]},
        "$or": [{"channel": ["web"]}, {"app": [{"exists": True}]}],
    }
)

EXACT_ATTRS: Attrs = {
    "store": ("String", "example_corp"),
    "event": ("String", "order_placed"),
    "region": ("String", "eu-west-1"),
    "channel": ("String", "web"),
    "tier": ("String", "gold"),
    "trace": ("String", "abc123"),
}
MIXED_ATTRS: Attrs = {
    "store": ("String", "example_corp"),
    "event": ("String", "order_placed"),
    "price_usd": ("Number", "210.5"),
    "interests": ("String.Array", '["tennis", "football"]'),
    "source_ip": ("String", "10.1.2.3"),
}
MISS_ATTRS: Attrs = dict(EXACT_ATTRS, store=("String", "nobody"))
BODY_TEXT = json.dumps(
    {
        "store": "example_corp",
        "order": {"event": "order_placed", "total": 42.5, "lines": [{"sku": i} for i in range(5)]},
        "customer": {"tier": "Gold", "name": "n", "interests": ["tennis", "rugby"]},
        "channel": "web",
    }
)


def per_match_us(policy: FilterPolicy, attrs: Attrs, bodies: list[str], n: int, runs: int) -> float:
    """Median over `runs` of the µs one matches() call takes, over `n` calls cycling
    through `bodies` (distinct str objects: each is a new message, so its parse counts;
    one body: the later subscriptions of one publish, which reuse the parse)."""
    samples = []
    matches = policy.matches
    seq = [bodies[i % len(bodies)] for i in range(n)]
    for _ in range(runs):
        t0 = time.perf_counter()
        for body in seq:
            matches(attrs, body)
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(samples)


def compile_us(text: str, scope: str, runs: int = 200) -> float:
    t0 = time.perf_counter()
    for _ in range(runs):
        compile_policy(text, scope)
    return (time.perf_counter() - t0) / runs * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=10_000, help="matches per run")
    ap.add_argument("-r", type=int, default=5, help="runs (the median is shown)")
    args = ap.parse_args()
    # equal texts, distinct objects: a new message each time
    fresh = [json.dumps(json.loads(BODY_TEXT)) for _ in range(101)]
    rows = [
        ("attributes, 5 exact keys, match", EXACT, "MessageAttributes", EXACT_ATTRS, [""]),
        ("attributes, 5 exact keys, 1st key misses", EXACT, "MessageAttributes", MISS_ATTRS, [""]),
        ("attributes, 5 mixed operators, match", MIXED, "MessageAttributes", MIXED_ATTRS, [""]),
        ("body, 5 top keys, each a new message", BODY, "MessageBody", {}, fresh),
        ("body, 5 top keys, same message (fan-out)", BODY, "MessageBody", {}, [BODY_TEXT]),
    ]
    # A yardstick from the same run: on a shared machine the ratios hold when the
    # absolute figures do not.
    t0 = time.perf_counter()
    for _ in range(args.n):
        json.loads(BODY_TEXT)
    print(f"yardstick: json.loads of the body, {(time.perf_counter() - t0) / args.n * 1e6:.2f} µs")
    print(f"{'policy / message':44} {'µs/match':>9} {'compile µs':>11}  verdict")
    for name, text, scope, attrs, bodies in rows:
        policy = compile_policy(text, scope)
        verdict = policy.matches(attrs, bodies[0])
        us = per_match_us(policy, attrs, bodies, args.n, args.r)
        print(f"{name:44} {us:9.2f} {compile_us(text, scope):11.1f}  {verdict}")


if __name__ == "__main__":
    main()
