"""Selector evaluation cost: generated code (what broker.core.selector compiles) against
the same tree evaluated by nested closures, on one message, N evaluations each.

    python -m bench.bench_selector [-n 1000000] [--selector "price > 10 AND color = 'red'"]

The figures go into broker/core/selector/__init__.py's docstring.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from broker.core import Message
from broker.core.selector import Selector, parse
from broker.core.selector.compiler import FIELDS
from broker.core.selector.runtime import RUNTIME

Fn = Callable[[Message], Any]
_cmp, _eq, _arith, _neg = RUNTIME["_cmp"], RUNTIME["_eq"], RUNTIME["_arith"], RUNTIME["_neg"]


def closures(tree: tuple[Any, ...], conv: bool) -> Fn:
    """The three-valued value of `tree` as nested closures (the alternative design)."""
    kind = tree[0]
    if kind == "const":
        value = tree[2]
        return lambda m: value
    if kind == "prop":
        name = tree[2]
        if name in FIELDS:
            code = compile(FIELDS[name], "<field>", "eval")
            return lambda m: eval(code, RUNTIME, {"m": m, "p": m.properties})
        return lambda m: m.properties.get(name)
    if kind in ("and", "or"):
        parts = [closures(t, conv) for t in tree[2]]
        stop = kind == "or"

        def logic(m: Message) -> bool | None:
            unknown = False
            for part in parts:
                v = part(m)
                if v is stop:
                    return stop
                unknown = unknown or v is None
            return None if unknown else not stop

        return logic
    if kind == "not":
        inner = closures(tree[2], conv)
        return lambda m: None if (v := inner(m)) is None else not v
    if kind == "cast":
        inner = closures(tree[2], conv)
        return lambda m: None if (v := inner(m)) is None else (v if type(v) is bool else False)
    if kind == "isnull":
        inner = closures(tree[2], conv)
        return lambda m: inner(m) is None
    if kind == "eq":
        left, right = closures(tree[2], conv), closures(tree[3], conv)
        return lambda m: _eq(left(m), right(m), conv)
    if kind == "cmp":
        op, left, right = tree[2], closures(tree[3], conv), closures(tree[4], conv)
        # As Java's ComparisonExpression: a null left operand is unknown before the right
        # one is evaluated (so an error there is never reached).
        return lambda m: None if (v := left(m)) is None else _cmp(v, right(m), op, conv)
    if kind == "like":
        inner, match = closures(tree[2], conv), tree[3].fullmatch
        return lambda m: (
            None if (v := inner(m)) is None else (match(v) is not None if type(v) is str else False)
        )
    if kind == "in":
        inner, items = closures(tree[2], conv), tree[3]
        return lambda m: None if type(v := inner(m)) is not str else v in items
    if kind == "arith":
        op, left, right = tree[2], closures(tree[3], conv), closures(tree[4], conv)
        return lambda m: None if (v := left(m)) is None else _arith(op, v, right(m))
    if kind == "neg":
        inner = closures(tree[2], conv)
        return lambda m: _neg(inner(m))
    raise AssertionError(kind)


def timed(fn: Fn, msg: Message, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn(msg)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1_000_000)
    ap.add_argument("--selector", default="price > 10 AND color = 'red'")
    args = ap.parse_args()
    msg = Message(b"", properties={"price": 20, "color": "red", "qty": 3})
    sel = Selector(args.selector)
    nested = closures(parse(args.selector), False)
    assert sel.evaluate(msg) is nested(msg)
    loop = timed(lambda m: None, msg, args.n)
    for name, fn in (
        ("generated matches", sel.matches),
        ("generated evaluate", sel.evaluate),
        ("nested closures", nested),
    ):
        t = timed(fn, msg, args.n) - loop
        print(f"{name:20} {t:6.3f} s  {t / args.n * 1e9:6.0f} ns/evaluation")


if __name__ == "__main__":
    main()
