"""Issue 14's logs and metrics, against real brokers and real clients: SQS and SNS
request metrics from boto3 traffic, process and build-info series, no `_created`
series, the oldest message's age, a closed consumer's series gone, the Grafana
dashboard's metric names all exposed; refusals logged at WARNING with protocol, peer,
user and reason, bounded under a flood and never with the password; the start banner
and `--log-format json` from a broker process."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import stomp
from botocore.config import Config
from botocore.exceptions import ClientError
from proton import ConnectionException
from proton.utils import BlockingConnection

from broker.logs import JsonFormatter, LogLimiter
from broker.version import broker_version
from tests.authmap import BOB_PASSWORD, overrides
from tests.conftest import REPO, WAIT, BrokerThread, ChildBroker, Client, RawClient, wait_until
from tests.daemon.test_metrics import Samples, scrape, scrape_until, value

DASHBOARD = REPO / "config" / "grafana-dashboard.json"


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerThread]:
    b = BrokerThread(tmp_path_factory.mktemp("plain")).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerThread]:
    # No login throttle: the flood below tests the log's own bound, and a good login
    # from the same host must still get in.
    extra = {"auth.max_login_failures": 0}
    b = BrokerThread(tmp_path_factory.mktemp("secured"), **overrides(**extra)).start()
    yield b
    b.stop()


def aws(b: BrokerThread, service: str, secret: str = "secret", key: str = "AKIDTEST") -> Any:
    return boto3.client(
        service,
        endpoint_url=f"http://127.0.0.1:{b.broker.port('aws')}",
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def stomp_client(b: BrokerThread, **kw: Any) -> Client:
    from tests.conftest import Collector

    conn = stomp.Connection12([("127.0.0.1", b.stomp_port)], heartbeats=(0, 0))
    listener = Collector()
    conn.set_listener("c", listener)
    conn.connect(wait=True, **kw)
    return Client(conn, listener, "1.2")


def requests(samples: Samples, service: str, action: str, outcome: str) -> float:
    key = (
        "zonemq_aws_request_duration_seconds_count",
        frozenset({("service", service), ("action", action), ("outcome", outcome)}),
    )
    return samples.get(key, 0.0)


# -- metrics ------------------------------------------------------------------------------


def test_sqs_and_sns_requests_are_counted_by_action_and_outcome(plain: BrokerThread) -> None:
    before = scrape(plain)
    sqs = aws(plain, "sqs")
    url = sqs.create_queue(QueueName="obs-requests")["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert len(got["Messages"]) == 3
    with pytest.raises(ClientError) as info:
        sqs.get_queue_url(QueueName="obs-no-such-queue")
    assert info.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    sns = aws(plain, "sns")
    arn = sns.create_topic(Name="obs-topic")["TopicArn"]
    sns.publish(TopicArn=arn, Message="hello")
    with pytest.raises(ClientError) as info:
        sns.publish(TopicArn=arn + "-missing", Message="nobody")
    sns_code = info.value.response["Error"]["Code"]
    after = scrape(plain)

    def grew(service: str, action: str, outcome: str) -> float:
        return requests(after, service, action, outcome) - requests(
            before, service, action, outcome
        )

    assert grew("sqs", "CreateQueue", "ok") == 1
    assert grew("sqs", "SendMessage", "ok") == 3
    assert grew("sqs", "ReceiveMessage", "ok") == 1
    assert grew("sqs", "GetQueueUrl", "AWS.SimpleQueueService.NonExistentQueue") == 1
    assert grew("sns", "CreateTopic", "ok") == 1
    assert grew("sns", "Publish", "ok") == 1
    assert grew("sns", "Publish", sns_code) == 1
    # The latency is a histogram: a bucket at +Inf equal to the count, a positive sum.
    labels = frozenset({("service", "sqs"), ("action", "SendMessage"), ("outcome", "ok")})
    inf = after[("zonemq_aws_request_duration_seconds_bucket", labels | {("le", "+Inf")})]
    assert inf == after[("zonemq_aws_request_duration_seconds_count", labels)]
    assert after[("zonemq_aws_request_duration_seconds_sum", labels)] > 0


def test_an_unknown_action_does_not_become_a_label(plain: BrokerThread) -> None:
    body = json.dumps({}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{plain.broker.port('aws')}/",
        data=body,
        headers={
            "X-Amz-Target": "AmazonSQS.NoSuchActionXyz",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=WAIT)
    assert info.value.code == 400
    samples = scrape(plain)
    actions = {dict(k[1]).get("action") for k in samples if k[0].startswith("zonemq_aws_")}
    assert "NoSuchActionXyz" not in actions
    unknown = [
        v
        for (name, labels), v in samples.items()
        if name == "zonemq_aws_request_duration_seconds_count"
        and dict(labels).get("action") == "unknown"
    ]
    assert sum(unknown) >= 1


def test_process_and_build_info_series_and_no_created_series(plain: BrokerThread) -> None:
    samples = scrape(plain)
    assert value(samples, "zonemq_build_info", version=broker_version()) == 1
    assert value(samples, "process_resident_memory_bytes") > 1_000_000
    assert value(samples, "process_cpu_seconds_total") > 0
    assert value(samples, "process_open_fds") > 0
    assert any(name == "python_info" for name, _ in samples)
    created = sorted({name for name, _ in samples if name.endswith("_created")})
    assert not created, created


def test_oldest_message_age_is_the_queue_fronts_age(plain: BrokerThread) -> None:
    c = stomp_client(plain)
    try:
        c.send("/queue/obs.age", "first", receipt="r1")
        assert c.listener.receipt() == "r1"
        c.send("/queue/obs.age", "second", receipt="r2")
        assert c.listener.receipt() == "r2"

        def front() -> int:
            q = next(q for a, q in plain.broker.core.queues.items() if a.name == "obs.age")
            return q.oldest_timestamp()

        stamp = plain.call(front)
        lo = time.time() * 1000 - stamp
        samples = scrape(plain)
        hi = time.time() * 1000 - stamp
        age = value(
            samples, "zonemq_queue_oldest_message_age_seconds", kind="queue", destination="obs.age"
        )
        assert lo / 1000 - 0.01 <= age <= hi / 1000 + 0.01
        # The age is the oldest's: after "first" is consumed it is "second"'s.
        c.subscribe(
            "/queue/obs.age",
            id="1",
            ack="client-individual",
            headers={"activemq.prefetchSize": "1"},
        )
        first = c.listener.next()
        assert first.body == "first"
        c.ack_frame(first)
        second = c.listener.next()
        assert second.body == "second"
        samples = scrape_until(
            plain,
            lambda s: (
                s.get(
                    (
                        "zonemq_queue_oldest_message_age_seconds",
                        frozenset({("kind", "queue"), ("destination", "obs.age")}),
                    )
                )
                == 0
            ),
        )
        # Nothing waits (the second is in flight): 0.
        assert (
            value(
                samples,
                "zonemq_queue_oldest_message_age_seconds",
                kind="queue",
                destination="obs.age",
            )
            == 0
        )
        c.ack_frame(second)
    finally:
        c.close()


def consumer_series(samples: Samples, destination: str) -> list[dict[str, str]]:
    return [
        dict(labels)
        for name, labels in samples
        if name == "zonemq_consumer_prefetch" and dict(labels)["destination"] == destination
    ]


def test_a_closed_consumers_series_are_gone(plain: BrokerThread) -> None:
    a = stomp_client(plain)
    b = stomp_client(plain)
    try:
        a.subscribe(
            "/queue/obs.consumers", id="1", ack="client", headers={"activemq.prefetchSize": "7"}
        )
        b.subscribe("/topic/obs.consumers", id="1", ack="auto")
        a.sync()
        b.sync()
        samples = scrape(plain)
        [queue_sub] = consumer_series(samples, "obs.consumers")[:1]
        assert len(consumer_series(samples, "obs.consumers")) == 2
        key = {k: queue_sub[k] for k in ("kind", "destination", "consumer")}
        assert value(samples, "zonemq_consumer_inflight", **key) == 0
        a.unsubscribe(id="1")
        a.sync()
        samples = scrape_until(plain, lambda s: len(consumer_series(s, "obs.consumers")) == 1)
        [left] = consumer_series(samples, "obs.consumers")
        assert left["kind"] == "topic"
        b.disconnect()
        samples = scrape_until(plain, lambda s: not consumer_series(s, "obs.consumers"))
        assert consumer_series(samples, "obs.consumers") == []
        assert ("zonemq_consumer_inflight", frozenset(key.items())) not in samples
    finally:
        a.close()
        b.close()


_PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "le",
    "inf",
    "nan",
}


def dashboard_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions (followed
    by "("), label matchers ({...}), grouping lists (by (...)), ranges or keywords."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        rest = expr[match.end() :].lstrip()
        if rest.startswith("(") or match.group().lower() in _PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def test_grafana_dashboard_uses_only_exposed_metric_names(plain: BrokerThread) -> None:
    assert dashboard_metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(x_bucket{a="b"}[5m]))) / y'
    ) == {"x_bucket", "y"}
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    referenced = set().union(*(dashboard_metric_names(e) for e in exprs))
    # Traffic, so that every family has samples (a labelled one has none before).
    sqs = aws(plain, "sqs")
    url = sqs.create_queue(QueueName="obs-dashboard")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    c = stomp_client(plain)
    c.send("/queue/obs.dashboard", "x", receipt="r", persistent="true")
    assert c.listener.receipt() == "r"
    c.subscribe("/queue/obs.dashboard", id="1", ack="client")
    c.ack_frame(c.listener.next())
    samples = scrape(plain)
    c.close()
    exposed = {name for name, _ in samples}
    missing = sorted(referenced - exposed)
    assert not missing, f"dashboard names not in /metrics: {missing}"
    assert {
        "zonemq_aws_request_duration_seconds_count",
        "process_cpu_seconds_total",
        "zonemq_queue_oldest_message_age_seconds",
        "zonemq_build_info",
    } <= referenced


# -- logs ---------------------------------------------------------------------------------


def auth_records(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "zonemq.auth" and getattr(r, "event", "") == event
    ]


def test_a_flood_of_bad_stomp_logins_is_logged_bounded(
    secured: BrokerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="zonemq.auth")
    secret = "not-the-password-1234"
    # stomp.py first: the client a user has.
    conn = stomp.Connection12([("127.0.0.1", secured.stomp_port)], heartbeats=(0, 0))
    with pytest.raises(stomp.exception.ConnectFailedException):
        conn.connect("mallory", secret, wait=True)
    # Then a flood on raw sockets (each answered with an ERROR and closed).
    for i in range(30):
        raw = RawClient(secured.stomp_port)
        raw.send(
            f"CONNECT\naccept-version:1.2\nhost:x\nlogin:user{i}\npasscode:{secret}\n\n\x00".encode()
        )
        assert raw.frame().startswith(b"ERROR")
        assert raw.closed()
        raw.close()
    failed = [r for r in auth_records(caplog, "login_failed") if r.protocol == "STOMP"]
    assert 1 <= len(failed) <= 5, [r.getMessage() for r in failed]
    first = failed[0]
    assert first.levelno == logging.WARNING
    assert (first.peer, first.user, first.reason) == ("127.0.0.1", "mallory", "invalid credentials")
    assert (
        "STOMP login failed: user 'mallory' from 127.0.0.1: invalid credentials"
        in first.getMessage()
    )
    assert secret not in caplog.text
    # Other clients are unaffected: bob logs in from the same host.
    bob = stomp_client(secured, username="bob", passcode=BOB_PASSWORD)
    bob.sync()
    bob.close()


def test_amqp_console_and_sigv4_failures_are_logged(
    secured: BrokerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="zonemq.auth")
    with pytest.raises(ConnectionException):
        BlockingConnection(
            f"127.0.0.1:{secured.broker.port('amqp')}",
            timeout=WAIT,
            user="eve",
            password="amqp-secret-x",
            allow_insecure_mechs=True,
        )
    token = base64.b64encode(b"carol:console-secret-y").decode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{secured.console_port}/metrics",
        headers={"Authorization": f"Basic {token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=WAIT)
    assert info.value.code == 401
    with pytest.raises(ClientError) as err:
        aws(secured, "sqs", secret="sigv4-secret-z", key="alice").list_queues()
    assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert wait_until(lambda: len(auth_records(caplog, "login_failed")) >= 3)
    by_protocol = {r.protocol: r for r in auth_records(caplog, "login_failed")}
    assert by_protocol["AMQP"].user == "eve"
    assert by_protocol["console"].user == "carol"
    assert by_protocol["SQS"].user == "alice"
    assert by_protocol["SQS"].reason == "SignatureDoesNotMatch"
    assert all(by_protocol[p].peer == "127.0.0.1" for p in ("AMQP", "console", "SQS"))
    for secret in ("amqp-secret-x", "console-secret-y", "sigv4-secret-z"):
        assert secret not in caplog.text


def test_authorization_refusals_name_protocol_peer_user_and_reason(
    secured: BrokerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="zonemq.auth")
    bob = stomp_client(secured, username="bob", passcode=BOB_PASSWORD)
    try:
        bob.send("/queue/alice.obs", "forged", receipt="r")
        err = bob.listener.error()
        assert err.headers["message"] == "User bob is not authorized to create: queue://alice.obs"
        [record] = auth_records(caplog, "denied")
        assert record.levelno == logging.WARNING
        assert (record.protocol, record.user) == ("STOMP", "bob")
        assert record.reason == "admin on queue://alice.obs"  # it would create the queue
        assert re.fullmatch(r"127\.0\.0\.1:\d+", record.peer)
        assert f"(from {record.peer})" in record.getMessage()
        bob.sync()  # the connection stays usable, as ActiveMQ's does
    finally:
        bob.close()
    # SQS: the request's peer reaches the check through REQUEST_PEER.
    sqs = aws(secured, "sqs", key="bob", secret=BOB_PASSWORD)
    with pytest.raises(ClientError) as info:
        sqs.create_queue(QueueName="alice-private")
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    sqs_denied = [r for r in auth_records(caplog, "denied") if r.protocol == "SQS"]
    assert sqs_denied and sqs_denied[0].peer == "127.0.0.1" and sqs_denied[0].user == "bob"


def test_log_limiter_bounds_each_key_and_reports_what_it_suppressed() -> None:
    now = [0.0]
    limiter = LogLimiter(burst=2, interval=10.0, budget=5, max_keys=3, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(4)] == [0, 0, None, None]
    assert limiter.allow("b") == 0
    now[0] = 10.0
    assert limiter.allow("a") == 2  # the two suppressed lines are reported
    assert limiter.allow("a") == 0
    # The global budget: 5 lines per interval over every key.
    assert [limiter.allow(k) for k in "cdefg"] == [0, 0, 0, None, None]
    # At most max_keys keys are remembered.
    assert len(limiter._keys) <= 3


def test_json_formatter_writes_one_object_with_extra_fields() -> None:
    record = logging.LogRecord("zonemq.auth", logging.WARNING, __file__, 1, "a %s\nb", ("x",), None)
    record.peer = "10.0.0.1"
    record.when = Path("/x")  # not JSON: written as its text
    line = JsonFormatter().format(record)
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["level"] == "WARNING" and obj["logger"] == "zonemq.auth"
    assert obj["msg"] == "a x\nb" and obj["peer"] == "10.0.0.1" and obj["when"] == "/x"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", obj["ts"])


def test_start_banner_and_json_log_format(tmp_path: Path) -> None:
    config = tmp_path / "zonemq.toml"
    config.write_text(
        '[auth]\nusers = { ops = "ops-password-q" }\n'
        '[[auth.authorization]]\nqueue = ">"\nread = ["ops"]\nwrite = ["ops"]\nadmin = ["ops"]\n'
        '[auth.groups]\nops = ["ops"]\n'
    )
    child = ChildBroker(
        ["python3", "-m", "broker", "run", "--config", str(config), "--log-format", "json"],
        tmp_path,
        ZONEMQ_BROKER__DATA_DIR=str(tmp_path / "data"),
    )
    try:
        line = child.wait_for(r'"msg": "ZoneMQ ').string
        banner = json.loads(line)
        assert banner["level"] == "INFO" and banner["logger"] == "zonemq"
        text = banner["msg"]
        assert text.startswith(f"ZoneMQ {broker_version()}, broker zonemq")
        assert f"data dir: {tmp_path / 'data'}" in text
        assert f"settings: file {config}; environment " in text
        assert "ZONEMQ_BROKER__DATA_DIR" in text and "--log-format" in text
        for name in ("stomp", "amqp", "aws", "console"):
            assert re.search(rf"listener {name}: 127\.0\.0\.1:\d+ \(plain\)", text), text
        assert "auth: 1 users, anonymous refused, 1 authorization entries" in text
        assert "ops-password-q" not in text
    finally:
        child.stop()
    # Every line the process wrote is one JSON object.
    for out in child.stderr_text().splitlines():
        obj = json.loads(out)
        assert {"ts", "level", "logger", "msg"} <= obj.keys()
