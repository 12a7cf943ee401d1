"""The hand-written AMQP 1.0 message section codec: sans-IO (no asyncio, no broker).

Bytes of a transfer's payload to and from plain values, for the message shapes AMQP
clients usually send; anything else is left to proton's Message (protocols.amqp.mapping,
which also turns the values into the core's Message). Neither direction imports the core:
the encoder reads a message through the attributes `encode.OutMessage` names, the decoder
returns a `decode.Decoded` tuple.

- `names`: the conventions (reserved property names, JMS type and encoding codes);
- `encode`: `encode_header` (per delivery) and `encode_sections` (once per message);
- `decode`: `decode_sections`.
"""

from protocols.amqp.codec.decode import Decoded, decode_sections
from protocols.amqp.codec.encode import OutMessage, encode_header, encode_sections

__all__ = ["Decoded", "OutMessage", "decode_sections", "encode_header", "encode_sections"]
