"""What the web console needs of the console port, over plain HTTP (urllib) and stomp.py:
the served page and its headers, the samples behind the charts (/api/history), retrying
one dead letter, the consumer list, and the refusal of state-changing requests a browser
makes for another site's page (cross-site request forgery). The pages themselves are
tested in Chromium (test_console_web.py); the ring of samples as a unit here too.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import stomp

from broker.config import ConfigError, load_settings
from protocols.http.history import TOTAL, History
from tests.conftest import WAIT, BrokerThread, Client, Collector, subscribe, wait_until

Answer = tuple[int, dict[str, str], Any]


def http(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> Answer:
    """(status, headers, JSON or text) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if auth is not None:
        all_headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=all_headers
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as resp:
            status, head, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        status, head, raw = exc.code, dict(exc.headers), exc.read()
    try:
        return status, head, json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return status, head, raw.decode(errors="replace")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerThread]:
    b = BrokerThread(
        tmp_path_factory.mktemp("console-api") / "data",
        **{"listeners.console.sample_interval": 0.1, "listeners.console.samples": 5},
    ).start()
    yield b
    b.stop()


@pytest.fixture
def stomp_client(broker: BrokerThread) -> Iterator[Callable[[], Client]]:
    made: list[Client] = []

    def make() -> Client:
        conn = stomp.Connection12([("127.0.0.1", broker.stomp_port)], heartbeats=(0, 0))
        listener = Collector()
        conn.set_listener("collector", listener)
        conn.connect(wait=True)
        made.append(Client(conn, listener, "1.2"))
        return made[-1]

    yield make
    for c in made:
        c.close()


def send(c: Client, dest: str, body: str) -> None:
    c.send(dest, body, headers={"persistent": "true"}, receipt="s")
    assert c.listener.receipt() == "s"


# -- the ring of samples (sans-IO) ---------------------------------------------------------


class _S:
    def __init__(self, kind: str, name: str, depth: int, enq: int, deq: int) -> None:
        self.kind, self.name, self.depth, self.consumers = kind, name, depth, 1
        self.enqueued, self.acked = enq, deq


def test_history_keeps_the_last_samples_and_gives_rates_per_second() -> None:
    h = History(3)
    for i, (enq, deq) in enumerate([(0, 0), (10, 0), (30, 10), (40, 40)]):
        h.take(100.0 + 2 * i, [_S("queue", "a", enq - deq, enq, deq)])
    series = h.series("queue", "a")
    assert series is not None
    assert [s["at"] for s in series] == [102.0, 104.0, 106.0]  # the oldest fell out
    assert series[0]["enqueue_rate"] is None  # nothing before it any more
    assert [(s["enqueue_rate"], s["dequeue_rate"]) for s in series[1:]] == [(10, 5), (5, 15)]
    assert [s["depth"] for s in series] == [10, 20, 0]
    total = h.series(*TOTAL)
    assert total is not None and total[-1]["enqueued"] == 40


def test_history_drops_what_is_gone_and_a_counter_that_went_down_gives_no_rate() -> None:
    h = History(4)
    h.take(1.0, [_S("queue", "a", 0, 50, 0), _S("queue", "b", 0, 1, 0)])
    h.take(2.0, [_S("queue", "a", 0, 3, 0)])  # a deleted and made again; b deleted
    assert h.series("queue", "b") is None
    a = h.series("queue", "a")
    assert a is not None and a[1]["enqueue_rate"] is None and a[1]["dequeue_rate"] == 0
    # A durable subscription is counted in its topic already: not twice in the total.
    h.take(3.0, [_S("topic", "t", 1, 5, 0), _S("durable", "c:s", 1, 5, 0)])
    total = h.series(*TOTAL)
    assert total is not None and total[-1]["enqueued"] == 5
    with pytest.raises(ValueError):
        History(1)


def test_history_samples_at_most_its_bound_of_destinations() -> None:
    h = History(3, destinations=2)
    h.take(1.0, [_S("queue", n, 0, 1, 0) for n in ("a", "b", "c")])
    assert [h.sampled("queue", n) for n in ("a", "b", "c")] == [True, True, False]
    assert h.series("queue", "c") is None
    # A ring frees when its destination goes; the next one waiting takes it.
    h.take(2.0, [_S("queue", n, 0, 2, 0) for n in ("b", "c")])
    h.take(3.0, [_S("queue", n, 0, 3, 0) for n in ("b", "c")])
    c = h.series("queue", "c")
    assert c is not None and [s["enqueued"] for s in c] == [3]
    b = h.series("queue", "b")
    assert b is not None and [s["enqueued"] for s in b] == [1, 2, 3]
    total = h.series(*TOTAL)
    assert total is not None and [s["enqueued"] for s in total] == [3, 4, 6]


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("listeners.console.sample_interval", 0.0, "sample_interval"),
        ("listeners.console.samples", 1, "samples"),
        ("listeners.console.sampled_destinations", -1, "sampled_destinations"),
    ],
)
def test_bad_sampling_settings_stop_start_up(
    tmp_path: Path, key: str, value: Any, text: str
) -> None:
    with pytest.raises(ConfigError, match=text):
        load_settings(None, env={}, overrides={key: value, "broker.data_dir": str(tmp_path)})


# -- over HTTP ---------------------------------------------------------------------------


def test_the_page_and_its_files_are_served_with_a_strict_policy(broker: BrokerThread) -> None:
    status, head, page = http(broker.console_port, "GET", "/")
    assert status == 200 and head["Content-Type"].startswith("text/html")
    assert '<script src="/console/console.js"' in page
    # Nothing from elsewhere: the policy allows this origin only, and no framing.
    assert "default-src 'self'" in head["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in head["Content-Security-Policy"]
    assert head["X-Frame-Options"] == "DENY"
    assert "http" not in page.replace("http-equiv", "")
    for name, kind in [("console.js", "text/javascript"), ("console.css", "text/css")]:
        status, head, text = http(broker.console_port, "GET", f"/console/{name}")
        assert status == 200 and head["Content-Type"].startswith(kind) and text
        assert "//cdn" not in text and "https://" not in text
    for bad in ("/console/index.html", "/console/..%2Fconsole.py", "/console/nope.js"):
        assert http(broker.console_port, "GET", bad)[0] == 404


def test_history_of_a_queue_follows_its_counters(broker: BrokerThread, stomp_client) -> None:
    c = stomp_client()
    for i in range(3):
        send(c, "/queue/console.hist", f"m{i}")

    def latest() -> dict[str, Any] | None:
        samples = http(broker.console_port, "GET", "/api/history/queue/console.hist")[2]["samples"]
        return samples[-1] if samples else None

    assert wait_until(lambda: (latest() or {}).get("depth") == 3)
    status, _, doc = http(broker.console_port, "GET", "/api/history/queue/console.hist")
    assert status == 200 and doc["interval_s"] == 0.1 and len(doc["samples"]) <= 5
    total = http(broker.console_port, "GET", "/api/history")[2]
    assert total["kind"] == "broker" and total["samples"][-1]["enqueued"] >= 3
    assert http(broker.console_port, "GET", "/api/history/queue/console.none")[0] == 404
    status, _, err = http(broker.console_port, "GET", "/api/history/bogus/console.hist")
    assert status == 400 and err["error"] == "invalid"


def test_overview_counts_connections_and_uptime(broker: BrokerThread, stomp_client) -> None:
    before = http(broker.console_port, "GET", "/api/broker")[2]["connections"]
    stomp_client()
    after = http(broker.console_port, "GET", "/api/broker")[2]
    assert after["connections"] == before + 1 and after["uptime_s"] >= 0


def test_queue_detail_lists_its_consumers(broker: BrokerThread, stomp_client) -> None:
    c = stomp_client()
    subscribe(c, "/queue/console.cons", "1", ack="client-individual", selector="color = 'red'")
    c.sync()
    detail = http(broker.console_port, "GET", "/api/queues/console.cons")[2]
    conns = http(broker.console_port, "GET", "/api/connections")[2]["connections"]
    [consumer] = detail["consumer_list"]
    assert consumer["ack_mode"] == "client-individual"
    assert consumer["selector"] == "color = 'red'"
    assert consumer["connection"] in {x["id"] for x in conns}


def _dead_letter(c: Client, queue: str, body: str) -> None:
    send(c, f"/queue/{queue}", body)
    subscribe(c, f"/queue/{queue}", queue, ack="client-individual")
    c.nack_frame(c.listener.next())
    c.unsubscribe(queue)


def test_retry_one_dead_letter_leaves_the_others(broker: BrokerThread, stomp_client) -> None:
    c = stomp_client()
    port = broker.console_port
    _dead_letter(c, "console.r1", "first")
    _dead_letter(c, "console.r2", "second")
    assert wait_until(lambda: broker.stats("ActiveMQ.DLQ").depth >= 2)
    dlq = http(port, "GET", "/api/queues/ActiveMQ.DLQ/messages")[2]["messages"]
    second = next(m for m in dlq if m["body"] == "second")
    assert http(port, "GET", "/api/queues/ActiveMQ.DLQ")[2]["dead_letter"] is True
    status, _, answer = http(port, "POST", "/api/queues/ActiveMQ.DLQ/retry", {"id": second["id"]})
    assert (status, answer["moved"], answer["left"]) == (200, 1, 0)
    assert [
        m["body"] for m in http(port, "GET", "/api/queues/console.r2/messages")[2]["messages"]
    ] == ["second"]
    bodies = [
        m["body"] for m in http(port, "GET", "/api/queues/ActiveMQ.DLQ/messages")[2]["messages"]
    ]
    assert "first" in bodies and "second" not in bodies
    # Refusals: an id not pending, a bad id, an unknown field; nothing moves.
    for body, code in [({"id": second["id"]}, 404), ({"id": 7}, 400), ({"ids": ["x"]}, 400)]:
        assert http(port, "POST", "/api/queues/ActiveMQ.DLQ/retry", body)[0] == code
    assert "first" in [
        m["body"] for m in http(port, "GET", "/api/queues/ActiveMQ.DLQ/messages")[2]["messages"]
    ]
    # The rest at once, as before.
    status, _, answer = http(port, "POST", "/api/queues/ActiveMQ.DLQ/retry")
    assert status == 200 and answer["moved"] >= 1
    assert http(port, "GET", "/api/queues/console.r1")[2]["depth"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://other.localhost"},
    ],
)
def test_a_state_change_from_another_site_is_refused(
    broker: BrokerThread, stomp_client, headers: dict[str, str]
) -> None:
    port = broker.console_port
    c = stomp_client()
    send(c, "/queue/console.csrf", "keep me")
    for method, path, body in [
        ("DELETE", "/api/queues/console.csrf/messages", None),
        ("POST", "/api/queues/console.csrf/messages", {"body": "forged"}),
        ("POST", "/api/queues/console.csrf/pause", None),
        ("DELETE", "/api/queues/console.csrf", None),
    ]:
        status, _, answer = http(port, method, path, body, headers)
        assert status == 403 and answer["error"] == "cross-origin", (method, path)
    # Reading stays open (a page of another site cannot read the answer anyway).
    assert http(port, "GET", "/api/queues/console.csrf", headers=headers)[0] == 200
    browse = http(port, "GET", "/api/queues/console.csrf/messages")[2]
    assert [m["body"] for m in browse["messages"]] == ["keep me"]
    http(port, "DELETE", "/api/queues/console.csrf")


def test_the_same_origin_and_clients_without_origin_may_change_state(
    broker: BrokerThread,
) -> None:
    port = broker.console_port
    same = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
    assert http(port, "POST", "/api/queues/console.same/messages", {"body": "a"}, same)[0] == 201
    assert http(port, "POST", "/api/queues/console.same/messages", {"body": "b"})[0] == 201
    assert http(port, "DELETE", "/api/queues/console.same/messages", None, same)[2]["purged"] == 2


def test_with_users_the_page_asks_for_credentials(tmp_path: Path) -> None:
    b = BrokerThread(
        tmp_path / "data",
        **{
            "auth.users": {"alice": "alice-pw"},
            "auth.groups": {"admins": ["alice"]},
            "auth.authorization": [{"queue": ">", "read": ["admins"], "admin": ["admins"]}],
        },
    ).start()
    try:
        status, head, _ = http(b.console_port, "GET", "/")
        assert status == 401 and head["WWW-Authenticate"].startswith("Basic")
        assert http(b.console_port, "GET", "/console/console.js")[0] == 401
        assert http(b.console_port, "GET", "/", auth=("alice", "wrong"))[0] == 401
        assert http(b.console_port, "GET", "/", auth=("alice", "alice-pw"))[0] == 200
        # A forged request is refused before its credentials are even checked.
        forged = http(
            b.console_port,
            "DELETE",
            "/api/queues/x/messages",
            headers={"Origin": "http://evil.example"},
            auth=("alice", "alice-pw"),
        )
        assert forged[0] == 403
    finally:
        b.stop()


def test_past_the_bound_a_destination_says_it_is_not_sampled(tmp_path: Path) -> None:
    b = BrokerThread(
        tmp_path / "data",
        **{
            "listeners.console.sample_interval": 0.05,
            "listeners.console.sampled_destinations": 0,
        },
    ).start()
    try:
        port = b.console_port
        assert http(port, "POST", "/api/queues/console.unsampled/messages", {"body": "x"})[0] == 201
        # The totals are still sampled, and count the queue the bound leaves out.
        assert wait_until(
            lambda: any(s["depth"] == 1 for s in http(port, "GET", "/api/history")[2]["samples"])
        )
        doc = http(port, "GET", "/api/history/queue/console.unsampled")[2]
        assert doc["sampled"] is False and doc["samples"] == []
    finally:
        b.stop()
