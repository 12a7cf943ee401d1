"""`zonemq import-activemq-xml` as operators run it (a subprocess): Debian's shipped
activemq.xml and a richer one written here become TOML that loads and that a broker
starts with, serving what it says (users, authorization, declared queues, policies);
whatever is not translated is named on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import stomp

from broker.config import load_settings
from tests.conftest import REPO, BrokerThread, Collector

DEBIAN = Path("/etc/activemq/instances-available/main/activemq.xml")

RICH = """<beans xmlns="http://www.springframework.org/schema/beans">
  <bean class="org.springframework.beans.factory.config.PropertyPlaceholderConfigurer"/>
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="amq1"
          schedulerSupport="true" useJmx="false"
          schedulePeriodForDestinationPurge="10000">
    <destinationPolicy>
      <policyMap>
        <policyEntries>
          <policyEntry queue="orders.>" memoryLimit="1 mb" prioritizedMessages="true"
                       queuePrefetch="10" gcInactiveDestinations="true"
                       inactiveTimoutBeforeGC="30000" frobnicate="yes">
            <deadLetterStrategy>
              <individualDeadLetterStrategy queuePrefix="DLQ.orders." processExpired="false"
                                            processNonPersistent="true"/>
            </deadLetterStrategy>
          </policyEntry>
          <policyEntry topic=">" topicPrefetch="500" producerFlowControl="false">
            <pendingMessageLimitStrategy>
              <constantPendingMessageLimitStrategy limit="1000"/>
            </pendingMessageLimitStrategy>
            <dispatchPolicy><roundRobinDispatchPolicy/></dispatchPolicy>
          </policyEntry>
        </policyEntries>
        <defaultEntry>
          <policyEntry>
            <deadLetterStrategy>
              <sharedDeadLetterStrategy>
                <deadLetterQueue><queue physicalName="ALL.DLQ"/></deadLetterQueue>
              </sharedDeadLetterStrategy>
            </deadLetterStrategy>
          </policyEntry>
        </defaultEntry>
      </policyMap>
    </destinationPolicy>
    <destinations>
      <queue physicalName="orders.eu"/>
      <topic physicalName="prices"/>
    </destinations>
    <plugins>
      <simpleAuthenticationPlugin anonymousAccessAllowed="false">
        <users>
          <authenticationUser username="admin" password="${admin.password}" groups="admins"/>
          <authenticationUser username="alice" password="wonderland" groups="users"/>
        </users>
      </simpleAuthenticationPlugin>
      <authorizationPlugin>
        <map>
          <authorizationMap>
            <authorizationEntries>
              <authorizationEntry queue=">" read="admins" write="admins" admin="admins"/>
              <authorizationEntry queue="orders.>" read="users" write="admins"/>
              <authorizationEntry topic="ActiveMQ.Advisory.>" read="users,admins"
                                  write="users,admins" admin="users,admins"/>
            </authorizationEntries>
            <tempDestinationAuthorizationEntry>
              <tempDestinationAuthorizationEntry read="users" write="users" admin="users"/>
            </tempDestinationAuthorizationEntry>
          </authorizationMap>
        </map>
      </authorizationPlugin>
    </plugins>
    <systemUsage>
      <systemUsage sendFailIfNoSpace="true">
        <storeUsage><storeUsage limit="2 gb"/></storeUsage>
        <tempUsage><tempUsage limit="1 gb"/></tempUsage>
      </systemUsage>
    </systemUsage>
    <networkConnectors><networkConnector uri="static:(tcp://b:61616)"/></networkConnectors>
    <transportConnectors>
      <transportConnector name="openwire" uri="tcp://127.0.0.1:61616"/>
      <transportConnector name="stomp"
          uri="stomp+nio://127.0.0.1:61613?maximumConnections=500&amp;transport.hbGracePeriodMultiplier=2"/>
      <transportConnector name="stomp+ssl" uri="stomp+ssl://127.0.0.1:61612"/>
      <transportConnector name="amqp" uri="amqp://127.0.0.1:5672?wireFormat.maxFrameSize=1048576"/>
    </transportConnectors>
  </broker>
</beans>
"""


def run_import(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONEMQ_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "broker", "import-activemq-xml", str(path), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def dotted(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A TOML document as dotted overrides (tables of names and arrays as values)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and f"{prefix}{key}" not in ("auth.users", "auth.groups"):
            out.update(dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def start_with(toml: str, tmp_path: Path) -> BrokerThread:
    """A broker on the translated settings, its listeners moved to ephemeral ports."""
    overrides = dotted(tomllib.loads(toml))
    for name in ("stomp", "amqp", "openwire", "aws", "console"):
        overrides[f"listeners.{name}.port"] = 0
    return BrokerThread(tmp_path / "data", **overrides).start()


@pytest.mark.skipif(not DEBIAN.is_file(), reason="Debian's activemq package is not installed")
def test_debians_activemq_xml_translates_and_starts(tmp_path: Path) -> None:
    done = run_import(DEBIAN)
    assert done.returncode == 0, done.stderr
    toml = tomllib.loads(done.stdout)
    # Only an OpenWire connector: ActiveMQ opens no STOMP nor AMQP port with this file.
    assert toml["broker"] == {"name": "localhost"}
    assert toml["listeners"]["stomp"] == {"enabled": False}
    assert toml["listeners"]["amqp"] == {"enabled": False}
    assert toml["listeners"]["openwire"] == {"enabled": True, "port": 61616}
    for name in ("useJmx", "dataDirectory", "persistenceAdapter", "openwire tcp://127.0.0.1"):
        assert name in done.stderr
    out = tmp_path / "zonemq.toml"
    out.write_text(done.stdout)
    assert load_settings(out, env={}).broker.name == "localhost"
    broker = start_with(done.stdout, tmp_path)
    try:
        assert set(broker.broker.listeners) == {"openwire", "aws", "console"}
    finally:
        broker.stop()


def test_rich_activemq_xml_translates_what_zonemq_has(tmp_path: Path) -> None:
    path = tmp_path / "activemq.xml"
    path.write_text(RICH)
    done = run_import(path, "-D", "admin.password=s3cret")
    assert done.returncode == 0, done.stderr
    toml = tomllib.loads(done.stdout)
    assert toml["broker"] == {"name": "amq1", "scheduler_support": True}
    stomp_listener = {"enabled": True, "port": 61613, "max_connections": 500, "tls_port": 61612}
    assert toml["listeners"]["stomp"] == stomp_listener
    assert toml["listeners"]["amqp"] == {"enabled": True, "port": 5672, "max_message_size": 1048576}
    policies = toml["destinations"].pop("policies")
    assert toml["destinations"] == {
        "inactive_purge_period": 10.0,  # schedulePeriodForDestinationPurge, ms -> s
        "store_full_policy": "fail",
        "store_limit": 2 * 1024**3,
    }
    assert policies == [
        {
            "pattern": "orders.>",
            "kind": "queue",
            "prioritized_messages": True,
            "gc_inactive_destinations": True,
            "queue_prefetch": 10,
            "memory_limit": 1024**2,
            "inactive_timeout_before_gc": 30.0,
            "dead_letter_strategy": "individual",
            "dead_letter_prefix": "DLQ.orders.",
            "expired_to_dlq": False,
            "dead_letter_non_persistent": True,
        },
        {"pattern": ">", "kind": "topic", "topic_prefetch": 500, "topic_pending_limit": 1000},
        # The defaultEntry last: it applies where no entry matches.
        {"pattern": ">", "dead_letter_strategy": "shared", "dead_letter_queue": "ALL.DLQ"},
    ]
    assert toml["queues"] == [{"name": "orders.eu"}] and toml["topics"] == [{"name": "prices"}]
    assert toml["auth"]["users"] == {"admin": "s3cret", "alice": "wonderland"}
    assert toml["auth"]["groups"] == {"admins": ["admin"], "users": ["alice"]}
    acl = toml["auth"]["authorization"]
    assert acl[1] == {"queue": "orders.>", "read": ["users"], "write": ["admins"], "admin": []}
    assert acl[-1] == {"temp": True, "read": ["users"], "write": ["users"], "admin": ["users"]}
    for name in (
        "frobnicate",
        "producerFlowControl=false",
        "dispatchPolicy",
        "tempUsage",
        "networkConnectors",
        "transport.hbGracePeriodMultiplier",
        "anonymousAccessAllowed",
        "openwire tcp://127.0.0.1:61616",
        "useJmx",
        "tls.cert_file",
    ):
        assert name in done.stderr, name
    assert "PropertyPlaceholderConfigurer" not in done.stderr

    # A broker runs it: the translated users, map, declared queue and policy at work.
    broker = start_with(done.stdout, tmp_path)
    try:
        assert broker.stats("orders.eu") is not None and broker.stats("prices", "topic")
        alice = stomp.Connection12([("127.0.0.1", broker.stomp_port)])
        heard = Collector()
        alice.set_listener("c", heard)
        alice.connect("alice", "wonderland", wait=True)
        # orders.> is read-only for users: alice's send is refused, as in ActiveMQ.
        alice.send("/queue/orders.eu", "no", receipt="r1")
        assert "not authorized to write" in heard.error().headers["message"]
        admin = stomp.Connection12([("127.0.0.1", broker.stomp_port)])
        said = Collector()
        admin.set_listener("c", said)
        admin.connect("admin", "s3cret", wait=True)
        try:
            admin.subscribe("/queue/orders.eu", id="1", ack="client-individual")
            admin.send("/queue/orders.eu", "bad", persistent="true", receipt="r2")
            assert said.receipt() == "r2"
            admin.nack(said.next().headers["ack"], receipt="r3")
            assert said.receipt() == "r3"
        finally:
            admin.disconnect()
        # The individual strategy with its prefix: DLQ.orders. + the queue's name.
        assert broker.stats("DLQ.orders.orders.eu").depth == 1
    finally:
        broker.stop()


def test_not_xml_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "activemq.xml"
    path.write_text("<beans><broker>")
    done = run_import(path)
    assert done.returncode == 2 and "is not XML" in done.stderr and done.stdout == ""
