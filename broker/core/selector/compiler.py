"""Selector trees to Python code, compiled once per selector; `Selector`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from broker.core.message import Message
from broker.core.selector.parser import HEADERS, Node, parse
from broker.core.selector.runtime import RUNTIME

# -- code generation --------------------------------------------------------------------
# V(node): an expression for the three-valued value (ActiveMQ's `evaluate`, operands in
# its order); T(node): a Python bool saying whether a boolean node is TRUE, which lets
# AND and OR at the top short-circuit as plain `and` / `or`, the common case.

FIELDS = {
    "JMSDestination": "_dest(m.destination)",
    "JMSReplyTo": "_dest(m.reply_to)",
    "JMSType": "m.type",
    "JMSDeliveryMode": "('PERSISTENT' if m.persistent else 'NON_PERSISTENT')",
    "JMSPriority": "m.priority",
    "JMSMessageID": "(m.id or None)",
    "JMSTimestamp": "m.timestamp",
    "JMSCorrelationID": "m.correlation_id",
    "JMSExpiration": "m.expiration",
    "JMSRedelivered": "m.redelivered",
    "JMSXDeliveryCount": "(m.delivery_count + 1)",
    "JMSXGroupID": "m.group_id",
    "JMSXGroupSeq": "p.get('JMSXGroupSeq', 0)",
    "JMSXUserID": "p.get('JMSXUserID')",
}
assert FIELDS.keys() == HEADERS


class _Gen:
    def __init__(self, conv: bool) -> None:
        self.conv = conv
        self.names: dict[str, Any] = {}
        self.n = 0

    def var(self) -> str:
        self.n += 1
        return f"v{self.n}"

    def const(self, value: Any) -> str:
        if value is None or type(value) in (bool, int, str):
            return repr(value)
        if type(value) is float and math.isfinite(value):
            return repr(value)
        name = f"k{len(self.names)}"
        self.names[name] = value
        return name

    def V(self, node: Node) -> str:
        kind = node[0]
        if kind == "const":
            return self.const(node[2])
        if kind == "prop":
            return FIELDS.get(node[2]) or f"p.get({node[2]!r})"
        if kind in ("and", "or"):
            vs = [self.var() for _ in node[2]]
            stop, rest = ("False", "True") if kind == "and" else ("True", "False")
            tail = f"(None if ({' or '.join(f'{v} is None' for v in vs)}) else {rest})"
            for v, sub in reversed(list(zip(vs, node[2], strict=True))):
                tail = f"({stop} if ({v} := {self.V(sub)}) is {stop} else {tail})"
            return tail
        if kind == "not":
            v = self.var()
            return f"(None if ({v} := {self.V(node[2])}) is None else not {v})"
        if kind == "cast":
            v = self.var()
            return (
                f"(None if ({v} := {self.V(node[2])}) is None "
                f"else ({v} if type({v}) is bool else False))"
            )
        if kind == "isnull":
            return f"({self.V(node[2])} is None)"
        if kind == "eq":
            left, right = node[2], node[3]
            if right[0] == "const":
                value = right[2]
                v = self.var()
                rv = self.const(value)
                fast = "type({v}) is str" if type(value) is str else "type({v}) in _NUM"
                if type(value) is bool:
                    fast = "type({v}) is bool"
                test = fast.format(v=f"({v} := {self.V(left)})")
                return f"({v} == {rv} if {test} else _eq({v}, {rv}, {self.conv}))"
            return f"_eq({self.V(left)}, {self.V(right)}, {self.conv})"
        if kind == "cmp":
            op, left, right = node[2], node[3], node[4]
            v = self.var()
            if right[0] == "const":
                rv = self.const(right[2])
                return (
                    f"({v} {op} {rv} if type({v} := {self.V(left)}) in _NUM "
                    f"else _cmp({v}, {rv}, {op!r}, {self.conv}))"
                )
            return (
                f"(None if ({v} := {self.V(left)}) is None "
                f"else _cmp({v}, {self.V(right)}, {op!r}, {self.conv}))"
            )
        if kind == "like":
            v = self.var()
            rx = self.const(node[3].fullmatch)
            return (
                f"(None if ({v} := {self.V(node[2])}) is None "
                f"else ({rx}({v}) is not None if type({v}) is str else _like({rx}, {v})))"
            )
        if kind == "in":
            v = self.var()
            items = self.const(node[3])
            return (
                f"({v} in {items} if type({v} := {self.V(node[2])}) is str else _in({v}, {items}))"
            )
        if kind == "arith":
            v = self.var()
            return (
                f"(None if ({v} := {self.V(node[3])}) is None "
                f"else _arith({node[2]!r}, {v}, {self.V(node[4])}))"
            )
        if kind == "neg":
            return f"_neg({self.V(node[2])})"
        raise AssertionError(kind)

    def T(self, node: Node) -> str:
        """Is `node` TRUE: ActiveMQ's `matches`, which short-circuits AND and OR on
        their parts' `matches` but evaluates a NOT's operand in full (three-valued, so
        an evaluation error anywhere Java looks is found where Java finds it)."""
        kind = node[0]
        if kind == "and":
            return "(" + " and ".join(self.T(s) for s in node[2]) + ")"
        if kind == "or":
            return "(" + " or ".join(self.T(s) for s in node[2]) + ")"
        if kind == "not":
            return f"({self.V(node[2])} is False)"
        return f"({self.V(node)} is True)"


def _compile(
    tree: Node, conv: bool
) -> tuple[
    Callable[[Message], bool],
    Callable[[Message], bool | None],
    Callable[[Message], bool | None],
    str,
]:
    gen = _Gen(conv)
    source = (
        "def matches(m):\n"
        "    p = m.properties\n"
        "    try:\n"
        f"        return {gen.T(tree)}\n"
        "    except Exception:\n"
        "        return False\n"
        "def evaluate_strict(m):\n"
        "    p = m.properties\n"
        f"    return {gen.V(tree)}\n"
        "def evaluate(m):\n"
        "    try:\n"
        "        return evaluate_strict(m)\n"
        "    except Exception:\n"
        "        return None\n"
    )
    namespace: dict[str, Any] = {**RUNTIME, **gen.names}
    exec(compile(source, "<selector>", "exec"), namespace)
    return namespace["matches"], namespace["evaluate"], namespace["evaluate_strict"], source


class Selector:
    """A compiled selector. `matches(msg)`: is the selector TRUE for `msg` (an evaluation
    error is no match, as ActiveMQ logs and skips); `evaluate(msg)`: True, False, or
    None for unknown (and for an evaluation error); `evaluate_strict(msg)`: the same but
    raising where ActiveMQ's evaluate throws (an error `matches` may short-circuit past,
    as Java's does)."""

    __slots__ = (
        "convert_strings",
        "evaluate",
        "evaluate_strict",
        "matches",
        "source",
        "text",
        "tree",
    )

    def __init__(self, text: str, *, convert_strings: bool = False) -> None:
        self.text = text
        self.convert_strings = convert_strings
        self.tree = parse(text)
        self.matches, self.evaluate, self.evaluate_strict, self.source = _compile(
            self.tree, convert_strings
        )

    def __repr__(self) -> str:
        return f"<Selector {self.text!r}>"
