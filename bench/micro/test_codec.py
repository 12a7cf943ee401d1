"""STOMP codec and MESSAGE encoding: parse a 64 KiB chunk of SEND frames, encode frames.

python -m pytest bench/micro --benchmark-only
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from broker.config import StompSettings
from broker.core import QUEUE, Address, Core, Message
from protocols.stomp.codec import FrameParser, encode_frame
from protocols.stomp.connection import StompConnection, StompSub
from protocols.stomp.mapping import encode_message_head, message_from_send

BODY = b"x" * 256


def send_chunk(size: int = 64 * 1024, *, content_length: bool = True) -> tuple[bytes, int]:
    """Whole SEND frames of 256 B bodies filling `size` bytes; returns (chunk, frames)."""
    head = b"SEND\ndestination:/queue/bench\npersistent:true\n"
    if content_length:
        head += b"content-length:256\n"
    one = head + b"\n" + BODY + b"\x00"
    n = size // len(one)
    return one * n, n


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "nul-scan"])
def test_parse_64k_chunk(benchmark, content_length: bool) -> None:
    chunk, n = send_chunk(content_length=content_length)
    parser = FrameParser()
    parser.version = "1.2"
    frames = benchmark(parser.feed, chunk)
    assert len(frames) == n and parser.buffered() == 0
    benchmark.extra_info["frames_per_call"] = n


# What a stomp.py producer and consumer send: one frame per write (bench/stompshape.py).
CLIENT_SEND = (
    b"SEND\ndestination:/queue/bench\ncorrelation-id:c-1795792962279-17\n"
    b"content-type:text/plain\norder-kind:retail\nregion:eu-west\nreceipt:17\n"
    b"content-length:256\n\n" + BODY + b"\x00"
)
CLIENT_ACK = b"ACK\nid:1-ID\\czonemq-1795792962279-123456\n\n\x00"


@pytest.mark.parametrize("frame", [CLIENT_SEND, CLIENT_ACK], ids=["send", "ack"])
def test_parse_one_frame_per_feed(benchmark, frame: bytes) -> None:
    """The client shape: each feed holds one whole frame."""
    parser = FrameParser()
    parser.version = "1.2"
    (got,) = benchmark(parser.feed, frame)
    assert parser.buffered() == 0 and got.command in ("SEND", "ACK")


def test_message_from_send(benchmark) -> None:
    """SEND headers onto a core Message (with properties, as the client shape has)."""
    (frame,) = FrameParser().feed(CLIENT_SEND)
    dest = Address(QUEUE, "bench")
    msg = benchmark(message_from_send, frame.headers, frame.body, dest, "ID:conn-1", None)
    assert msg.properties == {"order-kind": "retail", "region": "eu-west"}


def test_message_from_send_frame_headers_only(benchmark) -> None:
    """The batched shape's SEND: frame-level headers only, no properties."""
    headers = {"destination": "/queue/bench", "persistent": "true", "content-length": "256"}
    msg = benchmark(message_from_send, headers, BODY, Address(QUEUE, "b"), "ID:conn-1", None)
    assert msg.properties == {}


def test_encode_frame_message(benchmark) -> None:
    headers = [
        ("subscription", "1"),
        ("message-id", "ID:zonemq-1795792962279-123456"),
        ("destination", "/queue/bench"),
        ("timestamp", "1795792962279"),
        ("expires", "0"),
        ("priority", "4"),
        ("content-length", "256"),
    ]
    out = benchmark(encode_frame, "MESSAGE", headers, BODY, "1.2")
    assert out.endswith(b"\x00")


def _message() -> Message:
    msg = Message(BODY, destination=Address(QUEUE, "bench"), persistent=True)
    msg.id = "ID:zonemq-1795792962279-123456"
    msg.timestamp = 1795792962279
    return msg


def test_message_head_encode_with_properties(benchmark) -> None:
    """encode_message_head of the client shape's message (properties, correlation-id,
    content-type): the general path, no cached template."""
    (frame,) = FrameParser().feed(CLIENT_SEND)
    msg = message_from_send(frame.headers, frame.body, Address(QUEUE, "bench"), "ID:c", None)
    msg.id = "ID:zonemq-1795792962279-123456"
    msg.timestamp = 1795792962279
    assert b"region:eu-west" in benchmark(encode_message_head, msg, "ID:conn-1", "1.2")


def test_message_headers_encode(benchmark) -> None:
    """The per-message part of StompConnection.deliver when `msg.wire` is not cached."""
    msg = _message()

    def encode() -> bytes:
        return encode_message_head(msg, "ID:conn-1", "1.2")

    assert b"message-id:" in benchmark(encode)


@pytest.fixture
def connection() -> Iterator[StompConnection]:
    loop = asyncio.new_event_loop()
    listener = SimpleNamespace(
        core=Core(),
        settings=StompSettings(),
        loop=loop,
        broker_name="bench",
        started_ms=1,
        # Without users nothing is authorized (what StompConnection reads of the auth).
        auth=SimpleNamespace(authorizing=False),
    )
    conn = StompConnection(listener)  # type: ignore[arg-type]
    conn.version = "1.2"
    yield conn
    loop.close()


@pytest.mark.parametrize("cached", [False, True], ids=["first-subscriber", "wire-cached"])
def test_deliver_message(benchmark, connection: StompConnection, cached: bool) -> None:
    """StompConnection.deliver: MESSAGE bytes queued for one subscriber (client-individual,
    so the 1.2 `ack` header is written too). `wire-cached` is every further subscriber of
    a topic message, `first-subscriber` every queue message."""
    ssub = StompSub("1", "1.2")
    ssub.ack_prefix = b"ack:1-"
    # client-individual (not auto) on a queue that is not durable: no delivery record.
    sub = SimpleNamespace(tag=ssub, auto=False, source=SimpleNamespace(durable=False))
    msg = _message()
    out = connection._out

    def deliver() -> None:
        if not cached:
            msg.wire = None
        connection.deliver(sub, msg)  # type: ignore[arg-type]
        out.clear()
        connection._out_bytes = 0

    benchmark(deliver)
