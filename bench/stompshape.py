"""STOMP traffic shaped like real clients (`--shape client`), next to the batched shape of
`bench.scenarios`.

What a stomp.py application does, and so what this shape does:

- one frame per socket write: a producer calls ``sendall`` once per SEND (stomp.py's
  ``Connection.send``), a consumer once per ACK (``Connection.ack`` from its listener);
- an ACK per message with ``client-individual`` (and with ``client``: applications ack
  each message they handle);
- varied header sets: each SEND carries ``content-type``, a ``correlation-id`` and one
  or two application properties whose names and values change from message to message
  (four header shapes in turn), as JMS-style apps set them;
- with receipts, one SEND in flight: the producer waits for each RECEIPT before the next
  SEND (stomp.py's ``send(..., receipt=...)`` followed by waiting on the listener);
- a consumer subscribes with ``activemq.prefetchSize`` only when ``--prefetch`` is given,
  as stomp.py users set it or leave it out.

One process per producer and per consumer (bench.workers), each on a blocking socket
like stomp.py's, so the load generator is not one GIL; every worker reports its CPU.
Bodies carry the index and send time like every other scenario, so lost and duplicated
messages are exact.
"""

from __future__ import annotations

import math
import socket
import time
from typing import Any

from bench.stompclient import PREFIX, FrameReader, escape, frame, header, subscribe_headers
from bench.target import Target
from bench.workers import READY, STATE, Job, Shared, cpu_seconds, mark, run_workers, wait_go

perf_ns = time.perf_counter_ns

# Four header shapes in turn; `%(g)d` is the message's index, so values change per message.
HEADER_SHAPES: tuple[tuple[tuple[str, str], ...], ...] = (
    (
        ("content-type", "text/plain"),
        ("correlation-id", "order-%(g)d"),
        ("type", "OrderPlaced"),
        ("retry-count", "%(k)d"),
    ),
    (
        ("content-type", "application/json"),
        ("correlation-id", "%(g)08x-4e1f-9a2b"),
        ("tenant", "acme-%(k)d"),
        ("event-type", "OrderPlaced"),
    ),
    (
        ("content-type", "application/octet-stream"),
        ("correlation-id", "c%(g)d"),
        ("reply-to", "/queue/replies.%(k)d"),
    ),
    (
        ("content-type", "text/plain;charset=utf-8"),
        ("correlation-id", "req-%(g)d"),
        ("x-trace-id", "%(g)016x"),
        ("priority-class", "%(k)d"),
    ),
)


def client_templates(
    destination: str, size: int, *, persistent: bool, receipt: bool
) -> list[bytes]:
    """One SEND template per header shape; format with ``t % {b"g": i, b"k": i % 7, b"t": ns}``."""
    if size < PREFIX:
        raise ValueError(f"message size must be at least {PREFIX} bytes")
    pad = b"." * (size - PREFIX)
    out = []
    for shape in HEADER_SHAPES:
        # Literal percent signs in the destination must survive %-formatting.
        head = f"SEND\ndestination:{escape(destination).replace('%', '%%')}\n"
        head += "".join(f"{name}:{value}\n" for name, value in shape)
        if persistent:
            head += "persistent:true\n"
        if receipt:
            head += "receipt:%(g)d\n"
        # stomp.py adds content-length by itself (auto_content_length).
        head += f"content-length:{size}\n\n"
        out.append(head.encode() + b"%(g)012d%(t)020d" + pad.replace(b"%", b"%%") + b"\x00")
    return out


class _Conn:
    """A blocking STOMP connection: sendall out, a FrameReader in."""

    def __init__(self, p: dict[str, Any]) -> None:
        self.sock = socket.create_connection((p["host"], p["port"]), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = FrameReader()
        self.pending: list[tuple[bytes, bytes, bytes]] = []
        # CONNECT is never escaped.
        lines = f"accept-version:1.2\nhost:{p['vhost']}\nlogin:{p['login']}\n"
        lines += f"passcode:{p['passcode']}\nheart-beat:0,0\n"
        self.sock.sendall(f"CONNECT\n{lines}\n".encode() + b"\x00")
        self.expect(b"CONNECTED")

    def next_frames(self) -> list[tuple[bytes, bytes, bytes]]:
        """The frames of the next read (raises on EOF, TimeoutError on the socket timeout)."""
        if self.pending:
            out, self.pending = self.pending, []
            return out
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed by the broker")
        return self.reader.feed(data)

    def expect(self, command: bytes, receipt: bytes | None = None) -> None:
        """Read until `command` (with `receipt-id` = `receipt` when given); ERROR raises."""
        while True:
            frames = self.next_frames()
            for i, (cmd, head, body) in enumerate(frames):
                if cmd == b"ERROR":
                    msg = header(head, b"message") or body[:200]
                    raise ConnectionError(f"ERROR: {msg.decode('utf-8', 'replace')}")
                if cmd == command and (receipt is None or header(head, b"receipt-id") == receipt):
                    self.pending = frames[i + 1 :] + self.pending
                    return

    def close(self) -> None:
        try:
            self.sock.settimeout(3)
            self.sock.sendall(frame("DISCONNECT", {"receipt": "bye"}))
            self.expect(b"RECEIPT", b"bye")
        except OSError:
            pass
        finally:
            self.sock.close()


def _produce(p: dict[str, Any], shared: Shared) -> dict[str, Any]:
    conn = _Conn(p)
    templates = client_templates(
        p["destination"], p["size"], persistent=p["persistent"], receipt=p["receipts"]
    )
    shapes = len(templates)
    receipts = p["receipts"]
    start, stop = p["indices"]
    latencies: list[int] = []
    first_ns = last_ns = 0
    sent = 0
    errors: list[str] = []
    if not wait_go(shared):
        conn.close()
        return {"sent": 0}
    send = conn.sock.sendall
    try:
        for g in range(start, stop):
            now = perf_ns()
            send(templates[g % shapes] % {b"g": g, b"k": g % 7, b"t": now})
            if not first_ns:
                first_ns = now
            if receipts:
                conn.expect(b"RECEIPT", str(g).encode())
                latencies.append(perf_ns() - now)
            sent += 1
            if sent & 255 == 0 and shared.stop.is_set():
                break
        last_ns = perf_ns()
    except OSError as exc:
        errors.append(f"producer: {type(exc).__name__}: {exc}")
    conn.close()
    out: dict[str, Any] = {"sent": sent, "first_ns": first_ns, "last_ns": last_ns}
    out["errors"] = errors
    if latencies:
        out["latencies_ns"] = latencies
    return out


def _consume(p: dict[str, Any], shared: Shared) -> dict[str, Any]:
    conn = _Conn(p)
    seen = bytearray(p["messages"])
    ack_each = p["ack"] != "auto"
    sub = subscribe_headers(p["destination"], "s0", p["ack"], p["prefetch"])
    conn.sock.sendall(frame("SUBSCRIBE", {**sub, "receipt": "sub"}))
    conn.expect(b"RECEIPT", b"sub")
    shared.counters[STATE] = READY
    conn.sock.settimeout(0.2)
    send = conn.sock.sendall
    count = 0
    last_ns = 0
    errors: list[str] = []
    while not shared.stop.is_set():
        try:
            frames = conn.next_frames()
        except TimeoutError:
            continue
        except OSError as exc:
            errors.append(f"consumer: {type(exc).__name__}: {exc}")
            break
        got = 0
        for cmd, head, body in frames:
            if cmd != b"MESSAGE":
                if cmd == b"ERROR":
                    errors.append(f"consumer ERROR: {header(head, b'message')!r}")
                continue
            g = int(body[:12])
            if seen[g] < 255:
                seen[g] += 1
            got += 1
            if ack_each:
                # One write per ACK, as a stomp.py listener calling conn.ack() does.
                send(b"ACK\nid:" + (header(head, b"ack") or b"") + b"\n\n\x00")
        if got:
            count += got
            last_ns = perf_ns()
            mark(shared, count, last_ns)
    conn.close()
    return {"seen": bytes(seen), "last_ns": last_ns, "errors": errors}


def worker(job: Job, shared: Shared) -> dict[str, Any]:
    """Run one client-shaped producer or consumer process; its figures and CPU."""
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    fn = _produce if job.role == "producer" else _consume
    out = fn(job.params, shared)
    out["cpu_s"] = cpu_seconds() - cpu0
    out["busy_s"] = time.perf_counter() - t0
    return out


async def client_run(
    target: Target, opts: Any, name: str, *, receipts: bool, deadline: float
) -> dict[str, Any]:
    """Producers → queue → consumers, client-shaped, one process each; the run's figures."""
    base = {
        "host": target.host,
        "port": target.port,
        "login": target.login,
        "passcode": target.passcode,
        "vhost": target.vhost,
        "destination": f"/queue/{name}",
    }
    n = opts.messages
    per = math.ceil(n / opts.producers)
    consumer = {**base, "messages": n, "ack": opts.ack, "prefetch": opts.prefetch}
    jobs = [Job(worker, "consumer", consumer) for _ in range(opts.consumers)]
    for i in range(opts.producers):
        params = {
            **base,
            "indices": (i * per, min(n, (i + 1) * per)),
            "size": opts.size,
            "persistent": opts.persistent or receipts,
            "receipts": receipts,
        }
        jobs.append(Job(worker, "producer", params))
    return await run_workers(jobs, n, deadline)


__all__ = ["HEADER_SHAPES", "client_run", "client_templates", "worker"]
