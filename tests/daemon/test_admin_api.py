"""The admin REST API (issue 14) against a real broker: urllib for HTTP, stomp.py and
proton for the clients whose effects it shows or changes.

Compared with ActiveMQ 5.17.2 (an embedded broker of the installed jars, its
QueueViewMBean operations called in-process, both brokers observed over STOMP with
stomp.py; the script is not a test):

What ActiveMQ shows (moveMatchingMessagesTo, moveMessageTo, copyMatchingMessagesTo,
retryMessages, pause/resume, removeMessage, purge) and what this API does alike:
- a moved message (by selector or id) keeps its message-id, original-destination names
  the queue it left, expires 0, and the source counts it dequeued;
- a copy keeps the message-id in ActiveMQ; here it gets a new one (README, Differences);
- a retried message comes back with original-destination /queue/ActiveMQ.DLQ and no
  originalExpiration (the DLQ copy of a NACKed one has both), the DLQ counts it dequeued;
- a paused queue keeps its consumer attached and counted, dispatches nothing, and the
  held message goes out on resume;
- removeMessage counts one dequeue, purge n.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import stomp
from proton import Message as AmqpMessage
from proton.utils import BlockingConnection

from broker.core import QUEUE, Address
from broker.server import Broker
from tests.conftest import WAIT, BrokerThread, ChildBroker, Client, quiet, subscribe, wait_until

Api = Callable[..., tuple[int, Any]]


def api_for(port: int, auth: tuple[str, str] | None = None) -> Api:
    """`api(method, path, body=None)` -> (status, decoded JSON)."""

    def call(method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": "application/json"}
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            text = exc.read()
            try:
                return exc.code, json.loads(text)
            except json.JSONDecodeError:
                return exc.code, text.decode()

    return call


@pytest.fixture
def api(broker: BrokerThread) -> Api:
    return api_for(broker.console_port)


def q(name: str) -> str:
    """A queue's path segment: every name URL-encoded, slashes included."""
    return urllib.parse.quote(name, safe="")


def send(c: Client, dest: str, body: str, **headers: str) -> None:
    c.send(dest, body, headers={"persistent": "true", **headers}, receipt="s")
    assert c.listener.receipt() == "s"


# -- the document ------------------------------------------------------------------------


def test_openapi_document_lists_exactly_the_routes_the_app_has(
    broker: BrokerThread, api: Api
) -> None:
    status, doc = api("GET", "/api/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    app = broker.broker.listeners["console"].runner.app  # type: ignore[attr-defined]
    served = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path.startswith("/api/") and route.method != "HEAD":
            served.add((route.method, path))
    assert served == documented
    for ops in doc["paths"].values():
        for op in ops.values():
            assert op["responses"] and op["summary"] and op["operationId"]


def test_openapi_document_is_valid_openapi_3_1(api: Api) -> None:
    # openapi-spec-validator is not a test dependency of ZoneMQ (moto brings it).
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(api("GET", "/api/openapi.json")[1])


# -- destinations ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ActiveMQ.DLQ", "a/b", "orders.fifo", "admin sp%ce"])
def test_every_name_shape_lists_browses_and_purges(connect, api: Api, name: str) -> None:
    c = connect()
    for i in range(3):
        send(c, f"/queue/{name}", f"m{i}")
    status, listed = api("GET", "/api/destinations?kind=queue")
    assert status == 200
    mine = [d for d in listed["destinations"] if d["name"] == name]
    assert len(mine) == 1 and mine[0]["depth"] == 3 and mine[0]["paused"] is False
    status, one = api("GET", f"/api/queues/{q(name)}")
    assert status == 200
    assert (one["name"], one["depth"], one["enqueued"], one["consumers"]) == (name, 3, 3, 0)
    assert one["memory_bytes"] > 0 and one["oldest_message_age_ms"] is not None
    status, page = api("GET", f"/api/queues/{q(name)}/messages")
    assert [m["body"] for m in page["messages"]] == ["m0", "m1", "m2"]
    assert api("DELETE", f"/api/queues/{q(name)}/messages") == (200, {"name": name, "purged": 3})
    after = api("GET", f"/api/queues/{q(name)}")[1]
    assert (after["depth"], after["dequeued"]) == (0, 3)


def test_counters_follow_a_stomp_consumer(connect, broker: BrokerThread, api: Api) -> None:
    c = connect()
    for i in range(4):
        send(c, "/queue/admin.counters", f"m{i}")
    subscribe(
        c, "/queue/admin.counters", "1", ack="client-individual", **{"activemq.prefetchSize": "2"}
    )
    frames = c.listener.take(2)
    c.ack_frame(frames[0])
    c.sync()
    one = api("GET", "/api/queues/admin.counters")[1]
    assert (one["consumers"], one["dispatched"], one["dequeued"], one["inflight"]) == (1, 3, 1, 2)
    assert (one["depth"], one["pending"]) == (3, 1)


def test_unknown_destination_is_404_json(api: Api) -> None:
    for method, path in [
        ("GET", "/api/queues/admin.none"),
        ("GET", "/api/queues/admin.none/messages"),
        ("DELETE", "/api/queues/admin.none/messages"),
        ("POST", "/api/queues/admin.none/pause"),
        ("POST", "/api/queues/admin.none/retry"),
        ("DELETE", "/api/queues/admin.none"),
        ("GET", "/api/topics/admin.none"),
    ]:
        status, body = api(method, path)
        assert status == 404, (method, path)
        assert body["error"] == "not-found" and "admin.none" in body["message"]


def test_unknown_route_and_method_are_json(api: Api) -> None:
    assert api("GET", "/api/nothing")[0] == 404
    assert api("GET", "/api/nothing")[1]["error"] == "not-found"
    status, body = api("PUT", "/api/queues/x")
    assert status == 405 and body["error"] == "method-not-allowed"


def test_delete_queue_and_topic(connect, api: Api) -> None:
    c = connect()
    send(c, "/queue/admin.gone", "x")
    subscribe(c, "/topic/admin.gone.t", "t")
    assert api("DELETE", "/api/queues/admin.gone")[0] == 200
    assert api("GET", "/api/queues/admin.gone")[0] == 404
    assert api("DELETE", "/api/topics/admin.gone.t") == (
        200,
        {"deleted": "admin.gone.t", "kind": "topic"},
    )
    assert api("GET", "/api/topics/admin.gone.t")[0] == 404


class HealthBroker(BrokerThread):
    """A broker given a cluster status callable, as broker.cluster.node gives its own."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.broker = Broker(self.settings, health=lambda: dict(STATUS))


# The shape broker.cluster.status.status gives an active node's /healthz?cluster.
STATUS = {
    "node": "n1",
    "az": "a",
    "role": "active",
    "epoch": 42,
    "active": "n1",
    "min_insync_azs": 1,
    "insync_zones": ["b"],
    "standbys": [{"node": "n2", "az": "b", "in_sync": True, "lag_bytes": 0, "lag_records": 0}],
}


def test_cluster_status_comes_from_the_node(tmp_path: Path) -> None:
    b = HealthBroker(tmp_path / "data").start()
    try:
        api = api_for(b.console_port)
        assert api("GET", "/api/cluster") == (200, STATUS)
        assert api("GET", "/api/broker")[1]["clustered"] is True
    finally:
        b.stop()


def test_cluster_status_is_404_on_a_single_node(api: Api) -> None:
    status, body = api("GET", "/api/cluster")
    assert status == 404 and body["error"] == "not-clustered"
    status, body = api("GET", "/api/broker")
    assert status == 200 and body["clustered"] is False and body["version"]


# -- messages ----------------------------------------------------------------------------


def test_browse_pages_with_offset_and_limit(connect, api: Api) -> None:
    c = connect()
    for i in range(5):
        send(c, "/queue/admin.page", f"m{i}", n=str(i))
    status, page = api("GET", "/api/queues/admin.page/messages?offset=1&limit=2")
    assert status == 200 and page["total"] == 5 and page["offset"] == 1
    assert [m["body"] for m in page["messages"]] == ["m1", "m2"]
    first = page["messages"][0]
    assert first["properties"]["n"] == "1" and first["persistent"] is True
    assert first["size"] == 2 and first["body_encoding"] == "text"
    # Browsing takes nothing: a consumer still gets all five.
    subscribe(c, "/queue/admin.page", "1")
    assert [f.body for f in c.listener.take(5)] == [f"m{i}" for i in range(5)]


@pytest.mark.parametrize("query", ["offset=-1", "limit=0", "limit=1001", "offset=x", "limit=1.5"])
def test_bad_paging_is_400(connect, api: Api, query: str) -> None:
    send(connect(), "/queue/admin.badpage", "x")
    status, body = api("GET", f"/api/queues/admin.badpage/messages?{query}")
    assert status == 400 and body["error"] == "invalid"


def test_send_reaches_a_stomp_consumer_with_its_properties(connect, api: Api) -> None:
    c = connect()
    subscribe(c, "/queue/admin.send", "1")
    status, sent = api(
        "POST",
        "/api/queues/admin.send/messages",
        {"body": "hello", "properties": {"color": "red", "n": 7}, "priority": 6},
    )
    assert status == 201 and sent["id"]
    frame = c.listener.next()
    assert frame.body == "hello"
    h = frame.headers
    assert (h["message-id"], h["color"], h["n"], h["priority"]) == (sent["id"], "red", "7", "6")
    assert h["persistent"] == "true"


def test_send_bytes_as_base64_and_browse_them_back(api: Api) -> None:
    raw = bytes(range(256))
    body = {"body": base64.b64encode(raw).decode(), "base64": True, "persistent": False}
    assert api("POST", "/api/queues/admin.bytes/messages", body)[0] == 201
    msg = api("GET", "/api/queues/admin.bytes/messages")[1]["messages"][0]
    assert msg["body_encoding"] == "base64" and base64.b64decode(msg["body"]) == raw
    assert msg["text"] is False and msg["persistent"] is False and msg["size"] == 256


def test_send_to_a_topic_reaches_its_subscriber(connect, api: Api) -> None:
    c = connect()
    subscribe(c, "/topic/admin.news", "t")
    assert api("POST", "/api/topics/admin.news/messages", {"body": "extra"})[0] == 201
    assert c.listener.next().body == "extra"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"body": 5}, "'body'"),
        ({"body": "x", "priority": 10}, "priority"),
        ({"body": "x", "priority": True}, "priority"),
        ({"body": "x", "persistent": "yes"}, "persistent"),
        ({"body": "x", "ttl_ms": -1}, "ttl_ms"),
        ({"body": "!!", "base64": True}, "base64"),
        ({"body": "x", "properties": {"k": [1]}}, "property 'k'"),
        ({"body": "x", "bogus": 1}, "unknown field(s): bogus"),
    ],
)
def test_bad_send_is_400_and_sends_nothing(
    broker: BrokerThread, api: Api, body: Any, why: str
) -> None:
    status, answer = api("POST", "/api/queues/admin.badsend/messages", body)
    assert status == 400 and why in answer["message"], answer
    assert broker.stats("admin.badsend") is None


def test_bad_json_is_400(api: Api) -> None:
    status, body = api("POST", "/api/queues/admin.x/messages", raw=b"{not json")
    assert status == 400 and body["error"] == "bad-json"
    status, body = api("POST", "/api/queues/admin.x/messages", raw=b"[1, 2]")
    assert status == 400 and body["error"] == "bad-json"


def test_get_and_delete_one_message_by_id(connect, api: Api) -> None:
    c = connect()
    for i in range(3):
        send(c, "/queue/admin.del", f"m{i}")
    ids = [m["id"] for m in api("GET", "/api/queues/admin.del/messages")[1]["messages"]]
    mid = q(ids[1])
    assert api("GET", f"/api/queues/admin.del/messages/{mid}")[1]["body"] == "m1"
    assert api("DELETE", f"/api/queues/admin.del/messages/{mid}")[0] == 200
    assert api("DELETE", f"/api/queues/admin.del/messages/{mid}")[0] == 404
    assert api("GET", f"/api/queues/admin.del/messages/{mid}")[0] == 404
    one = api("GET", "/api/queues/admin.del")[1]
    assert one["depth"] == 2 and one["dequeued"] == 1
    subscribe(c, "/queue/admin.del", "1")
    assert [f.body for f in c.listener.take(2)] == ["m0", "m2"]
    assert quiet(c)


def test_move_by_selector_arrives_on_the_target(connect, api: Api) -> None:
    c = connect()
    for i in range(6):
        send(c, "/queue/admin.mv.src", f"m{i}", color="red" if i % 2 else "blue")
    status, moved = api(
        "POST", "/api/queues/admin.mv.src/move", {"to": "admin.mv.dst", "selector": "color = 'red'"}
    )
    assert (status, moved["moved"]) == (200, 3)
    subscribe(c, "/queue/admin.mv.dst", "d")
    frames = c.listener.take(3)
    assert [f.body for f in frames] == ["m1", "m3", "m5"]
    assert all(f.headers["color"] == "red" for f in frames)
    # ActiveMQ's moveMessageTo: same id, originalDestination the queue it left.
    assert frames[0].headers["original-destination"] == "/queue/admin.mv.src"
    assert quiet(c)
    src = api("GET", "/api/queues/admin.mv.src")[1]
    assert (src["depth"], src["dequeued"]) == (3, 3)
    assert [m["body"] for m in api("GET", "/api/queues/admin.mv.src/messages")[1]["messages"]] == [
        "m0",
        "m2",
        "m4",
    ]


def test_move_one_by_id_and_all_and_copy(connect, api: Api) -> None:
    c = connect()
    for i in range(3):
        send(c, "/queue/admin.mv2", f"m{i}")
    first = api("GET", "/api/queues/admin.mv2/messages")[1]["messages"][0]["id"]
    assert (
        api("POST", "/api/queues/admin.mv2/move", {"to": "admin.mv2.one", "id": first})[1]["moved"]
        == 1
    )
    assert (
        api("POST", "/api/queues/admin.mv2/copy", {"to": "admin.mv2.copy", "all": True})[1][
            "copied"
        ]
        == 2
    )
    assert api("GET", "/api/queues/admin.mv2")[1]["depth"] == 2
    copies = api("GET", "/api/queues/admin.mv2.copy/messages")[1]["messages"]
    assert [m["body"] for m in copies] == ["m1", "m2"]
    assert (
        api("POST", "/api/queues/admin.mv2/move", {"to": "admin.mv2.all", "all": True})[1]["moved"]
        == 2
    )
    assert api("GET", "/api/queues/admin.mv2")[1]["depth"] == 0
    assert [m["id"] for m in api("GET", "/api/queues/admin.mv2.one/messages")[1]["messages"]] == [
        first
    ]
    status, body = api("POST", "/api/queues/admin.mv2.one/move", {"to": "admin.x", "id": "ID:nope"})
    assert status == 404 and body["error"] == "not-found"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"to": "admin.t"}, "invalid"),
        ({"to": "admin.t", "all": True, "id": "x"}, "invalid"),
        ({"to": "", "all": True}, "invalid"),
        ({"all": True}, "invalid"),
        ({"to": "admin.mvbad", "all": True}, "invalid"),
        ({"to": "admin.t", "all": False}, "invalid"),
        ({"to": "admin.t", "selector": "color = "}, "invalid-selector"),
        ({"to": "admin.t", "selector": 3}, "invalid"),
        ({"to": "admin.t", "all": True, "extra": 1}, "invalid"),
    ],
)
def test_bad_move_is_400_and_moves_nothing(connect, api: Api, body: Any, code: str) -> None:
    send(connect(), "/queue/admin.mvbad", "x")
    status, answer = api("POST", "/api/queues/admin.mvbad/move", body)
    assert (status, answer["error"]) == (400, code), answer
    assert api("GET", "/api/queues/admin.mvbad")[1]["depth"] == 1


def test_retry_dlq_puts_a_nacked_message_back_on_its_queue(connect, api: Api) -> None:
    c = connect()
    send(c, "/queue/admin.retry", "poison")
    send(c, "/queue/ActiveMQ.DLQ", "no origin")  # nothing says where it came from
    subscribe(c, "/queue/admin.retry", "1", ack="client-individual")
    c.nack_frame(c.listener.next())
    assert wait_until(lambda: api("GET", "/api/queues/ActiveMQ.DLQ")[1]["depth"] == 2)
    c.unsubscribe("1")
    assert api("POST", "/api/queues/ActiveMQ.DLQ/retry")[1] == {
        "name": "ActiveMQ.DLQ",
        "moved": 1,
        "left": 1,
    }
    left = api("GET", "/api/queues/ActiveMQ.DLQ/messages")[1]["messages"]
    assert [m["body"] for m in left] == ["no origin"]
    subscribe(c, "/queue/admin.retry", "2")
    back = c.listener.next()
    assert back.body == "poison" and back.headers.get("redelivered", "false") == "false"
    # As ActiveMQ's retryMessages (a moveMessageTo): it names the queue it came back from,
    # and what dead-lettering added for the DLQ's readers is gone.
    assert back.headers["original-destination"] == "/queue/ActiveMQ.DLQ"
    assert "originalExpiration" not in back.headers
    assert api("GET", "/api/queues/ActiveMQ.DLQ")[1]["dequeued"] == 1


def test_paused_queue_dispatches_nothing_until_resumed(connect, api: Api) -> None:
    c = connect()
    subscribe(c, "/queue/admin.pause", "1")
    send(c, "/queue/admin.pause", "before")
    assert c.listener.next().body == "before"
    assert api("POST", "/api/queues/admin.pause/pause")[1]["paused"] is True
    for i in range(3):
        send(c, "/queue/admin.pause", f"m{i}")
    # A second consumer attaching while paused gets nothing either.
    other = connect()
    subscribe(other, "/queue/admin.pause", "2")
    assert quiet(c, 0.3) and quiet(other, 0.1)
    one = api("GET", "/api/queues/admin.pause")[1]
    assert (one["paused"], one["pending"], one["consumers"]) == (True, 3, 2)
    assert api("POST", "/api/queues/admin.pause/resume")[1]["paused"] is False
    got = []
    assert wait_until(lambda: got.extend(_drain(c) + _drain(other)) or len(got) == 3)
    assert sorted(got) == ["m0", "m1", "m2"]
    send(c, "/queue/admin.pause", "after")
    assert wait_until(lambda: got.extend(_drain(c) + _drain(other)) or "after" in got)


def _drain(c: Client) -> list[str]:
    out = []
    while not c.listener.messages.empty():
        out.append(c.listener.messages.get_nowait().body)
    return out


def test_paged_out_messages_browse_move_and_delete(broker_factory) -> None:
    # A small memory limit pages the backlog out as stubs (broker/store/paging.py).
    b = broker_factory(**{"destinations.queue_memory_limit": 2000})
    api = api_for(b.console_port)
    c = stomp.Connection12([("127.0.0.1", b.stomp_port)])
    c.connect(wait=True)
    try:
        for i in range(40):
            c.send(
                "/queue/admin.paged",
                "x" * 200 + str(i),
                headers={"persistent": "true", "n": str(i)},
            )
        c.send("/queue/admin.paged", "end", headers={"persistent": "true"}, receipt="r")
        assert wait_until(
            lambda: (api("GET", "/api/queues/admin.paged")[1] or {}).get("depth") == 41
        )
        page = api("GET", "/api/queues/admin.paged/messages?offset=30&limit=3")[1]["messages"]
        assert [m["properties"]["n"] for m in page] == ["30", "31", "32"]
        assert page[0]["body"] == "x" * 200 + "30"
        assert api("DELETE", f"/api/queues/admin.paged/messages/{q(page[1]['id'])}")[0] == 200
        moved = api(
            "POST", "/api/queues/admin.paged/move", {"to": "admin.paged.to", "selector": "n = '35'"}
        )
        assert moved[1]["moved"] == 1
        got = api("GET", "/api/queues/admin.paged.to/messages")[1]["messages"]
        assert got[0]["body"] == "x" * 200 + "35"
        assert api("GET", "/api/queues/admin.paged")[1]["depth"] == 39
    finally:
        c.disconnect()


# -- connections -------------------------------------------------------------------------


def test_connections_list_and_close_one(connect, broker: BrokerThread, api: Api) -> None:
    victim = connect(headers={"client-id": "admin-victim"})
    subscribe(victim, "/queue/admin.conn", "1")
    bystander = connect(headers={"client-id": "admin-bystander"})
    amqp = BlockingConnection(f"127.0.0.1:{broker.broker.port('amqp')}", timeout=WAIT)
    amqp.create_receiver("queue://admin.conn.amqp")
    try:
        status, listed = api("GET", "/api/connections")
        assert status == 200
        by_client = {c["client_id"]: c for c in listed["connections"]}
        v = by_client["admin-victim"]
        assert (v["protocol"], v["subscriptions"]) == ("stomp", 1)
        assert re.fullmatch(r"127\.0\.0\.1:\d+", v["peer"])
        amqps = [c for c in listed["connections"] if c["protocol"] == "amqp"]
        assert len(amqps) == 1 and amqps[0]["subscriptions"] == 1
        assert api("DELETE", f"/api/connections/{q(v['id'])}")[1] == {"closed": v["id"]}
        err = victim.listener.error()
        assert "closed by an administrator" in err.headers["message"]
        assert victim.listener.disconnected.wait(WAIT)
        assert wait_until(lambda: api("GET", "/api/queues/admin.conn")[1]["consumers"] == 0)
        # The others are untouched.
        send(bystander, "/queue/admin.conn", "still here")
        assert api("DELETE", f"/api/connections/{q(v['id'])}")[0] == 404
        assert api("DELETE", f"/api/connections/{q(amqps[0]['id'])}")[0] == 200
        with pytest.raises(Exception, match=r"connection:forced|closed by an administrator"):
            amqp.create_sender("queue://admin.conn.amqp").send(AmqpMessage(body="x"))
    finally:
        amqp.close()
    assert api("DELETE", "/api/connections/ID:nobody")[0] == 404


# -- authorization -----------------------------------------------------------------------


def _secured() -> dict[str, Any]:
    return {
        "auth.users": {"alice": "alice-pw", "bob": "bob-pw"},
        "auth.groups": {"admins": ["alice"], "users": ["alice", "bob"]},
        "auth.authorization": [
            {"queue": ">", "read": ["users"], "write": ["users"], "admin": ["admins"]},
            {"topic": ">", "read": ["users"], "write": ["users"], "admin": ["admins"]},
        ],
    }


def test_admin_actions_need_the_admin_right(broker_factory) -> None:
    b = broker_factory(**_secured())
    alice = api_for(b.console_port, ("alice", "alice-pw"))
    bob = api_for(b.console_port, ("bob", "bob-pw"))
    anonymous = api_for(b.console_port)
    assert alice("POST", "/api/queues/admin.sec/messages", {"body": "1"})[0] == 201
    # bob may read, browse and send to what exists, not change it.
    assert bob("GET", "/api/destinations")[0] == 200
    assert bob("GET", "/api/queues/admin.sec/messages")[0] == 200
    assert bob("POST", "/api/queues/admin.sec/messages", {"body": "2"})[0] == 201
    for method, path, body in [
        ("DELETE", "/api/queues/admin.sec/messages", None),
        ("POST", "/api/queues/admin.sec/pause", None),
        ("POST", "/api/queues/admin.sec/move", {"to": "admin.sec2", "all": True}),
        ("DELETE", "/api/queues/admin.sec", None),
        ("POST", "/api/queues/admin.new/messages", {"body": "creates"}),
        ("GET", "/api/connections", None),
    ]:
        status, answer = bob(method, path, body)
        assert status == 403, (method, path)
        assert answer["error"] == "forbidden" and "User bob is not authorized" in answer["message"]
    assert alice("GET", "/api/queues/admin.sec")[1]["depth"] == 2
    assert alice("DELETE", "/api/queues/admin.sec/messages")[1]["purged"] == 2
    assert alice("GET", "/api/connections")[0] == 200
    assert anonymous("GET", "/api/destinations") == (
        401,
        {"error": "unauthorized", "message": "credentials required"},
    )
    assert api_for(b.console_port, ("bob", "wrong"))("GET", "/api/destinations") == (
        401,
        {"error": "unauthorized", "message": "invalid credentials"},
    )


# -- durability --------------------------------------------------------------------------

BROKER_RUN = [sys.executable, "-m", "broker", "run"]
CONSOLE = re.compile(r"console listener on (\S+):(\d+)")
STOMP = re.compile(r"stomp listener on (\S+):(\d+)")


class AdminBroker(ChildBroker):
    def __init__(self, data_dir: Path, cwd: Path) -> None:
        super().__init__([*BROKER_RUN, "--data-dir", str(data_dir)], cwd)
        self.stomp = int(self.wait_for(STOMP).group(2))
        self.console = int(self.wait_for(CONSOLE).group(2))


def test_move_and_purge_answered_before_sigkill_survive_it(tmp_path: Path) -> None:
    first = AdminBroker(tmp_path / "data", tmp_path)
    try:
        c = stomp.Connection12([("127.0.0.1", first.stomp)])
        c.connect(wait=True)
        for i in range(10):
            c.send("/queue/admin.crash", f"m{i}", headers={"persistent": "true", "k": str(i % 2)})
            c.send("/queue/admin.crash.purge", f"p{i}", headers={"persistent": "true"})
        c.send("/queue/admin.crash", "last", headers={"persistent": "true"}, receipt="r")
        api = api_for(first.console)
        assert wait_until(lambda: api("GET", "/api/queues/admin.crash")[1].get("depth") == 11)
        moved = api(
            "POST", "/api/queues/admin.crash/move", {"to": "admin.crash.to", "selector": "k = '1'"}
        )
        assert moved[1]["moved"] == 5
        assert api("DELETE", "/api/queues/admin.crash.purge/messages")[1]["purged"] == 10
        first.kill()
    finally:
        first.cleanup()
    second = AdminBroker(tmp_path / "data", tmp_path)
    try:
        api = api_for(second.console)
        assert api("GET", "/api/queues/admin.crash")[1]["depth"] == 6
        assert api("GET", "/api/queues/admin.crash.purge")[1]["depth"] == 0
        to = api("GET", "/api/queues/admin.crash.to/messages")[1]["messages"]
        assert [m["body"] for m in to] == ["m1", "m3", "m5", "m7", "m9"]
    finally:
        second.stop()
        second.cleanup()


def test_paused_queue_holds_sqs_receives(broker: BrokerThread, api: Api) -> None:
    from tests.sqs.support import client

    sqs = client(broker)
    url = sqs.create_queue(QueueName="admin-pause-sqs")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="held")
    assert api("POST", "/api/queues/admin-pause-sqs/pause")[0] == 200
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    # A long poll waiting while paused gets the message once the queue resumes.
    got: list[Any] = []
    poll = threading.Thread(
        target=lambda: got.append(sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10))
    )
    poll.start()
    assert wait_until(lambda: broker.call(lambda: _waiting(broker, "admin-pause-sqs")))
    assert api("POST", "/api/queues/admin-pause-sqs/resume")[0] == 200
    poll.join(WAIT)
    assert [m["Body"] for m in got[0]["Messages"]] == ["held"]


def test_an_sqs_queue_is_deleted_through_sqs_only(broker: BrokerThread, api: Api) -> None:
    from tests.sqs.support import client

    sqs = client(broker)
    url = sqs.create_queue(QueueName="admin-sqs-owned")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="kept")
    status, body = api("DELETE", "/api/queues/admin-sqs-owned")
    assert status == 409 and "SQS DeleteQueue" in body["message"]
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    assert [m["Body"] for m in got["Messages"]] == ["kept"]


def _waiting(broker: BrokerThread, name: str) -> bool:
    pull = broker.broker.core.leases.get(Address(QUEUE, name))
    return bool(pull.waiters)
