"""Sans-IO codec for STOMP 1.0, 1.1 and 1.2 frames.

The module does no I/O and imports only the standard library: callers push received bytes into
a :class:`FrameParser` and write the bytes returned by :func:`encode_frame` themselves.

Invariants
----------
* Between two ``feed`` calls the parser's buffer starts at the first byte of an incomplete frame
  (or of an incomplete CRLF heart-beat); everything before it has been returned and trimmed.
  ``buffered()`` is therefore exactly the number of bytes waiting for the rest of a frame.
* Parsing never walks the input byte by byte in Python: runs of heart-beat EOLs are skipped by
  one regex match, the end of the header block is located by one regex search for the earlier
  of ``\\n\\n`` and ``\\n\\r\\n``, the command line and all header lines are decoded and split
  in one go, bodies are sliced by ``content-length`` or cut at the first NUL found by
  ``bytearray.find``. Python-level loops run per frame or per header line.
* Every limit is enforced as soon as the offending size is known: a declared ``content-length``
  is checked when the headers complete, and header lines, header counts, command lines and
  bodies without ``content-length`` are checked against the bytes buffered so far, so a peer
  can never make the parser hold much more than the configured limits.
* The result never depends on how the input was split across ``feed`` calls, as long as
  ``version`` is not changed in between. A frame is unescaped under the ``version`` in effect
  when its header block completes. ``feed`` returns right after a CONNECT, STOMP or
  CONNECTED frame (leaving what follows buffered), so the owner sets the negotiated
  ``version`` and calls ``feed(b"")`` for frames pipelined behind it.
* Limits: a header line's length excludes its EOL; the command line may be at most as long as
  the longest known command (and never over MAX_COMMAND_LINE), so garbage without an EOL is
  rejected after a few bytes. Empty header names and NUL bytes inside headers are accepted.
* Repeated header names: the first occurrence wins, for every protocol version.
* Header names and values are decoded as strict UTF-8 and unescaped (1.1/1.2 only, never for
  CONNECT, STOMP and CONNECTED) only when a backslash is present.
* After a :class:`StompError` the parser is poisoned: every later ``feed`` raises again.
* ``encode_frame`` output parses back to the same frame for 1.1 and 1.2, except that in 1.1 a
  value ending in CR loses that CR (1.1 has no escape for CR). In 1.0, and for CONNECT, STOMP
  and CONNECTED in every version, nothing is escaped; CR and LF in names or values are replaced
  by a space so that a header can never split the frame, and ':' in names is sent as is.
* ``max_frame_size`` limits the body; the header block is bounded separately by
  ``max_headers`` and ``max_header_length``.

Implementation
--------------
The code is `_codec.py`; setup.py also compiles that same file with Cython (typed by
`_codec.pxd`) into `_codec_c`. This module exports the compiled one when it was built and
``ZONEMQ_NO_EXTENSIONS`` is not set, else the pure-Python one (`protocols/stomp/_ext.py`);
``IMPLEMENTATION`` says which. All names below come from the same one of the two, so a
``StompError`` raised by ``FrameParser`` is always this module's ``StompError``.
"""

from typing import TYPE_CHECKING

from protocols.stomp import _ext

_impl, _compiled = _ext.load("protocols.stomp._codec_c", "protocols.stomp._codec")

#: "compiled" (Cython) or "python": which implementation the names below are.
IMPLEMENTATION: str = "compiled" if _compiled else "python"

CLIENT_COMMANDS: frozenset[str] = _impl.CLIENT_COMMANDS
SERVER_COMMANDS: frozenset[str] = _impl.SERVER_COMMANDS
HEARTBEAT: bytes = _impl.HEARTBEAT
MAX_COMMAND_LINE: int = _impl.MAX_COMMAND_LINE
if TYPE_CHECKING:
    # Type checkers read the pure module; both have the same names and signatures.
    from protocols.stomp._codec import (
        Frame,
        FrameParser,
        StompError,
        encode_frame,
        escape_header,
        escaper,
    )
else:
    Frame = _impl.Frame
    FrameParser = _impl.FrameParser
    StompError = _impl.StompError
    encode_frame = _impl.encode_frame
    escape_header = _impl.escape_header
    escaper = _impl.escaper

__all__ = [
    "CLIENT_COMMANDS",
    "HEARTBEAT",
    "IMPLEMENTATION",
    "MAX_COMMAND_LINE",
    "SERVER_COMMANDS",
    "Frame",
    "FrameParser",
    "StompError",
    "encode_frame",
    "escape_header",
    "escaper",
]
