"""The selector grammar: tokens, the parser and ActiveMQ's parse-time checks, giving a
tree of tuples (see the package docstring for the language)."""

from __future__ import annotations

import re
from typing import Any

Node = tuple[Any, ...]


class SelectorError(ValueError):
    """A selector that does not parse, or that ActiveMQ's parser would refuse: the
    message names the column (1-based) and what was expected there."""

    def __init__(self, text: str, column: int, problem: str) -> None:
        super().__init__(f"Invalid selector {text!r}: {problem} at column {column}")
        self.text = text
        self.column = column
        self.problem = problem


# -- tokens -----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<ws>[ \t\n\r\f]+|--[^\n\r]*(?:\r\n|\n|\r)|/\*[^*]*\*+(?:[^*/][^*]*\*+)*/)
      |(?P<str>'(?:[^']|'')*')
      |(?P<float>(?:[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?
                  |[0-9]+[eE][+-]?[0-9]+))
      |(?P<hex>0[xX][0-9a-fA-F]+)
      |(?P<dec>[1-9][0-9]*[lL]?)
      |(?P<oct>0[0-7]*)
      |(?P<id>[A-Za-z_$][A-Za-z0-9_$]*)
      |(?P<op><>|<=|>=|[=<>+\-*/%(),])""",
    re.VERBOSE,
)
_KEYWORDS = frozenset(
    {"NOT", "AND", "OR", "BETWEEN", "LIKE", "ESCAPE", "IN", "IS"}
    | {"TRUE", "FALSE", "NULL", "XPATH", "XQUERY"}
)
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


def _int_literal(value: int) -> int:
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise OverflowError
    return value


def _tokens(text: str) -> list[tuple[str, Any, int]]:
    """(kind, value, column) for each token, ending with ("eof", None, column)."""
    out: list[tuple[str, Any, int]] = []
    pos = 0
    n = len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None:
            raise SelectorError(text, pos + 1, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup
        raw = m.group()
        col = pos + 1
        pos = m.end()
        if kind == "ws":
            continue
        if kind == "str":
            out.append(("str", raw[1:-1].replace("''", "'"), col))
        elif kind == "float":
            out.append(("num", float(raw), col))
        elif kind in ("hex", "dec", "oct"):
            try:
                if kind == "hex":
                    value = _int_literal(int(raw[2:], 16))
                elif kind == "oct":
                    value = _int_literal(int(raw, 8))
                else:
                    # Too big for a long: ActiveMQ keeps a BigDecimal; a float is close.
                    digits = raw.rstrip("lL")
                    value = int(digits)
                    if not _LONG_MIN <= value <= _LONG_MAX:
                        value = float(digits)  # type: ignore[assignment]
            except OverflowError:
                raise SelectorError(text, col, f"number {raw} out of range") from None
            out.append(("num", value, col))
        elif kind == "id":
            upper = raw.upper()
            out.append(("kw", upper, col) if upper in _KEYWORDS else ("id", raw, col))
        else:
            out.append(("op", raw, col))
    out.append(("eof", None, n + 1))
    return out


# -- parser -----------------------------------------------------------------------------
# Nodes are tuples: (kind, column, ...). `bool_kinds` are ActiveMQ's BooleanExpressions.

_BOOL_KINDS = frozenset({"and", "or", "not", "eq", "cmp", "like", "in", "cast", "isnull"})
HEADERS = frozenset(
    {
        "JMSDestination",
        "JMSReplyTo",
        "JMSType",
        "JMSDeliveryMode",
        "JMSPriority",
        "JMSMessageID",
        "JMSTimestamp",
        "JMSCorrelationID",
        "JMSExpiration",
        "JMSRedelivered",
        "JMSXDeliveryCount",
        "JMSXGroupID",
        "JMSXGroupSeq",
        "JMSXUserID",
    }
)


def _describe(tok: tuple[str, Any, int]) -> str:
    kind, value, _ = tok
    if kind == "eof":
        return "the end"
    if kind == "str":
        return repr(value)
    return str(value)


def _is_bool(node: Node) -> bool:
    return node[0] in _BOOL_KINDS or (
        node[0] == "const" and (node[2] is None or type(node[2]) is bool)
    )


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    # token helpers
    def peek(self, offset: int = 0) -> tuple[str, Any, int]:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def at(self, kind: str, value: Any = None, offset: int = 0) -> bool:
        k, v, _ = self.peek(offset)
        return k == kind and (value is None or v == value)

    def take(self, kind: str, value: Any = None) -> bool:
        if self.at(kind, value):
            self.i += 1
            return True
        return False

    def fail(self, expected: str, col: int | None = None) -> SelectorError:
        tok = self.peek()
        return SelectorError(
            self.text, col or tok[2], f"expected {expected}, found {_describe(tok)}"
        )

    def error(self, node: Node, problem: str) -> SelectorError:
        return SelectorError(self.text, node[1], problem)

    def expect(self, kind: str, value: Any, expected: str) -> None:
        if not self.take(kind, value):
            raise self.fail(expected)

    # grammar
    def parse(self) -> Node:
        if self.at("eof"):
            raise self.fail("an expression")
        node = self.boolean(self.or_expr())
        if not self.at("eof"):
            raise self.fail("an operator or the end")
        return node

    def boolean(self, node: Node) -> Node:
        """ActiveMQ's asBooleanExpression."""
        if _is_bool(node):
            return node
        if node[0] == "prop":
            return ("cast", node[1], node)
        raise self.error(node, "expected a boolean expression")

    def or_expr(self) -> Node:
        left = self.and_expr()
        while self.take("kw", "OR"):
            right = self.and_expr()
            left = self._logic("or", left, right)
        return left

    def and_expr(self) -> Node:
        left = self.not_expr()
        while self.take("kw", "AND"):
            right = self.not_expr()
            left = self._logic("and", left, right)
        return left

    def _logic(self, kind: str, left: Node, right: Node) -> Node:
        left, right = self.boolean(left), self.boolean(right)
        if left[0] == kind:
            return (kind, left[1], [*left[2], right])
        return (kind, left[1], [left, right])

    def not_expr(self) -> Node:
        tok = self.peek()
        if self.take("kw", "NOT"):
            return ("not", tok[2], self.boolean(self.not_expr()))
        return self.equality()

    def equality(self) -> Node:
        left = self.comparison()
        while True:
            tok = self.peek()
            if self.take("op", "=") or self.take("op", "<>"):
                right = self.comparison()
                self._check_equal(left, right)
                node: Node = ("eq", left[1], left, right)
                left = node if tok[1] == "=" else ("not", left[1], node)
            elif self.take("kw", "IS"):
                negate = self.take("kw", "NOT")
                self.expect("kw", "NULL", "NULL")
                node = ("isnull", left[1], left)
                left = ("not", left[1], node) if negate else node
            else:
                return left

    def _check_equal(self, left: Node, right: Node) -> None:
        for node in (left, right):
            if node[0] == "const" and node[2] is None:
                raise self.error(node, "NULL cannot be compared (use IS NULL)")
        if left[0] == "const" and right[0] == "const" and _is_bool(left) and not _is_bool(right):
            raise self.error(right, "a boolean cannot be compared with a non-boolean")

    def _check_order(self, node: Node) -> None:
        if node[0] == "const":
            if type(node[2]) in (int, float):
                return
            raise self.error(node, f"value {_literal(node[2])} cannot be ordered")
        if _is_bool(node):
            raise self.error(node, "a boolean expression cannot be ordered")

    def comparison(self) -> Node:
        left = self.add()
        while True:
            tok = self.peek()
            if tok[0] == "op" and tok[1] in ("<", "<=", ">", ">="):
                self.i += 1
                right = self.add()
                self._check_order(left)
                self._check_order(right)
                left = ("cmp", left[1], tok[1], left, right)
                continue
            negate = tok[0] == "kw" and tok[1] == "NOT"
            word = self.peek(1 if negate else 0)
            if word[0] != "kw" or word[1] not in ("LIKE", "BETWEEN", "IN"):
                if negate:
                    raise self.fail("LIKE, BETWEEN or IN", self.peek(1)[2])
                return left
            self.i += 2 if negate else 1
            if word[1] == "LIKE":
                node = self._like(left)
            elif word[1] == "BETWEEN":
                low = self.add()
                self.expect("kw", "AND", "AND")
                high = self.add()
                for n in (left, low, high):
                    self._check_order(n)
                if negate:
                    left = (
                        "or",
                        left[1],
                        [("cmp", left[1], "<", left, low), ("cmp", left[1], ">", left, high)],
                    )
                else:
                    left = (
                        "and",
                        left[1],
                        [("cmp", left[1], ">=", left, low), ("cmp", left[1], "<=", left, high)],
                    )
                continue
            else:
                node = self._in(left)
            left = ("not", left[1], node) if negate else node

    def _string(self) -> str:
        tok = self.peek()
        if tok[0] != "str":
            raise self.fail("a string literal")
        self.i += 1
        return tok[1]  # type: ignore[no-any-return]

    def _like(self, left: Node) -> Node:
        pattern = self._string()
        escape = None
        if self.take("kw", "ESCAPE"):
            col = self.peek()[2]
            escape = self._string()
            if len(escape) != 1:
                raise SelectorError(self.text, col, "ESCAPE must be one character")
        return ("like", left[1], left, _like_regex(pattern, escape))

    def _in(self, left: Node) -> Node:
        if left[0] != "prop":
            raise self.error(left, "IN needs a property on its left")
        self.expect("op", "(", "(")
        items = [self._string()]
        while self.take("op", ","):
            items.append(self._string())
        self.expect("op", ")", ") or ,")
        return ("in", left[1], left, frozenset(items))

    def add(self) -> Node:
        left = self.mult()
        while self.at("op", "+") or self.at("op", "-"):
            op = self.peek()[1]
            self.i += 1
            left = ("arith", left[1], op, left, self.mult())
        return left

    def mult(self) -> Node:
        left = self.unary()
        while self.at("op", "*") or self.at("op", "/") or self.at("op", "%"):
            op = self.peek()[1]
            self.i += 1
            left = ("arith", left[1], op, left, self.unary())
        return left

    def unary(self) -> Node:
        tok = self.peek()
        if self.take("op", "+"):
            return self.unary()
        if self.take("op", "-"):
            operand = self.unary()
            if operand[0] == "const" and type(operand[2]) in (int, float):
                return ("const", tok[2], -operand[2])
            return ("neg", tok[2], operand)
        if self.take("kw", "NOT"):
            # ActiveMQ also allows NOT where an operand goes (`a = NOT b`).
            return ("not", tok[2], self.boolean(self.unary()))
        return self.primary()

    def primary(self) -> Node:
        kind, value, col = self.peek()
        if kind in ("str", "num"):
            self.i += 1
            return ("const", col, value)
        if kind == "kw" and value in ("TRUE", "FALSE", "NULL"):
            self.i += 1
            return ("const", col, {"TRUE": True, "FALSE": False, "NULL": None}[value])
        if kind == "kw" and value in ("XPATH", "XQUERY"):
            raise SelectorError(self.text, col, f"{value} selectors are not supported")
        if kind == "id":
            if self.at("op", "(", 1):
                raise SelectorError(self.text, col, "function calls are not supported")
            self.i += 1
            return ("prop", col, value)
        if self.take("op", "("):
            node = self.or_expr()
            self.expect("op", ")", ")")
            return node
        raise self.fail("an expression")


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if type(value) is bool:
        return "TRUE" if value else "FALSE"
    if type(value) is str:
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _like_regex(pattern: str, escape: str | None) -> re.Pattern[str]:
    """ActiveMQ's LIKE: % any run, _ one character; the escape character makes the next
    _, % or escape literal (elsewhere it is itself)."""
    out = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == escape and i + 1 < n and pattern[i + 1] in ("_", "%", escape):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def parse(text: str) -> Node:
    """The checked tree of a selector (`Selector` compiles it)."""
    return _Parser(text).parse()
