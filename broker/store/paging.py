"""PagedIndex: where the records of paged-out messages are, in as few bytes as possible.

A paged-out message is known to the store only by its *stub*: an int packing the
location of its ADD record when it was paged out (segment << 64 | offset << 32 |
length; three 30-bit digits, 36 bytes, against 64 for a RecordRef NamedTuple and the
ints it points to). The queue keeps the stub in its lane; here the stub maps to where
the record is now, which is the stub itself until compaction moves the record. So a
stub never changes and the core never learns what it means.

Issue 10 set the target: at most 150 bytes of memory per paged-out message (it was
about 860 with a body-less Message, its property dict, its id and the store's keys).
What one costs here is the lane's slot, the int and one dict entry;
`bench/bench_paged_index.py` measures it.

Compaction asks about every record of a few old segments; `live` answers for paged ones
from a set of the paged locations of that segment, built the first time compaction asks
about it (one pass over the index per victim segment, and only over segments known to
hold paged messages), so the index needs no reverse map.
"""

from __future__ import annotations

from broker.store.format import RecordRef

_BITS32 = 0xFFFFFFFF


def pack(ref: RecordRef) -> int:
    return (ref.segment << 64) | (ref.offset << 32) | ref.length


def unpack(loc: int) -> RecordRef:
    return RecordRef(loc >> 64, (loc >> 32) & _BITS32, loc & _BITS32)


class PagedIndex:
    """Stubs of paged-out messages -> their records' current locations."""

    __slots__ = ("_cache", "_locs", "_segments")

    def __init__(self) -> None:
        # stub -> the packed location of the record now.
        self._locs: dict[int, int] = {}
        # segment -> how many paged records it holds.
        self._segments: dict[int, int] = {}
        # During one compaction: segment -> the paged locations in it.
        self._cache: dict[int, set[int]] = {}

    def __len__(self) -> int:
        return len(self._locs)

    def add(self, ref: RecordRef) -> int | None:
        """A stub for the record at `ref`, or None when it does not pack (past 4 GiB)."""
        if ref.offset > _BITS32 or ref.length > _BITS32:
            return None
        stub = pack(ref)
        self._locs[stub] = stub
        self._count(ref.segment, 1)
        return stub

    def where(self, stub: int) -> RecordRef:
        """Where the record of `stub` is now."""
        return unpack(self._locs[stub])

    def take(self, stub: int) -> RecordRef:
        """Forget `stub` (its message is paged in): where its record is."""
        ref = unpack(self._locs.pop(stub))
        self._count(ref.segment, -1)
        return ref

    def _count(self, segment: int, delta: int) -> None:
        n = self._segments.get(segment, 0) + delta
        if n:
            self._segments[segment] = n
        else:
            del self._segments[segment]

    # -- compaction -----------------------------------------------------------------------

    def begin_compaction(self) -> None:
        self._cache = {}

    def holds(self, ref: RecordRef) -> bool:
        """Is the record at `ref` a paged-out message's?"""
        seg = ref.segment
        if seg not in self._segments:
            return False
        locs = self._cache.get(seg)
        if locs is None:
            locs = self._cache[seg] = {v for v in self._locs.values() if v >> 64 == seg}
        return pack(ref) in locs

    def moved(self, mapping: dict[RecordRef, RecordRef]) -> None:
        """Compaction moved the records in `mapping` (old -> new): follow them."""
        self._cache = {}
        moved = {old.segment for old in mapping}
        if moved.isdisjoint(self._segments):
            return
        locs = self._locs
        for stub, loc in locs.items():
            if loc >> 64 not in moved:
                continue
            old = unpack(loc)
            new = mapping.get(old)
            if new is None:
                continue
            locs[stub] = pack(new)
            self._count(old.segment, -1)
            self._count(new.segment, 1)
