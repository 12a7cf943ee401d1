"""STOMP 1.0, 1.1 and 1.2 onto the core, as ActiveMQ 5.17 speaks it.

A SEND becomes a core Message sent to the destination it names; a SUBSCRIBE a core
Subscription whose deliveries are MESSAGE frames; ACK and NACK settle them; BEGIN,
COMMIT and ABORT drive a core Transaction. The header and destination mapping is written
out in `mapping.py`; `codec.py` is the sans-IO frame codec, `connection.py` the
semantics on broker.push.PushConnection.
"""
