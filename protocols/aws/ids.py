"""Random UUID4 strings for MessageIds, with the operating system's randomness read in
blocks.

``str(uuid.uuid4())`` made one ``getrandom`` call per message (≈ 6 µs on the bench
machine, about a tenth of the broker's CPU under SendMessageBatch: bench/README.md
"SQS"). `message_id` draws the same 122 random bits from ``os.urandom`` read 4 KiB
(256 ids) at a time and formats them as uuid4 does (version 4, RFC 4122 variant), so
ids stay unpredictable and as unique as before. A forked child starts with an empty
pool, so it never repeats its parent's ids.
"""

from __future__ import annotations

import os

_BLOCK = 4096
_VARIANT = "89ab89ab89ab89ab"  # RFC 4122: the variant's two high bits are 10


class _Pool:
    __slots__ = ("at", "data")

    def __init__(self) -> None:
        self.data = b""
        self.at = 0

    def reset(self) -> None:
        self.data = b""
        self.at = 0


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.reset)


def message_id() -> str:
    """A random UUID (version 4) in its canonical 36-character form, like
    ``str(uuid.uuid4())``."""
    pool = _pool
    at = pool.at
    if at + 16 > len(pool.data):
        pool.data = os.urandom(_BLOCK)
        at = 0
    pool.at = at + 16
    h = pool.data[at : at + 16].hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16)]}{h[17:20]}-{h[20:]}"
