"""The replication codec (broker/cluster/wire.py), sans-IO: every frame fed whole, one
byte at a time and followed by trailing data; damaged and oversized frames refused."""

from __future__ import annotations

import zlib

import pytest

from broker.cluster.wire import (
    ACK,
    ERROR,
    FORGET,
    HELLO,
    RECORDS,
    WELCOME,
    Ack,
    Decoder,
    Epoch,
    Error,
    Forget,
    Hello,
    Position,
    ProtocolError,
    Records,
    Welcome,
    encode_ack,
    encode_error,
    encode_forget,
    encode_hello,
    encode_records,
    encode_welcome,
)
from broker.store.format import RECORD_HEADER, TYPE_CRC

ALL = frozenset({HELLO, RECORDS, ACK, ERROR, WELCOME, FORGET})


def frame(rtype: int, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, TYPE_CRC[rtype])
    return RECORD_HEADER.pack(len(payload), rtype, crc) + payload


RECS = frame(1, b"first") + frame(2, b"") + frame(6, b"x" * 300)
RECS_END = Position(4, 20 + len(RECS))
WIRE = [
    (
        encode_hello(7, 6, Position(3, 20), "node-b", "az-b"),
        Hello(7, 6, Position(3, 20), "node-b", "az-b"),
    ),
    (
        encode_welcome(
            9, Position(3, 20), 2, [Epoch(6, Position(1, 20)), Epoch(9, Position(3, 9))]
        ),
        Welcome(9, Position(3, 20), 2, [Epoch(6, Position(1, 20)), Epoch(9, Position(3, 9))]),
    ),
    (
        b"".join(encode_records(9, Position(4, 20), RECS)),
        Records(9, Position(4, 20), Position(4, 20 + len(RECS)), RECS, 3),
    ),
    (encode_forget(3), Forget(3)),
    (encode_ack(9, Position(4, 99)), Ack(9, Position(4, 99))),
    (encode_error("no, thanks"), Error("no, thanks")),
]


def drain(dec: Decoder) -> list[object]:
    out = []
    while (ev := dec.next_event()) is not None:
        out.append(ev)
    return out


def test_whole_and_byte_by_byte_and_trailing() -> None:
    data = b"".join(w for w, _ in WIRE)
    expected = [e for _, e in WIRE]
    whole = Decoder(ALL)
    whole.receive_data(data)
    assert drain(whole) == expected
    split = Decoder(ALL)
    got: list[object] = []
    for i in range(len(data)):
        split.receive_data(data[i : i + 1])
        got += drain(split)
    assert got == expected
    trailing = Decoder(ALL)
    trailing.receive_data(WIRE[0][0] + WIRE[2][0][:5])
    assert drain(trailing) == [WIRE[0][1]]
    assert trailing.buffered == 5


def test_damaged_record_is_refused_with_where() -> None:
    wire = bytearray(b"".join(encode_records(1, Position(1, 20), RECS)))
    wire[-1] ^= 0xFF  # last payload byte of the third record
    dec = Decoder(ALL)
    dec.receive_data(bytes(wire))
    with pytest.raises(ProtocolError, match="damaged journal record at byte"):
        dec.next_event()
    with pytest.raises(ProtocolError):
        dec.receive_data(b"more")  # nothing is accepted after a protocol error


def test_oversized_frame_refused_at_its_header() -> None:
    dec = Decoder(ALL, max_frame=1000)
    wire = b"".join(encode_records(1, Position(1, 20), frame(1, b"y" * 2000)))
    dec.receive_data(wire[:5])  # the header alone
    with pytest.raises(ProtocolError, match="above 1000"):
        dec.next_event()


def test_unexpected_kind_and_bad_hello() -> None:
    standby_side = Decoder(frozenset({RECORDS, ERROR}))
    standby_side.receive_data(encode_ack(1, Position(1, 20)))
    with pytest.raises(ProtocolError, match="unexpected frame ACK"):
        standby_side.next_event()
    active_side = Decoder(frozenset({HELLO, ACK, ERROR}))
    bad = bytearray(encode_hello(1, 0, Position(0, 0)))
    bad[5:9] = b"HTTP"
    active_side.receive_data(bytes(bad))
    with pytest.raises(ProtocolError, match="not ZoneMQ replication"):
        active_side.next_event()
    empty = Decoder(ALL)
    empty.receive_data(b"".join(encode_records(1, Position(1, 20), b"")))
    with pytest.raises(ProtocolError, match="no record"):
        empty.next_event()


def test_truncated_strings_and_lineage_are_refused() -> None:
    hello = bytearray(encode_hello(1, 0, Position(1, 20), "abc", "az"))
    hello[5 + 38] = 200  # the node id's length now runs past the frame
    dec = Decoder(ALL)
    dec.receive_data(bytes(hello))
    with pytest.raises(ProtocolError, match="past the end"):
        dec.next_event()
    welcome = bytearray(encode_welcome(1, Position(1, 20), 1, [Epoch(1, Position(1, 20))]))
    welcome[5 + 32] = 2  # claims two lineage entries, holds one
    dec = Decoder(ALL)
    dec.receive_data(bytes(welcome))
    with pytest.raises(ProtocolError, match="does not hold 2 epochs"):
        dec.next_event()
