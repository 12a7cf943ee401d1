"""The web console in headless Chromium (Debian's `chromium`, driven by Playwright for
Python, no browser download), against a real broker with stomp.py clients: browse a
queue page by page, purge, retry dead letters (one and all) back to their queues, send
from the form and receive it, close a connection, the overview and the cluster view.
Each test saves a screenshot (under a temporary directory, or CONSOLE_SCREENSHOTS when
set) and checks that what a user acts on is there: visible, a non-empty box, enabled.

One broker and one browser for the module; each test opens a fresh page.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import stomp
from playwright.sync_api import expect, sync_playwright

from broker.core import QUEUE, Address
from broker.version import broker_version
from tests.conftest import WAIT, BrokerThread, Client, Collector, subscribe, wait_until
from tests.daemon.test_admin_api import HealthBroker

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
TIMEOUT_MS = int(WAIT * 1000)
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerThread]:
    b = BrokerThread(
        tmp_path_factory.mktemp("console-web") / "data",
        **{"listeners.console.sample_interval": 0.2},
    ).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as p:
        # Playwright's own browser builds are never downloaded: Debian's binary.
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("CONSOLE_SCREENSHOTS")
    if chosen:
        Path(chosen).mkdir(parents=True, exist_ok=True)
        return Path(chosen)
    return tmp_path_factory.mktemp("screenshots")


class Console:
    """A page of the console with the checks the tests share."""

    def __init__(self, page: Any, base: str, shots: Path) -> None:
        self.page = page
        self.base = base
        self.shots = shots
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.set_default_timeout(TIMEOUT_MS)

    def open(self, fragment: str, ready: str) -> None:
        """Load `#/fragment` and wait until `ready` (a selector) is shown."""
        self.page.goto(f"{self.base}/#/{fragment}")
        self.page.wait_for_selector(ready, state="visible")

    def usable(self, selector: str) -> Any:
        """The one element `selector` names, checked visible, boxed and enabled."""
        el = self.page.locator(selector)
        el.wait_for(state="visible")
        assert el.count() == 1, selector
        box = el.bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0, selector
        assert el.is_enabled(), selector
        return el

    def status(self, pattern: str) -> str:
        """Wait for the status line to match `pattern`; its text."""
        line = self.page.locator("#status")
        expect(line).to_have_text(re.compile(pattern))
        return line.text_content() or ""

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000
        return path


@pytest.fixture
def console(browser: Any, broker: BrokerThread, shots: Path) -> Iterator[Console]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    c = Console(context.new_page(), f"http://127.0.0.1:{broker.console_port}", shots)
    yield c
    context.close()
    assert c.errors == []  # no script error on any page


@pytest.fixture
def stomp_client(broker: BrokerThread) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(**connect: str) -> Client:
        conn = stomp.Connection12([("127.0.0.1", broker.stomp_port)], heartbeats=(0, 0))
        listener = Collector()
        conn.set_listener("collector", listener)
        conn.connect(wait=True, **connect)
        made.append(Client(conn, listener, "1.2"))
        return made[-1]

    yield make
    for c in made:
        c.close()


def send(c: Client, dest: str, body: str, **headers: str) -> None:
    c.send(dest, body, headers={"persistent": "true", **headers}, receipt="s")
    assert c.listener.receipt() == "s"


def bodies(console: Console) -> list[str]:
    return console.page.locator("[data-table=messages] td.body").all_text_contents()


def test_overview_shows_the_broker_and_the_cluster_view_says_single_node(
    console: Console, stomp_client
) -> None:
    stomp_client()
    console.open("", "[data-card=version]")
    assert console.page.locator("[data-card=version] .value").text_content() == broker_version()
    connections = console.page.locator("[data-card=connections] .value").text_content()
    assert connections is not None and int(connections) >= 1
    assert console.page.locator("[data-chart=Depth] svg").count() == 1
    for nav in ("Destinations", "Connections", "Dead letters", "Send", "Cluster"):
        console.usable(f"nav a:text-is('{nav}')")
    console.shot("overview")
    console.page.click("nav a:text-is('Cluster')")
    console.page.wait_for_selector("#single-node", state="visible")
    assert "Single node" in (console.page.locator("#single-node").text_content() or "")
    console.shot("cluster")


def test_browse_a_queue_page_by_page(console: Console, stomp_client) -> None:
    c = stomp_client()
    name = "web/browse.q"  # a slash and a dot: the page encodes the name
    for i in range(25):
        send(c, f"/queue/{name}", f"browse-{i:02d}")
    console.open("destinations", "[data-table=queue]")
    console.usable(f"[data-table=queue] a[data-dest='{name}']").click()
    console.page.wait_for_selector("[data-table=messages] td.body")
    assert bodies(console) == [f"browse-{i:02d}" for i in range(20)]
    assert console.page.locator("#page-info").text_content() == "1–20 of 25"
    # The charts of the last minutes have their samples.
    assert console.page.locator("[data-chart=Depth] polyline").count() == 1
    console.shot("queue-page-1")
    console.usable("#next").click()
    expect(console.page.locator("#page-info")).to_have_text("21–25 of 25")
    assert bodies(console) == [f"browse-{i:02d}" for i in range(20, 25)]
    assert console.page.locator("#next").is_hidden()
    console.usable("#prev")
    console.shot("queue-page-2")
    # Browsing took nothing: every message is still there for a consumer.
    subscribe(c, f"/queue/{name}", "1")
    assert [f.body for f in c.listener.take(25)] == [f"browse-{i:02d}" for i in range(25)]


def test_purge_from_the_queue_page(console: Console, broker: BrokerThread, stomp_client) -> None:
    c = stomp_client()
    for i in range(3):
        send(c, "/queue/web.purge", f"p{i}")
    console.open("queue/web.purge", "[data-table=messages] td.body")
    console.usable("#purge").click()
    confirm = console.usable("#purge-confirm")
    assert confirm.text_content() == "Delete all 3 pending message(s)"
    console.shot("purge-confirm")
    confirm.click()
    console.status("Purged 3 message")
    expect(console.page.locator("#page-info")).to_have_text("No pending messages")
    assert broker.stats("web.purge").depth == 0
    console.shot("purged")
    subscribe(c, "/queue/web.purge", "1")
    assert c.listener.none_within(0.2)


def _dead_letter(c: Client, queue: str, body: str) -> None:
    send(c, f"/queue/{queue}", body)
    subscribe(c, f"/queue/{queue}", queue, ack="client-individual")
    c.nack_frame(c.listener.next())
    c.unsubscribe(queue)


def test_retry_dead_letters_one_then_all(
    console: Console, broker: BrokerThread, stomp_client
) -> None:
    c = stomp_client()
    _dead_letter(c, "web.orders", "order-1")
    _dead_letter(c, "web.invoices", "invoice-1")
    assert wait_until(lambda: broker.stats("ActiveMQ.DLQ").depth == 2)
    console.open("dlq", "[data-table=dlq]")
    console.usable("[data-retry-all='ActiveMQ.DLQ']")
    console.shot("dlq-list")
    console.page.click("[data-table=dlq] a[data-dest='ActiveMQ.DLQ']")
    console.page.wait_for_selector("[data-table=messages] td.body")
    row = console.page.locator("[data-table=messages] tr", has_text="order-1")
    # Its original destination, as ActiveMQ's console writes it.
    assert "queue://web.orders" in (row.text_content() or "")
    msg_id = row.get_attribute("data-message")
    console.usable(f"[data-retry='{msg_id}']")
    console.shot("dlq-browse")
    console.page.click(f"[data-retry='{msg_id}']")
    console.status("Retried 1 message")
    expect(console.page.locator("#page-info")).to_have_text("1–1 of 1")
    assert bodies(console) == ["invoice-1"]
    subscribe(c, "/queue/web.orders", "o")
    back = c.listener.next()
    assert back.body == "order-1" and back.headers["original-destination"] == "/queue/ActiveMQ.DLQ"
    # The rest from the list's button.
    console.open("dlq", "[data-table=dlq]")
    console.usable("[data-retry-all='ActiveMQ.DLQ']").click()
    console.status("Retried 1 message")
    console.page.wait_for_selector("[data-retry-all='ActiveMQ.DLQ']:disabled")
    console.shot("dlq-retried")
    subscribe(c, "/queue/web.invoices", "i")
    assert c.listener.next().body == "invoice-1"
    assert broker.stats("ActiveMQ.DLQ").depth == 0


def test_send_from_the_form_and_receive_it(console: Console, stomp_client) -> None:
    c = stomp_client()
    subscribe(c, "/queue/web.sent", "q")
    subscribe(c, "/topic/web.news", "t")
    c.sync()
    console.open("send", "#send-form")
    console.usable("#send-name").fill("web.sent")
    console.usable("#send-body").fill("hello from the console")
    console.usable("#send-priority").fill("7")
    console.usable("#send-properties").fill("color=red\nsize=L")
    console.shot("send-form")
    console.usable("#send-submit").click()
    sent = console.status("Sent ID:")
    frame = c.listener.next()
    assert frame.body == "hello from the console"
    assert frame.headers["destination"] == "/queue/web.sent"
    assert frame.headers["priority"] == "7" and frame.headers["persistent"] == "true"
    assert frame.headers["color"] == "red" and frame.headers["size"] == "L"
    assert frame.headers["message-id"] in sent
    console.shot("sent")
    # To a topic: a current subscriber gets it.
    console.page.select_option("#send-kind", "topic")
    console.page.fill("#send-name", "web.news")
    console.page.fill("#send-properties", "")
    console.page.fill("#send-body", "news")
    console.page.click("#send-submit")
    console.status("Sent ID:.* to topic web.news")
    assert c.listener.next().body == "news"


def test_send_form_shows_bad_input_and_sends_nothing(console: Console, stomp_client) -> None:
    c = stomp_client()
    subscribe(c, "/queue/web.bad", "q")
    c.sync()
    console.open("send", "#send-form")
    console.page.fill("#send-name", "web.bad")
    console.page.fill("#send-properties", "no equals sign")
    console.page.click("#send-submit")
    assert "name=value" in console.status("name=value")
    console.page.fill("#send-properties", "")
    console.page.fill("#send-priority", "12")  # out of 0-9: the browser does not submit
    console.page.click("#send-submit")
    assert console.page.locator("#send-priority:invalid").count() == 1
    console.shot("send-refused")
    assert c.listener.none_within(0.2)
    # Without a destination either.
    console.page.fill("#send-priority", "4")
    console.page.fill("#send-name", "")
    console.page.click("#send-submit")
    assert console.page.locator("#send-name:invalid").count() == 1
    assert c.listener.none_within(0.2)


def test_acting_on_a_message_gone_meanwhile_shows_the_brokers_refusal(
    console: Console, broker: BrokerThread, stomp_client
) -> None:
    c = stomp_client()
    send(c, "/queue/web.gone", "soon gone")
    console.open("queue/web.gone", "[data-table=messages] td.body")
    msg_id = console.page.locator("[data-table=messages] tr[data-message]").get_attribute(
        "data-message"
    )
    subscribe(c, "/queue/web.gone", "1")  # another client takes it meanwhile
    assert c.listener.next().body == "soon gone"
    console.usable(f"[data-delete='{msg_id}']").click()
    assert f"no pending message {msg_id} on web.gone" in console.status("no pending message")
    assert console.page.locator("#status.error").is_visible()
    console.shot("refused")


def test_close_a_connection_leaves_the_others(console: Console, stomp_client) -> None:
    doomed = stomp_client(headers={"client-id": "web-doomed"})
    other = stomp_client(headers={"client-id": "web-other"})
    console.open("connections", "[data-table=connections]")
    row = console.page.locator("[data-table=connections] tr", has_text="web-doomed")
    conn_id = row.get_attribute("data-connection")
    console.usable(f"[data-close='{conn_id}']")
    console.shot("connections")
    console.page.click(f"[data-close='{conn_id}']")
    console.status(f"Closed {re.escape(conn_id or '')}")
    assert doomed.listener.disconnected.wait(WAIT)
    console.page.wait_for_selector(f"[data-connection='{conn_id}']", state="detached")
    assert console.page.locator("[data-table=connections] tr", has_text="web-other").count() == 1
    send(other, "/queue/web.still", "alive")  # the other connection still works


def test_a_page_of_another_site_cannot_use_the_users_credentials(
    browser: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b = BrokerThread(
        tmp_path / "data",
        **{
            "auth.users": {"alice": "alice-pw"},
            "auth.groups": {"admins": ["alice"]},
            "auth.authorization": [
                {"queue": ">", "read": ["admins"], "write": ["admins"], "admin": ["admins"]}
            ],
        },
    ).start()
    context = browser.new_context(http_credentials={"username": "alice", "password": "alice-pw"})
    port = b.console_port
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        # The logged-in console sends (its fetches carry the credentials).
        page.goto(f"http://127.0.0.1:{port}/#/send?name=web.guarded")
        page.fill("#send-body", "keep")
        page.click("#send-submit")
        page.wait_for_selector("#status:not(.error):has-text('Sent ID:')")
        # Another origin (localhost is not 127.0.0.1 to a browser) makes the requests
        # a forged page can make without a preflight: a no-cors POST with the stored
        # credentials, and a form posted at the console.
        page.goto(f"http://localhost:{port}/healthz")
        with caplog.at_level("INFO", logger="protocols.http.console"):
            page.evaluate(
                """async (url) => {
                    await fetch(url + "/messages", {method: "POST", mode: "no-cors",
                        credentials: "include", body: '{"body": "forged"}'});
                }""",
                f"http://127.0.0.1:{port}/api/queues/web.guarded",
            )
            page.set_content(
                f'<form method="post" action="http://127.0.0.1:{port}/api/queues/'
                'web.guarded/pause"><button>go</button></form>'
            )
            page.click("button")
            page.wait_for_load_state()
            assert wait_until(
                lambda: sum("cross-origin" in r.getMessage() for r in caplog.records) == 2
            )
        assert b.stats("web.guarded").depth == 1  # nothing forged arrived
        assert b.call(lambda: b.broker.core.queue_paused(Address(QUEUE, "web.guarded"))) is False
    finally:
        context.close()
        b.stop()


def test_cluster_view_shows_role_epoch_and_standby_lag(
    browser: Any, tmp_path: Path, shots: Path
) -> None:
    # A broker given the status callable broker.cluster.node gives its own broker (the
    # admin API tests' HealthBroker), with the shape an active node reports.
    b = HealthBroker(tmp_path / "data").start()
    context = browser.new_context()
    try:
        c = Console(context.new_page(), f"http://127.0.0.1:{b.console_port}", shots)
        c.open("cluster", "[data-table=standbys]")
        cards = {
            key: c.page.locator(f"[data-card={key}] .value").text_content()
            for key in ("node", "role", "epoch", "active", "insync")
        }
        assert cards == {
            "node": "n1",
            "role": "active",
            "epoch": "42",
            "active": "n1",
            "insync": "b",
        }
        row = c.page.locator("[data-standby=n2] td").all_text_contents()
        assert row == ["n2", "b", "yes", "0", "0"]
        c.shot("cluster-active")
        assert c.errors == []
    finally:
        context.close()
        b.stop()
