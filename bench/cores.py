"""What using a second core would cost per message (issue 15): CPU time, not throughput.

    PYTHONPATH=<checkout> python -m bench.cores [--frames 4096] [--repeats 7] [--json]

The machine is shared, so msg/s on two cores cannot be measured honestly; what the core's
thread (or process) pays per message can, in CPU time (`time.thread_time`: waiting for a
CPU or for the GIL does not count), min over repeats. Every case uses the real
`protocols.stomp.codec.FrameParser` and `protocols.stomp.mapping` on client-shaped
frames (`bench.stompshape.client_templates`: four header sets, 256 B bodies, one frame
per read; ACKs as stomp.py sends them). Sections, each row in µs per frame:

- ``inline``: what the core pays today: parse a SEND / an ACK fed one per read, 64 SENDs
  in one read (the batched shape), SEND → Message, the MESSAGE head encode;
- ``thread``: frames parsed by another thread and handed over through a
  `queue.SimpleQueue` or a `collections.deque` plus one `loop.call_soon_threadsafe` per
  batch of 1/16/64 (uvloop, the core's loop): the core thread's CPU per frame; then the
  GIL: the core thread's CPU and wall time per frame of real work (SEND → Message →
  MESSAGE head) alone, next to a thread parsing in Python, and next to a thread doing
  GIL-released C work (hashlib on 64 KiB blocks: the stand-in for a nogil parser), with
  the hand-over latency the core sees;
- ``process``: frames parsed in a worker process: the core process's cost to decode the
  handed-over representation (marshal, pickle, a flat NUL-separated layout) against
  parsing STOMP itself, the socketpair read per frame with a real writer process, and
  the eventfd wake-up a shared-memory ring needs per batch; outbound, what handing a
  delivery to a writer costs against encoding its MESSAGE head;
- ``forward``: several processes owning destinations (SO_REUSEPORT, issue 15's (b)):
  the landing process's extra cost to forward a SEND it does not own (find the
  destination, send the raw frame over a socketpair in batches) and the owner's to
  receive it, with the fraction forwarded for N processes and random landing;
- ``pipeline``: the end-to-end check of the worker-process option: four producer
  processes (one sendall per SEND) and one auto-ack consumer process through a real
  `broker.core.Core`, ``inline`` (one process reads, parses, sends, encodes and
  writes, as today), ``worker`` (a forked worker owns the client sockets, parses,
  batches marshalled frames per loop turn to the core over a socketpair, and encodes
  and writes the delivery tuples the core batches back) or ``reader`` (the worker only
  reads and parses, the producers' sockets; the core encodes and writes, the
  consumer's); alternating runs, medians of the core's thread CPU and the worker
  process's CPU per message; the same 4→4 with client-individual consumers (an ACK per
  message in its own write), inline and worker. No CONNECT, no receipts, no
  transactions: the STOMP connection's semantics are not in it, only the costs.

Every representation is checked on the way: what the core decodes must equal what
FrameParser parsed (a mismatch raises), so the figures are for hand-overs that work.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import marshal
import multiprocessing
import os
import pickle
import queue
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import uvloop

from bench.stompshape import client_templates
from protocols.stomp.codec import Frame, FrameParser
from protocols.stomp.mapping import encode_message_head, message_from_send, parse_destination

CONN = "ID:bench-1-1"
BATCHES = (1, 16, 64)


def client_frames(n: int) -> tuple[list[bytes], list[bytes]]:
    """`n` client-shaped SEND frames and `n` ACK frames, as bytes on the wire."""
    templates = client_templates("/queue/orders", 256, persistent=False, receipt=False)
    sends = [
        templates[i % len(templates)] % {b"g": i, b"k": i % 7, b"t": time.time_ns()}
        for i in range(n)
    ]
    acks = [b"ACK\nid:ID:zonemq-1764870000000-1:%d\n\n\x00" % i for i in range(n)]
    return sends, acks


def parse_all(wire: list[bytes]) -> list[Frame]:
    """Every frame of `wire`, parsed by a 1.2 FrameParser (one feed per frame)."""
    parser = FrameParser()
    parser.version = "1.2"
    out: list[Frame] = []
    for data in wire:
        out.extend(parser.feed(data))
    if len(out) != len(wire):
        raise AssertionError(f"parsed {len(out)} frames from {len(wire)}")
    return out


def _best(fn: Callable[[], int], repeats: int) -> float:
    """Min over `repeats` of thread CPU µs per item (`fn` returns how many it did)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time_ns()
        n = fn()
        best = min(best, (time.thread_time_ns() - t0) / 1000 / n)
    return best


# -- inline: what the core does today ---------------------------------------------------


def inline_costs(sends: list[bytes], acks: list[bytes], repeats: int) -> dict[str, float]:
    """µs per frame of the core's own parse, SEND → Message and MESSAGE head encode."""
    frames = parse_all(sends)
    dest = parse_destination(frames[0].headers["destination"], CONN)
    batch64 = [b"".join(sends[i : i + 64]) for i in range(0, len(sends), 64)]

    def parse_sends() -> int:
        parser = FrameParser()
        parser.version = "1.2"
        feed = parser.feed
        for data in sends:
            feed(data)
        return len(sends)

    def parse_acks() -> int:
        parser = FrameParser()
        parser.version = "1.2"
        feed = parser.feed
        for data in acks:
            feed(data)
        return len(acks)

    def parse_batched() -> int:
        parser = FrameParser()
        parser.version = "1.2"
        n = 0
        for data in batch64:
            n += len(parser.feed(data))
        return n

    def to_message() -> int:
        for f in frames:
            message_from_send(f.headers, f.body, dest, CONN, None)
        return len(frames)

    msgs = [message_from_send(f.headers, f.body, dest, CONN, None) for f in frames]
    for i, m in enumerate(msgs):
        m.id = f"ID:zonemq-1764870000000-1:{i}"

    def encode() -> int:
        for m in msgs:
            encode_message_head(m, CONN, "1.2")
        return len(msgs)

    return {
        "parse SEND (one per read)": _best(parse_sends, repeats),
        "parse ACK (one per read)": _best(parse_acks, repeats),
        "parse SEND (64 per read)": _best(parse_batched, repeats),
        "SEND → Message": _best(to_message, repeats),
        "MESSAGE head encode": _best(encode, repeats),
    }


# -- thread: parsed elsewhere, handed to the loop's thread --------------------------------


def _handoff_run(
    items: list[Any],
    batch: int,
    kind: str,
    work: Callable[[Any], None] | None,
    producer: Callable[[list[Any]], list[Any]] | None,
    *,
    paced: bool = False,
) -> tuple[float, float, float, list[float]]:
    """One run on a fresh uvloop loop in this thread: a second thread hands `items` over
    in batches; `producer` (in that thread) turns each batch into what is handed over
    (e.g. parses it). `paced`: the next batch waits until the core has taken the last,
    so every batch costs a wake-up of an idle loop (a quiet broker) instead of queueing
    behind a busy one. Returns (core thread CPU µs/item, wall µs/item, process CPU
    µs/item, hand-over latencies µs: put to the core taking the batch)."""
    loop = uvloop.new_event_loop()
    done = loop.create_future()
    got = 0
    total = len(items)
    latencies: list[float] = []
    sq: queue.SimpleQueue[tuple[int, list[Any]]] = queue.SimpleQueue()
    dq: collections.deque[tuple[int, list[Any]]] = collections.deque()
    # Whether a wake-up is already on its way: the consumer clears it before draining,
    # so a batch put after the drain began always has a wake-up of its own.
    armed = threading.Event()
    taken = threading.Event()

    def drain() -> None:
        nonlocal got
        armed.clear()
        while True:
            try:
                sent, chunk = sq.get_nowait() if kind == "simplequeue" else dq.popleft()
            except (queue.Empty, IndexError):
                break
            latencies.append((time.perf_counter_ns() - sent) / 1000)
            if work is not None:
                for item in chunk:
                    work(item)
            got += len(chunk)
            taken.set()
        if got >= total and not done.done():
            done.set_result(None)

    def feeder() -> None:
        put = sq.put if kind == "simplequeue" else dq.append
        for i in range(0, total, batch):
            chunk = items[i : i + batch]
            if producer is not None:
                chunk = producer(chunk)
            taken.clear()
            put((time.perf_counter_ns(), chunk))
            if not armed.is_set():
                armed.set()
                loop.call_soon_threadsafe(drain)
            if paced and not taken.wait(10):
                raise TimeoutError("the core thread did not take a batch in 10 s")

    async def main() -> tuple[float, float, float]:
        t0 = time.thread_time_ns()
        p0 = time.process_time_ns()
        w0 = time.perf_counter_ns()
        th = threading.Thread(target=feeder)
        th.start()
        # Bounded: a feeder thread that failed cannot report it here.
        await asyncio.wait_for(done, 120)
        cpu = (time.thread_time_ns() - t0) / 1000 / total
        wall = (time.perf_counter_ns() - w0) / 1000 / total
        th.join()
        proc = (time.process_time_ns() - p0) / 1000 / total
        return cpu, wall, proc

    try:
        cpu, wall, proc = loop.run_until_complete(main())
    finally:
        loop.close()
    return cpu, wall, proc, latencies


def _paced_socket_run(wire: list[bytes]) -> float:
    """Today's path at the same pace: a thread writes one frame at a time into a socket
    the core's loop reads (no parse), waiting until it was read. Core thread CPU µs per
    frame: the baseline a paced hand-over's wake-up compares with (both pay the same
    Event signalling of this harness)."""
    loop = uvloop.new_event_loop()
    a, b = socket.socketpair()
    taken = threading.Event()
    total = sum(map(len, wire))
    done = loop.create_future()

    class _Reader(asyncio.Protocol):
        n = 0

        def data_received(self, data: bytes) -> None:
            self.n += len(data)
            taken.set()
            if self.n >= total and not done.done():
                done.set_result(None)

    def writer() -> None:
        for frame in wire:
            taken.clear()
            b.sendall(frame)
            if not taken.wait(10):
                raise TimeoutError("the core thread did not read a frame in 10 s")

    async def main() -> float:
        await loop.connect_accepted_socket(_Reader, sock=a)
        t0 = time.thread_time_ns()
        th = threading.Thread(target=writer)
        th.start()
        # Bounded: a feeder thread that failed cannot report it here.
        await asyncio.wait_for(done, 120)
        cpu = (time.thread_time_ns() - t0) / 1000 / len(wire)
        th.join()
        return cpu

    try:
        return loop.run_until_complete(main())
    finally:
        b.close()
        loop.close()


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class _Busy:
    """A thread kept busy until stopped: parsing STOMP in Python (holds the GIL) or
    hashing 64 KiB blocks (hashlib releases the GIL: the stand-in for a nogil parser)."""

    def __init__(self, kind: str, sends: list[bytes]) -> None:
        self._stop = threading.Event()
        target = self._parse if kind == "python" else self._hash
        self._thread = threading.Thread(target=target, args=(sends,), daemon=True)

    def _parse(self, sends: list[bytes]) -> None:
        while not self._stop.is_set():
            parse_all(sends[:64])

    def _hash(self, sends: list[bytes]) -> None:
        block = b"\x5a" * 65536
        while not self._stop.is_set():
            hashlib.sha256(block).digest()

    def __enter__(self) -> _Busy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def thread_costs(sends: list[bytes], repeats: int) -> dict[str, Any]:
    """The core thread's cost of receiving frames another thread parsed, and the GIL."""
    frames = parse_all(sends)
    dest = parse_destination(frames[0].headers["destination"], CONN)
    out: dict[str, Any] = {}
    few = frames[: max(64, len(frames) // 8)]
    for kind in ("simplequeue", "deque"):
        # Paced: one wake-up of an idle loop per batch (fewer frames: each waits).
        out[f"hand-over, {kind}, batch 1, paced (a wake-up each)"] = min(
            _handoff_run(few, 1, kind, None, None, paced=True)[0] for _ in range(repeats)
        )
        if kind == "simplequeue":
            out["today: socket read, one frame at a time, paced"] = min(
                _paced_socket_run(sends[: len(few)]) for _ in range(repeats)
            )
        for batch in BATCHES:
            out[f"hand-over, {kind}, batch {batch}, unpaced"] = min(
                _handoff_run(frames, batch, kind, None, None)[0] for _ in range(repeats)
            )

    # Real work on the core thread per frame: what follows the parse today.
    def core_work(f: Frame) -> None:
        m = message_from_send(f.headers, f.body, dest, CONN, None)
        m.id = "ID:zonemq-1764870000000-1:1"
        encode_message_head(m, CONN, "1.2")

    def parse_batch(chunk: list[bytes]) -> list[Frame]:
        parser = FrameParser()
        parser.version = "1.2"
        return parser.feed(b"".join(chunk))

    def inline_all() -> int:
        # Today: the core thread parses and then works, 16 frames per read.
        parser = FrameParser()
        parser.version = "1.2"
        for i in range(0, len(sends), 16):
            for f in parser.feed(b"".join(sends[i : i + 16])):
                core_work(f)
        return len(sends)

    def core_alone() -> int:
        for f in frames:
            core_work(f)
        return len(frames)

    out["core work alone (SEND → Message → head): cpu"] = _best(core_alone, repeats)
    out["parse + core work inline, 16 per read: cpu (= wall on an idle CPU)"] = _best(
        inline_all, repeats
    )
    runs = [_handoff_run(sends, 16, "simplequeue", core_work, parse_batch) for _ in range(repeats)]
    cpu, wall, proc, _ = min(runs, key=lambda r: r[0])
    out["core work, a Python thread parses (batch 16): core thread cpu"] = cpu
    out["  the same run: process cpu (both threads)"] = proc
    out["  the same run: wall"] = wall
    for busy in ("python", "c"):
        with _Busy(busy, sends):
            out[f"core work next to a busy {busy} thread: cpu"] = _best(core_alone, repeats)
    # Latency of a quiet core's wake-up (paced, batch 1) with nothing else running, next
    # to a thread parsing in Python (the GIL: the loop waits for the switch interval),
    # next to a thread in GIL-released C.
    _, _, _, lat = _handoff_run(few, 1, "simplequeue", None, None, paced=True)
    out["wake-up latency, quiet: p50 (µs)"] = statistics.median(lat)
    out["wake-up latency, quiet: p99 (µs)"] = _pct(lat, 0.99)
    for busy in ("python", "c"):
        with _Busy(busy, sends):
            _, _, _, lat = _handoff_run(few, 1, "simplequeue", None, None, paced=True)
        out[f"wake-up latency, busy {busy} thread: p50 (µs)"] = statistics.median(lat)
        out[f"wake-up latency, busy {busy} thread: p99 (µs)"] = _pct(lat, 0.99)
    return out


# -- process: parsed in a worker process ---------------------------------------------------


def flat_encode(frame: Frame) -> bytes:
    """One frame as the flat layout: command, names and values NUL-separated, then NUL NUL
    and the body (STOMP forbids nothing in values, so a real layout would carry lengths;
    these frames have no NUL in headers, which `flat_decode`'s check would catch)."""
    parts = [frame.command]
    for k, v in frame.headers.items():
        parts.append(k)
        parts.append(v)
    return "\x00".join(parts).encode() + b"\x00\x00" + frame.body


def flat_decode(data: bytes) -> Frame:
    """The inverse of `flat_encode`."""
    head, _, body = data.partition(b"\x00\x00")
    fields = head.decode().split("\x00")
    it = iter(fields)
    command = next(it)
    return Frame(command, dict(zip(it, it, strict=True)), body)


def _check(decoded: list[Frame], frames: list[Frame], what: str) -> None:
    if decoded != frames:
        raise AssertionError(f"{what}: decoded frames differ from FrameParser's")


def _as_tuples(frames: list[Frame]) -> list[tuple[str, dict[str, str], bytes]]:
    return [(f.command, f.headers, f.body) for f in frames]


def _writer(sock: socket.socket, other: socket.socket, payloads: list[bytes], rounds: int) -> None:
    """The worker process of the socketpair case: writes `payloads` `rounds` times."""
    other.close()  # the parent's end, inherited by the fork
    for _ in range(rounds):
        for p in payloads:
            sock.sendall(p)
    sock.close()


def process_costs(sends: list[bytes], acks: list[bytes], repeats: int) -> dict[str, float]:
    """Core-process µs per frame to take in frames a worker process parsed."""
    frames = parse_all(sends)
    n = len(frames)
    out: dict[str, float] = {}
    for batch in BATCHES:
        chunks = [frames[i : i + batch] for i in range(0, n, batch)]
        wire = [b"".join(sends[i : i + batch]) for i in range(0, n, batch)]
        marshalled = [marshal.dumps(_as_tuples(c)) for c in chunks]
        pickled = [pickle.dumps(_as_tuples(c), protocol=5) for c in chunks]
        # Flat: per frame a 4-byte length, then the frame's flat encoding.
        flat = [
            b"".join(len(e).to_bytes(4, "little") + e for e in map(flat_encode, c)) for c in chunks
        ]

        def parse_stomp(wire: list[bytes] = wire) -> int:
            parser = FrameParser()
            parser.version = "1.2"
            k = 0
            for data in wire:
                k += len(parser.feed(data))
            return k

        def from_tuples(blobs: list[bytes], loads: Callable[[bytes], Any]) -> list[Frame]:
            res: list[Frame] = []
            for blob in blobs:
                res.extend(Frame(c, h, b) for c, h, b in loads(blob))
            return res

        def from_flat(blobs: list[bytes] = flat) -> list[Frame]:
            res: list[Frame] = []
            for blob in blobs:
                view = memoryview(blob)
                pos = 0
                end = len(blob)
                while pos < end:
                    size = int.from_bytes(view[pos : pos + 4], "little")
                    res.append(flat_decode(bytes(view[pos + 4 : pos + 4 + size])))
                    pos += 4 + size
            return res

        _check(from_tuples(marshalled, marshal.loads), frames, "marshal")
        _check(from_tuples(pickled, pickle.loads), frames, "pickle")
        _check(from_flat(), frames, "flat")
        out[f"parse STOMP itself, {batch} per read"] = _best(parse_stomp, repeats)
        out[f"marshal.loads → Frame, batch {batch}"] = _best(
            lambda m=marshalled: len(from_tuples(m, marshal.loads)), repeats
        )
        out[f"pickle.loads → Frame, batch {batch}"] = _best(
            lambda p=pickled: len(from_tuples(p, pickle.loads)), repeats
        )
        out[f"flat layout → Frame, batch {batch}"] = _best(lambda: len(from_flat()), repeats)
        out[f"socketpair read (writer process), batch {batch}"] = _socketpair_read(
            marshalled, batch, repeats
        )
    out.update(_ack_costs(acks, repeats))
    out["eventfd wake-up (write + read) per batch"] = _eventfd_pair(repeats)
    out.update(_outbound(frames, repeats))
    return out


def _ack_costs(acks: list[bytes], repeats: int) -> dict[str, float]:
    """An ACK (the other inbound frame of every client-acked message): parse vs marshal."""
    frames = parse_all(acks)
    out: dict[str, float] = {}
    for batch in (1, 16):
        wire = [b"".join(acks[i : i + batch]) for i in range(0, len(acks), batch)]
        blobs = [
            marshal.dumps(_as_tuples(frames[i : i + batch])) for i in range(0, len(frames), batch)
        ]
        decoded = [Frame(c, h, b) for blob in blobs for c, h, b in marshal.loads(blob)]
        _check(decoded, frames, "marshal (ACK)")

        def parse(wire: list[bytes] = wire) -> int:
            parser = FrameParser()
            parser.version = "1.2"
            return sum(len(parser.feed(data)) for data in wire)

        def loads(blobs: list[bytes] = blobs) -> int:
            k = 0
            for blob in blobs:
                k += len([Frame(c, h, b) for c, h, b in marshal.loads(blob)])
            return k

        out[f"ACK: parse STOMP itself, {batch} per read"] = _best(parse, repeats)
        out[f"ACK: marshal.loads → Frame, batch {batch}"] = _best(loads, repeats)
    return out


def _socketpair_read(payloads: list[bytes], batch: int, repeats: int) -> float:
    """Core-side CPU µs per frame to read `payloads` (length-prefixed, as a hand-over
    would frame them) that a separate process writes into a socketpair."""
    framed = [len(p).to_bytes(4, "little") + p for p in payloads]
    total = sum(map(len, framed))
    frames_per_round = len(payloads) * batch
    ctx = multiprocessing.get_context("fork")
    best = float("inf")
    a, b = socket.socketpair()
    proc = ctx.Process(target=_writer, args=(b, a, framed, repeats), daemon=True)
    proc.start()
    b.close()
    try:
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        for _ in range(repeats):
            t0 = time.thread_time_ns()
            left = total
            pending = bytearray()
            got = 0
            while left:
                k = a.recv_into(view, min(len(buf), left))
                if not k:
                    raise ConnectionError("writer process went away")
                left -= k
                # Cut the length-prefixed blobs as a real reader must.
                pending += view[:k]
                pos = 0
                while len(pending) - pos >= 4:
                    size = int.from_bytes(pending[pos : pos + 4], "little")
                    if len(pending) - pos - 4 < size:
                        break
                    bytes(pending[pos + 4 : pos + 4 + size])
                    pos += 4 + size
                    got += 1
                del pending[:pos]
            if got != len(payloads):
                raise AssertionError(f"read {got} of {len(payloads)} blobs")
            best = min(best, (time.thread_time_ns() - t0) / 1000 / frames_per_round)
    finally:
        a.close()
        proc.join(10)
        if proc.exitcode != 0:
            raise RuntimeError(f"the helper process ended with {proc.exitcode}")
    return best


def _eventfd_pair(repeats: int) -> float:
    """µs of one eventfd write + read: the per-batch wake-up of a shared-memory ring
    (an upper bound for the core's side, which pays only the read and the loop's poll)."""
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:

        def pairs() -> int:
            for _ in range(2000):
                os.eventfd_write(fd, 1)
                os.eventfd_read(fd)
            return 2000

        return _best(pairs, repeats)
    finally:
        os.close(fd)


def _outbound(frames: list[Frame], repeats: int) -> dict[str, float]:
    """Handing a delivery to a writer (thread or process) against encoding it here."""
    dest = parse_destination(frames[0].headers["destination"], CONN)
    msgs = [message_from_send(f.headers, f.body, dest, CONN, None) for f in frames]
    for i, m in enumerate(msgs):
        m.id = f"ID:zonemq-1764870000000-1:{i}"

    def encode() -> int:
        for m in msgs:
            encode_message_head(m, CONN, "1.2")
        return len(msgs)

    def delivery(m: Any) -> tuple[Any, ...]:
        # What a writer needs to encode the MESSAGE: every field the head shows.
        return (
            "sub-0",
            m.id,
            m.destination.kind,
            m.destination.name,
            m.timestamp,
            m.expiration,
            m.priority,
            m.persistent,
            m.redelivered,
            m.correlation_id,
            m.content_type,
            m.type,
            m.properties,
            m.body,
        )

    def marshal_out() -> int:
        dumps = marshal.dumps
        for m in msgs:
            dumps(delivery(m))
        return len(msgs)

    def marshal_out_64() -> int:
        dumps = marshal.dumps
        for i in range(0, len(msgs), 64):
            dumps([delivery(m) for m in msgs[i : i + 64]])
        return len(msgs)

    blobs64 = [
        marshal.dumps([delivery(m) for m in msgs[i : i + 64]]) for i in range(0, len(msgs), 64)
    ]
    chunks16 = [_as_tuples(frames[i : i + 16]) for i in range(0, len(frames), 16)]

    def worker_in() -> int:
        # The worker's extra step per inbound frame: its parsed frames marshalled.
        for c in chunks16:
            marshal.dumps(c)
        return len(frames)

    def worker_out() -> int:
        # The worker's extra step per delivery: the tuple back (it then encodes the head).
        k = 0
        for blob in blobs64:
            k += len(marshal.loads(blob))
        return k

    return {
        "worker side: parsed SENDs → marshal.dumps, batch 16": _best(worker_in, repeats),
        "worker side: delivery tuples ← marshal.loads, batch 64": _best(worker_out, repeats),
        "outbound: MESSAGE head encode here": _best(encode, repeats),
        "outbound: delivery tuple → marshal.dumps, one each": _best(marshal_out, repeats),
        "outbound: delivery tuples → marshal.dumps, 64 per blob": _best(marshal_out_64, repeats),
    }


# -- forward: destinations owned by several processes --------------------------------------


def _drain(sock: socket.socket, other: socket.socket) -> None:
    """The owner process of the forward case: reads until EOF."""
    other.close()  # the parent's end, inherited by the fork: EOF needs it closed
    while sock.recv(1 << 20):
        pass


def forward_costs(sends: list[bytes], repeats: int) -> dict[str, float]:
    """µs per forwarded SEND at the landing process (destination lookup, batched send of
    the raw frame to the owner) and at the owner (the read; it parses as it would anyway)."""
    n = len(sends)
    out: dict[str, float] = {}

    def find_dest() -> int:
        for data in sends:
            i = data.find(b"\ndestination:")
            j = data.find(b"\n", i + 13)
            if data[i + 13 : j] != b"/queue/orders":
                raise AssertionError("destination not found")
        return n

    out["landing: find the destination (bytes.find, no parse)"] = _best(find_dest, repeats)
    ctx = multiprocessing.get_context("fork")
    for batch in BATCHES:
        blobs = [b"".join(sends[i : i + batch]) for i in range(0, n, batch)]
        a, b = socket.socketpair()
        proc = ctx.Process(target=_drain, args=(b, a), daemon=True)
        proc.start()
        b.close()
        try:

            def send_all(blobs: list[bytes] = blobs, a: socket.socket = a) -> int:
                for blob in blobs:
                    a.sendall(blob)
                return n

            out[f"landing: send to the owner, batch {batch}"] = _best(send_all, repeats)
        finally:
            a.close()
            proc.join(10)
            if proc.exitcode != 0:
                raise RuntimeError(f"the helper process ended with {proc.exitcode}")
        if proc.exitcode != 0:
            raise RuntimeError(f"the helper process ended with {proc.exitcode}")
        out[f"owner: read from the landing process, batch {batch}"] = _socketpair_read(
            blobs, batch, repeats
        )
    return out


def forwarded_fraction(processes: int) -> float:
    """Share of frames that cross processes when connections land on a random process
    and the destination is owned by one of `processes` (uniform)."""
    return (processes - 1) / processes


# -- pipeline: the whole inbound + outbound path, one process or core + worker ----------

Q = "/queue/orders"


def _producer(port: int, wire: list[bytes]) -> None:
    """A producer process: one sendall per SEND, as stomp.py writes them."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for frame in wire:
            sock.sendall(frame)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)  # the broker closes once it has read everything


def _consumer(port: int, ack: bool) -> None:
    """A consumer process: SUBSCRIBE, read MESSAGEs (with `ack`: client-individual, an
    ACK per message in its own write, as stomp.py applications send them) until the
    broker closes the connection, which it does once every message is delivered (or
    acked)."""
    from bench.stompclient import FrameReader, header

    mode = b"client-individual" if ack else b"auto"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"SUBSCRIBE\nid:0\ndestination:" + Q.encode() + b"\nack:" + mode + b"\n\n\x00")
        reader = FrameReader()
        while True:
            data = sock.recv(1 << 20)
            if not data:
                return
            if ack:
                for _, head, _ in reader.feed(data):
                    mid = header(head, b"message-id")
                    if mid is None:
                        raise AssertionError("a MESSAGE without message-id")
                    sock.sendall(b"ACK\nid:" + mid + b"\n\n\x00")


class _CoreSide:
    """The core's side of both pipeline modes: a real `Core`, SEND → Message → send, and
    deliveries handed to `out` (the connection's encode-and-write, or the worker's)."""

    def __init__(self, total: int, done: asyncio.Future[None], ack: bool) -> None:
        from broker.core import AUTO, INDIVIDUAL, Core

        self.core = Core()
        self.ack_mode = INDIVIDUAL if ack else AUTO
        self.ack = ack
        self.dest = parse_destination(Q, CONN)
        self.total = total
        self.delivered = 0
        self.acked = 0
        self.done = done
        self.consumers: list[Any] = []

    def on_frame(self, conn: Any, frame: Frame) -> None:
        if frame.command == "SEND":
            self.core.send(
                self.dest, message_from_send(frame.headers, frame.body, self.dest, CONN, None)
            )
        elif frame.command == "ACK":
            if not conn.sub.ack(frame.headers["id"]):
                raise AssertionError(f"ACK of a message not in flight: {frame.headers['id']}")
            self.acked += 1
            if self.acked >= self.total:
                self._finish()
        elif frame.command == "SUBSCRIBE":
            # No prefetch: the core's default, as a SUBSCRIBE without activemq.prefetchSize.
            conn.sub = self.core.subscribe(self.dest, conn, ack_mode=self.ack_mode)
            self.consumers.append(conn)
            if self.done.done():
                # Started after the others had taken every message (a loaded machine).
                conn.close_later()

    def count(self) -> None:
        self.delivered += 1
        if self.delivered >= self.total and not self.ack:
            self._finish()

    def _finish(self) -> None:
        if self.done.done():
            return
        for conn in self.consumers:
            conn.close_later()
        self.done.set_result(None)


class _InlineConn(asyncio.Protocol):
    """Today's shape: this connection reads, parses, calls the core and encodes."""

    def __init__(self, side: _CoreSide) -> None:
        self.side = side
        self.parser = FrameParser()
        self.parser.version = "1.2"
        self.out: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.sub: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        for frame in self.parser.feed(data):
            self.side.on_frame(self, frame)

    def close_later(self) -> None:
        # After this turn's flush (callbacks run in order), which close() then drains.
        assert self.transport is not None
        asyncio.get_running_loop().call_soon(self.transport.close)

    def eof_received(self) -> bool | None:
        return None  # close: the producer waits for it

    def deliver(self, sub: Any, msg: Any) -> None:
        head = encode_message_head(msg, CONN, "1.2")
        if not self.out:
            asyncio.get_running_loop().call_soon(self._flush)
        self.out += (b"MESSAGE\nsubscription:0\n", head, b"\n", msg.body, b"\x00")
        self.side.count()

    def _flush(self) -> None:
        assert self.transport is not None
        self.transport.writelines(self.out)
        self.out = []

    def slow(self, sub: Any) -> None:
        raise AssertionError("never slow")


def _blobs(buf: bytearray) -> list[bytes]:
    """Cut the complete length-prefixed blobs off the front of `buf`."""
    out = []
    pos = 0
    n = len(buf)
    while n - pos >= 4:
        size = int.from_bytes(buf[pos : pos + 4], "little")
        if n - pos - 4 < size:
            break
        out.append(bytes(buf[pos + 4 : pos + 4 + size]))
        pos += 4 + size
    del buf[:pos]
    return out


def _framed(obj: Any) -> bytes:
    blob = marshal.dumps(obj)
    return len(blob).to_bytes(4, "little") + blob


class _RemoteConsumer:
    """The core's stand-in for a connection the worker owns: deliveries become tuples
    batched per loop turn to the worker."""

    def __init__(self, link: _CoreLink, conn_no: int) -> None:
        self.link = link
        self.conn_no = conn_no
        self.sub: Any = None

    def close_later(self) -> None:
        # In order after this connection's deliveries: the worker closes it once written.
        self.link.send_out((self.conn_no, None))

    def deliver(self, sub: Any, msg: Any) -> None:
        d = msg.destination
        self.link.send_out(
            (
                self.conn_no,
                msg.id,
                d.kind,
                d.name,
                msg.timestamp,
                msg.expiration,
                msg.priority,
                msg.persistent,
                msg.redelivered,
                msg.text,
                msg.correlation_id,
                msg.content_type,
                msg.type,
                msg.properties,
                msg.body,
            )
        )
        self.link.side.count()

    def slow(self, sub: Any) -> None:
        raise AssertionError("never slow")


class _CoreLink(asyncio.Protocol):
    """The core's end of the worker's socketpair: batches of (conn, command, headers,
    body) in, batches of deliveries out."""

    def __init__(self, side: _CoreSide) -> None:
        self.side = side
        self.buf = bytearray()
        self.conns: dict[int, _RemoteConsumer] = {}
        self.out: list[tuple[Any, ...]] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        for blob in _blobs(self.buf):
            for conn_no, command, headers, body in marshal.loads(blob):
                conn = self.conns.get(conn_no)
                if conn is None:
                    conn = self.conns[conn_no] = _RemoteConsumer(self, conn_no)
                self.side.on_frame(conn, Frame(command, headers, body))

    def send_out(self, item: tuple[Any, ...]) -> None:
        if not self.out:
            asyncio.get_running_loop().call_soon(self._flush)
        self.out.append(item)

    def _flush(self) -> None:
        assert self.transport is not None
        self.transport.write(_framed(self.out))
        self.out = []


def _worker_main(link: socket.socket, other: socket.socket, report: Any, port_out: Any) -> None:
    """The worker process: owns the client sockets, parses, batches frames to the core
    per loop turn, encodes and writes the deliveries the core sends back."""
    other.close()
    from broker.core import Address, Message

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    conns: dict[int, _WorkerConn] = {}
    pending: list[tuple[Any, ...]] = []
    state: dict[str, Any] = {"cpu0": None}

    class _WorkerConn(asyncio.Protocol):
        def __init__(self) -> None:
            self.no = len(conns) + 1
            conns[self.no] = self
            self.parser = FrameParser()
            self.parser.version = "1.2"
            self.out: list[bytes] = []
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]
            if state["cpu0"] is None:
                state["cpu0"] = time.process_time_ns()

        def data_received(self, data: bytes) -> None:
            if not pending:
                loop.call_soon(flush_in)
            no = self.no
            pending.extend((no, f.command, f.headers, f.body) for f in self.parser.feed(data))

        def eof_received(self) -> bool | None:
            return None

        def write(self, parts: list[bytes]) -> None:
            if not self.out:
                loop.call_soon(self._flush)
            self.out += parts

        def _flush(self) -> None:
            assert self.transport is not None
            self.transport.writelines(self.out)
            self.out = []

    def flush_in() -> None:
        if pending:
            link_proto.transport.write(_framed(pending))
            pending.clear()

    class _WorkerLink(asyncio.Protocol):
        def __init__(self) -> None:
            self.buf = bytearray()
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            self.buf += data
            for blob in _blobs(self.buf):
                for item in marshal.loads(blob):
                    if item[1] is None:
                        # Close, after the writes already scheduled (callbacks in order).
                        transport = conns[item[0]].transport
                        assert transport is not None
                        loop.call_soon(transport.close)
                        continue
                    (no, mid, kind, name, ts, exp, prio, pers, redel, text) = item[:10]
                    msg = Message(
                        item[14],
                        destination=Address(kind, name),
                        properties=item[13],
                        persistent=pers,
                        priority=prio,
                        timestamp=ts,
                        expiration=exp,
                        text=text,
                        correlation_id=item[10],
                        content_type=item[11],
                        type=item[12],
                    )
                    msg.id = mid
                    msg.redelivered = redel
                    conn = conns[no]
                    head = encode_message_head(msg, CONN, "1.2")
                    conn.write([b"MESSAGE\nsubscription:0\n", head, b"\n", msg.body, b"\x00"])

        def connection_lost(self, exc: Exception | None) -> None:
            loop.stop()

    link_proto = _WorkerLink()

    async def start() -> None:
        server = await loop.create_server(_WorkerConn, "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        await loop.connect_accepted_socket(lambda: link_proto, sock=link)

    loop.run_until_complete(start())
    loop.run_forever()
    cpu0 = state["cpu0"] or time.process_time_ns()
    report.send((time.process_time_ns() - cpu0) / 1000)


def pipeline_run(
    mode: str, sends: list[bytes], producers: int, consumers: int = 1, ack: bool = False
) -> dict[str, float]:
    """One run of `mode`: `producers` processes send `sends` between them, `consumers`
    processes (auto ack, or with `ack` client-individual) take them all. "inline":
    everything in this process, as today; "worker": the worker process owns every
    client socket (parse in, encode out); "reader": the worker reads and parses the
    producers' sockets, the core encodes and writes to the consumers' itself (a real
    broker would share each socket: the worker reading it, the core writing it; so not
    with `ack`, whose ACKs the core would parse). CPU µs per message: the core's thread
    and the worker process."""
    total = len(sends) - len(sends) % producers
    share = total // producers
    ctx = multiprocessing.get_context("fork")
    loop = uvloop.new_event_loop()
    done: asyncio.Future[None] = loop.create_future()
    side = _CoreSide(total, done, ack)
    helpers = []
    worker = None
    report_r, report_w = ctx.Pipe(duplex=False)
    port_r, port_w = ctx.Pipe(duplex=False)
    a, b = socket.socketpair()
    port = 0
    try:
        if mode != "inline":
            worker = ctx.Process(target=_worker_main, args=(b, a, report_w, port_w), daemon=True)
            worker.start()
            b.close()
            port = port_r.recv()
        else:
            a.close()
            b.close()

        async def main() -> float:
            consumer_port = port
            link = _CoreLink(side)
            if mode != "inline":
                await loop.connect_accepted_socket(lambda: link, sock=a)
            if mode != "worker":
                server = await loop.create_server(lambda: _InlineConn(side), "127.0.0.1", 0)
                consumer_port = server.sockets[0].getsockname()[1]
            producer_port = port or consumer_port
            t0 = time.thread_time_ns()
            for _ in range(consumers):
                helpers.append(
                    ctx.Process(target=_consumer, args=(consumer_port, ack), daemon=True)
                )
            for i in range(producers):
                chunk = sends[i * share : (i + 1) * share]
                helpers.append(
                    ctx.Process(target=_producer, args=(producer_port, chunk), daemon=True)
                )
            gone = loop.create_future()

            def ended(h: Any) -> None:
                # A client process that failed fails the run at once; the consumers'
                # exits end it (they have read every delivery: the broker closes them
                # once everything is delivered, or acked).
                loop.remove_reader(h.sentinel)
                h.join()
                if h.exitcode != 0 and not done.done():
                    done.set_exception(RuntimeError(f"a client process ended with {h.exitcode}"))
                all_gone = all(c.exitcode is not None for c in helpers[:consumers])
                if all_gone and not gone.done():
                    gone.set_result(None)

            for h in helpers:
                h.start()
                loop.add_reader(h.sentinel, ended, h)
            await asyncio.wait_for(done, 300)
            await asyncio.wait_for(gone, 300)
            cpu = (time.thread_time_ns() - t0) / 1000 / total
            if link.transport is not None:
                # The worker stops (and reports its CPU) when its link closes.
                link.transport.close()
                await asyncio.sleep(0)
            return cpu

        core_cpu = loop.run_until_complete(main())
        if mode != "inline":
            worker_cpu = report_r.recv() / total if report_r.poll(30) else float("nan")
        else:
            worker_cpu = 0.0
        for h in helpers:
            h.join(30)
            if h.exitcode != 0:
                raise RuntimeError(f"a client process ended with {h.exitcode}")
    finally:
        loop.close()
        a.close()
        if worker is not None:
            worker.join(30)
    return {"core": core_cpu, "worker": worker_cpu, "total": core_cpu + worker_cpu}


def pipeline_costs(frames: int, runs: int) -> dict[str, float]:
    """Rounds of adjacent runs, 4→1 auto ack (inline, worker, reader) and 4→4
    client-individual (inline, worker): medians of CPU µs per message and of the ratios
    within each round (the last: msg/s one core process and one worker could reach on
    two idle cores against inline's on one, from CPU per message alone)."""
    sends, _ = client_frames(frames)
    cases = {
        "inline": ("inline", 1, False),
        "worker": ("worker", 1, False),
        "reader": ("reader", 1, False),
        "4→4 client-individual inline": ("inline", 4, True),
        "4→4 client-individual worker": ("worker", 4, True),
    }
    got: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, (mode, consumers, ack) in cases.items():
            got[name].append(pipeline_run(mode, sends, 4, consumers, ack))
    out: dict[str, float] = {}
    for name, rows in got.items():
        for key in ("core", "worker", "total"):
            if cases[name][0] == "inline" and key != "core":
                continue
            out[f"{name}: {key} cpu per message"] = statistics.median(r[key] for r in rows)
    for base_name, names in (
        ("inline", ("worker", "reader")),
        ("4→4 client-individual inline", ("4→4 client-individual worker",)),
    ):
        base = got[base_name]
        out[f"{base_name}: core cpu per message, spread (max / min)"] = max(
            r["core"] for r in base
        ) / min(r["core"] for r in base)
        for name in names:
            pairs = list(zip(got[name], base, strict=True))
            # Ratios within each round (its runs were next to each other), then the
            # median: the machine's load drifts between rounds more than within one.
            out[f"{name} / inline: core cpu"] = statistics.median(
                r["core"] / i["core"] for r, i in pairs
            )
            out[f"{name} / inline: total cpu"] = statistics.median(
                r["total"] / i["core"] for r, i in pairs
            )
            # What two idle cores could give at best: the busier process sets the pace.
            out[f"{name}: msg/s bound on 2 idle cores / inline's"] = statistics.median(
                i["core"] / max(r["core"], r["worker"]) for r, i in pairs
            )
    return out


# -- the command line --------------------------------------------------------------------


def run(frames: int, repeats: int, pipeline_frames: int, pipeline_runs: int) -> dict[str, Any]:
    """Every section's figures (µs per frame unless the name says otherwise)."""
    sends, acks = client_frames(frames)
    return {
        "pipeline_frames": pipeline_frames,
        "python": sys.version.split()[0],
        "loadavg": list(os.getloadavg()),
        "frames": frames,
        "repeats": repeats,
        "inline": inline_costs(sends, acks, repeats),
        "thread": thread_costs(sends, repeats),
        "process": process_costs(sends, acks, repeats),
        "forward": forward_costs(sends, repeats),
        "forwarded_fraction": {str(k): forwarded_fraction(k) for k in (2, 3, 4)},
        "pipeline": pipeline_costs(pipeline_frames, pipeline_runs),
    }


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.cores`: print the figures (a table, or one JSON object)."""
    ap = argparse.ArgumentParser(prog="python -m bench.cores", description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=4096, help="frames per case (default 4096)")
    ap.add_argument("--repeats", type=int, default=7, help="runs per case, min taken (7)")
    ap.add_argument(
        "--pipeline-frames", type=int, default=20000, help="messages per pipeline run (20000)"
    )
    ap.add_argument(
        "--pipeline-runs", type=int, default=3, help="inline/worker pipeline pairs, A B A B (3)"
    )
    ap.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    args = ap.parse_args(argv)
    if args.frames < 64 or args.repeats < 1:
        ap.error("--frames must be at least 64 and --repeats at least 1")
    if args.pipeline_frames < 4 or args.pipeline_runs < 1:
        ap.error("--pipeline-frames must be at least 4 and --pipeline-runs at least 1")
    res = run(args.frames, args.repeats, args.pipeline_frames, args.pipeline_runs)
    if args.json:
        print(json.dumps(res))
        return
    print(
        f"python {res['python']}, load average {res['loadavg'][0]:.2f}, "
        f"{res['frames']} frames, min of {res['repeats']}; µs per frame (thread CPU)"
    )
    for section in ("inline", "thread", "process", "forward", "pipeline"):
        print(f"\n{section}")
        for name, value in res[section].items():
            print(f"  {name:<66} {value:8.2f}")
    print("\nforwarded fraction (random landing):", res["forwarded_fraction"])


if __name__ == "__main__":
    main()
