"""Typed settings: embedded defaults < config file (TOML) < environment < command-line flags.

Every setting is a field of a frozen dataclass below; its default is the embedded default,
and config/zonemq.toml documents the same values (a test keeps the two equal). Loading
validates once: an unknown key or a value of the wrong type or range stops start-up with
a ConfigError naming the dotted key (``listeners.stomp.port``). Nothing reads settings
lazily; the Broker receives a finished Settings and passes slices of it down.

Environment overrides are ``ZONEMQ_`` followed by the dotted key in upper case with
``__`` for each dot, e.g. ``ZONEMQ_LISTENERS__STOMP__PORT=61614``; values are parsed as
TOML scalars (so ``true``, ``10``, ``"text"`` or bare text).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.core.subjects import is_wildcard
from broker.passwords import is_hashed, parse_hash

# AWS's region names (us-east-1, ap-southeast-2, us-gov-west-1...): a country or area
# code, an optional isolated-partition infix, a direction and a number. The one rule:
# protocols/aws/regions.py checks credential scopes with it too.
AWS_REGION = re.compile(r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]{4,9}-[1-9][0-9]?")


class ConfigError(ValueError):
    """A setting is unknown or invalid; the message names its dotted key."""


@dataclass(frozen=True)
class BrokerSettings:
    """Process-wide settings."""

    name: str = "zonemq"
    data_dir: str = "./data"
    bind: str = "127.0.0.1"
    shutdown_timeout: float = 10.0
    log_level: str = "info"
    # "text" (one line per record) or "json" (one object per line: broker/logs.py).
    log_format: str = "text"
    # Publish ActiveMQ.Advisory.* topics (ActiveMQ's advisorySupport, on by default).
    advisory_support: bool = True
    # Scheduled delivery (AMQ_SCHEDULED_* headers, AMQP x-opt-delivery-*): off by
    # default, as ActiveMQ's schedulerSupport; off, the headers are checked and the
    # message is delivered at once. Past either bound a scheduled send is refused.
    scheduler_support: bool = False
    scheduler_max_jobs: int = 100000
    scheduler_max_bytes: int = 67108864


@dataclass(frozen=True)
class StompSettings:
    """The STOMP listener and its limits (ActiveMQ's defaults where it has one)."""

    enabled: bool = True
    port: int = 61613
    # STOMP+SSL (ActiveMQ's stomp+ssl) with the [tls] certificate, beside or instead of it.
    tls_enabled: bool = False
    tls_port: int = 61614
    max_connections: int = 10000
    max_frame_size: int = 104857600
    max_headers: int = 1000
    max_header_length: int = 10240
    max_subscriptions: int = 10000
    # Outbound bytes buffered for one connection before its consumers stop receiving.
    write_buffer_high: int = 1048576
    write_buffer_low: int = 262144
    # A client that promised heart-beats every N ms is dropped after N * grace of silence.
    heartbeat_grace: float = 1.5
    # A client that never sends CONNECT is dropped after this many seconds.
    connect_timeout: float = 30.0
    # Largest frame (body, and bytes buffered) before CONNECT has succeeded: an
    # unauthenticated client cannot make the broker hold more.
    max_connect_frame_size: int = 65536
    # Bytes of half-received frames all connections of the listener may hold together;
    # the connection that would pass it is closed with an ERROR.
    max_partial_bytes: int = 536870912
    # Seconds a frame may take from its first byte to its last (0: no limit), heart-beats
    # or not: a client cannot hold a half-sent frame open forever.
    frame_timeout: float = 60.0
    # False (ActiveMQ's reading): an undefined header escape is kept as it is, a body
    # longer than its content-length is cut to it (the rest discarded up to the NUL), an
    # unknown ack mode is auto. True: all three are errors (ERROR, connection closed).
    strict: bool = False
    # False (ActiveMQ's): MESSAGE frames carry no JMSXGroupID nor JMSXGroupSeq (message
    # fields ActiveMQ's STOMP translator does not copy; selectors still read them).
    # True: both are headers, as ZoneMQ sent them before issue 12.
    group_headers: bool = False


@dataclass(frozen=True)
class OpenWireSettings:
    """The OpenWire listener (ActiveMQ's JMS client protocol) and its limits."""

    # On, as ActiveMQ's openwire connector: JMS applications expect tcp://host:61616.
    enabled: bool = True
    port: int = 61616
    tls_enabled: bool = False
    tls_port: int = 61617
    max_connections: int = 10000
    # ActiveMQ's wireFormat.maxFrameSize default; also what we advertise.
    max_frame_size: int = 104857600
    # Largest frame before ConnectionInfo has logged in.
    max_connect_frame_size: int = 65536
    # Bytes of half-received frames all connections of the listener may hold together.
    max_partial_bytes: int = 536870912
    max_consumers: int = 10000
    write_buffer_high: int = 1048576
    write_buffer_low: int = 262144
    # The inactivity monitor (ActiveMQ's wireFormat.maxInactivityDuration, ms): the
    # lower of ours and the client's; 0 turns it off. Reading is checked only after
    # the initial delay.
    max_inactivity_duration: int = 30000
    max_inactivity_initial_delay: int = 10000
    # A client that sends no ConnectionInfo is dropped after this many seconds.
    connect_timeout: float = 30.0


@dataclass(frozen=True)
class AmqpSettings:
    """The AMQP 1.0 listener and its limits (ActiveMQ's defaults where it has one)."""

    enabled: bool = True
    port: int = 5672
    # AMQPS (ActiveMQ's amqp+ssl): TLS from the first byte, with the [tls] certificate.
    tls_enabled: bool = False
    tls_port: int = 5671
    max_connections: int = 10000
    # Largest frame we accept (negotiated down in open) and highest channel number.
    max_frame_size: int = 1048576
    channel_max: int = 32767
    # Largest message (all frames of one transfer) a client may send.
    max_message_size: int = 104857600
    # Seconds of silence before a peer is dropped (we advertise half of it in open).
    idle_timeout: float = 30.0
    # Outbound bytes buffered for one connection before its consumers stop receiving.
    write_buffer_high: int = 1048576
    write_buffer_low: int = 262144
    # Bytes of half-received frames and incomplete multi-frame messages all connections
    # of the listener may hold together; the connection that would pass it is closed
    # with amqp:resource-limit-exceeded.
    max_partial_bytes: int = 536870912
    # Seconds a frame, and a message split over several transfer frames, may take from
    # its first byte to its last (0: no limit): proton's idle timeout counts any byte.
    frame_timeout: float = 60.0


@dataclass(frozen=True)
class ConsoleSettings:
    """The HTTP console port: /metrics, /healthz, the admin API and the web console."""

    enabled: bool = True
    port: int = 8161
    # HTTPS (ActiveMQ's jetty SecureConnector port) with the [tls] certificate.
    tls_enabled: bool = False
    tls_port: int = 8162
    # The web console's charts: every destination's counters sampled this often
    # (seconds), the last `samples` kept in memory (5 s x 120: the last 10 minutes),
    # for at most `sampled_destinations` destinations (32 bytes a sample each).
    sample_interval: float = 5.0
    samples: int = 120
    sampled_destinations: int = 1000


@dataclass(frozen=True)
class AwsSettings:
    """The SQS HTTP API (AWS JSON 1.0 and Query protocols) on one port."""

    enabled: bool = True
    port: int = 9324
    # HTTPS for the SQS API with the [tls] certificate.
    tls_enabled: bool = False
    tls_port: int = 9325
    # Account id and region in queue URLs and ARNs.
    account_id: str = "000000000000"
    region: str = "us-east-1"
    # Largest MaximumMessageSize a queue may have (SQS allows up to 1 MiB).
    max_message_size: int = 1048576
    # Largest HTTP request body (a 1 MiB batch, JSON-escaped, with room to spare); larger
    # is refused with 413 from Content-Length, before it is read.
    max_request_size: int = 8388608
    # Past destinations.store_limit (policy "block") a send waits this long for space,
    # then is answered RequestThrottled (ActiveMQ's sendFailIfNoSpaceAfterTimeout); 0:
    # at once. Well inside botocore's 60 s read timeout, so the client hears the
    # throttle and backs off instead of timing out and resending on a new connection.
    send_block_timeout: float = 10.0
    # Sends that may wait at once (each holds its request body); more are throttled now.
    max_blocked_sends: int = 100
    # Seconds an unconfirmed SNS http/https subscription lives before it is deleted, and
    # how long the token of an UnsubscribeConfirmation restores the subscription (AWS:
    # "Confirmation tokens are valid for three days").
    sns_pending_expiry: float = 259200.0
    sns_token_expiry: float = 259200.0


@dataclass(frozen=True)
class TlsSettings:
    """The certificate every TLS listener serves (``tls_enabled`` per listener), client
    certificates, and what a verified client certificate's CN maps to (broker/tls.py)."""

    cert_file: str = ""
    # Empty: the key is in cert_file.
    key_file: str = ""
    key_password: str = ""
    # CA bundle client certificates are verified against; empty: none are asked for.
    ca_file: str = ""
    require_client_cert: bool = False
    min_version: str = "1.2"
    # Subject CN of a verified client certificate -> user name (in [auth] users).
    cert_users: Mapping[str, str] = field(default_factory=dict)
    # Seconds a STOMP or AMQP client has to finish the TLS handshake (or the closing one).
    handshake_timeout: float = 10.0


@dataclass(frozen=True)
class ListenerSettings:
    """All listeners; each protocol has its own table."""

    stomp: StompSettings = field(default_factory=StompSettings)
    amqp: AmqpSettings = field(default_factory=AmqpSettings)
    openwire: OpenWireSettings = field(default_factory=OpenWireSettings)
    aws: AwsSettings = field(default_factory=AwsSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)


@dataclass(frozen=True)
class PolicyOverrides:
    """The settings a policy entry may change; one left out (None) takes its
    `[destinations]` value."""

    dead_letter_queue: str | None = None
    # "shared" (every dead letter to dead_letter_queue, ActiveMQ's default) or
    # "individual" (to dead_letter_prefix + the destination's name, a queue).
    dead_letter_strategy: str | None = None
    dead_letter_prefix: str | None = None
    dead_letter_non_persistent: bool | None = None
    expired_to_dlq: bool | None = None
    max_redeliveries: int | None = None
    prioritized_messages: bool | None = None
    # A queue's memory limit (memoryLimit), bytes.
    memory_limit: int | None = None
    # ActiveMQ's producerFlowControl (destinations.producer_flow_control).
    producer_flow_control: bool | None = None
    queue_prefetch: int | None = None
    topic_prefetch: int | None = None
    topic_pending_limit: int | None = None
    # Delete a destination with no consumers, no messages and no sends for
    # inactive_timeout_before_gc seconds (ActiveMQ's gcInactiveDestinations, off by
    # default; checked every destinations.inactive_purge_period, never when it is 0).
    gc_inactive_destinations: bool | None = None
    inactive_timeout_before_gc: float | None = None
    # An ActiveMQ.Advisory.SlowConsumer.Topic.<name> message when a topic subscriber
    # passes its pending limit (ActiveMQ's advisoryForSlowConsumers).
    advisory_for_slow_consumers: bool | None = None
    # Message groups a queue keeps an owner for (ActiveMQ's CachedMessageGroupMap).
    message_group_cache_size: int | None = None


@dataclass(frozen=True)
class DestinationPolicy(PolicyOverrides):
    """Overrides for destinations whose name matches an ActiveMQ wildcard pattern
    (ActiveMQ's policyEntry). A setting left out takes its `[destinations]` value."""

    pattern: str = ">"
    # "" for queues and topics alike, "queue" or "topic" for one kind (temporary ones
    # included), as a policyEntry's queue= / topic=.
    kind: str = ""


@dataclass(frozen=True)
class DeclaredDestination(PolicyOverrides):
    """A queue (``[[queues]]``) or topic (``[[topics]]``) created at every start, as
    ActiveMQ's ``<destinations>``. Policy keys beside the name apply to it alone: they
    become a policy entry for exactly that name, ahead of ``[destinations] policies``."""

    name: str = ""


@dataclass(frozen=True)
class DestinationSettings:
    """Defaults for every destination; ``policies`` override them by name pattern."""

    queue_prefetch: int = 1000
    topic_prefetch: int = 32766
    # Returns (a consumer gone with the message unacknowledged, a modified outcome) past
    # which a message is dead-lettered; -1: never, as ActiveMQ without its redelivery
    # plugin (its default). A NACK / rejected outcome dead-letters at once either way.
    max_redeliveries: int = -1
    dead_letter_queue: str = "ActiveMQ.DLQ"
    expired_to_dlq: bool = True
    dead_letter_non_persistent: bool = False
    expiry_check_interval: float = 30.0
    # Seconds between looks for inactive destinations a policy lets go
    # (gc_inactive_destinations): ActiveMQ's schedulePeriodForDestinationPurge, 0 by
    # default, and then, as in ActiveMQ, none is ever collected.
    inactive_purge_period: float = 0.0
    # Bytes of messages (bodies, headers, a per-message overhead) a queue holds before
    # producers are made to wait.
    queue_memory_limit: int = 67108864
    # ActiveMQ's producerFlowControl: a producer whose messages a queue over its memory
    # limit must keep in memory (non-persistent ones; persistent ones page out to the
    # journal) is paused until the queue drains. False: it is not, and those messages
    # stay in memory past the limit, all such queues together within
    # overflow_memory_limit, past which their producers are paused after all.
    producer_flow_control: bool = True
    overflow_memory_limit: int = 268435456
    # ActiveMQ's sendFailIfNoSpace: a send that would pause its producer for memory is
    # refused instead (STOMP ERROR, AMQP rejected), with ActiveMQ's text.
    send_fail_if_no_space: bool = False
    # Bytes of persistent messages the store may hold (ActiveMQ's storeUsage, 100 GB by
    # default; 0: no limit); past it, producers to durable queues are paused ("block",
    # ActiveMQ's default) or their sends refused with the protocol's error ("fail").
    store_limit: int = 107374182400
    store_full_policy: str = "block"
    # Messages a topic subscriber may fall behind before the slow-consumer policy acts.
    topic_pending_limit: int = 10000
    slow_consumer_policy: str = "drop-oldest"
    # Dispatch higher priorities first (ActiveMQ's prioritizedMessages, false by default:
    # arrival order whatever the priority header says).
    prioritized_messages: bool = False
    # Message groups a queue keeps an owner for; past it the least recently used group
    # loses its owner (ActiveMQ's CachedMessageGroupMap, 1024 by default).
    message_group_cache_size: int = 1024
    policies: tuple[DestinationPolicy, ...] = ()


@dataclass(frozen=True)
class VirtualTopicSettings:
    """ActiveMQ's default virtualDestinationInterceptor (on in 5.17 unless a broker
    configures its own): a message sent to a topic matching `name` also goes to each
    existing queue named `prefix` + that topic's name."""

    enabled: bool = True
    name: str = "VirtualTopic.>"
    prefix: str = "Consumer.*."


@dataclass(frozen=True)
class StoreSettings:
    """The journal of persistent messages (in `broker.data_dir`/journal)."""

    fsync: str = "always"
    fsync_interval_ms: int = 100
    segment_size: int = 67108864
    # Seconds between checks for old segments worth compacting.
    compaction_interval: float = 10.0
    # Start even if a record in the middle of the journal is corrupt, skipping it.
    skip_corrupt: bool = False


@dataclass(frozen=True)
class AuthorizationEntry:
    """One entry of the authorization map (ActiveMQ's authorizationEntry): a `queue` or
    `topic` wildcard pattern, or `temp = true` (tempDestinationAuthorizationEntry), and
    the groups that may read (consume, browse), write (send) and admin (create)."""

    queue: str = ""
    topic: str = ""
    temp: bool = False
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthSettings:
    """Users (name to scrypt hash or password); empty means no authentication (loopback
    only). Groups, the authorization map and the login throttle (broker/auth.py)."""

    users: Mapping[str, str] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    authorization: tuple[AuthorizationEntry, ...] = ()
    # SigV4 secrets (user -> secret) for users whose password is stored hashed.
    sqs_secrets: Mapping[str, str] = field(default_factory=dict)
    max_login_failures: int = 10
    login_failure_window: float = 60.0
    login_block_time: float = 60.0


@dataclass(frozen=True)
class ClusterSettings:
    """This node's place in a cluster (issue 11; broker/cluster). Absent: one node."""

    # Unique in the cluster, and the node's availability-zone tag.
    node_id: str = ""
    az: str = ""
    # host:port this node's replication listens on, and the peers' (node id = host:port).
    replication_address: str = ""
    peers: Mapping[str, str] = field(default_factory=dict)
    etcd_endpoints: tuple[str, ...] = ("http://127.0.0.1:2379",)
    # Keys of this cluster live under it (several clusters may share one etcd).
    etcd_prefix: str = "/zonemq/zonemq"
    # A persistent write completes when durable on the active and on standbys in at
    # least this many other zones.
    min_insync_azs: int = 1
    # The active's etcd lease, in whole seconds (etcd's unit), and how long before its
    # earliest possible expiry an active that could not renew it steps down.
    lease_ttl: int = 6
    step_down_margin: float = 1.0
    # Client addresses to publish, by listener name (stomp = "a.example:61613"), and
    # "replication" when standbys reach this node's replication at another address.
    advertise: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    """The whole configuration, built once by load_settings."""

    broker: BrokerSettings = field(default_factory=BrokerSettings)
    listeners: ListenerSettings = field(default_factory=ListenerSettings)
    destinations: DestinationSettings = field(default_factory=DestinationSettings)
    virtual_topics: VirtualTopicSettings = field(default_factory=VirtualTopicSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    # None (no [cluster] table): a single node that needs no etcd.
    cluster: ClusterSettings | None = None
    # Destinations created at start (top-level [[queues]] and [[topics]] entries).
    queues: tuple[DeclaredDestination, ...] = ()
    topics: tuple[DeclaredDestination, ...] = ()


log = logging.getLogger("zonemq")

# The settings tables (a ZONEMQ_ variable that names none of them is not a setting).
_TABLES = frozenset(f.name for f in dataclasses.fields(Settings))

# Settings whose values are secrets: `zonemq config show` masks them (a table's values,
# not its keys: user names are shown).
SECRET_SETTINGS = frozenset({"auth.users", "auth.sqs_secrets", "tls.key_password"})

# Where a setting's value came from when nothing set it.
DEFAULT_SOURCE = "default"

_CHOICES: dict[str, tuple[str, ...]] = {
    "broker.log_level": ("debug", "info", "warning", "error"),
    "broker.log_format": ("text", "json"),
    "destinations.slow_consumer_policy": ("drop-oldest", "disconnect"),
    "store.fsync": ("always", "interval", "never"),
    "destinations.store_full_policy": ("block", "fail"),
    "tls.min_version": ("1.2", "1.3"),
}
_PORTS = (
    "listeners.stomp.port",
    "listeners.amqp.port",
    "listeners.aws.port",
    "listeners.console.port",
    "listeners.stomp.tls_port",
    "listeners.amqp.tls_port",
    "listeners.aws.tls_port",
    "listeners.console.tls_port",
)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge file, environment and flag overrides (dotted keys) over the embedded defaults."""
    return load_with_sources(path, env=env, overrides=overrides)[0]


def load_with_sources(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    override_labels: Mapping[str, str] | None = None,
) -> tuple[Settings, dict[str, str]]:
    """`load_settings`, and where each setting (a `flatten` key) came from: "default",
    the file's path, the ``ZONEMQ_`` variable's name, or `override_labels`' name for an
    override's key (a command-line flag; "override" without one). The last source to
    set a key, or anything inside it (one user of ``auth.users``), wins, as it does for
    the value."""
    raw: dict[str, Any] = {}
    setters: list[tuple[str, str]] = []
    if path is not None:
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        setters.extend((key, os.fspath(path)) for key in _leaf_keys(raw))
    for key, (value, name) in _env_overrides(os.environ if env is None else env).items():
        _set_dotted(raw, key, value)
        setters.append((key, name))
    labels = override_labels or {}
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, key, value)
            setters.append((key, labels.get(key, "override")))
    settings = _build(Settings, raw, "")
    _validate(settings)
    sources: dict[str, str] = {}
    for key in flatten(settings):
        sources[key] = DEFAULT_SOURCE
        for set_key, source in setters:
            if set_key == key or set_key.startswith(key + "."):
                sources[key] = source
    return settings, sources


def _leaf_keys(table: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of a parsed TOML document's values (an array of tables is one value)."""
    out: list[str] = []
    for key, value in table.items():
        if isinstance(value, dict) and value:
            out.extend(_leaf_keys(value, f"{prefix}{key}."))
        else:
            out.append(f"{prefix}{key}")
    return out


def flatten(settings: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key to value for every setting (used by the defaults test and `zonemq config`);
    an absent optional table ([cluster]) has no keys."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        key = f"{prefix}{f.name}"
        if value is None:
            continue
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, key + "."))
        else:
            out[key] = value
    return out


def _env_overrides(env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    """`ZONEMQ_<KEY>` variables as dotted settings (value, variable name). A value is
    read by its setting's type: a string setting takes the text as it is
    (ZONEMQ_LISTENERS__AWS__ACCOUNT_ID=123456789012 stays a string), any other is
    read as a TOML value (true, 2.5, a list). A variable whose first part names no
    settings table is not ours (Kubernetes injects ZONEMQ_SERVICE_HOST, ZONEMQ_PORT...
    for a Service named zonemq): ignored, with a debug line; one inside a table that
    names no setting is still an error (a typo must not pass silently)."""
    out: dict[str, tuple[Any, str]] = {}
    for name, text in env.items():
        if not name.startswith("ZONEMQ_") or name in ("ZONEMQ_CONFIG",):
            continue
        key = name[len("ZONEMQ_") :].lower().replace("__", ".")
        if key.split(".", 1)[0] not in _TABLES:
            log.debug("environment: %s is not a setting; ignored", name)
            continue
        if _hint_of(key) is str:
            out[key] = (text, name)
            continue
        try:
            out[key] = (tomllib.loads(f"v = {text}")["v"], name)
        except tomllib.TOMLDecodeError:
            out[key] = (text, name)
    return out


def _hint_of(key: str) -> Any:
    """The type of dotted setting `key` (a map's value type for a key inside a map),
    or None when no setting has that name."""
    hint: Any = Settings
    for part in key.split("."):
        if typing.get_origin(hint) is types.UnionType:
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if dataclasses.is_dataclass(hint):
            hints = typing.get_type_hints(hint)
            if part not in hints:
                return None
            hint = hints[part]
        elif typing.get_origin(hint) in (Mapping, dict):
            hint = typing.get_args(hint)[1]
        else:
            return None
    if typing.get_origin(hint) is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else hint
    return hint


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = raw
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: {part} is not a table")
        node = child
    node[last] = value


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise ConfigError(f"{prefix}{key}: unknown setting")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in raw:
            kwargs[f.name] = _convert(hints[f.name], raw[f.name], prefix + f.name)
    return cls(**kwargs)


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is types.UnionType:
        # An optional table: present in the file means built; TOML has no null.
        (hint,) = [arm for arm in typing.get_args(hint) if arm is not type(None)]
        origin = None
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".")
    if origin is tuple:
        (item,) = typing.get_args(hint)[:1]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list")
        return tuple(_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict):
        item = typing.get_args(hint)[1]
        if item is not str:
            # A table of other values (lists of names): each converted by its own type.
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a table")
            return types.MappingProxyType(
                {k: _convert(item, v, f"{key}.{k}") for k, v in value.items()}
            )
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigError(f"{key}: expected a table of strings")
        return types.MappingProxyType(dict(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")  # pragma: no cover


# Settings where -1 means "none" (no limit), as ActiveMQ's own -1 does.
_MINUS_ONE_IS_NONE = frozenset({"destinations.max_redeliveries"})


def _validate_virtual_topics(v: VirtualTopicSettings) -> None:
    segments = v.name.split(".")
    if not v.name or "" in segments:
        raise ConfigError(f"virtual_topics.name: not a destination pattern: {v.name!r}")
    prefix = v.prefix.split(".")
    if not v.prefix.endswith(".") or "" in prefix[:-1] or ">" in prefix:
        raise ConfigError(
            "virtual_topics.prefix: segments ending with '.', '*' for any one segment "
            f"(no '>'), got {v.prefix!r}"
        )


def _validate(s: Settings) -> None:
    flat = flatten(s)
    _validate_virtual_topics(s.virtual_topics)
    for key, choices in _CHOICES.items():
        if flat[key] not in choices:
            raise ConfigError(f"{key}: must be one of {', '.join(choices)}, got {flat[key]!r}")
    for key in _PORTS:
        if not 0 <= flat[key] <= 65535:
            raise ConfigError(f"{key}: port must be 0..65535, got {flat[key]}")
    for key, value in flat.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            if key in _MINUS_ONE_IS_NONE and value == -1:
                continue
            raise ConfigError(f"{key}: must not be negative, got {value}")
    for key in (
        "listeners.stomp.max_frame_size",
        "listeners.stomp.max_headers",
        "listeners.stomp.max_header_length",
        "listeners.stomp.max_connect_frame_size",
        "listeners.stomp.max_partial_bytes",
        "listeners.amqp.max_frame_size",
        "listeners.amqp.max_message_size",
        "listeners.amqp.max_partial_bytes",
        "destinations.queue_prefetch",
        "destinations.topic_prefetch",
        "destinations.topic_pending_limit",
        "destinations.queue_memory_limit",
        "destinations.overflow_memory_limit",
        "store.fsync_interval_ms",
    ):
        if flat[key] < 1:
            raise ConfigError(f"{key}: must be at least 1, got {flat[key]}")
    if s.destinations.inactive_purge_period < 0:
        raise ConfigError(
            "destinations.inactive_purge_period: must be 0 (never) or more, got "
            f"{s.destinations.inactive_purge_period}"
        )
    if s.store.segment_size < 65536:
        raise ConfigError(f"store.segment_size: must be at least 65536, got {s.store.segment_size}")
    stomp = s.listeners.stomp
    if stomp.write_buffer_low > stomp.write_buffer_high:
        raise ConfigError("listeners.stomp.write_buffer_low: must not exceed write_buffer_high")
    amqp = s.listeners.amqp
    if amqp.write_buffer_low > amqp.write_buffer_high:
        raise ConfigError("listeners.amqp.write_buffer_low: must not exceed write_buffer_high")
    if amqp.max_frame_size < 512:
        # AMQP 1.0 2.7.1: every peer must accept frames of 512 bytes.
        raise ConfigError("listeners.amqp.max_frame_size: must be at least 512")
    if amqp.channel_max > 65535:
        raise ConfigError("listeners.amqp.channel_max: must be at most 65535")
    aws = s.listeners.aws
    if not 1024 <= aws.max_message_size <= 1048576:
        raise ConfigError("listeners.aws.max_message_size: must be 1024..1048576")
    if aws.max_request_size < 2 * aws.max_message_size:
        raise ConfigError("listeners.aws.max_request_size: must be at least 2 * max_message_size")
    if not 0.05 <= s.listeners.console.sample_interval <= 3600:
        raise ConfigError("listeners.console.sample_interval: must be 0.05..3600 seconds")
    if not 2 <= s.listeners.console.samples <= 10000:
        raise ConfigError("listeners.console.samples: must be 2..10000")
    if s.listeners.console.sampled_destinations < 0:
        raise ConfigError("listeners.console.sampled_destinations: must be >= 0")
    if not 0 <= aws.send_block_timeout <= 3600:
        raise ConfigError("listeners.aws.send_block_timeout: must be 0..3600 seconds")
    if aws.max_blocked_sends < 0:
        raise ConfigError("listeners.aws.max_blocked_sends: must be >= 0")
    for key in ("sns_pending_expiry", "sns_token_expiry"):
        if not getattr(aws, key) > 0:
            raise ConfigError(f"listeners.aws.{key}: must be > 0 seconds")
    if not (len(aws.account_id) == 12 and aws.account_id.isdigit()):
        raise ConfigError("listeners.aws.account_id: must be 12 digits")
    if not AWS_REGION.fullmatch(aws.region):
        raise ConfigError(
            f"listeners.aws.region: not an AWS region name (like us-east-1): {aws.region!r}"
        )
    if stomp.heartbeat_grace < 1.0:
        raise ConfigError("listeners.stomp.heartbeat_grace: must be at least 1.0")
    try:
        address = ipaddress.ip_address(s.broker.bind)
    except ValueError:
        raise ConfigError(f"broker.bind: not an IP address: {s.broker.bind!r}") from None
    if not address.is_loopback and not s.auth.users:
        raise ConfigError(
            f"broker.bind: refusing to listen on non-loopback address {s.broker.bind} "
            "without users configured in [auth] users"
        )
    if s.destinations.message_group_cache_size < 1:
        raise ConfigError(
            "destinations.message_group_cache_size: must be at least 1, "
            f"got {s.destinations.message_group_cache_size}"
        )
    for i, policy in enumerate(s.destinations.policies):
        _validate_policy(f"destinations.policies[{i}]", policy)
    _validate_declared("queues", s.queues)
    _validate_declared("topics", s.topics)
    _validate_auth(s.auth)
    _validate_tls(s)
    if s.cluster is not None:
        _validate_cluster(s.cluster, s)


def _validate_declared(table: str, declared: tuple[DeclaredDestination, ...]) -> None:
    seen: dict[str, int] = {}
    for i, d in enumerate(declared):
        key = f"{table}[{i}]"
        if not d.name:
            raise ConfigError(f"{key}.name: must be set")
        if is_wildcard(d.name) or "," in d.name:
            # A wildcard or a composite (a,b) names several destinations: declare each.
            raise ConfigError(f"{key}.name: one destination, no wildcard nor ',', got {d.name!r}")
        if d.name in seen:
            first = f"{table}[{seen[d.name]}]"
            raise ConfigError(f"{key}.name: {d.name!r} is declared already ({first})")
        seen[d.name] = i
        _validate_overrides(key, d)


def _validate_policy(key: str, p: DestinationPolicy) -> None:
    if not p.pattern:
        raise ConfigError(f"{key}.pattern: must not be empty")
    if p.kind not in ("", "queue", "topic"):
        raise ConfigError(f'{key}.kind: must be "", "queue" or "topic", got {p.kind!r}')
    _validate_overrides(key, p)


def _validate_overrides(key: str, p: PolicyOverrides) -> None:
    if p.dead_letter_strategy is not None and p.dead_letter_strategy not in (
        "shared",
        "individual",
    ):
        raise ConfigError(
            f'{key}.dead_letter_strategy: must be "shared" or "individual", '
            f"got {p.dead_letter_strategy!r}"
        )
    if p.dead_letter_queue is not None and not p.dead_letter_queue:
        raise ConfigError(f"{key}.dead_letter_queue: must not be empty")
    if p.dead_letter_prefix is not None and not p.dead_letter_prefix:
        raise ConfigError(f"{key}.dead_letter_prefix: must not be empty")
    if p.max_redeliveries is not None and p.max_redeliveries < -1:
        raise ConfigError(
            f"{key}.max_redeliveries: must be -1 (none) or more, got {p.max_redeliveries}"
        )
    for name in (
        "memory_limit",
        "queue_prefetch",
        "topic_prefetch",
        "topic_pending_limit",
        "message_group_cache_size",
    ):
        value = getattr(p, name)
        if value is not None and value < 1:
            raise ConfigError(f"{key}.{name}: must be at least 1, got {value}")
    if p.inactive_timeout_before_gc is not None and p.inactive_timeout_before_gc < 0:
        raise ConfigError(
            f"{key}.inactive_timeout_before_gc: must not be negative, "
            f"got {p.inactive_timeout_before_gc}"
        )


def _validate_auth(auth: AuthSettings) -> None:
    for user, stored in auth.users.items():
        if is_hashed(stored):
            try:
                parse_hash(stored)
            except ValueError as exc:
                raise ConfigError(f"auth.users.{user}: bad scrypt hash: {exc}") from None
    for group, members in auth.groups.items():
        for member in members:
            if member not in auth.users:
                raise ConfigError(f"auth.groups.{group}: {member!r} is not in auth.users")
    for user in auth.sqs_secrets:
        if user not in auth.users:
            raise ConfigError(f"auth.sqs_secrets.{user}: not in auth.users")
    if auth.authorization and not auth.users:
        raise ConfigError("auth.authorization: needs users in auth.users")
    temps = 0
    for i, entry in enumerate(auth.authorization):
        key = f"auth.authorization[{i}]"
        if (bool(entry.queue), bool(entry.topic), entry.temp).count(True) != 1:
            raise ConfigError(f"{key}: needs exactly one of queue, topic or temp = true")
        temps += entry.temp
        if temps > 1:
            raise ConfigError(f"{key}: only one temp = true entry is allowed")
        for op in ("read", "write", "admin"):
            for group in getattr(entry, op):
                if group not in auth.groups:
                    raise ConfigError(f"{key}.{op}: {group!r} is not in auth.groups")


def _validate_tls(s: Settings) -> None:
    tls = s.tls
    for f in dataclasses.fields(ListenerSettings):
        own = getattr(s.listeners, f.name)
        if own.tls_enabled and not tls.cert_file:
            raise ConfigError(
                f"listeners.{f.name}.tls_enabled: needs a certificate in tls.cert_file"
            )
        if own.enabled and own.tls_enabled and own.port == own.tls_port != 0:
            raise ConfigError(f"listeners.{f.name}.tls_port: must differ from its port")
    if tls.require_client_cert and not tls.ca_file:
        raise ConfigError("tls.require_client_cert: needs tls.ca_file to verify them against")
    if tls.cert_users and not tls.ca_file:
        raise ConfigError("tls.cert_users: needs tls.ca_file (only verified certificates map)")
    for cn, user in tls.cert_users.items():
        if user not in s.auth.users:
            raise ConfigError(f"tls.cert_users.{cn}: {user!r} is not in auth.users")


def _host_port(text: str, key: str) -> None:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ConfigError(f"{key}: expected host:port, got {text!r}")


def _validate_cluster(c: ClusterSettings, s: Settings) -> None:
    for key in ("node_id", "az", "replication_address"):
        if not getattr(c, key):
            raise ConfigError(f"cluster.{key}: must be set when [cluster] is present")
    if not all(ch.isalnum() or ch in "._-" for ch in c.node_id):
        raise ConfigError(
            f"cluster.node_id: letters, digits, '.', '_' and '-' only, got {c.node_id!r}"
        )
    _host_port(c.replication_address, "cluster.replication_address")
    for node, address in c.peers.items():
        if node == c.node_id:
            raise ConfigError(f"cluster.peers.{node}: is this node (cluster.node_id)")
        _host_port(address, f"cluster.peers.{node}")
    if not c.etcd_endpoints:
        raise ConfigError("cluster.etcd_endpoints: at least one etcd endpoint is needed")
    for i, url in enumerate(c.etcd_endpoints):
        scheme, sep, rest = url.partition("://")
        if scheme not in ("http", "https") or not sep:
            raise ConfigError(
                f"cluster.etcd_endpoints[{i}]: expected http://host:port, got {url!r}"
            )
        _host_port(rest.rstrip("/"), f"cluster.etcd_endpoints[{i}]")
    if not c.etcd_prefix.startswith("/") or c.etcd_prefix.endswith("/"):
        raise ConfigError(
            f"cluster.etcd_prefix: must start and not end with '/', got {c.etcd_prefix!r}"
        )
    if c.lease_ttl < 2:
        raise ConfigError(f"cluster.lease_ttl: must be at least 2 seconds, got {c.lease_ttl}")
    # The deadline must come after the first renewal (at TTL/3): broker/cluster/election.py.
    if not 0 < c.step_down_margin < c.lease_ttl * 2 / 3:
        raise ConfigError(
            f"cluster.step_down_margin: must be above 0 and below 2/3 of lease_ttl"
            f" ({c.lease_ttl * 2 / 3:.2f}), got {c.step_down_margin}"
        )
    if c.min_insync_azs > len(c.peers):
        raise ConfigError(
            f"cluster.min_insync_azs: {c.min_insync_azs} other zones cannot be met"
            f" by {len(c.peers)} peers"
        )
    # "replication": the address standbys reach this node's replication at, when it is
    # not the one it binds (NAT, a proxy).
    listeners = {f.name for f in dataclasses.fields(ListenerSettings)} | {"replication"}
    for name, address in c.advertise.items():
        if name.partition("+")[0] not in listeners:
            raise ConfigError(
                f"cluster.advertise.{name}: not a listener ({', '.join(sorted(listeners))})"
            )
        _host_port(address, f"cluster.advertise.{name}")


def default_config_path() -> Path:
    """The documented configuration file shipped in the repository."""
    return Path(__file__).resolve().parent.parent / "config" / "zonemq.toml"
