"""The hand-written outbound AMQP encoding (mapping.encode_header + encode_sections) must
produce what proton's Message path (mapping.encode_message) produces, byte for byte, for
every message shape it takes on; anything else must be left to proton (None)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from proton import Message as AmqpMessage
from proton import (
    byte,
    char,
    decimal32,
    float32,
    int32,
    short,
    symbol,
    timestamp,
    ubyte,
    uint,
    ulong,
    ushort,
)

from broker.core import QUEUE, TEMP_QUEUE, TEMP_TOPIC, TOPIC, Address, Message
from protocols.amqp.mapping import (
    ENC_BINARY,
    ENC_LIST,
    ENC_NULL,
    P_ANNOTATION,
    P_CONTENT_ENCODING,
    P_ENCODING,
    P_GROUP_SEQ,
    P_MESSAGE_ID,
    P_USER_ID,
    MappingError,
    decode_message,
    destination_of,
    encode_header,
    encode_message,
    encode_sections,
    message_from_amqp,
)

NOW = 1_764_000_000_000
# Drawn apart (with values of their own types) below.
RESERVED = {P_MESSAGE_ID, P_GROUP_SEQ, P_USER_ID, P_CONTENT_ENCODING, P_ENCODING}

# Lone surrogates cannot be UTF-8 on either path.
chars = st.characters(blacklist_categories=("Cs",))
texts = st.text(chars, max_size=300)
# proton's setters for to, subject, reply-to, content-type, content-encoding and group-id
# take C strings and cut them at a NUL (the hand encoding keeps it), so no NUL there.
c_texts = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=300
)
ascii_texts = st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=300)
addresses = st.builds(
    Address,
    st.sampled_from([QUEUE, TOPIC, TEMP_QUEUE, TEMP_TOPIC]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1),
)
values = st.one_of(
    texts,
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-300, 300),
    st.booleans(),
    st.floats(allow_nan=False),
    st.binary(max_size=300),
)
# The core's typed values (broker.core.values), in and at the edges of their ranges.
typed_values = st.one_of(
    st.tuples(st.just("byte"), st.integers(-128, 127)),
    st.tuples(st.just("short"), st.integers(-(2**15), 2**15 - 1)),
    st.tuples(st.just("int"), st.integers(-(2**31), 2**31 - 1) | st.integers(-130, 130)),
    st.tuples(st.just("ubyte"), st.integers(0, 255)),
    st.tuples(st.just("ushort"), st.integers(0, 2**16 - 1)),
    st.tuples(st.just("uint"), st.integers(0, 2**32 - 1) | st.integers(0, 300)),
    st.tuples(st.just("ulong"), st.integers(0, 2**64 - 1) | st.integers(0, 300)),
    st.tuples(st.just("float"), st.floats(allow_nan=False, width=32)),
    st.tuples(st.just("char"), st.characters(blacklist_categories=("Cs",))),
    st.tuples(st.just("timestamp"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("uuid"), st.binary(min_size=16, max_size=16)),
    st.tuples(st.just("symbol"), ascii_texts),
    st.none(),
)
reserved = st.fixed_dictionaries(
    {},
    optional={
        P_MESSAGE_ID: texts,
        P_GROUP_SEQ: st.integers(0, 2**31 - 1),
        P_USER_ID: texts,
        P_CONTENT_ENCODING: ascii_texts,
        P_ENCODING: st.sampled_from([ENC_NULL, ENC_BINARY]),
        "JMS_AMQP_MA_x-opt-custom": values | typed_values.filter(lambda v: v is not None),
    },
)


@st.composite
def messages(draw: Any) -> Message:
    keys = st.text(chars, max_size=40).filter(
        lambda k: k not in RESERVED and not (k.startswith(P_ANNOTATION) and not k.isascii())
    )
    props = dict(draw(st.dictionaries(keys, values | typed_values, max_size=6)))
    props.update(draw(reserved))
    text = draw(st.booleans())
    body = draw(
        st.one_of(st.binary(max_size=600), texts.map(str.encode))
        if text
        else st.binary(max_size=600)
    )
    msg = Message(
        body,
        destination=draw(st.none() | addresses),
        properties=props,
        persistent=draw(st.booleans()),
        priority=draw(st.integers(0, 9)),
        timestamp=draw(st.sampled_from([0, NOW - 5]) | st.integers(0, 2**45)),
        expiration=draw(st.sampled_from([0, NOW - 10, NOW + 1001]) | st.integers(1, 2**45)),
        text=text,
        correlation_id=draw(st.none() | texts),
        reply_to=draw(st.none() | addresses),
        content_type=draw(st.none() | ascii_texts),
        group_id=draw(st.none() | c_texts),
        type=draw(st.none() | c_texts),
    )
    msg.id = draw(st.text(chars, min_size=1, max_size=80))
    msg.delivery_count = draw(st.sampled_from([0, 1, 300]) | st.integers(0, 2**32 - 1))
    msg.redelivered = draw(st.booleans())
    return msg


def fast(msg: Message) -> bytes | None:
    header, sections = encode_header(msg, NOW), encode_sections(msg)
    return None if header is None or sections is None else header + sections


@settings(max_examples=400, deadline=None)
@given(messages())
def test_hand_encoding_is_protons(msg: Message) -> None:
    expected = encode_message(AmqpMessage(), msg, NOW)
    data = fast(msg)
    assert data is not None  # every drawn shape is one the fast path takes
    assert data == expected
    decoded = AmqpMessage()
    decoded.decode(data)  # and proton reads it back
    assert decoded.id == msg.properties.get(P_MESSAGE_ID, msg.id)


def test_sections_are_cached_across_deliveries() -> None:
    msg = Message(b"hi", destination=Address(QUEUE, "q"), text=True)
    msg.id = "ID:1"
    first = encode_sections(msg)
    msg.delivery_count, msg.redelivered = 2, True
    assert encode_sections(msg) == first  # only the header changes on redelivery
    assert fast(msg) == encode_message(AmqpMessage(), msg, NOW)


def test_exact_milliseconds() -> None:
    """Times go out to the millisecond (proton's float setters lost one on some values)."""
    msg = Message(b"", destination=Address(QUEUE, "q"), timestamp=1001, expiration=NOW + 1001)
    msg.id = "ID:1"
    decoded = AmqpMessage()
    decoded.decode(encode_message(AmqpMessage(), msg, NOW))
    assert (decoded.creation_time, decoded.ttl) == (1.001, 1.001)


def test_unusual_shapes_go_to_proton() -> None:
    q = Address(QUEUE, "q")
    cases = [
        Message(b"\x45", destination=q, properties={P_ENCODING: ENC_LIST}),
        Message(b"x", destination=q, properties={P_MESSAGE_ID: 7}),
        Message(b"x", destination=q, content_type="tëxt/plain"),
    ]
    for msg in cases:
        msg.id = "ID:1"
        assert encode_sections(msg) is None
        encode_message(AmqpMessage(), msg, NOW)  # which still encodes it


# -- inbound: mapping.decode_message against proton's decoding + message_from_amqp --------

amqp_values = st.one_of(
    texts,
    ascii_texts.map(symbol),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 255).map(ubyte),
    st.integers(-128, 127).map(byte),
    st.integers(0, 2**32 - 1).map(uint),
    st.integers(0, 2**64 - 1).map(ulong),
    st.integers(-(2**31), 2**31 - 1).map(int32),
    st.integers(0, 2**45).map(timestamp),
    st.booleans(),
    st.floats(allow_nan=False),
    st.floats(allow_nan=False, width=32).map(float32),
    st.binary(max_size=300),
    st.none(),
    st.integers(0, 2**16 - 1).map(ushort),
    st.integers(-(2**15), 2**15 - 1).map(short),
    st.characters(blacklist_categories=("Cs",)).map(char),
    st.uuids(),
    st.integers(0, 2**32 - 1).map(decimal32),
    st.lists(st.integers(-5, 5), max_size=3),
)
annotation_keys = st.sampled_from(
    ["x-opt-jms-dest", "x-opt-jms-reply-to", "x-opt-jms-msg-type", "x-opt-custom"]
) | st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
address_texts = st.sampled_from(["queue://a", "topic://b", "temp-queue://c", "d", "queue://"])


@st.composite
def amqp_messages(draw: Any) -> AmqpMessage:
    pm = AmqpMessage()
    pm.durable = draw(st.booleans())
    pm.priority = draw(st.integers(0, 255))
    if draw(st.booleans()):
        pm.ttl = draw(st.integers(1, 2**32 - 1)) / 1000
    pm.first_acquirer = draw(st.booleans())
    pm.delivery_count = draw(st.integers(0, 5))
    pm.id = draw(st.none() | texts | st.integers(0, 2**64 - 1).map(ulong) | st.binary(max_size=9))
    pm.user_id = draw(st.binary(max_size=20))
    pm.address = draw(st.none() | address_texts)
    pm.subject = draw(st.none() | c_texts)
    pm.reply_to = draw(st.none() | address_texts)
    pm.correlation_id = draw(st.none() | texts | st.binary(max_size=9))
    pm.content_type = draw(st.none() | ascii_texts.map(symbol))
    pm.content_encoding = draw(st.none() | ascii_texts.map(symbol))
    if draw(st.booleans()):
        pm.expiry_time = draw(st.integers(1, 2**45)) / 1000
    if draw(st.booleans()):
        pm.creation_time = draw(st.integers(1, 2**45)) / 1000
    pm.group_id = draw(st.none() | c_texts)
    pm.group_sequence = draw(st.integers(0, 2**31 - 1))
    annotations = draw(st.dictionaries(annotation_keys, amqp_values, max_size=4))
    if annotations:
        pm.annotations = {symbol(k): v for k, v in annotations.items()}
    app = draw(st.dictionaries(st.text(chars, max_size=20), amqp_values, max_size=5))
    pm.properties = app or None
    kind = draw(st.sampled_from(["text", "data", "binary", "none", "map", "list"]))
    if kind == "text":
        pm.body = draw(texts)
    elif kind == "data":
        pm.body, pm.inferred = draw(st.binary(max_size=600)), True
    elif kind == "binary":
        pm.body, pm.inferred = draw(st.binary(max_size=600)), False
    elif kind == "map":
        pm.body = {"k": 1}
    elif kind == "list":
        pm.body, pm.inferred = [1, "x"], draw(st.booleans())
    return pm


def core_fields(msg: Message) -> dict[str, Any]:
    return {name: getattr(msg, name) for name in Message.__slots__ if name != "origin"}


def via_proton(data: bytes, destination: Address | None) -> Any:
    pm = AmqpMessage()
    try:
        pm.decode(data)
        address = destination if destination is not None else destination_of(pm)
        return core_fields(message_from_amqp(pm, address, now_ms=NOW, origin=None))
    except MappingError as exc:
        return exc.condition


@settings(max_examples=400, deadline=None)
@given(amqp_messages(), st.sampled_from([Address(QUEUE, "fixed"), None]))
def test_hand_decoding_is_protons(pm: AmqpMessage, destination: Address | None) -> None:
    data = bytes(pm.encode())
    expected = via_proton(data, destination)
    try:
        msg = decode_message(data, destination, now_ms=NOW, origin=None)
    except MappingError as exc:
        assert exc.condition == expected
        return
    if msg is not None:  # None: left to proton's path, which is the reference
        assert core_fields(msg) == expected


def test_usual_shapes_take_the_fast_path() -> None:
    """What Qpid JMS and proton's examples send is decoded by hand."""
    pm = AmqpMessage(body="hello", durable=True, id="ID:1:1:1", address="queue://q")
    pm.annotations = {symbol("x-opt-jms-dest"): byte(0), symbol("x-opt-jms-msg-type"): byte(5)}
    pm.properties = {"n": 1, "s": "x"}
    for body, inferred in (("hello", False), (b"bytes", True), (b"bytes", False)):
        pm.body, pm.inferred = body, inferred
        data = bytes(pm.encode())
        msg = decode_message(data, None, now_ms=NOW, origin=None)
        assert msg is not None
        assert core_fields(msg) == via_proton(data, None)


def test_absent_content_type_and_encoding_stay_absent() -> None:
    """proton's getters turn an absent content-type/content-encoding into symbol("None");
    neither path may pass that on as a content type or a JMS_AMQP_ContentEncoding."""
    data = bytes(AmqpMessage(body=[1, 2]).encode())  # a list body: proton's path
    for msg in (
        decode_message(
            bytes(AmqpMessage(body="x").encode()), Address(QUEUE, "q"), now_ms=NOW, origin=None
        ),
        message_from_amqp(_decoded(data), Address(QUEUE, "q"), now_ms=NOW, origin=None),
    ):
        assert msg is not None
        assert msg.content_type is None
        assert P_CONTENT_ENCODING not in msg.properties


def _decoded(data: bytes) -> AmqpMessage:
    pm = AmqpMessage()
    pm.decode(data)
    return pm
