"""The ActiveMQ 5.17 JMS client against ZoneMQ's OpenWire listener: messaging, acks,
transactions, selectors, durable subscribers, temporary queues, prefetch 0, browsing."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import BrokerThread
from tests.openwire.conftest import Jms, url


def values(lines: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in lines if k == key]


def one(lines: list[tuple[str, str]], key: str) -> str:
    (v,) = values(lines, key)
    return v


def test_text_and_bytes_keep_body_properties_and_headers(jms: Jms, ow_broker: BrokerThread) -> None:
    out = jms.run(url(ow_broker), "roundtrip", "ow.rt")
    assert one(out, "class") == "ActiveMQTextMessage"
    # Modified UTF-8 both ways: an accent, a NUL and a character outside the BMP.
    assert one(out, "text") == "h\u00e9llo \u0000 \U0001f600"
    # The producer's JMSMessageID is what the consumer sees.
    assert one(out, "id") == one(out, "sent-id")
    assert one(out, "i") == "Integer:5"
    assert one(out, "l") == "Long:1099511627776"
    assert one(out, "h") == "Short"
    assert (one(out, "s"), one(out, "b"), one(out, "d")) == ("v", "true", "1.5")
    assert (one(out, "correlation"), one(out, "type"), one(out, "priority")) == (
        "corr-1",
        "kind",
        "7",
    )
    assert (one(out, "persistent"), one(out, "redelivered")) == ("true", "false")
    assert one(out, "class2") == "ActiveMQBytesMessage"
    assert one(out, "body2") == "bytes:[1, 2, 3]"


def test_client_ack_gives_unacknowledged_back_redelivered(
    jms: Jms, ow_broker: BrokerThread
) -> None:
    jms.run(url(ow_broker), "send", "ow.ca", "3")
    out = jms.run(url(ow_broker), "client-ack", "ow.ca")
    assert values(out, "got") == ["m0", "m1", "m2"]
    assert values(out, "again") == ["m0:true", "m1:true", "m2:true"]
    # acknowledge() of the last one acknowledged all three.
    assert values(out, "left") == ["null"]


def test_individual_ack_acknowledges_one(jms: Jms, ow_broker: BrokerThread) -> None:
    jms.run(url(ow_broker), "send", "ow.ia", "3")
    out = jms.run(url(ow_broker), "individual-ack", "ow.ia")
    assert values(out, "acked") == ["m1"]
    assert values(out, "left") == ["m0", "m2", "null"]


def test_transacted_session_sends_and_acks_at_commit(jms: Jms, ow_broker: BrokerThread) -> None:
    out = jms.run(url(ow_broker), "transactions", "ow.tx")
    assert one(out, "first") == "committed"
    assert one(out, "after-rollback") == "committed:true"
    assert one(out, "after-commit") == "null"


def test_selector_takes_only_matching_and_starves_nobody(jms: Jms, ow_broker: BrokerThread) -> None:
    out = jms.run(url(ow_broker), "selector", "ow.sel")
    assert values(out, "red") == ["m2", "m4", "null"]
    assert values(out, "rest") == ["m0", "m1", "m3", "m5"]


def test_bad_selector_is_invalid_selector_exception(jms: Jms, ow_broker: BrokerThread) -> None:
    out = jms.run(url(ow_broker), "bad-selector", "ow.bs")
    assert one(out, "error") == "InvalidSelectorException"
    assert one(out, "after") == "still-here"


def test_durable_subscriber_gets_what_was_sent_while_away(
    jms: Jms, ow_broker: BrokerThread
) -> None:
    out = jms.run(url(ow_broker), "durable", "ow.durable")
    assert one(out, "got") == "while-away"
    assert one(out, "unsubscribed") == "true"
    assert ow_broker.call(lambda: len(ow_broker.broker.core.durables.subs)) == 0


def test_request_reply_over_a_temporary_queue(jms: Jms, ow_broker: BrokerThread) -> None:
    out = jms.run(url(ow_broker), "request-reply", "ow.rr")
    assert one(out, "reply") == "re:ping"
    assert one(out, "correlated") == "true"


def test_prefetch_zero_pulls_one_message_at_a_time(jms: Jms, ow_broker: BrokerThread) -> None:
    out = jms.run(url(ow_broker, "?jms.prefetchPolicy.all=0"), "prefetch0", "ow.p0")
    assert one(out, "nowait-empty") == "null"
    assert (one(out, "timeout-empty"), one(out, "waited")) == ("null", "true")
    assert one(out, "pulled") == "one"
    assert one(out, "other") == "two"


def test_client_id_already_connected_is_refused(jms: Jms, ow_broker: BrokerThread) -> None:
    out = jms.run(url(ow_broker), "client-id-twice")
    assert one(out, "second") == "InvalidClientIDException"
    assert one(out, "first") == "first-ok"


def test_queue_browser_sees_without_consuming(jms: Jms, ow_broker: BrokerThread) -> None:
    out = jms.run(url(ow_broker), "browse", "ow.br")
    assert values(out, "browsed") == ["b0", "b1", "b2"]
    assert values(out, "consumed") == ["b0", "b1", "b2"]


def test_topic_fans_out(jms: Jms, ow_broker: BrokerThread) -> None:
    out = jms.run(url(ow_broker), "topic", "ow.top")
    assert (one(out, "one"), one(out, "two")) == ("fan", "fan")


def test_map_stream_object_and_plain_messages_keep_their_kind(
    jms: Jms, ow_broker: BrokerThread
) -> None:
    out = jms.run(url(ow_broker), "map", "ow.map")
    assert one(out, "map") == "1,two,3"
    assert one(out, "stream") == "x,7"
    assert one(out, "object") == "y-z"
    assert one(out, "plain") == "ActiveMQMessage"


def test_scheduled_delivery_with_jms_properties(
    jms: Jms, broker_factory: Callable[..., BrokerThread]
) -> None:
    b = broker_factory(**{"listeners.openwire.enabled": True, "broker.scheduler_support": True})
    out = jms.run(url(b), "scheduled", "ow.sched")
    assert one(out, "early") == "null"
    assert (one(out, "first"), one(out, "second"), one(out, "delayed")) == (
        "later",
        "later",
        "true",
    )
    assert one(out, "third") == "null"


def test_exclusive_consumer_takes_every_message(jms: Jms, ow_broker: BrokerThread) -> None:
    out = jms.run(url(ow_broker), "exclusive", "ow.excl")
    assert values(out, "exclusive") == ["x0", "x1", "x2", "x3"]
    assert one(out, "plain") == "null"


def test_failover_url_and_compressed_bodies(jms: Jms, ow_broker: BrokerThread) -> None:
    port = ow_broker.broker.port("openwire")
    out = jms.run(
        f"failover:(tcp://127.0.0.1:{port})?maxReconnectAttempts=0", "transactions", "ow.fo"
    )
    assert one(out, "after-rollback") == "committed:true"
    # jms.useCompression: the client deflates bodies; the broker inflates them.
    out = jms.run(url(ow_broker, "?jms.useCompression=true"), "roundtrip", "ow.zip")
    assert one(out, "text") == "h\u00e9llo \u0000 \U0001f600"
    assert one(out, "body2") == "bytes:[1, 2, 3]"


def test_message_groups_stick_to_one_consumer(jms: Jms, ow_broker: BrokerThread) -> None:
    out = jms.run(url(ow_broker), "groups", "ow.groups")
    # Each consumer holds whole groups in their order (which consumer gets which group
    # is the core's choice): no group is split between them.
    got = {one(out, "a"), one(out, "b")} - {""}
    assert got in ({"A0 A2 A4", "B1 B3 B5"}, {"A0 B1 A2 B3 A4 B5"}), got
