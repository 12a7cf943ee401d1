"""Advisories through the real ActiveMQ 5.17 JMS client (tests/openwire/java/Advisories.java):
what each advisory carries as its data structure, the JMS client's own use of the
temporary-destination advisories (watchTopicAdvisories) and DestinationSource.

Compared with ActiveMQ 5.17.2's OpenWire connector (the shared instance,
tcp://127.0.0.1:61626): `EVENTS` below is what the same program printed there, line for
line, but for the differences `ZONEMQ_DIFFERS` lists; `temp` and `destinations` printed
the same lines there."""

from __future__ import annotations

import itertools
import json
import subprocess
from typing import Any

import stomp

from tests.conftest import BrokerThread, Client, Collector, subscribe
from tests.openwire.conftest import Jms, classpath, url

_ids = itertools.count(1)


def _run(jms: Jms, b: BrokerThread, scenario: str) -> tuple[str, list[tuple[str, str]]]:
    p = f"owadv{next(_ids)}"
    return p, jms.run(url(b), scenario, p, program="Advisories")


def _by_topic(lines: list[str]) -> dict[str, list[str]]:
    """Advisory lines per advisory topic, in arrival order (topics interleave freely)."""
    out: dict[str, list[str]] = {}
    for line in lines:
        out.setdefault(line.split("|", 1)[0], []).append(line)
    return out


# What ActiveMQ 5.17.2 printed for `events` (prefix P), in its order; every advisory line
# also ended with SUFFIX (JMSType Advisory, originBrokerName set).
SUFFIX = "|type:Advisory|origin:true"
EVENTS = [
    "expired-received=null",
    "poison-received=poison",
    "after-rollback=null",
    "adv=Connection|ConnectionInfo|client:adv-P|user:null|password:|same-id:true",
    "adv=Queue|DestinationInfo|add|queue://P.q",
    "adv=Producer.Queue|ProducerInfo|queue://P.q|same-id:true|producerCount:1",
    "adv=Consumer.Queue|ConsumerInfo|queue://P.q|prefetch:1000|selector:n > 0|same-id:true|consumerCount:1",  # noqa: E501
    "adv=Consumer.Queue|RemoveInfo|ConsumerId|same-id:true|consumerCount:0",
    "adv=Consumer.Queue|ConsumerInfo|queue://P.q|prefetch:1000|selector:null|same-id:false|consumerCount:1",
    "adv=MessageDLQd.Queue|ActiveMQTextMessage|queue://P.q|id:expired|text:null",
    "adv=Expired.Queue|ActiveMQTextMessage|queue://P.q|id:expired|text:null|orignalMessageId:expired",
    "adv=Consumer.Queue|RemoveInfo|ConsumerId|same-id:false|consumerCount:0",
    "adv=Producer.Queue|RemoveInfo|ProducerId|same-id:true|producerCount:0",
    "adv=TempQueue|DestinationInfo|add|temp-queue://<temp>",
    "adv=TempQueue|DestinationInfo|remove|temp-queue://<temp>",
    "adv=Topic|DestinationInfo|add|topic://P.t",
    "adv=Consumer.Topic|ConsumerInfo|topic://P.t|prefetch:32767|selector:null|same-id:false|consumerCount:1",
    "adv=Consumer.Topic|RemoveInfo|ConsumerId|same-id:false|consumerCount:0",
    "adv=TempTopic|DestinationInfo|add|temp-topic://<ttemp>",
    "adv=TempTopic|DestinationInfo|remove|temp-topic://<ttemp>",
    "adv=Connection|RemoveInfo|ConnectionId|same-id:true",
    "adv=Producer.Queue|ProducerInfo|queue://P.q|same-id:false|producerCount:1",
    "adv=Consumer.Queue|ConsumerInfo|queue://P.q|prefetch:1000|selector:null|same-id:false|consumerCount:1",
    "adv=MessageDLQd.Queue|ActiveMQTextMessage|queue://P.q|id:poison|text:null",
    "adv=Consumer.Queue|RemoveInfo|ConsumerId|same-id:false|consumerCount:0",
    "adv=Producer.Queue|RemoveInfo|ProducerId|same-id:false|producerCount:0",
]


def test_advisories_carry_the_structures_activemq_gives(jms: Jms, ow_broker: BrokerThread) -> None:
    p, out = _run(jms, ow_broker, "events")
    lines = [f"{k}={v.replace(p, 'P')}" for k, v in out]
    assert all(x.endswith(SUFFIX) for x in lines if x.startswith("adv="))
    lines = [x.removesuffix(SUFFIX) for x in lines]
    assert [x for x in lines if not x.startswith("adv=")] == [
        x for x in EVENTS if not x.startswith("adv=")
    ]
    # Each advisory topic in ActiveMQ's order; across topics the order is free.
    assert _by_topic([x for x in lines if x.startswith("adv=")]) == _by_topic(
        [x for x in EVENTS if x.startswith("adv=")]
    )


def test_a_temporary_queue_of_another_connection_and_its_deletion(
    jms: Jms, ow_broker: BrokerThread
) -> None:
    """The replier's client knows the requester's temporary queue from the
    TempQueue advisories (else it refuses the reply itself), and refuses a send to it
    once the advisory of its deletion has come, with ActiveMQ's exception."""
    _, out = _run(jms, ow_broker, "temp")
    assert out == [
        ("reply", "pong"),
        ("removed-seen", "true"),
        (
            "late-send",
            "InvalidDestinationException: Cannot publish to a deleted Destination: "
            "temp-queue://<tq>",
        ),
    ]


def test_destination_source_lists_queues_topics_and_temporary_queues(
    jms: Jms, ow_broker: BrokerThread
) -> None:
    p, out = _run(jms, ow_broker, "destinations")
    assert [(k, v.replace(p, "P")) for k, v in out] == [
        ("event", "add:queue://P.ds.b"),
        ("event", "add:temp-queue://<tq>"),
        ("queues", "[P.ds.a, P.ds.b]"),
        ("topics", "[P.ds.t]"),
        ("temp-queues", "true"),
    ]


def test_a_stomp_consumer_as_the_jms_client_sees_it(jms: Jms, ow_broker: BrokerThread) -> None:
    """ActiveMQ 5.17.2 printed these two lines for the same STOMP subscription (its STOMP
    transport marks a STOMP selector convert_string_expressions:, and so does ZoneMQ)."""
    p = f"owadv{next(_ids)}"
    java = subprocess.Popen(
        ["java", "-cp", classpath(jms.classes), "Advisories", url(ow_broker), "watch", p, "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert java.stdout is not None and java.stdout.readline().strip() == "ready=1"
        conn = stomp.Connection12([("127.0.0.1", ow_broker.stomp_port)])
        conn.connect(wait=True)
        headers = {"selector": "n > 1", "activemq.prefetchSize": "7"}
        conn.subscribe(f"/queue/{p}.s", id=1, ack="client", headers=headers)
        # The unsubscribe's receipt: the subscription was made before it went.
        conn.unsubscribe(1, headers={"receipt": "r1"})
        conn.disconnect()
        out, _ = java.communicate(timeout=60)
    finally:
        if java.poll() is None:
            java.kill()
            java.wait()
    assert java.returncode == 0
    lines = [x.replace(p, "P") for x in out.splitlines()]
    assert lines == [
        "adv=ConsumerInfo|queue://P.s|prefetch:7|selector:convert_string_expressions:n > 1"
        "|same-id:false|consumerCount:1" + SUFFIX,
        "adv=RemoveInfo|ConsumerId|same-id:false|consumerCount:0" + SUFFIX,
    ]


def _stomp(b: BrokerThread) -> Client:
    conn = stomp.Connection12([("127.0.0.1", b.stomp_port)])
    listener = Collector()
    conn.set_listener("collector", listener)
    conn.connect(wait=True)
    return Client(conn, listener, "1.2")


def _json(frame: stomp.utils.Frame) -> tuple[str, dict[str, Any]]:
    assert frame.headers["transformation"] == "jms-advisory-json"
    ((name, fields),) = json.loads(frame.body).items()
    return name, fields


def _id_text(ids: dict[str, Any]) -> str:
    return f"{ids['connectionId']}:{ids['sessionId']}:{ids['value']}"


def test_a_stomp_consumer_has_the_same_ids_over_openwire_and_in_the_json(
    jms: Jms, ow_broker: BrokerThread
) -> None:
    """The ConsumerId a JMS client reads from a STOMP consumer's advisories is the one
    the JSON body a STOMP watcher gets shows (session -1, as ActiveMQ's STOMP transport)."""
    p = f"owadv{next(_ids)}"
    watch = _stomp(ow_broker)
    java = subprocess.Popen(
        ["java", "-cp", classpath(jms.classes), "Advisories", url(ow_broker), "watch-ids", p, "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        subscribe(watch, f"/topic/ActiveMQ.Advisory.Consumer.Queue.{p}.s", "w")
        assert java.stdout is not None and java.stdout.readline().strip() == "ready=1"
        c = _stomp(ow_broker)
        subscribe(c, f"/queue/{p}.s", "1")
        c.unsubscribe("1", headers={"receipt": "r1"})
        assert c.listener.receipt() == "r1"
        c.disconnect()
        out, _ = java.communicate(timeout=60)
    finally:
        if java.poll() is None:
            java.kill()
            java.wait()
        watch.close()
    assert java.returncode == 0
    added, removed = watch.listener.take(2)
    name, consumer = _json(added)
    assert name == "ConsumerInfo"
    text = _id_text(consumer["consumerId"])
    assert consumer["consumerId"]["sessionId"] == -1
    name, gone = _json(removed)
    assert name == "RemoveInfo" and _id_text(gone["objectId"]) == text
    assert out.splitlines() == [f"added={text}", f"removed={text}"]


def test_a_jms_consumer_has_its_own_ids_in_the_json(jms: Jms, ow_broker: BrokerThread) -> None:
    """A STOMP watcher's JSON shows a JMS client's own ConnectionId and ConsumerId."""
    p = f"owadv{next(_ids)}"
    watch = _stomp(ow_broker)
    subscribe(watch, "/topic/ActiveMQ.Advisory.Connection", "c")
    subscribe(watch, f"/topic/ActiveMQ.Advisory.Consumer.Queue.{p}.o", "w")
    assert _json(watch.listener.next())[0] == "ConnectionInfo"  # the watcher's own: replayed
    java = subprocess.Popen(
        ["java", "-cp", classpath(jms.classes), "Advisories", url(ow_broker), "own", p],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert java.stdout is not None and java.stdin is not None
        connection = java.stdout.readline().strip().removeprefix("connection=")
        consumer = java.stdout.readline().strip().removeprefix("consumer=")
        frames = watch.listener.take(2)  # its connection and its consumer, in that order
        java.stdin.write("close\n")
        java.stdin.flush()
        out, _ = java.communicate(timeout=60)
        frames += watch.listener.take(2)  # its consumer and its connection gone
    finally:
        if java.poll() is None:
            java.kill()
            java.wait()
        watch.close()
    assert java.returncode == 0 and out.strip() == "closed=1"
    by_topic = {f.headers["destination"].rsplit("/", 1)[1]: [] for f in frames}
    for f in frames:
        by_topic[f.headers["destination"].rsplit("/", 1)[1]].append(_json(f))
    conn_events = by_topic["ActiveMQ.Advisory.Connection"]
    cons_events = by_topic[f"ActiveMQ.Advisory.Consumer.Queue.{p}.o"]
    assert [n for n, _ in conn_events] == ["ConnectionInfo", "RemoveInfo"]
    assert conn_events[0][1]["connectionId"] == {"value": connection}
    assert conn_events[1][1]["objectId"] == {"@class": "ConnectionId", "value": connection}
    assert [n for n, _ in cons_events] == ["ConsumerInfo", "RemoveInfo"]
    assert _id_text(cons_events[0][1]["consumerId"]) == consumer
    assert _id_text(cons_events[1][1]["objectId"]) == consumer
    assert consumer.startswith(connection + ":")
