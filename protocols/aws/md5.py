"""MD5OfMessageBody, MD5OfMessageAttributes and MD5OfMessageSystemAttributes as SQS
computes them (the Java and JavaScript SDKs recompute and compare them).

Attributes are hashed in order of name (Unicode code points, as the SDKs sort); for
each: the UTF-8 name, the UTF-8 data type, each preceded by its length as a 4-byte
big-endian integer, then one transport byte (1 for String and Number types, 2 for
Binary) and the value (UTF-8 for strings, raw bytes for binary), length-prefixed too.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping

from protocols.aws.attributes import Attribute

_LEN = struct.Struct(">I")


def md5_of_body(body: str) -> str:
    return hashlib.md5(body.encode("utf-8"), usedforsecurity=False).hexdigest()


def md5_of_attributes(attributes: Mapping[str, Attribute]) -> str:
    """The digest of `attributes` (empty mapping: callers omit the field instead)."""
    h = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        attr = attributes[name]
        for text in (name, attr.data_type):
            raw = text.encode("utf-8")
            h.update(_LEN.pack(len(raw)))
            h.update(raw)
        if isinstance(attr.value, bytes):
            h.update(b"\x02")
            raw = attr.value
        else:
            h.update(b"\x01")
            raw = attr.value.encode("utf-8")
        h.update(_LEN.pack(len(raw)))
        h.update(raw)
    return h.hexdigest()
