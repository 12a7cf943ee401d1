"""Seeded mutations of a valid byte stream (pure functions: no sockets, no clock)."""

from __future__ import annotations

import random
import struct

# Bytes and runs that parsers of these protocols treat specially: frame ends, header
# separators, escapes, length fields, AMQP format codes, HTTP framing.
TOKENS: tuple[bytes, ...] = (
    b"\x00",
    b"\n",
    b"\r\n",
    b":",
    b"\\",
    b"\\c",
    b"\\x",
    b"\n\n",
    b"content-length:",
    b"content-length:999999999\n",
    b"content-length:-1\n",
    b"receipt:r\n",
    b"AMQP\x00\x01\x00\x00",
    b"AMQP\x03\x01\x00\x00",
    b"\xa1",
    b"\xb1",
    b"\xd0",
    b"\xf0",
    b"\x40",
    b"\x00\x53\x70",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"Content-Length: 99999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"\r\n\r\n",
    b'{"',
    b"[[[[[[[[",
    b"%",
    b"&Action=",
    b"\xc3\x28",
    b"\xed\xa0\x80",
)


def _flip(rng: random.Random, data: bytearray) -> None:
    if data:
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)


def _set_byte(rng: random.Random, data: bytearray) -> None:
    if data:
        data[rng.randrange(len(data))] = rng.randrange(256)


def _insert_random(rng: random.Random, data: bytearray) -> None:
    at = rng.randrange(len(data) + 1)
    data[at:at] = rng.randbytes(rng.randint(1, 16))


def _insert_token(rng: random.Random, data: bytearray) -> None:
    at = rng.randrange(len(data) + 1)
    data[at:at] = rng.choice(TOKENS) * rng.choice((1, 1, 1, 2, 64))


def _delete(rng: random.Random, data: bytearray) -> None:
    if data:
        start = rng.randrange(len(data))
        del data[start : start + rng.randint(1, 32)]


def _duplicate(rng: random.Random, data: bytearray) -> None:
    if data:
        start = rng.randrange(len(data))
        chunk = data[start : start + rng.randint(1, 64)]
        at = rng.randrange(len(data) + 1)
        data[at:at] = chunk * rng.choice((1, 2, 16))


def _truncate(rng: random.Random, data: bytearray) -> None:
    if data:
        del data[rng.randrange(len(data)) :]


def _big_length(rng: random.Random, data: bytearray) -> None:
    # Overwrite 4 bytes with a large big-endian length: AMQP frame sizes, sized encodings.
    if len(data) >= 4:
        at = rng.randrange(len(data) - 3)
        data[at : at + 4] = struct.pack(">I", rng.choice((0, 7, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)))


def _ascii_digit_run(rng: random.Random, data: bytearray) -> None:
    # Lengthen a run of digits (content-length values, HTTP lengths, JSON numbers).
    digits = [i for i, b in enumerate(data) if 0x30 <= b <= 0x39]
    if digits:
        at = rng.choice(digits)
        data[at:at] = b"9" * rng.randint(1, 400)


MUTATIONS = (
    _flip,
    _set_byte,
    _insert_random,
    _insert_token,
    _delete,
    _duplicate,
    _truncate,
    _big_length,
    _ascii_digit_run,
)


def mutate(seeds: list[bytes], seed: int, case: int) -> bytes:
    """Case `case` of run `seed`: one of `seeds` (sometimes spliced with another) with one
    to four mutations. The same (seeds, seed, case) always gives the same bytes."""
    rng = random.Random(seed * 1_000_003 + case)
    data = bytearray(rng.choice(seeds))
    if len(seeds) > 1 and rng.random() < 0.15:
        other = rng.choice(seeds)
        cut = rng.randrange(len(data) + 1)
        data[cut:] = other[rng.randrange(len(other) + 1) :]
    for _ in range(rng.randint(1, 4)):
        rng.choice(MUTATIONS)(rng, data)
    return bytes(data)
