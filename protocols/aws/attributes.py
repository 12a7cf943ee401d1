"""SQS message attributes: validation (with AWS's error texts) and the mapping onto the
core message's properties (see the package docstring for the whole mapping).

A String attribute is a str property, Binary a bytes property, Number a str property
(its exact text: the MD5 is over the text). Types that cannot be told from the Python
value (Number, custom ``String.x`` labels, a Binary sent as text...) are recorded in one
extra property, ``AWS.SQS.Types`` = ``name=Type;name=Type``: SQS clients cannot send a
name starting with ``AWS.``, so the ``AWS.SQS.`` namespace is free for the broker's own
properties, which are never shown to SQS receivers as message attributes.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from broker.core import Message, property_is_number, property_text
from protocols.aws.errors import SqsError, invalid

TYPES_PROPERTY = "AWS.SQS.Types"
RESERVED_PREFIX = "AWS.SQS."
MAX_ATTRIBUTES = 10

_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,256}")
_TYPE = re.compile(r"(String|Number|Binary)(\.[A-Za-z0-9_.\-]+)?")


@dataclass(frozen=True, slots=True)
class Attribute:
    """One message attribute: its data type (with custom label) and value."""

    data_type: str
    value: str | bytes

    def size(self, name: str) -> int:
        value = self.value if isinstance(self.value, bytes) else self.value.encode()
        return len(name.encode()) + len(self.data_type.encode()) + len(value)

    def to_wire(self) -> dict[str, str]:
        if isinstance(self.value, bytes):
            return {
                "DataType": self.data_type,
                "BinaryValue": base64.b64encode(self.value).decode("ascii"),
            }
        return {"DataType": self.data_type, "StringValue": self.value}


def check_name(name: str, kind: str = "Message (user)") -> None:
    """AWS's rules for attribute names (letters, digits, ``_-.``; no reserved prefixes;
    no leading, trailing or doubled dots; at most 256 characters)."""
    lowered = name.lower()
    if (
        not _NAME.fullmatch(name)
        or name.startswith(".")
        or name.endswith(".")
        or ".." in name
        or lowered.startswith("aws.")
        or lowered.startswith("amazon.")
    ):
        raise invalid(f"{kind} attribute name '{name}' is invalid.")


def parse_message_attributes(raw: Any) -> dict[str, Attribute]:
    """Validate the MessageAttributes of a send (JSON-shaped) into Attributes."""
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise invalid("MessageAttributes must be a map.")
    if len(raw) > MAX_ATTRIBUTES:
        raise invalid(
            f"Number of message attributes [{len(raw)}] exceeds the allowed maximum "
            f"[{MAX_ATTRIBUTES}]."
        )
    out: dict[str, Attribute] = {}
    for name, spec in raw.items():
        check_name(name)
        out[name] = _parse_value(name, spec if isinstance(spec, dict) else {})
    return out


def _parse_value(name: str, spec: dict[str, Any]) -> Attribute:
    data_type = spec.get("DataType")
    if not data_type:
        raise invalid(f"Message (user) attribute '{name}' must contain a non-empty attribute type.")
    m = _TYPE.fullmatch(data_type)
    if m is None or len(data_type) > 256:
        raise invalid(
            f"The type of message (user) attribute '{name}' is invalid. You must use "
            "only the following supported type prefixes: Binary, Number, String."
        )
    base = m.group(1)
    if spec.get("StringListValues") or spec.get("BinaryListValues"):
        raise SqsError(
            "UnsupportedOperation",
            "Message attribute list values in SendMessage operation are not supported.",
        )
    if base == "Binary":
        value = spec.get("BinaryValue")
        if not value:
            raise invalid(
                f"Message (user) attribute '{name}' must contain a non-empty value of type "
                "'Binary'."
            )
        if isinstance(value, str):
            try:
                value = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise invalid(
                    f"Message (user) attribute '{name}' has an invalid binary value."
                ) from None
        return Attribute(data_type, bytes(value))
    value = spec.get("StringValue")
    if value is None or value == "":
        raise invalid(
            f"Message (user) attribute '{name}' must contain a non-empty value of type '{base}'."
        )
    value = str(value)
    if base == "Number":
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = None
        if (
            number is None
            or not number.is_finite()
            or (number and not Decimal("1e-128") <= abs(number) <= Decimal("1e126"))
            or len(number.as_tuple().digits) > 38
        ):
            raise invalid(f"Could not cast message attribute '{name}' value to number.")
    elif not valid_text(value):
        raise SqsError(
            "InvalidMessageContents",
            f"Message (user) attribute '{name}' contains characters outside the allowed set.",
        )
    return Attribute(data_type, value)


_BAD_CHARS = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def valid_text(text: str) -> bool:
    """SQS accepts #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF."""
    return _BAD_CHARS.search(text) is None


# -- the core message's properties ---------------------------------------------------------


def to_properties(attributes: dict[str, Attribute]) -> dict[str, str | int | float | bool | bytes]:
    """Message attributes as core properties (plus the type record when needed)."""
    props: dict[str, str | int | float | bool | bytes] = {}
    types: list[str] = []
    for name, attr in attributes.items():
        props[name] = attr.value
        plain = "Binary" if isinstance(attr.value, bytes) else "String"
        if attr.data_type != plain:
            types.append(f"{name}={attr.data_type}")
    if types:
        props[TYPES_PROPERTY] = ";".join(types)
    return props


def from_message(msg: Message) -> dict[str, Attribute]:
    """The message attributes an SQS receiver sees for `msg` (from any protocol)."""
    props = msg.properties
    if not props:
        return {}
    types: dict[str, str] = {}
    record = props.get(TYPES_PROPERTY)
    if isinstance(record, str) and record:
        for item in record.split(";"):
            name, _, data_type = item.partition("=")
            types[name] = data_type
    out: dict[str, Attribute] = {}
    for name, value in props.items():
        if name.startswith(RESERVED_PREFIX):
            continue
        data_type = types.get(name)
        if isinstance(value, bool):
            out[name] = Attribute(data_type or "String", "true" if value else "false")
        elif isinstance(value, bytes):
            out[name] = Attribute(data_type or "Binary", value)
        elif isinstance(value, int | float):
            out[name] = Attribute(data_type or "Number", str(value))
        elif value is None or type(value) is tuple:  # AMQP's null and typed values
            kind = "Number" if property_is_number(value) else "String"
            out[name] = Attribute(data_type or kind, property_text(value))
        else:
            out[name] = Attribute(data_type or "String", str(value))
    return out


def select(attributes: dict[str, Attribute], wanted: list[str]) -> dict[str, Attribute]:
    """ReceiveMessage's MessageAttributeNames: ``All``, ``.*``, ``prefix.*`` or names."""
    if not wanted or not attributes:
        return {}
    if "All" in wanted or ".*" in wanted:
        return attributes
    prefixes = tuple(w[:-1] for w in wanted if w.endswith(".*"))
    names = set(wanted)
    return {
        k: v for k, v in attributes.items() if k in names or (prefixes and k.startswith(prefixes))
    }
