"""[cluster] settings: absent means one node; the shipped example loads; errors name
the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import ClusterSettings, ConfigError, default_config_path, load_settings
from broker.server import Broker, StartupError

NODE = """
[cluster]
node_id = "a"
az = "az-a"
replication_address = "127.0.0.1:61700"
peers = { b = "127.0.0.1:61701", c = "127.0.0.1:61702" }
etcd_endpoints = ["http://127.0.0.1:2379"]
"""


def load(tmp_path: Path, text: str) -> ClusterSettings | None:
    path = tmp_path / "zonemq.toml"
    path.write_text(text)
    return load_settings(path, env={}).cluster


def test_no_cluster_table_is_a_single_node() -> None:
    assert load_settings(None, env={}).cluster is None
    assert load_settings(default_config_path(), env={}).cluster is None


def test_the_shipped_example_is_a_valid_node(tmp_path: Path) -> None:
    lines = default_config_path().read_text().splitlines()
    start = lines.index("#[cluster]")
    example = [line[1:] for line in lines[start:] if line.startswith("#")]
    cluster = load(tmp_path, "\n".join(example) + "\n")
    assert cluster is not None
    assert cluster.node_id == "a" and cluster.az == "az-a"
    assert dict(cluster.peers) == {"b": "10.0.2.10:61700", "c": "10.0.3.10:61700"}
    assert len(cluster.etcd_endpoints) == 3
    # The example states the defaults of the keys that have one.
    defaults = ClusterSettings()
    for key in ("etcd_prefix", "min_insync_azs", "lease_ttl", "step_down_margin"):
        assert getattr(cluster, key) == getattr(defaults, key), key


def test_defaults_fill_a_minimal_node(tmp_path: Path) -> None:
    cluster = load(tmp_path, NODE)
    assert cluster is not None
    assert cluster.min_insync_azs == 1
    assert cluster.lease_ttl == 6
    assert cluster.step_down_margin == 1.0


def test_environment_reaches_the_cluster_table(tmp_path: Path) -> None:
    path = tmp_path / "zonemq.toml"
    path.write_text(NODE)
    settings = load_settings(path, env={"ZONEMQ_CLUSTER__LEASE_TTL": "9"})
    assert settings.cluster is not None and settings.cluster.lease_ttl == 9


@pytest.mark.parametrize(
    ("extra", "key", "text"),
    [
        ('node_id = ""', "cluster.node_id", "must be set"),
        ('node_id = "a b"', "cluster.node_id", "letters, digits"),
        ('az = ""', "cluster.az", "must be set"),
        ('replication_address = "nowhere"', "cluster.replication_address", "host:port"),
        ('peers = { a = "127.0.0.1:1" }', "cluster.peers.a", "is this node"),
        ('peers = { b = "127.0.0.1:x" }', "cluster.peers.b", "host:port"),
        ("etcd_endpoints = []", "cluster.etcd_endpoints", "at least one"),
        ('etcd_endpoints = ["127.0.0.1:2379"]', "cluster.etcd_endpoints[0]", "http://"),
        ('etcd_prefix = "zonemq/"', "cluster.etcd_prefix", "start and not end"),
        ("lease_ttl = 1", "cluster.lease_ttl", "at least 2"),
        ("lease_ttl = 2.5", "cluster.lease_ttl", "integer"),
        ("step_down_margin = 0", "cluster.step_down_margin", "above 0"),
        ("step_down_margin = 4.0", "cluster.step_down_margin", "2/3 of lease_ttl"),
        ("min_insync_azs = 3", "cluster.min_insync_azs", "cannot be met"),
        ("min_insync_azs = -1", "cluster.min_insync_azs", "negative"),
        ('advertise = { smtp = "a:25" }', "cluster.advertise.smtp", "not a listener"),
        ('advertise = { stomp = "a" }', "cluster.advertise.stomp", "host:port"),
        ("colour = 1", "cluster.colour", "unknown setting"),
    ],
)
def test_bad_cluster_settings_name_the_key(tmp_path: Path, extra: str, key: str, text: str) -> None:
    body = "\n".join(
        line for line in NODE.splitlines() if line.split(" = ")[0] != extra.split(" = ")[0]
    )
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f"{body}\n{extra}\n")
    message = str(info.value)
    assert message.startswith(key), message
    assert text in message, message


async def test_a_broker_alone_refuses_to_start_as_a_cluster_node(tmp_path: Path) -> None:
    # A Broker started without the node's replication hook would acknowledge writes
    # that no standby has: refusing beats serving unreplicated while [cluster] is set.
    path = tmp_path / "zonemq.toml"
    path.write_text(f'[broker]\ndata_dir = "{tmp_path / "data"}"\n{NODE}')
    broker = Broker(load_settings(path, env={}))
    with pytest.raises(StartupError, match=r"run the broker through broker.cluster.node"):
        await broker.start()
    assert not (tmp_path / "data").exists()  # stopped before locking the data directory


@pytest.mark.parametrize("zone", ["a", "b", "c"])
def test_the_demo_cluster_files_load(zone: str) -> None:
    root = Path(__file__).resolve().parents[2]
    settings = load_settings(root / "config" / "cluster" / f"az-{zone}.toml", env={})
    c = settings.cluster
    assert c is not None and c.node_id == zone and c.az == f"az-{zone}"
    assert sorted(c.peers) == sorted({"a", "b", "c"} - {zone})
    assert set(c.advertise) == {"stomp", "amqp", "aws"}


def test_cluster_command_refuses_a_negative_minimum_clearly(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "zonemq.toml"
    path.write_text(f'[broker]\ndata_dir = "{tmp_path / "data"}"\n{NODE}')
    argv = [sys.executable, "-m", "broker", "cluster", "--config", str(path)]
    done = subprocess.run(
        [*argv, "min-insync-azs", "-1"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "min_insync_azs must be 0 or more" in done.stderr
