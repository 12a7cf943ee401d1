"""OpenWire's marshalling cache, the reading side: what one peer's frames have put at
which index (ActiveMQ's OpenWireFormat unmarshallCache).

With CacheEnabled negotiated, every field `commands.FIELDS` marks "C" (ids and
destinations) is a flag, a short index, and — when the flag says new — the structure,
which the reader stores at that index; otherwise the index names an earlier one. An
index of -1 is "not cached" (the peer's cache was full). ZoneMQ writes every such field
as new at index -1 (so the peer never has to look anything up from us) and reads what
the client's marshaller chose: the JMS client's ids and destinations then cross the
wire once per connection instead of in every message and ack.

Bounded per connection: `size` indexes (the negotiated CacheSize) and `max_bytes` of
cached structures (their encoded size), past which the frame is refused — a peer
cannot make a connection hold more than that however it fills its cache.
"""

from __future__ import annotations

from typing import Any

from protocols.openwire.codec.reader import CodecError

# What ActiveMQ's OpenWireFormat uses when the negotiated CacheSize is 0.
DEFAULT_SIZE = 0x7FFF // 2
NEW_NOT_CACHED = b"\x01\xff\xff"
"""How ZoneMQ writes a cached field's prefix: new, at index -1 (not cached)."""


class Cache:
    """One connection's unmarshal cache: index → structure, bounded in count and bytes."""

    __slots__ = ("bytes", "entries", "max_bytes", "size", "sizes")

    def __init__(self, size: int, max_bytes: int) -> None:
        self.size = size
        self.entries: list[Any] = [None] * size
        self.sizes = [0] * size
        self.bytes = 0
        self.max_bytes = max_bytes

    def put(self, index: int, value: Any, nbytes: int) -> None:
        """Store `value` (encoded in `nbytes`) at `index`; -1 stores nothing."""
        if index == -1:
            return
        if not 0 <= index < len(self.entries):
            raise CodecError(f"marshalling cache index {index} outside 0..{len(self.entries) - 1}")
        total = self.bytes - self.sizes[index] + nbytes
        if total > self.max_bytes:
            raise CodecError(f"marshalling cache over {self.max_bytes} bytes")
        self.bytes = total
        self.sizes[index] = nbytes
        self.entries[index] = value

    def get(self, index: int) -> Any:
        """What `index` holds (None, as in ActiveMQ, if nothing was stored there)."""
        if not 0 <= index < len(self.entries):
            raise CodecError(f"marshalling cache index {index} outside 0..{len(self.entries) - 1}")
        return self.entries[index]
