"""FrameMeter (protocols/amqp/frames.py) against the stream's frame boundaries computed
whole: fed at every split point and at random ones, it must say after each read how many
bytes of an incomplete frame there are, and whether a frame ended in that read."""

from __future__ import annotations

import bisect
import struct

from hypothesis import given
from hypothesis import strategies as st

from protocols.amqp.frames import FrameMeter

HEADER = b"AMQP\x00\x01\x00\x00"


def stream(sizes: list[int]) -> tuple[bytes, list[int]]:
    """The protocol header and frames of `sizes` bytes each, and where each one ends."""
    out = [HEADER]
    ends = [len(HEADER)]
    for size in sizes:
        out.append(struct.pack(">IBBH", size, 2, 0, 0) + b"x" * (size - 8))
        ends.append(ends[-1] + size)
    return b"".join(out), ends


def check(data: bytes, ends: list[int], cuts: list[int]) -> None:
    meter = FrameMeter()
    prev = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if cut <= prev:
            continue
        ended = meter.feed(data[prev:cut])
        i = bisect.bisect_right(ends, cut) - 1  # the last frame ending at or before cut
        start = ends[i] if i >= 0 else 0
        assert meter.held == cut - start, (prev, cut)
        assert ended == any(prev < e <= cut for e in ends), (prev, cut)
        prev = cut
    assert meter.held == 0


frame_sizes = st.lists(st.integers(min_value=8, max_value=300), max_size=12)


@given(frame_sizes, st.lists(st.integers(min_value=1, max_value=4000), max_size=20))
def test_random_splits(sizes: list[int], cuts: list[int]) -> None:
    data, ends = stream(sizes)
    check(data, ends, [c for c in cuts if c < len(data)])


def test_every_byte_alone_and_every_single_split() -> None:
    data, ends = stream([8, 9, 12, 300, 8, 1000, 11])
    check(data, ends, list(range(1, len(data))))
    for cut in range(1, len(data)):
        check(data, ends, [cut])


def test_whole_stream_and_trailing_partial() -> None:
    data, _ = stream([40, 70000])
    meter = FrameMeter()
    assert meter.feed(data[:-100])
    assert meter.held == 70000 - 100
    assert not meter.feed(data[-100:-1])  # inside the big frame: no step per byte
    assert meter.feed(data[-1:]) and meter.held == 0


def test_size_below_a_frame_header_cannot_stall_the_meter() -> None:
    meter = FrameMeter()
    meter.feed(HEADER + b"\x00\x00\x00\x00" + b"rest")
    assert meter.held == 0  # taken as an 8-byte frame; proton ends the connection
