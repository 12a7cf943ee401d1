"""The pure-Python implementation of `protocols.stomp.codec` (its docstring says what it
does and guarantees). setup.py also compiles this same file with Cython into
`protocols.stomp._codec_c`; `codec.py` picks one at import (protocols/stomp/_ext.py).
"""

import re
from collections.abc import Callable

__all__ = [
    "CLIENT_COMMANDS",
    "HEARTBEAT",
    "MAX_COMMAND_LINE",
    "SERVER_COMMANDS",
    "Frame",
    "FrameParser",
    "StompError",
    "encode_frame",
    "escape_header",
]

CLIENT_COMMANDS: frozenset[str] = frozenset(
    {
        "CONNECT",
        "STOMP",
        "SEND",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "ACK",
        "NACK",
        "BEGIN",
        "COMMIT",
        "ABORT",
        "DISCONNECT",
    }
)
SERVER_COMMANDS: frozenset[str] = frozenset({"CONNECTED", "MESSAGE", "RECEIPT", "ERROR"})

HEARTBEAT: bytes = b"\n"

# A command line longer than this without an EOL can only be garbage or an attack.
MAX_COMMAND_LINE = 1024

_VERSIONS = frozenset({"1.0", "1.1", "1.2"})

# The spec exempts the connection handshake from escaping so that pre-1.1 peers can read it.
_RAW_COMMANDS = frozenset({"CONNECT", "STOMP", "CONNECTED"})

_SNIPPET = 64

# Bodies below this size are copied via a bytearray slice (cheaper to set up than a
# memoryview); larger ones via a memoryview so they are copied only once.
_SMALL_BODY = 4096

_EOL_RUN = re.compile(rb"(?:\r?\n)*")
_HEADER_END = re.compile(rb"\n\r?\n")
# ".?" so that a lone trailing backslash is matched too and reported as an error.

_UNESCAPE_11 = {"\\\\": "\\", "\\n": "\n", "\\c": ":"}
_UNESCAPE_12 = {**_UNESCAPE_11, "\\r": "\r"}


class StompError(Exception):
    """A framing error by the peer.

    ``message`` is short and human readable, suitable for an ERROR frame's ``message`` header;
    ``snippet`` holds at most 64 bytes of the offending input. ``frames`` holds the complete
    frames that preceded the error within the same ``feed`` call, so that the owner may still
    act on them (``feed`` cannot return them because it raises).
    """

    def __init__(self, message: str, snippet: bytes = b"", receipt: str | None = None) -> None:
        super().__init__(message)
        self.message: str = message
        self.snippet: bytes = bytes(snippet[:_SNIPPET])
        self.frames: list[Frame] = []
        # The bad frame's receipt header, when its header block could be read (an unknown
        # command, read as ActiveMQ reads it): the ERROR then carries it as receipt-id.
        self.receipt = receipt

    def __repr__(self) -> str:
        return f"StompError({self.message!r}, {self.snippet!r})"


class Frame:
    """One STOMP frame; ``headers`` holds the first occurrence of each header name."""

    # Same order as the documented API (and the repr); sorting it would buy nothing.
    __slots__ = ("command", "headers", "body")  # noqa: RUF023

    command: str
    headers: dict[str, str]
    body: bytes

    def __init__(
        self, command: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        self.command = command
        self.headers = {} if headers is None else headers
        self.body = body

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 40 else self.body[:40] + b"..."
        return f"Frame({self.command!r}, {self.headers!r}, {body!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return (
            self.command == other.command
            and self.headers == other.headers
            and self.body == other.body
        )


def _unescape_error(line: str, seq: str) -> StompError:
    if seq == "\\":
        return StompError("Invalid header: trailing backslash", line.encode())
    return StompError(f"Invalid header: undefined escape sequence {seq!r}", line.encode())


def _unescape(text: str, table: dict[str, str], line: str, strict: bool) -> str:
    # Escaped backslashes first (split on them), then each remaining backslash must start
    # one of the table's sequences; str.replace runs in C, so no per-match Python call.
    # Replacements contain no backslash, so a backslash left over is an undefined escape:
    # kept as it is, as ActiveMQ keeps it, unless strict (the spec's "MUST treat as fatal").
    parts = text.split("\\\\")
    for i, part in enumerate(parts):
        if "\\" not in part:
            continue
        for seq, char in table.items():
            if seq != "\\\\":
                part = part.replace(seq, char)
        if strict:
            bad = part.find("\\")
            if bad >= 0:
                raise _unescape_error(line, part[bad : bad + 2])
        parts[i] = part
    return "\\".join(parts)


class FrameParser:
    """Incremental STOMP frame parser; see the module docstring for its invariants."""

    __slots__ = (
        "_buf",
        "_cmd_bytes",
        "_commands",
        "_error",
        "_hdr_lines",
        "_hdr_scan",
        "_max_block",
        "_max_cmd",
        "_max_frame_size",
        "_max_head",
        "_max_header_length",
        "_max_headers",
        "_pending",
        "_strict",
        "_unescape",
        "_version",
    )

    def __init__(
        self,
        *,
        commands: frozenset[str] = CLIENT_COMMANDS,
        max_frame_size: int = 104_857_600,
        max_headers: int = 1000,
        max_header_length: int = 10240,
        strict: bool = False,
    ) -> None:
        if not commands:
            raise ValueError("commands must not be empty")
        if max_frame_size < 0 or max_headers < 0 or max_header_length < 1:
            raise ValueError("limits must be positive")
        self._buf = bytearray()
        self._commands = frozenset(commands)
        # Incomplete command lines are checked before they can be decoded.
        self._cmd_bytes = frozenset(c.encode() for c in commands)
        # No command is longer than this, so a longer line without EOL is already unknown;
        # +1 leaves room for the CR of a CRLF.
        self._max_cmd = min(MAX_COMMAND_LINE, max(map(len, self._cmd_bytes))) + 1
        self._max_frame_size = max_frame_size
        self._max_headers = max_headers
        self._max_header_length = max_header_length
        # Largest header block (after the command line) that can still be valid: every line
        # at its maximum length with a CRLF ending.
        self._max_block = max_headers * (max_header_length + 2)
        # Furthest a valid header terminator can end from the frame start: command line with
        # its EOL, the block, and the 3-byte terminator that starts at the block's last LF.
        self._max_head = self._max_cmd + 1 + self._max_block + 3
        self._error: StompError | None = None
        # (command, headers, body_start, content_length or -1, NUL search resume offset)
        self._pending: tuple[str, dict[str, str], int, int, int] | None = None
        # Resume state for a header block split across feeds: start of the first line not yet
        # seen complete, and how many complete header lines precede it.
        self._hdr_scan = 0
        self._hdr_lines = 0
        self._version = "1.0"
        self._unescape: dict[str, str] | None = None
        # False: accept what ActiveMQ 5.17 accepts (an undefined escape kept literally, a
        # body longer than its content-length cut to it and the rest discarded up to the
        # NUL); True: treat both as the framing errors the STOMP spec says they are.
        self._strict = strict

    @property
    def version(self) -> str:
        """Negotiated protocol version; it decides how header names and values are unescaped."""
        return self._version

    @version.setter
    def version(self, value: str) -> None:
        if value not in _VERSIONS:
            raise ValueError(f"unsupported STOMP version {value!r}")
        self._version = value
        self._unescape = (
            _UNESCAPE_12 if value == "1.2" else _UNESCAPE_11 if value == "1.1" else None
        )

    @property
    def max_frame_size(self) -> int:
        """Largest body accepted; the owner may lower it (e.g. before a client has
        authenticated) and raise it again. It applies from the next ``feed``."""
        return self._max_frame_size

    @max_frame_size.setter
    def max_frame_size(self, value: int) -> None:
        if value < 0:
            raise ValueError("limits must be positive")
        self._max_frame_size = value

    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Append ``data`` and return every frame now complete, in order (possibly none).

        Raises :class:`StompError` on a framing error; the parser then stays unusable.
        """
        if self._error is not None:
            raise StompError(self._error.message, self._error.snippet)
        buf = self._buf
        if data:
            buf += data
        frames: list[Frame] = []
        try:
            pos = self._parse(buf, frames)
        except StompError as exc:
            exc.frames = frames
            self._error = exc
            raise
        # Trimming once per feed (not per frame) keeps the front deletion cost per call flat.
        if pos:
            del buf[:pos]
        return frames

    def _parse(self, buf: bytearray, frames: list[Frame]) -> int:
        """Parse frames from the start of ``buf``; return how many bytes were consumed."""
        n = len(buf)
        pos = 0
        append = frames.append
        commands = self._commands
        max_size = self._max_frame_size
        # +1: the command line is one of the split lines.
        max_headers = self._max_headers + 1
        max_line = self._max_header_length
        table = self._unescape
        pending = self._pending
        self._pending = None
        while True:
            if pending is None:
                if pos < n and (buf[pos] == 10 or buf[pos] == 13):
                    pos = _EOL_RUN.match(buf, pos).end()  # type: ignore[union-attr]
                if pos >= n:
                    return pos
                # A split header block resumes at its last incomplete line: no terminator can
                # start before the LF that precedes it. The bound keeps a hostile stream from
                # being scanned beyond what a valid header block could occupy.
                scan = self._hdr_scan - 1 if pos == 0 and self._hdr_scan else pos
                match = _HEADER_END.search(buf, scan, pos + self._max_head)
                if match is None:
                    self._check_partial_head(buf, pos, n)
                    return pos
                self._hdr_scan = self._hdr_lines = 0
                header_end = match.start()
                body_start = match.end()
                # One decode and one split for the command line and all header lines.
                try:
                    text = buf[pos:header_end].decode()
                except UnicodeDecodeError as exc:
                    raise self._decode_error(buf, pos, header_end, exc) from None
                if "\r" in text:
                    text = text.replace("\r\n", "\n")
                    # The last line's CR precedes the terminator, which is not in text.
                    if text[-1] == "\r":
                        text = text[:-1]
                lines = text.split("\n")
                command = lines[0]
                if command not in commands:
                    raise self._unknown_command(command.encode(), self._receipt_of(lines))
                if len(lines) == 1:
                    headers = {}
                    length = -1
                else:
                    if len(lines) > max_headers:
                        raise self._too_many_headers(lines[max_headers].encode())
                    if header_end - pos > max_line:
                        self._check_line_lengths(buf, pos, header_end)
                    if table is None or "\\" not in text or command in _RAW_COMMANDS:
                        headers = {}
                        setdefault = headers.setdefault
                        it = iter(lines)
                        next(it)
                        for line in it:
                            name, sep, value = line.partition(":")
                            if not sep:
                                raise self._no_colon(line.encode())
                            setdefault(name, value)
                    else:
                        headers = self._unescape_headers(lines, table, self._strict)
                    cl = headers.get("content-length")
                    length = -1 if cl is None else self._content_length(cl)
                body_scan = body_start
            else:
                command, headers, body_start, length, body_scan = pending
                pending = None

            if length >= 0:
                end = body_start + length
                if end >= n:
                    # Offsets are stored relative to the frame start, which the trim moves to 0.
                    self._pending = (command, headers, body_start - pos, length, 0)
                    return pos
                if buf[end] != 0:
                    if self._strict:
                        raise StompError(
                            "Frame not terminated by NUL after content-length bytes",
                            bytes(buf[end : end + _SNIPPET]),
                        )
                    # ActiveMQ's reading: the body is content-length bytes, what follows
                    # up to the NUL is discarded (and counts toward the frame size limit).
                    nul = buf.find(b"\x00", max(end, body_scan), body_start + max_size + 1)
                    if nul < 0:
                        if n - body_start > max_size:
                            raise StompError(
                                f"Frame body exceeds maximum size of {max_size} bytes",
                                bytes(buf[body_start : body_start + _SNIPPET]),
                            )
                        self._pending = (command, headers, body_start - pos, length, n - pos)
                        return pos
                    frames_end = nul
                else:
                    frames_end = end
            else:
                # Searching only up to the limit means an oversized body is detected without
                # scanning (or waiting for) the rest of it.
                end = buf.find(b"\x00", body_scan, body_start + max_size + 1)
                if end < 0:
                    if n - body_start > max_size:
                        raise StompError(
                            f"Frame body exceeds maximum size of {max_size} bytes",
                            bytes(buf[body_start : body_start + _SNIPPET]),
                        )
                    self._pending = (command, headers, body_start - pos, -1, n - pos)
                    return pos
            if end - body_start <= _SMALL_BODY:
                body = bytes(buf[body_start:end])
            else:
                with memoryview(buf) as view:
                    body = view[body_start:end].tobytes()
            append(Frame(command, headers, body))
            pos = end + 1 if length < 0 else frames_end + 1
            if command in _RAW_COMMANDS:
                # Negotiation decides how later frames are unescaped: hand CONNECT back
                # before reading on, so the owner can set ``version`` and feed(b"") again.
                return pos

    @staticmethod
    def _unknown_command(line: bytes, receipt: str | None = None) -> StompError:
        shown = line.decode("utf-8", "replace")[:32]
        return StompError(f"Unknown STOMP action: {shown}", line, receipt)

    def _receipt_of(self, lines: list[str]) -> str | None:
        """The receipt header of an unknown command's frame (not strict: ActiveMQ reads
        the whole frame and answers its receipt in the ERROR)."""
        if self._strict:
            return None
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep and name == "receipt":
                return value
        return None

    def _line_too_long(self, line: bytes) -> StompError:
        return StompError(
            f"Header line exceeds maximum length of {self._max_header_length} bytes", line
        )

    def _too_many_headers(self, line: bytes) -> StompError:
        return StompError(f"Too many headers (maximum {self._max_headers})", line)

    @staticmethod
    def _no_colon(line: bytes) -> StompError:
        return StompError("Invalid header: missing ':'", line)

    def _check_partial_head(self, buf: bytearray, pos: int, n: int) -> None:
        """Enforce every limit that an incomplete command line and header block can break.

        ``pos`` is the frame start. Saved state from an earlier feed can only describe a frame
        at offset 0 (where the trim put it), so it is ignored for any other frame.
        """
        cmd_end = buf.find(b"\n", pos, pos + self._max_cmd + 1)
        if cmd_end < 0:
            if n - pos > self._max_cmd:
                # Show as much of the line as the message and snippet can carry.
                line = bytes(buf[pos : pos + _SNIPPET]).split(b"\n", 1)[0]
                raise self._unknown_command(line.removesuffix(b"\r"))
            return
        line = bytes(buf[pos:cmd_end])
        if line.endswith(b"\r"):
            line = line[:-1]
        if line not in self._cmd_bytes and self._strict:
            # Not strict, an unknown command waits for its header block (within the same
            # limits) so that its ERROR can carry the frame's receipt, as ActiveMQ's does.
            raise self._unknown_command(line)
        if n - cmd_end - 1 > self._max_block + 2:
            raise StompError("Header block too large", bytes(buf[cmd_end + 1 : cmd_end + 65]))
        max_len = self._max_header_length
        resume = pos == 0 and self._hdr_scan
        start = self._hdr_scan if resume else cmd_end + 1
        lines = self._hdr_lines if resume else 0
        while True:
            nl = buf.find(b"\n", start, n)
            if nl < 0:
                break
            # No blank line exists here (it would have ended the block), so the line is
            # non-empty and nl - 1 belongs to it.
            stop = nl - 1 if buf[nl - 1] == 13 else nl
            if stop - start > max_len:
                raise self._line_too_long(bytes(buf[start:stop]))
            if buf.find(b":", start, stop) < 0:
                raise self._no_colon(bytes(buf[start:stop]))
            lines += 1
            if lines > self._max_headers:
                raise self._too_many_headers(bytes(buf[start:stop]))
            start = nl + 1
        # +1: the CR of a CRLF may already be here while its LF is not.
        if n - start > max_len + 1:
            raise self._line_too_long(bytes(buf[start : start + _SNIPPET]))
        # Relative to the frame start, which the end-of-feed trim moves to offset 0.
        self._hdr_scan = start - pos
        self._hdr_lines = lines

    def _decode_error(
        self, buf: bytearray, pos: int, header_end: int, exc: UnicodeDecodeError
    ) -> StompError:
        cmd_end = buf.find(b"\n", pos, header_end)
        if cmd_end < 0:
            cmd_end = header_end
        line = bytes(buf[pos:cmd_end])
        # A command that is not UTF-8 is simply not a command.
        if line.endswith(b"\r"):
            line = line[:-1]
        if line not in self._cmd_bytes:
            return self._unknown_command(line)
        bad = pos + exc.start
        return StompError(
            "Invalid header: not valid UTF-8", bytes(buf[max(cmd_end + 1, bad - 16) : bad + 48])
        )

    def _check_line_lengths(self, buf: bytearray, pos: int, header_end: int) -> None:
        # Only a block longer than the limit can hold an over-long line, so the hot path
        # calls this rarely.
        max_len = self._max_header_length
        lines = buf[pos:header_end].split(b"\n")
        for line in lines[1:]:
            if len(line) - line.endswith(b"\r") > max_len:
                raise self._line_too_long(bytes(line))

    @staticmethod
    def _unescape_headers(lines: list[str], table: dict[str, str], strict: bool) -> dict[str, str]:
        headers: dict[str, str] = {}
        setdefault = headers.setdefault
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise FrameParser._no_colon(line.encode())
            if "\\" in line:
                name = _unescape(name, table, line, strict)
                value = _unescape(value, table, line, strict)
            setdefault(name, value)
        return headers

    def _content_length(self, value: str) -> int:
        if not (value.isascii() and value.isdigit()):
            raise StompError("Invalid content-length", value.encode())
        # int() of a huge digit string is slow (and capped by the interpreter), and any
        # number that long is over the limit anyway.
        digits = value.lstrip("0") or "0"
        if len(digits) <= 20:
            length = int(digits)
            if length <= self._max_frame_size:
                return length
        raise StompError(
            f"content-length exceeds maximum frame size of {self._max_frame_size} bytes",
            value.encode(),
        )


def _escape_10(value: str) -> str:
    if "\n" in value or "\r" in value:
        return value.replace("\n", " ").replace("\r", " ")
    return value


def _escape_11(value: str) -> str:
    # 1.1 defines no escape for CR, so it is sent raw (see the module docstring).
    if "\\" in value or "\n" in value or ":" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace(":", "\\c")
    return value


def _escape_12(value: str) -> str:
    if "\\" in value or "\n" in value or ":" in value or "\r" in value:
        return (
            value.replace("\\", "\\\\")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
            .replace(":", "\\c")
        )
    return value


_ESCAPERS = {"1.0": _escape_10, "1.1": _escape_11, "1.2": _escape_12}


def escaper(version: str) -> Callable[[str], str]:
    """The escaping function for ``version`` (hot paths look it up once, not per header)."""
    try:
        return _ESCAPERS[version]
    except KeyError:
        raise ValueError(f"unsupported STOMP version {version!r}") from None


def escape_header(value: str, version: str) -> str:
    """Escape a header name or value for ``version`` (1.0: CR and LF become spaces)."""
    try:
        return _ESCAPERS[version](value)
    except KeyError:
        raise ValueError(f"unsupported STOMP version {version!r}") from None


def encode_frame(
    command: str,
    headers: dict[str, str] | list[tuple[str, str]],
    body: bytes = b"",
    version: str = "1.2",
) -> bytes:
    """Serialize one frame; ``content-length`` is added only if the caller put it in headers."""
    escape = _ESCAPERS.get(version)
    if escape is None:
        raise ValueError(f"unsupported STOMP version {version!r}")
    if command in _RAW_COMMANDS:
        escape = _escape_10
    items = headers.items() if isinstance(headers, dict) else headers
    parts = [command, "\n"]
    extend = parts.extend
    for name, value in items:
        extend((escape(name), ":", escape(value), "\n"))
    parts.append("\n")
    return b"".join(("".join(parts).encode(), body, b"\x00"))
