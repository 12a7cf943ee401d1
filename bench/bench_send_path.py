"""The STOMP send path in process: a SEND frame through StompConnection, the core and a
queue to an auto-ack subscriber's MESSAGE bytes, with no socket and no event loop.

    python -m bench.bench_send_path [--rounds 400] [--number 500]

Prints the best time per SEND over `--rounds` windows of `--number` SENDs (short
windows: on a loaded machine the best one is the one nobody preempted) and the Python
bytecodes executed per SEND, counted with `sys.settrace` opcode events: exact and
repeatable, so two checkouts can be compared on a machine too busy for timings to
agree (run it with PYTHONPATH set to each checkout).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import timeit
from types import FrameType, SimpleNamespace
from typing import Any

from broker.config import StompSettings
from broker.core import Core
from protocols.stomp.codec import FrameParser
from protocols.stomp.connection import StompConnection

SUBSCRIBE = b"SUBSCRIBE\ndestination:/queue/bench\nid:1\nack:auto\n\n\x00"
SEND = b"SEND\ndestination:/queue/bench\ncontent-type:text/plain\n\n" + b"x" * 256 + b"\x00"


def setup() -> tuple[Any, asyncio.AbstractEventLoop]:
    """A connected 1.2 connection subscribed to the queue, and one SEND to replay."""
    loop = asyncio.new_event_loop()
    listener = SimpleNamespace(
        core=Core(),
        settings=StompSettings(),
        loop=loop,
        broker_name="bench",
        started_ms=1,
        auth=SimpleNamespace(authorizing=False),
        connections=[],
    )
    conn = StompConnection(listener)  # type: ignore[arg-type]
    conn.version = "1.2"
    conn.connected = True
    conn._flush_scheduled = True  # nothing goes to a transport: the output is dropped
    parser = FrameParser(max_frame_size=1 << 20, max_headers=1000, max_header_length=1 << 16)
    parser.version = "1.2"
    conn._handle(parser.feed(SUBSCRIBE))
    for ssub in conn.subs.values():
        assert ssub.core_sub is not None
        ssub.core_sub.resume()
    frames = parser.feed(SEND)
    out = conn._out

    def one() -> None:
        conn._handle(frames)
        out.clear()
        conn._out_bytes = 0

    one()
    assert listener.core.queues[next(iter(listener.core.queues))].dispatched == 1
    return one, loop


def bytecodes(fn: Any, n: int = 100) -> float:
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        frame.f_trace_opcodes = True
        if event == "opcode":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        for _ in range(n):
            fn()
    finally:
        sys.settrace(None)
    return count / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=400)
    p.add_argument("--number", type=int, default=500)
    args = p.parse_args()
    one, loop = setup()
    for _ in range(1000):
        one()
    best = min(timeit.repeat(one, number=args.number, repeat=args.rounds)) / args.number
    print(f"best {best * 1e9:.0f} ns per SEND, {bytecodes(one):.0f} bytecodes per SEND")
    loop.close()


if __name__ == "__main__":
    main()
