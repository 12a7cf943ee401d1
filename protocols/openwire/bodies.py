"""JMS Map and Stream bodies between OpenWire's marshalling and the AMQP encoding the
core keeps them in, so that one MapMessage reaches an AMQP consumer as a map and an
AMQP map reaches a JMS consumer as a MapMessage (as ActiveMQ's AMQP transport maps them:
JMSMappingOutboundTransformer and JMSMappingInboundTransformer).

The core's form is the AMQP mapping's (protocols/amqp/mapping.py): the body is the AMQP
encoding of the value, property JMS_AMQP_ORIGINAL_ENCODING says which section it was
(7 a map amqp-value, 3 an amqp-sequence, 8 a list amqp-value). So:

  MapMessage (OpenWire)     → the map's AMQP encoding, encoding 7: AMQP consumers get an
                              amqp-value map (x-opt-jms-msg-type 2)
  StreamMessage (OpenWire)  → the list's AMQP encoding, encoding 3: an amqp-sequence
                              (x-opt-jms-msg-type 4)
  encoding 7                → MapMessage for an OpenWire consumer
  encoding 3 or 8           → StreamMessage
  (the property is not shown to the OpenWire consumer of a converted body)

Values keep their Java type both ways (the core's typed values, broker.core.values):
int ↔ int32, short ↔ short, byte ↔ byte, float ↔ float32, char ↔ char, long ↔ long,
double ↔ double, boolean, String ↔ string, byte[] ↔ binary, null; a nested map or list
(ActiveMQ's MapMessage allows them) as an AMQP map or list. From AMQP, the types Java
lacks as ActiveMQ's transformer stores them (unsigned ones in the wider signed type, a
symbol as its text, a uuid as its text); a map key that is not a string as its text.
ActiveMQ's STOMP transport sends a Map or Stream message without a body (compared live,
see tests/openwire/test_jms_bodies.py); ZoneMQ's STOMP consumers get the AMQP encoding
and the JMS_AMQP_ORIGINAL_ENCODING header saying what it is, as for an AMQP map.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from proton import (
    Data,
    byte,
    char,
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

from protocols.openwire.codec import primitives
from protocols.openwire.codec.reader import CodecError, Reader

ENCODING = "JMS_AMQP_ORIGINAL_ENCODING"
ENC_SEQUENCE, ENC_MAP, ENC_LIST = 3, 7, 8

_TO_PROTON = {"int": int32, "short": short, "byte": byte, "float": float32, "char": char}
_FROM_PROTON: dict[type, str] = {
    int32: "int",
    short: "short",
    byte: "byte",
    float32: "float",
    char: "char",
    ubyte: "ubyte",
    ushort: "ushort",
    uint: "uint",
    ulong: "ulong",
    timestamp: "timestamp",
}


def _proton(value: Any) -> Any:
    t = type(value)
    if t is tuple:
        conv = _TO_PROTON.get(value[0])
        if conv is None:
            raise CodecError(f"not a JMS body value: {value!r}")
        return conv(value[1])
    if t is dict:
        return {k: _proton(v) for k, v in value.items()}
    if t is list:
        return [_proton(v) for v in value]
    return value


def _typed(value: Any, depth: int = 0) -> Any:
    t = type(value)
    if value is None or t in (str, bool, int, float, bytes):
        return value
    name = _FROM_PROTON.get(t)
    if name is not None:
        if name == "char":
            return (name, str(value))
        return (name, float(value) if name == "float" else int(value))
    if t is memoryview or t is bytearray:
        return bytes(value)
    if t is symbol:
        return str(value)
    if isinstance(value, UUID):
        return str(value)
    if depth >= primitives.MAX_DEPTH:
        raise CodecError(f"a body nested deeper than {primitives.MAX_DEPTH}")
    if isinstance(value, dict):
        return {str(k): _typed(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_typed(v, depth + 1) for v in value]
    return str(value)


def _encode(value: Any) -> bytes:
    data = Data()
    data.put_object(value)
    return bytes(data.encode())


def map_to_amqp(content: bytes | None) -> bytes:
    """A MapMessage's marshalled content as the AMQP encoding of its map."""
    values = primitives.decode_map(content) if content else {}
    return _encode(_proton(values or {}))


def stream_to_amqp(content: bytes | None) -> bytes:
    """A StreamMessage's content (typed values one after another) as an AMQP list."""
    items: list[Any] = []
    if content:
        r = Reader(content)
        while r.pos < r.end:
            items.append(primitives.read_value(r, 1))
    return _encode(_proton(items))


def _decode(body: bytes) -> Any:
    """The typed value of an AMQP encoding (converted while the decoder lives: proton
    gives binary as a memoryview of its own buffer)."""
    data = Data()
    try:
        data.decode(body)
        return _typed(data.get_object())
    except CodecError:
        raise
    except Exception as exc:  # proton raises its own DataException and others
        raise CodecError(f"an AMQP body that does not decode: {exc}") from None


def amqp_to_map(body: bytes) -> bytes:
    """An AMQP map as a MapMessage's marshalled content."""
    value = _decode(body)
    if not isinstance(value, dict):
        raise CodecError("an AMQP map body that is not a map")
    return primitives.encode_map(value)


def amqp_to_stream(body: bytes) -> bytes:
    """An AMQP list as a StreamMessage's content."""
    value = _decode(body)
    if not isinstance(value, list):
        value = [value]
    out = bytearray()
    for item in value:
        primitives.write_value(out, item)
    return bytes(out)
