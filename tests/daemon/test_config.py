"""Settings: the shipped TOML equals the embedded defaults, validation names the dotted key,
and the precedence is defaults < file < environment < flags."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from broker.config import ConfigError, Settings, default_config_path, flatten, load_settings

# Settings that are tables of names (Mapping fields), leaves rather than sections.
_MAPPINGS = ("auth.users", "auth.groups", "auth.sqs_secrets", "tls.cert_users")


def _dotted(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key to value for every leaf of a parsed TOML document (inline tables of
    user names are leaves, as they are in Settings)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted not in _MAPPINGS:
            out.update(_dotted(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "zonemq.toml"
    path.write_text(text)
    return path


# -- the shipped file ----------------------------------------------------------------------


def test_shipped_config_equals_embedded_defaults() -> None:
    path = default_config_path()
    assert path.is_file(), path
    assert load_settings(path, env={}) == Settings()


def test_shipped_config_documents_every_setting() -> None:
    with open(default_config_path(), "rb") as fh:
        documented = _dotted(tomllib.load(fh))
    expected = flatten(Settings())
    missing = sorted(set(expected) - set(documented))
    assert not missing, f"settings missing from config/zonemq.toml: {missing}"
    extra = sorted(set(documented) - set(expected))
    assert not extra, f"config/zonemq.toml documents unknown settings: {extra}"
    # Same values too, key by key (a clearer failure than the Settings comparison above).
    for key, value in expected.items():
        file_value = documented[key]
        if isinstance(value, tuple):
            file_value = tuple(file_value)
        elif hasattr(value, "items"):
            value = dict(value)
        assert file_value == value, key


def test_no_file_no_env_is_the_defaults() -> None:
    assert load_settings(None, env={}) == Settings()


# -- validation names the key ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[listeners.stomp]\nbogus = 1\n", "listeners.stomp.bogus"),
        ("[broker]\nnmae = 'x'\n", "broker.nmae"),
        ("[nonsense]\nx = 1\n", "nonsense"),
        ("[destinations]\nqueue_prefetch = 10\ncolour = 'red'\n", "destinations.colour"),
    ],
    ids=["stomp-key", "broker-typo", "unknown-table", "destinations-key"],
)
def test_unknown_key_is_refused_naming_it(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), env={})
    assert key in str(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[listeners.stomp]\nport = "61613"\n', "listeners.stomp.port"),
        ("[listeners.stomp]\nport = true\n", "listeners.stomp.port"),
        ("[listeners.stomp]\nmax_frame_size = 1.5\n", "listeners.stomp.max_frame_size"),
        ('[listeners.stomp]\nenabled = "yes"\n', "listeners.stomp.enabled"),
        ('[listeners.stomp]\nheartbeat_grace = "1.5"\n', "listeners.stomp.heartbeat_grace"),
        ("[broker]\nname = 5\n", "broker.name"),
        ("[auth]\nusers = { admin = 1 }\n", "auth.users"),
        ("[destinations]\npolicies = 3\n", "destinations.policies"),
        ("[listeners]\nstomp = 1\n", "listeners.stomp"),
    ],
    ids=[
        "port-string",
        "port-bool",
        "int-float",
        "bool-string",
        "float-string",
        "str-int",
        "users-int",
        "list-int",
        "table-int",
    ],
)
def test_wrong_type_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), env={})
    assert key in str(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[broker]\nlog_level = "loud"\n', "broker.log_level"),
        ('[destinations]\nslow_consumer_policy = "ignore"\n', "destinations.slow_consumer_policy"),
        ("[listeners.stomp]\nport = 65536\n", "listeners.stomp.port"),
        ("[listeners.console]\nport = 70000\n", "listeners.console.port"),
        ("[listeners.stomp]\nport = -1\n", "listeners.stomp.port"),
        ("[listeners.stomp]\nmax_headers = 0\n", "listeners.stomp.max_headers"),
        ("[destinations]\nmax_redeliveries = -2\n", "destinations.max_redeliveries"),
        ("[listeners.stomp]\nheartbeat_grace = 0.5\n", "listeners.stomp.heartbeat_grace"),
        ('[broker]\nbind = "localhost-ish"\n', "broker.bind"),
    ],
    ids=[
        "bad-log-level",
        "bad-policy",
        "stomp-port-high",
        "console-port-high",
        "port-negative",
        "zero-limit",
        "negative",
        "grace-below-1",
        "bind-not-ip",
    ],
)
def test_bad_value_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), env={})
    assert key in str(info.value)


def test_bad_flag_value_names_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={}, overrides={"listeners.stomp.port": 99999})
    assert "listeners.stomp.port" in str(info.value)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "[broker\nname = 'x'\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(path) in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(path) in str(info.value)


def test_ports_at_the_edges_are_accepted() -> None:
    s = load_settings(
        None, env={}, overrides={"listeners.stomp.port": 0, "listeners.console.port": 65535}
    )
    assert s.listeners.stomp.port == 0
    assert s.listeners.console.port == 65535


# -- environment and precedence ----------------------------------------------------------------


def test_env_override_sets_the_port() -> None:
    s = load_settings(None, env={"ZONEMQ_LISTENERS__STOMP__PORT": "61614"})
    assert s.listeners.stomp.port == 61614
    assert isinstance(s.listeners.stomp.port, int)


def test_env_values_are_parsed_as_toml_scalars() -> None:
    s = load_settings(
        None,
        env={
            "ZONEMQ_LISTENERS__CONSOLE__ENABLED": "false",
            "ZONEMQ_BROKER__NAME": "edge-1",
            "ZONEMQ_BROKER__SHUTDOWN_TIMEOUT": "2.5",
            "HOME": "/root",  # unrelated variables are ignored
        },
    )
    assert s.listeners.console.enabled is False
    assert s.broker.name == "edge-1"
    assert s.broker.shutdown_timeout == 2.5


def test_env_unknown_key_names_the_dotted_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"ZONEMQ_LISTENERS__STOMP__PROT": "1"})
    assert "listeners.stomp.prot" in str(info.value)


def test_env_wrong_type_names_the_dotted_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"ZONEMQ_LISTENERS__STOMP__PORT": "lots"})
    assert "listeners.stomp.port" in str(info.value)


def test_precedence_flags_beat_env_beat_file(tmp_path: Path) -> None:
    path = _write(tmp_path, '[listeners.stomp]\nport = 1111\n[broker]\nname = "from-file"\n')
    env = {"ZONEMQ_LISTENERS__STOMP__PORT": "2222"}
    flags = {"listeners.stomp.port": 3333}

    assert load_settings(path, env={}).listeners.stomp.port == 1111
    assert load_settings(path, env=env).listeners.stomp.port == 2222
    both = load_settings(path, env=env, overrides=flags)
    assert both.listeners.stomp.port == 3333
    # Keys nobody overrides keep the file's value; the rest keep the defaults.
    assert both.broker.name == "from-file"
    assert both.listeners.console.port == Settings().listeners.console.port
    # A flag that was not given (None) does not override anything.
    unset = load_settings(path, env=env, overrides={"listeners.stomp.port": None})
    assert unset.listeners.stomp.port == 2222


# -- binding beyond loopback ---------------------------------------------------------------------


@pytest.mark.parametrize("bind", ["0.0.0.0", "192.0.2.10", "::"])
def test_non_loopback_bind_without_users_is_refused(bind: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={}, overrides={"broker.bind": bind})
    assert "broker.bind" in str(info.value)


@pytest.mark.parametrize("bind", ["0.0.0.0", "::"])
def test_non_loopback_bind_with_users_is_allowed(bind: str) -> None:
    s = load_settings(
        None, env={}, overrides={"broker.bind": bind, "auth.users": {"admin": "secret"}}
    )
    assert s.broker.bind == bind
    assert dict(s.auth.users) == {"admin": "secret"}


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.2", "::1"])
def test_loopback_bind_needs_no_users(bind: str) -> None:
    assert load_settings(None, env={}, overrides={"broker.bind": bind}).broker.bind == bind


def test_users_from_file_allow_a_public_bind(tmp_path: Path) -> None:
    path = _write(tmp_path, '[broker]\nbind = "0.0.0.0"\n[auth]\nusers = { admin = "secret" }\n')
    s = load_settings(path, env={})
    assert s.broker.bind == "0.0.0.0"
    assert s.auth.users["admin"] == "secret"


def test_virtual_topic_settings_are_checked() -> None:
    s = load_settings(None, env={}, overrides={"virtual_topics.prefix": "Q.*.Pre."})
    assert s.virtual_topics.prefix == "Q.*.Pre." and s.virtual_topics.enabled
    for key, value, words in [
        ("virtual_topics.prefix", "Consumer.*", "ending with '.'"),
        ("virtual_topics.prefix", "Consumer.>.", "no '>'"),
        ("virtual_topics.prefix", "Consumer..", "ending with '.'"),
        ("virtual_topics.name", "", "not a destination pattern"),
        ("virtual_topics.name", "VirtualTopic..x", "not a destination pattern"),
    ]:
        with pytest.raises(ConfigError) as err:
            load_settings(None, env={}, overrides={key: value})
        assert key in str(err.value) and words in str(err.value)


def test_env_string_settings_take_the_text_as_it_is() -> None:
    """A string setting is not read as TOML: an all-digit account id stays a string."""
    s = load_settings(
        None,
        env={
            "ZONEMQ_LISTENERS__AWS__ACCOUNT_ID": "123456789012",
            "ZONEMQ_BROKER__NAME": "5",
            "ZONEMQ_AUTH__USERS__ALICE": "1234",
            "ZONEMQ_LISTENERS__STOMP__PORT": "61614",
        },
    )
    assert s.listeners.aws.account_id == "123456789012"
    assert s.broker.name == "5"
    assert s.auth.users["alice"] == "1234"
    assert s.listeners.stomp.port == 61614


def test_env_variables_that_are_not_settings_are_ignored(caplog) -> None:
    """Kubernetes injects ZONEMQ_SERVICE_HOST, ZONEMQ_PORT... for a Service named zonemq:
    not a start-up failure; a typo inside a settings table still is."""
    env = {
        "ZONEMQ_SERVICE_HOST": "10.0.0.1",
        "ZONEMQ_SERVICE_PORT": "8161",
        "ZONEMQ_PORT": "tcp://10.0.0.1:8161",
        "ZONEMQ_PORT_8161_TCP_ADDR": "10.0.0.1",
    }
    with caplog.at_level("DEBUG", logger="zonemq"):
        assert load_settings(None, env=env) == Settings()
    assert "ZONEMQ_SERVICE_HOST is not a setting" in caplog.text
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"ZONEMQ_BROKER__NAEM": "x"})
    assert "broker.naem" in str(info.value)


def test_region_and_account_flags_set_the_aws_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from broker.cli import _parser, settings_from_args

    monkeypatch.delenv("ZONEMQ_CONFIG", raising=False)
    args = _parser().parse_args(["run", "--region", "eu-west-1", "--account-id", "123456789012"])
    s = settings_from_args(args)
    assert (s.listeners.aws.region, s.listeners.aws.account_id) == ("eu-west-1", "123456789012")
    # Without the flags: the defaults (AWS's us-east-1, an all-zero account as ElasticMQ's).
    s = settings_from_args(_parser().parse_args(["run"]))
    assert (s.listeners.aws.region, s.listeners.aws.account_id) == ("us-east-1", "000000000000")
    with pytest.raises(ConfigError) as err:
        settings_from_args(_parser().parse_args(["run", "--region", "Mars"]))
    assert "listeners.aws.region" in str(err.value)
    with pytest.raises(ConfigError) as err:
        settings_from_args(_parser().parse_args(["run", "--account-id", "12345"]))
    assert "listeners.aws.account_id" in str(err.value)
