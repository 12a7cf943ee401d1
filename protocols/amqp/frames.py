"""FrameMeter: how many bytes of an incomplete AMQP frame proton's engine holds, sans-IO.

Proton's Transport copies what it is given into its input buffer and decodes a frame only
once all of it is there (up to `max_frame_size` bytes, 1 MiB by default); it does not say
how much it holds. The meter follows the same byte stream by the frame sizes alone (AMQP
1.0 2.3.1: each frame starts with its size, a 4-byte big-endian count including those 4
bytes), which is what proton waits for, so the broker can count those bytes against the
listener's budget and time the frame (`listeners.amqp.max_partial_bytes`, `frame_timeout`).

The stream starts with the 8-byte protocol header, counted as one frame. A size below the
8-byte frame header is a framing error the engine rejects (the connection ends); the
meter takes it as 8 so it never loops. Invariants: `held` is the number of bytes of the
current frame received so far (0 at a frame boundary); the cost of `feed` is one step per
frame that starts in its input, none for input inside one large frame.
"""

from __future__ import annotations

import struct

_SIZE = struct.Struct(">I").unpack_from
# The protocol header, then frame headers: nothing is shorter.
_HEADER = 8


class FrameMeter:
    """The frame boundaries of one AMQP byte stream, fed as it arrives."""

    __slots__ = ("_head", "_left", "held")

    def __init__(self) -> None:
        # Bytes of the current frame received so far: what proton holds undecoded.
        self.held = 0
        # Bytes still to come of the current frame (its first byte is the next one when
        # 0 and `_head` is empty). The protocol header is the first "frame".
        self._left = _HEADER
        # The first 1-3 bytes of a frame's size field, when a read split it.
        self._head = b""

    def feed(self, data: bytes) -> bool:
        """Follow `data`; True if a frame (or the protocol header) ended in it."""
        n = len(data)
        pos = self._left  # where, in `data`, the next frame starts
        if self._head:
            head = self._head
            need = 4 - len(head)
            if n < need:
                self._head = head + data
                self.held += n
                return False
            size = _SIZE(head + data[:need])[0]
            self._head = b""
            pos = max(size, _HEADER) - len(head)
        if pos > n:  # still inside the current frame (the usual case for large frames)
            self._left = pos - n
            self.held += n
            return False
        ended = pos > 0  # 0: the last read ended on a boundary, nothing ends here
        last = n - 4  # the last place a whole size field can start
        while pos <= last:
            size = _SIZE(data, pos)[0]
            end = pos + size if size > _HEADER else pos + _HEADER
            if end > n:
                self._left = end - n
                self.held = n - pos
                return ended
            pos = end
            ended = True
        # At most 3 bytes of the next frame's size are left (or none: a boundary).
        self._left = 0
        if pos == n:
            self.held = 0
        else:
            self._head = data[pos:]
            self.held = n - pos
        return ended
