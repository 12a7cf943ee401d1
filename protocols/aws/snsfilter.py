"""SNS subscription filter policies: compiled once, matched per message (sans-IO).

`compile_policy(text, scope)` parses a FilterPolicy (the JSON given to Subscribe or
SetSubscriptionAttributes) for a FilterPolicyScope and returns a `FilterPolicy` whose
`matches(attributes, body)` is called per published message; anything AWS rejects raises
`FilterPolicyError` with AWS's InvalidParameter text. The policy is parsed and checked
once; `matches` runs closures over frozensets and tuples built then. Per message it reads
only the attributes the policy names (a String.Array's JSON is parsed only when its name
is in the policy) or, for scope MessageBody, parses the body at most once, whatever the
number of keys, and looks up only the paths the policy names. The last body (by
identity: a publish hands every subscription the same str) and the last 16 String.Array
values are kept, so a message fanned out to N filtered subscriptions is parsed once.

The language as built (the AWS SNS developer guide, "Amazon SNS message filtering"):

- A policy is a JSON object of key -> array of match values: AND across keys, OR within
  a key's array. A key matches when at least one of its values matches.
- Exact strings (`"rugby"`, case-sensitive), numbers (`301.5` matches `3.015e2`),
  `true`, `false`, `null` (the last three only meet JSON values of a body or of a
  String.Array element).
- `{"prefix": s}`, `{"suffix": s}`, `{"equals-ignore-case": s}`.
- `{"anything-but": v}` with v a string, a number, a list of strings or a list of
  numbers, `{"prefix": s or [s...]}`, `{"suffix": s or [s...]}` or
  `{"equals-ignore-case": s or [s...]}`: the complement of that test over present values
  of any type (a number meets anything-but "x"; a missing key never matches it; combine
  it with `{"exists": false}` for that).
- `{"numeric": ["=", n]}`, `[op, n]` for `<`, `<=`, `>`, `>=`, and ranges
  `[">" | ">=", lo, "<" | "<=", hi]`, on Number attributes and JSON numbers only.
- `{"exists": true}` (the key is there with a non-null value) and `{"exists": false}`
  (it is not; on attributes only when the message has at least one attribute, as AWS
  notes).
- `{"cidr": "10.0.0.0/24"}`, IPv4 or IPv6, on string values that are IP addresses.
- `"$or": [{...}, {...}]`: OR across whole sub-policies, at any level. As AWS documents,
  `$or` is an operator only when its value is an array of at least two objects none of
  which uses a reserved word (`numeric`, `prefix`, ...) as a key; otherwise it is an
  ordinary key.
- Scope MessageAttributes: attribute name -> (DataType, StringValue). String (and
  `String.<custom>`) values are strings, Number (`Number.<custom>`) values numbers,
  String.Array values JSON arrays whose elements each count (a key matches if any element
  does); Binary attributes are ignored. Nested objects are rejected.
- Scope MessageBody: the body must be a JSON object (anything else matches nothing);
  a nested policy object walks into nested body objects, arrays are flattened (any
  element), and as AWS, a dotted name is the same path as the nesting it spells:
  `{"a.b": [..]}` meets `{"a": {"b": ..}}` and `{"a.b": ..}`.

Limits and errors, checked after the policy compiled:

- At most 5 keys: in scope MessageAttributes every attribute name, in scope MessageBody
  the top-level names (nested keys do not count, AWS's current "Filter policy
  constraints"); names inside `$or` branches count as their level's names.
- At most 150 combinations: the product over the policy's arrays of (values x nesting
  depth) — AWS's worked example gives 3 x 4 x 2 x 3 = 72 for a 4-value array three
  levels down and a 3-value one two levels down — with `$or` adding its branches.
- 256 KB of UTF-8 at most; numbers in `numeric` and numeric `anything-but` within
  -1e9 .. 1e9; numbers compare with five digits after the decimal point (values are
  rounded to 1e-5 first), so 1.000001 equals 1. A message number outside the range never
  meets a numeric test (a plain number in the policy still meets the same number, e.g. an
  account id, as AWS keeps that form matchable).
- Error texts: AWS's as recorded from real SNS responses ("Invalid parameter:
  FilterPolicy: <reason>"); `FilterPolicyError.reason` is the part after
  "Invalid parameter: FilterPolicy: " and `for_subscribe()` gives Subscribe's form
  ("Invalid parameter: Attributes Reason: FilterPolicy: <reason>"). The texts marked
  "own" in tests/sqs/sns_filter_cases.py are ours where no AWS text was found.

Knowingly different from AWS:

- AWS appends Jackson's location ("\\n at [Source: (String)"..."; line: 1, column: N]")
  to parse-time errors; we stop before it.
- AWS's matcher keeps "array consistency" for arrays of objects in a body (two keys must
  match within one element of the same array); we do not: each key is matched over all
  elements.
- An empty policy (`""`, whitespace or `{}`) compiles to a policy that matches every
  message; AWS treats `""` on SetSubscriptionAttributes as "remove the policy", which is
  the caller's (protocols/aws/sns) to do.
- `wildcard` and `exactly` (Event Ruler operators SNS does not document) are rejected as
  unrecognized match types; `{"prefix": {"equals-ignore-case": ..}}` likewise is not
  taken (a prefix must be a string).
- `{"anything-but": {"suffix": ..}}` is taken, as the current guide lists it; SNS
  answered "Unsupported anything-but pattern: suffix" in responses recorded in 2024-05.
- A name repeated in one object: the last one stands (Jackson's and Event Ruler's
  reading). `for_subscribe()` of the MessageAttributes-nesting error is our guess at
  Subscribe's wording (only SetSubscriptionAttributes' was recorded).
- AWS's guide contradicts itself on anything-but over a String.Array ("none of the
  elements listed" in one sentence, `["rugby", "baseball"]` matching
  anything-but rugby in the example under it); we follow the examples and the numeric
  page: any element not excluded matches.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

SCOPES = ("MessageAttributes", "MessageBody")
MAX_POLICY_BYTES = 256 * 1024
MAX_KEYS = 5
MAX_COMBINATIONS = 150
NUMERIC_LIMIT = 10**9
_SCALE = 100_000  # five digits after the decimal point

RESERVED = frozenset(
    (
        "numeric",
        "prefix",
        "suffix",
        "anything-but",
        "exists",
        "equals-ignore-case",
        "cidr",
        "wildcard",
        "exactly",
    )
)
_PREFIX = "Invalid parameter: "
_FP = "FilterPolicy: "

# A module global so a test can count the JSON parses one match does.
_json_loads = json.loads

# SNS validates Number attributes on Publish; this keeps Python's float() extras
# ("1_000", "inf", " 5 ") from meeting numeric tests if one slips through.
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

Leaf = str | int | bool | None | tuple[str, Decimal]
Leaves = Sequence[Leaf]
Test = Callable[[Leaf], bool]


class FilterPolicyError(ValueError):
    """A filter policy AWS rejects; `str(err)` is AWS's InvalidParameter message.

    `reason` is the text after "Invalid parameter: FilterPolicy: " (None for the two
    messages AWS words otherwise: the scope value and nesting under MessageAttributes).
    """

    def __init__(self, reason: str | None, message: str | None = None) -> None:
        self.reason = reason
        self.message = message if message is not None else _PREFIX + _FP + str(reason)
        super().__init__(self.message)

    def for_subscribe(self) -> str:
        """The text Subscribe answers with (it names the Attributes parameter)."""
        return _PREFIX + "Attributes Reason: " + self.message[len(_PREFIX) :]


def _fail(reason: str) -> FilterPolicyError:
    return FilterPolicyError(reason)


class _Obj:
    """A JSON object as its ordered pairs: match expressions care about key order and
    about a second key, which a dict would hide."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


class _Num:
    """A JSON number with its source text (AWS's messages quote the token as written)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _token(v: Any) -> str:
    """The text Jackson's getText() shows for the token that starts `v`."""
    if isinstance(v, _Num):
        return v.text
    if isinstance(v, str):
        return v
    if isinstance(v, _Obj):
        return "{"
    if isinstance(v, list):
        return "["
    if v is True:
        return "true"
    if v is False:
        return "false"
    return "null"


# -- numbers ---------------------------------------------------------------------------


def _scaled(value: float, text: str) -> int | tuple[str, Decimal] | None:
    """The comparable form of a number: an int in units of 1e-5 within the documented
    range; outside it (1e400 included, which a float cannot hold) a normalised Decimal,
    equal only to the same number; None for what is not a number."""
    if -NUMERIC_LIMIT <= value <= NUMERIC_LIMIT:
        return round(value * _SCALE)
    try:
        exact = Decimal(text)
    except InvalidOperation:
        return None
    if not exact.is_finite():
        return None
    return ("n", exact.normalize())


def _number_text(text: str) -> int | tuple[str, Decimal] | None:
    try:
        value = float(text)
    except ValueError:
        return None
    # float() also takes "1_000", " 5", "inf" and "nan"; the grammar check runs only on
    # those rare shapes, so the usual number costs one float().
    if "_" in text or text != text.strip():
        return None
    if (text[-1].isalpha() or not math.isfinite(value)) and not _NUMBER.fullmatch(text):
        return None
    return _scaled(value, text)


def _json_number(v: int | float) -> int | tuple[str, Decimal] | None:
    return _scaled(float(v), repr(v))


def _policy_number(n: _Num, ranged: bool) -> int | tuple[str, Decimal]:
    value = float(n.text)
    if ranged and not -NUMERIC_LIMIT <= value <= NUMERIC_LIMIT:
        # own text: AWS documents the range but no error wording was found
        raise _fail(f"Numeric value {n.text} is out of range; it must be between -1e9 and 1e9")
    key = _scaled(value, n.text)
    assert key is not None  # JSON's grammar: always a finite Decimal
    return key


# -- one key's array of match values -----------------------------------------------------


class _Values:
    """What one key's array asks, gathered by kind so the per-leaf test is a few set
    lookups and tuple calls."""

    def __init__(self) -> None:
        self.strings: set[str] = set()
        self.numbers: set[int | tuple[str, Decimal]] = set()
        self.constants: list[Any] = []  # True / False / None, compared by identity
        self.prefixes: list[str] = []
        self.suffixes: list[str] = []
        self.lowered: set[str] = set()
        self.ranges: list[tuple[int | None, bool, int | None, bool]] = []
        self.cidrs: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.negations: list[Test] = []
        self.exists_true = False
        self.exists_false = False
        self.count = 0

    def test(self) -> Test:
        strings = frozenset(self.strings)
        numbers = frozenset(self.numbers)
        constants = tuple(self.constants)
        prefixes = tuple(self.prefixes)
        suffixes = tuple(self.suffixes)
        lowered = frozenset(self.lowered)
        ranges = tuple(self.ranges)
        cidrs = bool(self.cidrs)
        v4 = tuple((int(n.network_address), int(n.netmask)) for n in self.cidrs if n.version == 4)
        v6 = tuple(n for n in self.cidrs if n.version == 6)
        negations = tuple(self.negations)
        kinds = [
            k
            for k, present in (
                ("strings", strings),
                ("numbers", numbers),
                ("constants", constants),
                ("prefixes", prefixes),
                ("suffixes", suffixes),
                ("lowered", lowered),
                ("ranges", ranges),
                ("cidrs", cidrs),
                ("negations", negations),
            )
            if present
        ]
        # A key's array is most often of one kind: a direct test for it, not the
        # general one's chain of branches.
        if kinds == ["strings"] or not kinds:
            # Leaves of other types are never in a set of str.
            return strings.__contains__
        if kinds == ["prefixes"]:
            return lambda v: type(v) is str and v.startswith(prefixes)  # type: ignore[union-attr]
        if kinds == ["suffixes"]:
            return lambda v: type(v) is str and v.endswith(suffixes)  # type: ignore[union-attr]
        if kinds == ["lowered"]:
            return lambda v: type(v) is str and v.lower() in lowered  # type: ignore[union-attr]
        if kinds == ["negations"] and len(negations) == 1:
            return negations[0]
        if kinds == ["ranges"] and len(ranges) == 1:
            return _range_test(*ranges[0])

        def test(v: Leaf) -> bool:
            t = type(v)
            if t is str:
                s: str = v  # type: ignore[assignment]
                if s in strings:
                    return True
                if prefixes and s.startswith(prefixes):
                    return True
                if suffixes and s.endswith(suffixes):
                    return True
                if lowered and s.lower() in lowered:
                    return True
                if cidrs and _in_cidrs(s, v4, v6):
                    return True
            elif t is int:
                n: int = v  # type: ignore[assignment]
                if n in numbers:
                    return True
                for lo, lo_open, hi, hi_open in ranges:
                    if lo is not None and (n <= lo if lo_open else n < lo):
                        continue
                    if hi is not None and (n >= hi if hi_open else n > hi):
                        continue
                    return True
            elif t is tuple:
                if v in numbers:
                    return True
            else:
                for c in constants:
                    if v is c:
                        return True
            for negation in negations:  # noqa: SIM110 - see _build
                if negation(v):
                    return True
            return False

        return test


def _ipv4(s: str) -> int | None:
    """A dotted quad as an int, as ipaddress reads it (no leading zeros), without
    ipaddress's objects: cidr tests run per message."""
    parts = s.split(".")
    if len(parts) != 4:
        return None
    n = 0
    for part in parts:
        if (
            not (part.isdigit() and part.isascii())
            or len(part) > 3
            or (part[0] == "0" and len(part) > 1)
        ):
            return None
        octet = int(part)
        if octet > 255:
            return None
        n = n << 8 | octet
    return n


def _range_test(lo: int | None, lo_open: bool, hi: int | None, hi_open: bool) -> Test:
    """One numeric range over scaled ints (bool and the big-number tuples never meet it)."""
    low = -math.inf if lo is None else lo
    high = math.inf if hi is None else hi
    if lo_open and hi_open:
        return lambda v: type(v) is int and low < v < high  # type: ignore[operator]
    if lo_open:
        return lambda v: type(v) is int and low < v <= high  # type: ignore[operator]
    if hi_open:
        return lambda v: type(v) is int and low <= v < high  # type: ignore[operator]
    return lambda v: type(v) is int and low <= v <= high  # type: ignore[operator]


def _in_cidrs(
    s: str, v4: tuple[tuple[int, int], ...], v6: tuple[ipaddress.IPv6Network, ...]
) -> bool:
    if ":" not in s:
        n = _ipv4(s)
        if n is None:
            return False
        for network, mask in v4:  # noqa: SIM110 - see _build
            if n & mask == network:
                return True
        return False
    if not v6:
        return False
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return False
    return any(ip in net for net in v6)


def _one_key(expr: _Obj, after: str = "Only one key allowed in match expression") -> None:
    if len(expr.pairs) > 1:
        raise _fail(after)


def _compile_values(items: list[Any]) -> _Values:
    if not items:
        raise _fail("Empty arrays are not allowed")
    out = _Values()
    out.count = len(items)
    for item in items:
        if isinstance(item, _Obj):
            _compile_expression(item, out)
        elif isinstance(item, str):
            out.strings.add(item)
        elif isinstance(item, _Num):
            out.numbers.add(_policy_number(item, ranged=False))
        elif item is True or item is False or item is None:
            out.constants.append(item)
        else:
            raise _fail("Match value must be String, number, true, false, or null")
    return out


def _compile_expression(expr: _Obj, out: _Values) -> None:
    if not expr.pairs:
        raise _fail("Match expression name not found")
    op, arg = expr.pairs[0]
    if op in ("prefix", "suffix", "equals-ignore-case"):
        if not isinstance(arg, str):
            raise _fail(f"{op} match pattern must be a string")
        _one_key(expr)
        if op == "prefix":
            out.prefixes.append(arg)
        elif op == "suffix":
            out.suffixes.append(arg)
        else:
            out.lowered.add(arg.lower())
    elif op == "numeric":
        if not isinstance(arg, list):
            raise _fail("Value of numeric must be an array.")
        if _is_equals(arg):
            out.numbers.add(_compile_equals(arg))
        else:
            out.ranges.append(_compile_numeric(arg))
        _one_key(expr, "Too many elements in numeric expression")
    elif op == "anything-but":
        out.negations.append(_compile_anything_but(arg))
        _one_key(expr, "Too many elements in numeric expression")
    elif op == "exists":
        if arg is True:
            out.exists_true = True
        elif arg is False:
            out.exists_false = True
        else:
            raise _fail("exists match pattern must be either true or false.")
        _one_key(expr)
    elif op == "cidr":
        if not isinstance(arg, str):
            # AWS's text names prefix here (Event Ruler's message for this case).
            raise _fail("prefix match pattern must be a string")
        out.cidrs.append(_compile_cidr(arg))
        _one_key(expr)
    else:
        raise _fail(f"Unrecognized match type {op}")


def _is_equals(arg: list[Any]) -> bool:
    return bool(arg) and arg[0] == "="


def _compile_equals(arg: list[Any]) -> int | tuple[str, Decimal]:
    if len(arg) < 2 or not isinstance(arg[1], _Num):
        raise _fail("Value of equals must be numeric")
    if len(arg) > 2:
        raise _fail("Too many elements in numeric expression")
    return _policy_number(arg[1], ranged=True)


def _ranged_int(n: _Num) -> int:
    key = _policy_number(n, ranged=True)
    assert isinstance(key, int)
    return key


def _compile_numeric(arg: list[Any]) -> tuple[int | None, bool, int | None, bool]:
    """[op, n] or [">"|">=", lo, "<"|"<=", hi] as (lo, lo_open, hi, hi_open)."""
    if not arg:
        raise _fail("Invalid member in numeric match: ]")
    op = arg[0]
    if not isinstance(op, str):
        raise _fail(f"Invalid member in numeric match: {_token(op)}")
    if op not in ("<", "<=", ">", ">="):
        raise _fail(f"Unrecognized numeric range operator: {op}")
    if len(arg) < 2 or not isinstance(arg[1], _Num):
        raise _fail(f"Value of {op} must be numeric")
    value = _ranged_int(arg[1])
    if op in ("<", "<="):
        if len(arg) > 2:
            raise _fail("Too many elements in numeric expression")
        return (None, False, value, op == "<")
    if len(arg) == 2:
        return (value, op == ">", None, False)
    op2 = arg[2]
    if not isinstance(op2, str):
        raise _fail(f"Bad value in numeric range: {_token(op2)}")
    if op2 not in ("<", "<="):
        raise _fail(f"Bad numeric range operator: {op2}")
    if len(arg) < 4 or not isinstance(arg[3], _Num):
        raise _fail(f"Value of {op2} must be numeric")
    top = _ranged_int(arg[3])
    if len(arg) > 4:
        raise _fail("Too many terms in numeric range expression")
    if top <= value:
        raise _fail("Bottom must be less than top")
    return (value, op == ">", top, op2 == "<")


def _compile_anything_but(arg: Any) -> Test:
    if isinstance(arg, _Obj):
        if not arg.pairs:
            raise _fail("Anything-But expression name not found")
        inner, value = arg.pairs[0]
        if inner not in ("prefix", "suffix", "equals-ignore-case"):
            raise _fail(f"Unsupported anything-but pattern: {inner}")
        strings = _anything_but_strings(inner, value)
        if len(arg.pairs) > 1:
            raise _fail("Too many elements in numeric expression")
        if inner == "prefix":
            prefixes = tuple(strings)
            return lambda v: not (type(v) is str and v.startswith(prefixes))  # type: ignore[union-attr]
        if inner == "suffix":
            suffixes = tuple(strings)
            return lambda v: not (type(v) is str and v.endswith(suffixes))  # type: ignore[union-attr]
        lowered = frozenset(s.lower() for s in strings)
        return lambda v: not (type(v) is str and v.lower() in lowered)  # type: ignore[union-attr]
    if isinstance(arg, str):
        excluded_s = frozenset((arg,))
        return lambda v: not (type(v) is str and v in excluded_s)
    if isinstance(arg, _Num):
        excluded_n = frozenset((_policy_number(arg, ranged=True),))
        return lambda v: not (type(v) in (int, tuple) and v in excluded_n)
    if not isinstance(arg, list):
        raise _fail("Value of anything-but must be an array or single string/number value.")
    if any(not isinstance(v, (str, _Num)) for v in arg):
        raise _fail("Inside anything but list, start|null|boolean is not supported.")
    kinds = {type(v) for v in arg}
    if len(kinds) != 1:
        raise _fail(
            "Inside anything but list, either all values are number or string, "
            "mixed type is not supported"
        )
    if str in kinds:
        excluded = frozenset(arg)
        return lambda v: not (type(v) is str and v in excluded)
    numbers = frozenset(_policy_number(v, ranged=True) for v in arg)
    return lambda v: not (type(v) in (int, tuple) and v in numbers)


def _anything_but_strings(inner: str, value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        raise _fail(f"{inner} match pattern must be a string")
    for v in values:
        if not isinstance(v, str):
            raise _fail(f"{inner} match pattern must be a string")
    return values


def _compile_cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    parts = text.split("/")
    if len(parts) != 2:
        raise _fail("Malformed CIDR, one '/' required")
    address, bits = parts
    try:
        mask = int(bits)
    except ValueError:
        raise _fail("Malformed CIDR, mask bits must be an integer") from None
    if mask < 0:
        raise _fail("Malformed CIDR, mask bits must not be negative")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise _fail(f"Nonstandard IP address: {address}") from None
    if ip.version == 4 and mask > 31:
        raise _fail("IPv4 mask bits must be < 32")
    if ip.version == 6 and mask > 127:
        raise _fail("IPv6 mask bits must be < 128")
    return ipaddress.ip_network(f"{address}/{mask}", strict=False)


# -- the policy's structure --------------------------------------------------------------


class _Key:
    __slots__ = ("depth", "path", "top", "values")

    def __init__(self, path: str, top: str, depth: int, values: _Values) -> None:
        self.path = path
        self.top = top
        self.depth = depth
        self.values = values


class _And:
    __slots__ = ("items",)

    def __init__(self, items: list[_Key | _Or]) -> None:
        self.items = items


class _Or:
    __slots__ = ("branches",)

    def __init__(self, branches: list[_And]) -> None:
        self.branches = branches


def _is_or(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) >= 2
        and all(isinstance(v, _Obj) for v in value)
        and not any(k in RESERVED for v in value for k, _ in v.pairs)
    )


class _Compiler:
    def __init__(self) -> None:
        self.nested = False

    def obj(self, pairs: list[tuple[str, Any]], path: str, top: str, depth: int) -> _And:
        items: list[_Key | _Or] = []
        # A repeated name: the last one stands, as Jackson and Event Ruler read it.
        for key, value in dict(pairs).items():
            if key == "$or" and _is_or(value):
                items.append(_Or([self.obj(v.pairs, path, top, depth) for v in value]))
                continue
            sub = f"{path}.{key}" if path else key
            if isinstance(value, _Obj):
                if depth >= MAX_COMBINATIONS:
                    # A key this deep counts its depth in the combinations already.
                    raise _fail("Filter policy is too complex")
                # Refused under MessageAttributes only once the whole policy parsed: AWS
                # reports a malformed nested value first.
                self.nested = True
                if not value.pairs:
                    raise _fail("Empty objects are not allowed")
                items.extend(self.obj(value.pairs, sub, top or key, depth + 1).items)
            elif isinstance(value, list):
                items.append(_Key(sub, top or key, depth, _compile_values(value)))
            else:
                raise _fail(f'"{key}" must be an object or an array')
        return _And(items)


def _combinations(node: _And | _Or | _Key) -> int:
    if isinstance(node, _Key):
        return node.values.count * node.depth
    if isinstance(node, _Or):
        return sum(_combinations(b) for b in node.branches)
    total = 1
    for item in node.items:
        total *= _combinations(item)
    return total


def _keys(node: _And | _Or | _Key, body: bool, out: set[str]) -> set[str]:
    if isinstance(node, _Key):
        out.add(node.top if body else node.path)
    elif isinstance(node, _Or):
        for b in node.branches:
            _keys(b, body, out)
    else:
        for item in node.items:
            _keys(item, body, out)
    return out


def _paths(node: _And | _Or | _Key, out: set[str]) -> set[str]:
    if isinstance(node, _Key):
        out.add(node.path)
    elif isinstance(node, _Or):
        for b in node.branches:
            _paths(b, out)
    else:
        for item in node.items:
            _paths(item, out)
    return out


# -- evaluation closures -----------------------------------------------------------------

# An attribute view: name -> (DataType, StringValue); a body view: path -> leaves.
Check = Callable[[Any], bool]


def _attribute_leaves(data_type: str, value: str) -> Leaves | None:
    """None when SNS ignores the attribute (Binary); else its leaf values."""
    base = data_type.split(".", 1)[0]
    if base == "String":
        if data_type != "String.Array":
            return [value]
        return _array_leaves(value)
    if base == "Number":
        key = _number_text(value)
        return () if key is None else (key,)
    return None


# A publish is matched against every subscription of the topic with the same attribute
# strings and body, so the last few parses are kept: fan-out to N filtered subscriptions
# parses a String.Array or a body once, not N times. Small, so a 256 KB message cannot
# pin much memory.
@functools.lru_cache(maxsize=16)
def _array_leaves(value: str) -> tuple[Leaf, ...]:
    try:
        items = _json_loads(value)
    except (ValueError, RecursionError):
        return ()
    if not isinstance(items, list):
        return ()
    return tuple(leaf for item in items if (leaf := _json_leaf(item)) is not _SKIP)


_last_body: tuple[str | None, dict[str, Any] | None] = (None, None)


def _parse_body(text: str) -> dict[str, Any] | None:
    """The body as a JSON object, or None; the last one is kept by identity (a
    publish hands every subscription the same str), never by equality."""
    global _last_body
    cached_text, cached = _last_body
    if cached_text is text:
        return cached
    try:
        doc = _json_loads(text)
    except (ValueError, RecursionError):
        # RecursionError: nested past the JSON parser's depth; matches nothing, as
        # a body that is not JSON.
        doc = None
    if not isinstance(doc, dict):
        doc = None
    _last_body = (text, doc)
    return doc


_SKIP: Any = object()


def _json_leaf(v: Any) -> Any:
    t = type(v)
    if t is str or v is None or t is bool:
        return v
    if t is int or t is float:
        key = _json_number(v)
        return _SKIP if key is None else key
    return _SKIP


def _present(leaves: Leaves) -> bool:
    for leaf in leaves:  # noqa: SIM110 - see _build
        if leaf is not None:
            return True
    return False


def _decide(values: _Values) -> Callable[[Leaves], bool]:
    """The verdict of a key that is present, from its leaf values."""
    test = values.test()
    exists_true, exists_false = values.exists_true, values.exists_false

    def decide(leaves: Leaves) -> bool:
        for leaf in leaves:
            if test(leaf):
                return True
        if exists_true or exists_false:
            present = _present(leaves)
            return (exists_true and present) or (exists_false and not present)
        return False

    return decide


def _has_attribute(attrs: Mapping[str, tuple[str, str]]) -> bool:
    """Whether the message has an attribute SNS compares (Binary ones are ignored)."""
    return any(not t.startswith("Binary") for t, _ in attrs.values())


def _attribute_check(key: _Key) -> Check:
    name = key.path
    values = key.values
    test = values.test()
    decide = _decide(values)
    exists_true, exists_false = values.exists_true, values.exists_false

    def check(attrs: Mapping[str, tuple[str, str]]) -> bool:
        a = attrs.get(name)
        if a is not None:
            data_type, value = a
            # The common attribute: one string leaf, no list to build.
            if data_type == "String":
                return test(value) or exists_true
            leaves = _attribute_leaves(data_type, value)
            if leaves is not None:
                return decide(leaves)
        return exists_false and _has_attribute(attrs)

    return check


def _body_check(key: _Key) -> Check:
    path = key.path
    decide = _decide(key.values)
    exists_false = key.values.exists_false

    def check(flat: dict[str, Leaves]) -> bool:
        leaves = flat.get(path)
        if leaves is None:
            return exists_false
        return decide(leaves)

    return check


def _build(node: _And | _Or | _Key, leaf: Callable[[_Key], Check]) -> Check:
    if isinstance(node, _Key):
        return leaf(node)
    if isinstance(node, _Or):
        branches = tuple(_build(b, leaf) for b in node.branches)

        # Plain loops, not any()/all() over a generator: a generator is one more frame
        # per key per message on the publish path.
        def any_of(view: Any) -> bool:
            for b in branches:  # noqa: SIM110
                if b(view):
                    return True
            return False

        return any_of
    parts = tuple(_build(item, leaf) for item in node.items)
    if len(parts) == 1:
        return parts[0]

    def all_of(view: Any) -> bool:
        for p in parts:  # noqa: SIM110
            if not p(view):
                return False
        return True

    return all_of


class _Trie:
    """The policy's body paths as a tree of names, built once per subscription."""

    def __init__(self) -> None:
        self.path: str | None = None  # set where a policy key ends
        self.kids: dict[str, _Trie] = {}

    def insert(self, path: str) -> None:
        node = self
        for part in path.split("."):
            node = node.kids.setdefault(part, _Trie())
        node.path = path

    def freeze(self) -> _Node:
        """As nested tuples, each level also reachable by its dotted names ("a.b" for
        a -> b), which is how AWS treats a dotted body key."""
        direct = [(name, kid.freeze()) for name, kid in self.kids.items()]
        kids = direct + [
            (f"{name}.{sub}", node) for name, frozen in direct for sub, node in frozen[1]
        ]
        return (self.path, tuple(kids))


_Node = tuple[str | None, tuple[tuple[str, Any], ...]]
_MISSING: Any = object()


def _collect(
    obj: dict[str, Any], kids: tuple[tuple[str, _Node], ...], flat: dict[str, list[Leaf]]
) -> None:
    # Looks up the policy's names in the body, not the body's names in the policy: the
    # cost follows the policy's size, whatever the body carries besides.
    for name, node in kids:
        v = obj.get(name, _MISSING)
        if v is _MISSING:
            continue
        if type(v) is str:
            # the usual leaf, without a call
            if node[0] is not None:
                leaves = flat.get(node[0])
                if leaves is None:
                    flat[node[0]] = [v]
                else:
                    leaves.append(v)
        else:
            _add(v, node, flat)


def _add(v: Any, node: _Node, flat: dict[str, list[Leaf]]) -> None:
    t = type(v)
    if t is dict:
        if node[1]:
            _collect(v, node[1], flat)
    elif t is list:
        # Nested arrays by a stack, not by recursion: a body may nest them as deep as
        # the JSON parser allows; objects recurse only as deep as the policy's paths.
        stack = [v]
        while stack:
            for item in stack.pop():
                if type(item) is list:
                    stack.append(item)
                else:
                    _add(item, node, flat)
    elif node[0] is not None:
        leaf = _json_leaf(v)
        if leaf is not _SKIP:
            flat.setdefault(node[0], []).append(leaf)


class FilterPolicy:
    """A compiled subscription filter policy; `matches` is safe to call concurrently."""

    __slots__ = ("_check", "_paths", "combinations", "keys", "scope")

    def __init__(self, scope: str, root: _And | None) -> None:
        self.scope = scope
        self._check: Check | None = None
        self._paths: tuple[tuple[str, _Node], ...] = ()
        self.keys = 0
        self.combinations = 0
        if root is None or not root.items:
            return
        body = scope == "MessageBody"
        self.keys = len(_keys(root, body, set()))
        self.combinations = _combinations(root)
        self._check = _build(root, _body_check if body else _attribute_check)
        if body:
            trie = _Trie()
            for path in _paths(root, set()):
                trie.insert(path)
            self._paths = trie.freeze()[1]

    @property
    def match_all(self) -> bool:
        """True for an empty policy (every message passes)."""
        return self._check is None

    def matches(self, attributes: Mapping[str, tuple[str, str]], body: str) -> bool:
        """Whether a message with these MessageAttributes (name -> (DataType,
        StringValue)) and this Message text passes the policy."""
        check = self._check
        if check is None:
            return True
        if self._paths:
            doc = _parse_body(body)
            if doc is None:
                return False
            flat: dict[str, list[Leaf]] = {}
            _collect(doc, self._paths, flat)
            return check(flat)
        return check(attributes)


def compile_policy(text: str, scope: str = "MessageAttributes") -> FilterPolicy:
    """Parse and check a FilterPolicy for a FilterPolicyScope, once per subscription."""
    if scope not in SCOPES:
        raise FilterPolicyError(
            None,
            f"{_PREFIX}FilterPolicyScope: Invalid value [{scope}]. "
            "Please use either MessageBody or MessageAttributes",
        )
    if not text.strip():
        return FilterPolicy(scope, None)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        # own text: AWS documents 256 KB; no error wording was found
        raise _fail("Filter policy is too long; it must be at most 256 KB")
    try:
        doc = json.loads(
            text,
            object_pairs_hook=_Obj,
            parse_int=_Num,
            parse_float=_Num,
            parse_constant=_reject_constant,
        )
    except ValueError:
        raise _fail("failed to parse JSON.") from None
    except RecursionError:
        # own text: nested past the parser's depth, far past what 150 combinations allow
        raise _fail("Filter policy is too complex") from None
    if not isinstance(doc, _Obj):
        # Event Ruler's text for a rule that is not an object
        raise _fail("Filter is not an object")
    compiler = _Compiler()
    try:
        root = compiler.obj(doc.pairs, "", "", 1)
        if compiler.nested and scope == "MessageAttributes":
            raise FilterPolicyError(
                None,
                _PREFIX
                + "Filter policy scope MessageAttributes does not support nested filter policy",
            )
        policy = FilterPolicy(scope, root)
    except RecursionError:
        # own text: `$or` inside `$or` past Python's stack, which the parser let through
        raise _fail("Filter policy is too complex") from None
    if policy.keys > MAX_KEYS:
        raise _fail("Filter policy can not have more than 5 keys")
    if policy.combinations > MAX_COMBINATIONS:
        raise _fail("Filter policy is too complex")
    return policy
