"""A lean STOMP 1.2 client for load generation: bytes in, bytes out, no per-frame objects.

Invariants:
- `FrameReader` keeps every byte of an incomplete frame in its buffer between `feed`
  calls, so a frame split across reads is never lost or counted twice; it jumps over a
  body by `content-length` when present and searches for the NUL otherwise; EOLs between
  frames (heart-beats, ActiveMQ's trailing ``\\n``) are skipped.
- Header values are kept as the raw (escaped) bytes on the wire. An ACK echoes the raw
  `ack` value, which the broker unescapes back to what it sent.
- Outgoing frames are built by the caller as bytes (see `send_template`) and written in
  batches; `StompProtocol.drain` waits while the transport's buffer is above its high
  watermark, so a producer never queues unbounded bytes in the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

from bench.target import Target

Frame = tuple[bytes, bytes, bytes]
"""(command, raw header block with a trailing newline per line, body)."""

_CL = b"content-length:"


class FrameReader:
    """Incremental reader of server frames (MESSAGE, RECEIPT, CONNECTED, ERROR)."""

    __slots__ = ("_buf", "_need")

    def __init__(self) -> None:
        self._buf = b""
        # Bytes the buffered frame needs before it can complete (known from content-length).
        self._need = 0

    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Append `data`; return every frame now complete, in order."""
        if self._buf:
            data = self._buf + data
            if len(data) < self._need:
                self._buf = data
                return []
        out: list[Frame] = []
        append = out.append
        find = data.find
        n = len(data)
        pos = 0
        need = 0
        while pos < n:
            c = data[pos]
            if c == 10 or c == 13:
                pos += 1
                continue
            he = find(b"\n\n", pos)
            if he < 0:
                break
            nl = find(b"\n", pos, he + 1)
            command = data[pos:nl]
            head = data[nl + 1 : he + 1]
            bs = he + 2
            cl = head.find(_CL)
            if cl >= 0 and (cl == 0 or head[cl - 1] == 10):
                length = int(head[cl + 15 : head.find(b"\n", cl)])
                end = bs + length
                if end >= n:
                    need = end + 1 - pos
                    break
            else:
                end = find(b"\x00", bs)
                if end < 0:
                    break
            append((command, head, data[bs:end]))
            pos = end + 1
        self._buf = data[pos:] if pos < n else b""
        self._need = need
        return out


def header(head: bytes, name: bytes) -> bytes | None:
    """The raw value of header `name` (the first occurrence) in a header block."""
    key = name + b":"
    i = head.find(key)
    while i > 0 and head[i - 1] != 10:
        i = head.find(key, i + 1)
    if i < 0:
        return None
    start = i + len(key)
    return head[start : head.find(b"\n", start)]


def escape(value: str) -> str:
    """STOMP 1.2 header escaping."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace(":", "\\c")


def frame(command: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """One frame as bytes (for the rare frames; the hot path uses templates)."""
    lines = "".join(f"{escape(k)}:{escape(v)}\n" for k, v in headers.items())
    return f"{command}\n{lines}\n".encode() + body + b"\x00"


PREFIX = 32
"""Every body starts with a 12-digit message index and a 20-digit send time in ns."""


def send_template(
    destination: str,
    size: int,
    *,
    persistent: bool = False,
    receipt: bool = False,
    shard: bool = False,
) -> bytes:
    """A SEND frame with `%012d%020d` (index, ns) and, with `receipt`, `%d` placeholders;
    with `shard`, a leading `shard:%d` header for the selector scenario.

    Format with ``template % (index, ns)`` or ``template % (index, index, ns)``, the
    shard first when there is one.
    """
    if size < PREFIX:
        raise ValueError(f"message size must be at least {PREFIX} bytes")
    head = f"SEND\ndestination:{escape(destination)}\ncontent-length:{size}\n"
    if shard:
        head += "shard:%d\n"
    if persistent:
        head += "persistent:true\n"
    if receipt:
        head += "receipt:%d\n"
    pad = b"." * (size - PREFIX)
    return head.encode() + b"\n%012d%020d" + pad + b"\x00"


class StompError(Exception):
    """The broker answered with an ERROR frame or closed the connection."""


class StompProtocol(asyncio.Protocol):
    """The connection plumbing shared by producers and consumers.

    Subclasses override `on_frames` for their hot path and call `setup_frame` for frames
    that are not theirs (CONNECTED, RECEIPT of a set-up step, ERROR).
    """

    def __init__(self) -> None:
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.connected: asyncio.Future[bytes] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.receipts: dict[bytes, asyncio.Future[None]] = {}
        self.errors: list[bytes] = []
        self._drain: asyncio.Future[None] | None = None
        self.paused = False
        self.lost_unexpectedly = False
        self.closing = False

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=1 << 20, low=1 << 18)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        frames = self.reader.feed(data)
        if frames:
            self.on_frames(frames)

    def on_frames(self, frames: list[Frame]) -> None:
        for f in frames:
            self.setup_frame(f)

    def setup_frame(self, f: Frame) -> None:
        command, head, body = f
        if command == b"CONNECTED":
            if not self.connected.done():
                self.connected.set_result(head)
        elif command == b"RECEIPT":
            fut = self.receipts.pop(header(head, b"receipt-id") or b"", None)
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif command == b"ERROR":
            msg = header(head, b"message") or body[:200]
            self.errors.append(msg)
            exc = StompError(msg.decode("utf-8", "replace"))
            if not self.connected.done():
                self.connected.set_exception(exc)
            for fut in self.receipts.values():
                if not fut.done():
                    fut.set_exception(exc)
            self.receipts.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.lost_unexpectedly = True
        err = StompError(f"connection lost: {exc}")
        if not self.connected.done():
            self.connected.set_exception(err)
        for fut in self.receipts.values():
            if not fut.done():
                fut.set_exception(err)
        self.receipts.clear()
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(err)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- helpers --------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its low watermark."""
        if self.paused:
            self._drain = self.loop.create_future()
            await self._drain

    async def request(self, command: str, headers: dict[str, str], timeout: float = 10) -> None:
        """Send a frame with a receipt and wait for the RECEIPT."""
        rid = f"setup-{len(self.receipts)}-{id(headers)}"
        fut = self.loop.create_future()
        self.receipts[rid.encode()] = fut
        self.write(frame(command, {**headers, "receipt": rid}))
        await asyncio.wait_for(fut, timeout)

    async def disconnect(self, timeout: float = 5) -> None:
        """DISCONNECT with a receipt (best effort), then close."""
        if self.transport is None or self.transport.is_closing():
            return
        self.closing = True
        with contextlib.suppress(StompError, TimeoutError, ConnectionError):
            await self.request("DISCONNECT", {}, timeout)
        self.transport.close()


async def connect(
    target: Target,
    factory: Callable[[], StompProtocol],
    *,
    heartbeat: tuple[int, int] = (0, 0),
    timeout: float = 10,
) -> StompProtocol:
    """Open a connection and complete the STOMP 1.2 handshake."""
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(factory, target.host, target.port), timeout
    )
    headers = {
        "accept-version": "1.2",
        "host": target.vhost,
        "login": target.login,
        "passcode": target.passcode,
        "heart-beat": f"{heartbeat[0]},{heartbeat[1]}",
    }
    # CONNECT is never escaped.
    lines = "".join(f"{k}:{v}\n" for k, v in headers.items())
    proto.write(f"CONNECT\n{lines}\n".encode() + b"\x00")
    await asyncio.wait_for(proto.connected, timeout)
    return proto


def subscribe_headers(
    destination: str, sub_id: str, ack: str, prefetch: int | None
) -> dict[str, str]:
    """SUBSCRIBE headers; the prefetch goes out in ActiveMQ's and RabbitMQ's spelling."""
    h = {"destination": destination, "id": sub_id, "ack": ack}
    if prefetch:
        h["activemq.prefetchSize"] = str(prefetch)
        h["prefetch-count"] = str(prefetch)
    return h
