"""The fast MESSAGE header encoder says exactly what the general mapping says."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.core import QUEUE, TEMP_QUEUE, TOPIC, Address, Message
from protocols.stomp.mapping import encode_headers, encode_message_head, message_headers

text = st.text(max_size=12)
names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    kind = draw(st.sampled_from([QUEUE, TOPIC, TEMP_QUEUE]))
    name = draw(names)
    if kind == TEMP_QUEUE:
        name = draw(st.sampled_from(["ID:me:", "ID:other:"])) + name
    msg = Message(
        draw(st.binary(max_size=20)),
        destination=Address(kind, name),
        properties=draw(st.dictionaries(names, st.one_of(text, st.integers(), st.booleans()))),
        persistent=draw(st.booleans()),
        priority=draw(st.integers(0, 9)),
        timestamp=draw(st.integers(0, 2**45)),
        expiration=draw(st.integers(0, 2**45)),
        text=draw(st.booleans()),
        correlation_id=draw(st.none() | text),
        reply_to=draw(st.none() | st.builds(Address, st.just(QUEUE), names)),
        content_type=draw(st.none() | text),
        group_id=draw(st.none() | text),
        type=draw(st.none() | text),
    )
    msg.id = "ID:" + draw(names)
    msg.redelivered = draw(st.booleans())
    return msg


# Generation cost varies with machine load (it failed too_slow at load average 15).
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(messages(), st.sampled_from(["1.0", "1.1", "1.2"]))
def test_fast_encoder_matches_general_mapping(msg: Message, version: str) -> None:
    expected = encode_headers(message_headers(msg, "ID:me"), version)
    assert encode_message_head(msg, "ID:me", version) == expected
