"""Java's modified UTF-8 (DataOutput.writeUTF), which OpenWire uses for every string.

It differs from UTF-8 in two ways: the NUL character is written as the two bytes C0 80,
and a character outside the Basic Multilingual Plane is written as its two UTF-16
surrogates, three bytes each. ASCII text without NUL (nearly every destination name,
id and header) is the same in both, and takes the fast path.
"""

from __future__ import annotations

import re

from protocols.openwire.codec.reader import CodecError

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _split(match: re.Match[str]) -> str:
    code = ord(match.group()) - 0x10000
    return chr(0xD800 + (code >> 10)) + chr(0xDC00 + (code & 0x3FF))


def encode(text: str) -> bytes:
    """`text` in modified UTF-8, without a length prefix."""
    if text.isascii() and "\x00" not in text:
        return text.encode("ascii")
    return _ASTRAL.sub(_split, text).encode("utf-8", "surrogatepass").replace(b"\x00", b"\xc0\x80")


def decode(data: bytes) -> str:
    """Modified UTF-8 back to text; a surrogate pair becomes its character again, a lone
    surrogate (which Java strings may hold) is kept as it is."""
    if data.isascii():
        return data.decode("ascii")
    try:
        text = data.replace(b"\xc0\x80", b"\x00").decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise CodecError(f"a string that is not modified UTF-8: {exc.reason}") from None
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "surrogatepass")
    return text
