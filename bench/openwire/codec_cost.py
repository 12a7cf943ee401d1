"""Per-message codec cost of OpenWire's hot commands, in process:
`PYTHONPATH=CHECKOUT python bench/openwire/codec_cost.py [ROUNDS]`.

Times (best of ROUNDS, thread CPU ns per call) decoding what a JMS client sends per
message — a 256-byte BytesMessage as ActiveMQ 5.17's producer fills it, and the
consumer's standard MessageAck — and encoding the MessageDispatch that carries it back,
with the codec of whichever checkout PYTHONPATH names, so two checkouts compare
alternately on a busy machine (run it for each, twice). Frames use the same ids each
time, as one connection's traffic does.
"""

from __future__ import annotations

import sys
import time

from protocols.openwire.codec import commands as c
from protocols.openwire.codec import fast

CONN = "ID:bench-host-40923-1764870000000-1:1"


def sample_frames() -> dict[str, c.Structure]:
    pid = c.ProducerId(connection_id=CONN, value=1, session_id=1)
    cid = c.ConsumerId(connection_id=CONN, session_id=1, value=1)
    queue = c.Queue(physical_name="owbench.queue")

    def mid(seq: int, broker_seq: int = 0) -> c.MessageId:
        return c.MessageId(
            producer_id=c.ProducerId(connection_id=CONN, value=1, session_id=1),
            producer_sequence_id=seq,
            broker_sequence_id=broker_seq,
        )

    msg = c.BytesMessage(
        command_id=17,
        producer_id=pid,
        destination=queue,
        message_id=mid(9),
        persistent=False,
        priority=4,
        timestamp=1764870000123,
        content=b"\x00" * 256,
    )
    ack = c.MessageAck(
        command_id=18,
        destination=c.Queue(physical_name="owbench.queue"),
        consumer_id=c.ConsumerId(connection_id=CONN, session_id=1, value=1),
        ack_type=c.ACK_STANDARD,
        first_message_id=mid(9, 5),
        last_message_id=mid(9, 5),
        message_count=1,
    )
    dispatch = c.MessageDispatch(consumer_id=cid, destination=queue, message=msg)
    return {"message": msg, "ack": ack, "dispatch": dispatch}


def best_ns(fn: object, arg: object, rounds: int, n: int = 2000) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.thread_time_ns()
        for _ in range(n):
            fn(arg)  # type: ignore[operator]
        best = min(best, (time.thread_time_ns() - t0) / n)
    return best


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    frames = sample_frames()
    for name in ("message", "ack"):
        body = fast.encode(frames[name])[4:]
        print(f"decode {name:8} {len(body):4d} B {best_ns(fast.decode, body, rounds):8.0f} ns")
    dispatch = frames["dispatch"]
    print(f"encode dispatch        {best_ns(fast.encode, dispatch, rounds):8.0f} ns")


if __name__ == "__main__":
    main()
