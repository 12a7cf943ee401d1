"""The sans-IO OpenWire codec against ActiveMQ 5.17's own marshalling: frames the real
OpenWireFormat writes decode, and re-encode to the same bytes."""

from __future__ import annotations

import math
import subprocess

import pytest

from protocols.openwire.codec import commands as c
from protocols.openwire.codec import loose, primitives, utf
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
