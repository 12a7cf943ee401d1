"""What generated selector code calls when the fast path does not apply: ActiveMQ's
comparison, equality and arithmetic rules across kinds (see the package docstring)."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from broker.core.values import property_operand

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


class Abort(Exception):
    """An evaluation error (ActiveMQ throws): the message does not match."""


# -- run-time semantics (the slow paths the generated code calls) -----------------------

_NUM = (int, float)
_JAVA_INT = re.compile(r"[+-]?[0-9]+\Z")
_JAVA_DOUBLE = re.compile(
    r"[+-]?(?:NaN|Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?)\Z"
)


def _parse_like(number: int | float, text: str) -> int | float | None:
    """`text` as the Java type of `number` (Integer, Long or Double.valueOf), None if
    Java would throw NumberFormatException."""
    if type(number) is int:
        if not _JAVA_INT.match(text):
            return None
        value = int(text)
        lo, hi = (_INT_MIN, _INT_MAX) if _INT_MIN <= number <= _INT_MAX else (_LONG_MIN, _LONG_MAX)
        return value if lo <= value <= hi else None
    # Double.valueOf trims whitespace and control characters first.
    text = text.strip("".join(chr(c) for c in range(33)))
    if not _JAVA_DOUBLE.match(text):
        return None
    if text[-1] in "fFdD" and not text.endswith("Infinity"):
        text = text[:-1]
    return float(text.replace("Infinity", "inf"))


def _compare(lv: Any, rv: Any, op: str, conv: bool) -> bool:
    """ActiveMQ's ComparisonExpression.compare: both present; FALSE across kinds."""
    tl, tr = type(lv), type(rv)
    if tl is not tr:
        if tl in _NUM and tr in _NUM:
            pass
        elif tl is bool:
            if conv and tr is str:
                raise Abort  # ActiveMQ casts the Boolean to String: ClassCastException
            return False
        elif tl in _NUM:
            if not (conv and tr is str):
                return False
            rv = _parse_like(lv, rv)
            if rv is None:
                return False
        elif tl is str and conv:
            if tr is bool:
                lv = lv.lower() == "true"
            elif tr in _NUM:
                lv = _parse_like(rv, lv)
                if lv is None:
                    return False
            else:
                return False
        else:
            return False
    elif tl is bytes:
        if op == "=":
            return lv is rv  # byte[] equality is identity in Java
        raise Abort  # not Comparable
    if op == "=":
        return bool(lv == rv)
    if op == "<":
        return bool(lv < rv)
    if op == "<=":
        return bool(lv <= rv)
    if op == ">":
        return bool(lv > rv)
    return bool(lv >= rv)


def _cmp(lv: Any, rv: Any, op: str, conv: bool) -> bool | None:
    if lv is None or rv is None:
        return None
    if type(lv) is tuple:
        lv = property_operand(lv)
    if type(rv) is tuple:
        rv = property_operand(rv)
    return _compare(lv, rv, op, conv)


def _eq(lv: Any, rv: Any, conv: bool) -> bool | None:
    """ActiveMQ's EqualsExpression.evaluate (note the asymmetry of missing operands)."""
    if lv is None:
        return True if rv is None else None
    if rv is None:
        return False
    if type(lv) is tuple:
        lv = property_operand(lv)
    if type(rv) is tuple:
        rv = property_operand(rv)
    if type(lv) is type(rv) and type(lv) is not bytes:
        return bool(lv == rv)
    return _compare(lv, rv, "=", conv)


def _java_str(value: Any) -> str:
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is float:
        if value != value:
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value == 0 or 1e-3 <= abs(value) < 1e7:
            return repr(value)  # never in exponent form in this range
        # Java's computerized scientific notation, with the shortest digits.
        t = Decimal(repr(abs(value))).normalize().as_tuple()
        digits = "".join(map(str, t.digits))
        exp10 = int(t.exponent) + len(digits) - 1
        sign = "-" if value < 0 else ""
        return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exp10}"
    if type(value) is bytes:
        return "[B@0"
    return str(value)


def _wrap(value: int, lv: int, rv: int) -> int:
    """Java int or long overflow of an integer result."""
    bits = 32 if _INT_MIN <= lv <= _INT_MAX and _INT_MIN <= rv <= _INT_MAX else 64
    half = 1 << (bits - 1)
    return ((value + half) % (1 << bits)) - half


def _arith(op: str, lv: Any, rv: Any) -> Any:
    if lv is None or rv is None:
        return None
    if type(lv) is tuple:
        lv = property_operand(lv)
    if type(rv) is tuple:
        rv = property_operand(rv)
    tl, tr = type(lv), type(rv)
    if op == "+" and tl is str:
        return lv + _java_str(rv)
    if tl not in _NUM or tr not in _NUM:
        raise Abort
    if op in ("/", "%"):
        lf, rf = float(lv), float(rv)
        if rf == 0.0 or math.isinf(rf) or math.isnan(lf) or math.isnan(rf):
            if op == "%":
                return math.nan if rf == 0.0 or math.isinf(lf) or math.isnan(rf) else lf
            if lf == 0.0 or math.isnan(lf) or math.isnan(rf):
                return math.nan
            if math.isinf(rf):
                return 0.0 if not math.isinf(lf) else math.nan
            return math.copysign(math.inf, lf) * math.copysign(1.0, rf)
        return lf / rf if op == "/" else math.fmod(lf, rf)
    if op == "+":
        result = lv + rv
    elif op == "-":
        result = lv - rv
    else:
        result = lv * rv
    if tl is int and tr is int:
        return _wrap(result, lv, rv)
    return float(result)


def _neg(value: Any) -> Any:
    if type(value) is tuple:
        value = property_operand(value)
    if type(value) in _NUM:
        return -value
    return None


def _like(match: Any, value: Any) -> bool:
    """LIKE on a value that is not a str: a typed symbol is its text (ActiveMQ stores an
    AMQP symbol as a String), anything else is FALSE."""
    value = property_operand(value) if type(value) is tuple else value
    return type(value) is str and match(value) is not None


def _in(value: Any, items: Any) -> bool | None:
    """IN on a value that is not a str: a typed symbol is its text, anything else is
    unknown (ActiveMQ's IN looks at strings only)."""
    value = property_operand(value) if type(value) is tuple else value
    return value in items if type(value) is str else None


def _destination(address: Any) -> str | None:
    return None if address is None else str(address)


RUNTIME = {
    "_NUM": _NUM,
    "_cmp": _cmp,
    "_eq": _eq,
    "_arith": _arith,
    "_neg": _neg,
    "_like": _like,
    "_in": _in,
    "_dest": _destination,
    "_Abort": Abort,
}
