"""Typed property values: the types a message property can have beyond Python's own.

A property value is one of Python's str, int, float, bool, bytes or None, which are
AMQP's string, long, double, boolean, binary and null (and all a STOMP header or an SQS
attribute ever is), or a *typed value*: a plain tuple ``(type, value)`` naming one of
AMQP 1.0's other simple types, so an AMQP producer's ``uint`` or ``symbol`` reaches an
AMQP consumer as that type again:

  ("byte" | "short" | "int" | "ubyte" | "ushort" | "uint" | "ulong", int)
  ("float", float)            a 32-bit float, held as the Python float it is exactly
  ("char", str)               one code point
  ("timestamp", int)          ms since the epoch
  ("uuid", bytes)             its 16 bytes
  ("symbol", str)
  ("amqp", bytes, str)        any other value (decimals, or the lists, maps and arrays
                              the spec forbids there but peers send): its AMQP encoding
                              as received, and the text form its protocol gave it

Plain tuples rather than a class: the journal marshals a message's properties as they
are (marshal writes tuples, not subclasses), so a typed value costs the store nothing
and a message without one (every STOMP message) is written as before. Nothing else in
a property dict is a tuple, so ``type(value) is tuple`` tells them apart.

The core interprets them in two places only: `property_text` (a header's text: what ActiveMQ's
STOMP transport shows, Java's toString of the value ActiveMQ's AMQP transformer would
have stored) and `property_operand` (what a JMS selector compares).
"""

from __future__ import annotations

import math
import struct
import uuid
from decimal import Decimal
from typing import Any

TypedValue = tuple[Any, ...]
PropertyValue = str | int | float | bool | bytes | None | TypedValue

INTEGER_TYPES = frozenset({"byte", "short", "int", "ubyte", "ushort", "uint", "ulong"})
TYPES = INTEGER_TYPES | {"float", "char", "timestamp", "uuid", "symbol", "amqp"}

_F32 = struct.Struct(">f")


def _java_decimal(digits_text: str, value: float) -> str:
    """`value` as Java's Double/Float.toString writes it, from a shortest decimal that
    reads back as it (`digits_text`): plain between 10^-3 and 10^7, else d.dddE±n."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign, digit_tuple, exp = Decimal(digits_text).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    sci = int(exp) + len(digits) - 1
    if -3 <= sci < 7:
        if sci >= 0:
            whole = digits[: sci + 1].ljust(sci + 1, "0")
            frac = digits[sci + 1 :] or "0"
        else:
            whole, frac = "0", "0" * (-sci - 1) + digits
        out = f"{whole}.{frac}"
    else:
        out = f"{digits[0]}.{digits[1:] or '0'}E{sci}"
    return "-" + out if sign else out


def java_double(value: float) -> str:
    """Java's Double.toString(value)."""
    return _java_decimal(repr(value), value)


def java_float(value: float) -> str:
    """Java's Float.toString of the 32-bit float `value`: the fewest digits that read
    back as the same float32."""
    if math.isfinite(value) and value != 0:
        exact = _F32.pack(value)
        for precision in range(1, 10):
            text = f"{value:.{precision - 1}e}"
            if _F32.pack(float(text)) == exact:
                return _java_decimal(text, value)
    return _java_decimal(repr(value), value)


def binary_text(data: bytes) -> str:
    """Binary as ActiveMQ's AMQP transformer stores it (proton-j's Binary.toString):
    printable ASCII as is, every other byte and the backslash as \\xNN."""
    return "".join(chr(b) if 31 < b < 127 and b != 0x5C else f"\\x{b:02x}" for b in data)


def _signed64(n: int) -> int:
    # ActiveMQ stores a ulong with UnsignedLong.longValue(): the same 64 bits, signed.
    return n - (1 << 64) if n >= 1 << 63 else n


def property_text(value: Any) -> str:
    """A property value as a STOMP header (and an SQS attribute) shows it."""
    t = type(value)
    if t is str:
        return value  # type: ignore[no-any-return]
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return str(value)
    if t is float:
        return java_double(value)
    if t is bytes:
        return binary_text(value)
    if value is None:
        return "null"
    if t is tuple:
        name = value[0]
        if name == "ulong":
            return str(_signed64(value[1]))
        if name in INTEGER_TYPES or name == "timestamp":
            return str(value[1])
        if name == "float":
            return java_float(value[1])
        if name == "uuid":
            return str(uuid.UUID(bytes=value[1]))
        if name == "amqp":
            return str(value[2])
        return str(value[1])  # char, symbol
    return str(value)


def property_operand(value: Any) -> Any:
    """A typed value as a JMS selector sees it, which is what ActiveMQ's AMQP
    transformer turns it into: numbers for the numeric types (a ulong as Java's long),
    a string for a symbol; a char, uuid or other value stays itself, a kind no selector
    literal has, so comparisons with it are FALSE as in ActiveMQ (a Character is neither
    a String nor a Number there)."""
    name = value[0]
    if name == "ulong":
        return _signed64(value[1])
    if name in INTEGER_TYPES or name == "float" or name == "timestamp" or name == "symbol":
        return value[1]
    return value


def property_is_number(value: Any) -> bool:
    """Whether a property value is numeric (an SQS Number)."""
    t = type(value)
    if t is int or t is float:
        return True
    return t is tuple and (value[0] in INTEGER_TYPES or value[0] in ("float", "timestamp"))
