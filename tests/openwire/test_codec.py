"""The sans-IO OpenWire codec against ActiveMQ 5.17's own marshalling: frames the real
OpenWireFormat writes decode, and re-encode to the same bytes."""

from __future__ import annotations

import itertools
import math
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.openwire.codec import commands as c
from protocols.openwire.codec import fast, loose, primitives, utf
from protocols.openwire.codec.cache import Cache
from protocols.openwire.codec.reader import CodecError
from protocols.openwire.mapping import text_of
from tests.openwire.conftest import Jms, classpath


def test_frames_marshalled_by_activemq_decode_and_reencode_identically(jms: Jms) -> None:
    out = subprocess.run(
        ["java", "-cp", classpath(jms.classes), "Marshal"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split("\n")
    frames = dict(line.split(" ", 1) for line in out if line)
    assert len(frames) == 9
    decoded = {}
    for name, hexed in frames.items():
        data = bytes.fromhex(hexed)
        value = loose.decode(data[4:])
        decoded[name] = value
        assert loose.encode(value) == data, name
    text = decoded["ActiveMQTextMessage"]
    assert isinstance(text, c.TextMessage)
    assert text_of(text.content, text.compressed, 1 << 20) == "h\u00e9llo \u0000 \U0001f600"
    assert primitives.decode_map(text.properties) == {
        "b": True,
        "s": "x",
        "d": 1.5,
        "f": ("float", 2.5),
        "h": ("short", 3),
        "y": ("byte", -2),
        "l": 1 << 40,
        "n": ("int", 5),
    }
    assert text.message_id is not None and text.message_id.text() == "ID:host-1-2:1:1:3:7"
    consumer = decoded["ConsumerInfo"]
    assert isinstance(consumer, c.ConsumerInfo)
    assert (consumer.selector, consumer.prefetch_size, consumer.response_required) == (
        "x > 1",
        1000,
        True,
    )
    assert consumer.destination == c.Topic("a.>")
    error = decoded["ExceptionResponse"]
    assert isinstance(error, c.ExceptionResponse)
    assert error.exception == ("javax.jms.InvalidSelectorException", "bad")


@pytest.mark.parametrize(
    "text",
    ["plain", "", "\u0000", "h\u00e9", "\u20ac", "\U0001f600", "\ud800 lone", "a\u0000b\U00010348"],
)
def test_modified_utf8_round_trips(text: str) -> None:
    data = utf.encode(text)
    assert b"\x00" not in data
    assert utf.decode(data) == text


def test_bad_modified_utf8_is_a_codec_error() -> None:
    with pytest.raises(CodecError):
        utf.decode(b"\xff\xfe")


def test_modified_utf8_matches_java_for_nul_and_astral() -> None:
    assert utf.encode("\u0000") == b"\xc0\x80"
    assert utf.encode("\U0001f600") == b"\xed\xa0\xbd\xed\xb8\x80"


def test_typed_values_round_trip() -> None:
    values = {
        "s": "x" * 10,
        "big": "y" * 20000,
        "n": None,
        "t": True,
        "l": -(1 << 63),
        "d": math.pi,
        "i": ("int", -5),
        "h": ("short", 7),
        "b": ("byte", -128),
        "f": ("float", 0.5),
        "c": ("char", "\u00e9"),
        "y": b"\x00\x01",
        "m": {"inner": [1, "two", None]},
    }
    assert primitives.decode_map(primitives.encode_map(values)) == values


@pytest.mark.parametrize(
    "body",
    [
        b"\x01",  # type byte only: a WireFormatInfo without its magic
        b"\x03\x00\x00\x00\x01\x00\x01\x01\x00\xff",  # a string longer than the frame
        b"\x63",  # an unknown type
        b"\x0a\x00\x00\x00\x01\x00\x00",  # KeepAliveInfo with a byte too many
    ],
)
def test_bad_frames_are_codec_errors(body: bytes) -> None:
    with pytest.raises(CodecError):
        loose.decode(body)


def test_frame_reader_refuses_oversized_prefix_before_buffering() -> None:
    reader = loose.FrameReader(100)
    assert reader.feed(loose.encode(c.KeepAliveInfo())[:3]) == []
    with pytest.raises(CodecError):
        loose.FrameReader(100).feed(b"\x00\x00\x10\x00")


def test_primitive_map_count_cannot_exceed_the_frame() -> None:
    with pytest.raises(CodecError):
        primitives.decode_map(b"\x7f\xff\xff\xff")


# -- the generated codec (fast.py) is the reference interpreter's (loose.py) twin ----------

_text = st.one_of(st.none(), st.text(max_size=20))
_long = st.integers(-(1 << 63), (1 << 63) - 1)
_int = st.integers(-(1 << 31), (1 << 31) - 1)
_producer = st.builds(c.ProducerId, _text, _long, _long)
_message_id = st.one_of(
    st.none(), st.builds(c.MessageId, _text, st.none() | _producer, _long, _long)
)
_dest = st.one_of(
    st.none(),
    st.builds(c.Queue, _text),
    st.builds(c.Topic, _text),
    st.builds(c.TempQueue, _text),
)
_messages = st.builds(
    c.TextMessage,
    command_id=_int,
    response_required=st.booleans(),
    producer_id=st.none() | _producer,
    destination=_dest,
    message_id=_message_id,
    group_id=_text,
    group_sequence=_int,
    correlation_id=_text,
    persistent=st.booleans(),
    expiration=_long,
    priority=st.integers(-128, 127),
    reply_to=_dest,
    timestamp=_long,
    type=_text,
    content=st.none() | st.binary(max_size=40),
    properties=st.none() | st.binary(max_size=10),
    broker_path=st.none() | st.lists(st.builds(c.BrokerId, _text), max_size=2),
)
_acks = st.builds(
    c.MessageAck,
    command_id=_int,
    destination=_dest,
    consumer_id=st.none() | st.builds(c.ConsumerId, _text, _long, _long),
    ack_type=st.integers(0, 6),
    first_message_id=_message_id,
    last_message_id=_message_id,
    message_count=_int,
    poison_cause=st.none() | st.tuples(st.text(max_size=10), _text),
)


@settings(deadline=None)  # equivalence, not speed: a loaded machine is slow
@given(st.one_of(_messages, _acks, st.builds(c.MessageDispatch, message=_messages)))
def test_generated_codec_is_the_interpreters_twin(value: c.Structure) -> None:
    data = fast.encode(value)
    assert data == loose.encode(value)
    assert fast.decode(data[4:]) == loose.decode(data[4:]) == value


@settings(deadline=None)  # equivalence, not speed: a loaded machine is slow
@given(
    st.lists(st.binary(min_size=1, max_size=30), min_size=1, max_size=5),
    st.lists(st.integers(0, 200), max_size=6),
)
def test_frame_reader_cuts_the_same_frames_however_the_bytes_arrive(
    bodies: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(len(b).to_bytes(4, "big") + b for b in bodies)
    points = sorted({min(p, len(stream)) for p in cuts} | {0, len(stream)})
    reader = loose.FrameReader(100)
    got: list[bytes] = []
    for start, end in itertools.pairwise(points):
        chunk = stream[start:end]
        # Bytes as the event loop hands them, and a bytearray (the buffered path).
        got += reader.feed(chunk if start % 2 else bytearray(chunk))
    assert got == bodies
    assert all(type(b) is bytes for b in got)
    assert reader.buffered == 0


@settings(deadline=None)  # equivalence, not speed: a loaded machine is slow
@given(st.one_of(_messages, _acks, st.builds(c.MessageDispatch, message=_messages)))
def test_with_the_marshalling_cache_too(value: c.Structure) -> None:
    data = fast.encode(value, cached=True)
    assert data == loose.encode(value, cached=True)
    body = data[4:]
    assert fast.decode(body, Cache(16, 1 << 16)) == loose.decode(body, Cache(16, 1 << 16)) == value


def test_frames_activemq_marshals_with_its_cache_decode_as_without_it(jms: Jms) -> None:
    """One connection's frames, its later ones naming ids the earlier ones cached."""
    out = subprocess.run(
        ["java", "-cp", classpath(jms.classes), "MarshalCached"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    plain = [bytes.fromhex(h)[4:] for k, h in zip(out[::2], out[1::2], strict=True) if k == "plain"]
    cached = [
        bytes.fromhex(h)[4:] for k, h in zip(out[::2], out[1::2], strict=True) if k == "cached"
    ]
    assert len(plain) == len(cached) == 11
    assert sum(map(len, cached)) < sum(map(len, plain))
    fast_cache, loose_cache = Cache(1024, 1 << 16), Cache(1024, 1 << 16)
    for p, k in zip(plain, cached, strict=True):
        expected = fast.decode(p)
        assert fast.decode(k, fast_cache) == loose.decode(k, loose_cache) == expected


def test_the_connection_writes_every_frame_in_the_negotiated_format() -> None:
    """With the cache on, a cached field changes shape: a frame written with plain
    fast.encode after WireFormatInfo would be misread by the client."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "protocols" / "openwire"
    for path in root.glob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if ("fast.encode(" in line or "loose.encode(" in line) and "self._cached" not in line:
                assert "before any cache is negotiated" in line, f"{path.name}:{n}: {line}"


def test_the_id_memos_keep_only_small_structures() -> None:
    """Memory stays bounded whatever ids clients send: a 10 kB id decodes and encodes
    right, twice, and is kept in no memo."""
    big = c.ProducerId(connection_id="ID:" + "x" * 10000, value=1, session_id=2)
    msg = c.BytesMessage(producer_id=big, destination=c.Queue("q" * 5000), content=b"x")
    for _ in range(2):
        data = fast.encode(msg)
        assert data == loose.encode(msg) and fast.decode(data[4:]) == msg
    assert all(len(key) <= fast.MEMO_BYTES for key in fast._MEMO)
    assert all(len(raw) <= fast.MEMO_BYTES for _obj, raw in fast._ENCODED.values())


def _cached_session_info(index: int, new: bool, name: str = "ID:c") -> bytes:
    """A SessionInfo whose session id goes through the cache at `index`."""
    out = bytearray(b"\x04\x00\x00\x00\x01\x00")
    out += bytes([1 if new else 0]) + index.to_bytes(2, "big", signed=True)
    if new:
        raw = name.encode()
        out += b"\x01\x79\x01" + len(raw).to_bytes(2, "big") + raw + (1).to_bytes(8, "big")
    return bytes(out)


@pytest.mark.parametrize("codec", [fast, loose])
def test_marshalling_cache_is_bounded(codec: object) -> None:
    decode = codec.decode  # type: ignore[attr-defined]
    cache = Cache(4, 64)
    first = decode(_cached_session_info(3, True), cache)
    assert decode(_cached_session_info(3, False), cache) == first
    assert decode(_cached_session_info(-1, True, "ID:d"), cache).session_id.connection_id == "ID:d"
    assert cache.entries[3] == first.session_id and cache.bytes < 64
    with pytest.raises(CodecError, match="index"):
        decode(_cached_session_info(4, False), cache)
    with pytest.raises(CodecError, match="index"):
        decode(_cached_session_info(7, True), cache)
    with pytest.raises(CodecError, match="over 64 bytes"):
        decode(_cached_session_info(0, True, "x" * 80), cache)
    # Replacing an entry gives its bytes back.
    for _ in range(10):
        decode(_cached_session_info(2, True, "y" * 20), cache)
    assert cache.bytes < 64


@given(st.binary(max_size=60))
def test_generated_decoder_fails_where_the_interpreter_does(body: bytes) -> None:
    try:
        expected = loose.decode(body)
    except CodecError:
        with pytest.raises(CodecError):
            fast.decode(body)
        return
    assert fast.decode(body) == expected


@given(st.binary(max_size=80))
def test_with_the_cache_too_the_decoders_fail_alike(body: bytes) -> None:
    try:
        expected = loose.decode(body, Cache(8, 1 << 10))
    except CodecError:
        with pytest.raises(CodecError):
            fast.decode(body, Cache(8, 1 << 10))
        return
    assert fast.decode(body, Cache(8, 1 << 10)) == expected


def test_bad_compressed_bodies_are_codec_errors() -> None:
    import zlib

    from protocols.openwire.mapping import bytes_of

    good = zlib.compress(b"abc" + b"\x00" * 100)
    assert bytes_of(b"\x00\x00\x00\x03" + good, True, 100) == b"abc"
    for bad in (
        b"\x00\x00\x00\x05garbage",
        b"\x7f\xff\xff\xff" + good,
        b"\x00\x00\x00\x50" + good[:5],
    ):
        with pytest.raises(CodecError):
            bytes_of(bad, True, 100)
