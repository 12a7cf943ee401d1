"""broker/auth.py on its own (hashes, the throttle, the map's ActiveMQ semantics), its
settings, `zonemq passwd`, and HTTP Basic on the console."""

from __future__ import annotations

import base64
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from broker.auth import (
    ADMIN,
    READ,
    WRITE,
    Auth,
    Login,
    LoginThrottle,
)
from broker.config import ConfigError, load_settings
from broker.core import QUEUE, TEMP_QUEUE, TOPIC, Address
from broker.passwords import hash_password, verify_password
from tests.authmap import ALICE_PASSWORD, BOB_PASSWORD, overrides
from tests.conftest import WAIT, BrokerThread


def settings(**extra: Any) -> Any:
    return load_settings(None, env={}, overrides=overrides(**extra))


def test_scrypt_hash_round_trip_and_plain_passwords() -> None:
    h = hash_password("pw", n=1024)
    assert h.startswith("scrypt$1024$8$1$")
    assert verify_password(h, "pw")
    assert not verify_password(h, "pw ")
    assert hash_password("pw", n=1024) != h  # salted
    assert verify_password("plain", "plain") and not verify_password("plain", "plai")


def test_a_malformed_hash_is_a_config_error_naming_the_user() -> None:
    with pytest.raises(ConfigError, match=r"auth\.users\.alice: bad scrypt hash"):
        load_settings(None, env={}, overrides={"auth.users": {"alice": "scrypt$3$8$1$xx$yy"}})


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"auth.groups": {"g": ["carol"]}}, "auth.groups.g"),
        ({"auth.groups": {"g": "alice"}}, "auth.groups.g"),
        ({"auth.authorization": [{"queue": "a", "topic": "b"}]}, r"auth.authorization\[0\]"),
        (
            {"auth.authorization": [{"queue": "a", "read": ["nobody"]}]},
            r"auth.authorization\[0\].read",
        ),
        ({"auth.authorization": [{"temp": True}, {"temp": True}]}, r"auth.authorization\[1\]"),
        ({"auth.sqs_secrets": {"carol": "x"}}, "auth.sqs_secrets.carol"),
    ],
)
def test_bad_auth_settings_name_the_key(extra: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        settings(**extra)


def test_a_map_without_users_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"auth\.authorization"):
        load_settings(None, env={}, overrides={"auth.authorization": [{"queue": ">"}]})


def test_the_map_unions_matching_entries_and_denies_without_a_match() -> None:
    auth = Auth(
        settings(
            **{
                "auth.authorization": [
                    {"queue": ">", "read": ["alices"]},
                    {"queue": "orders.*", "read": ["bobs"], "write": ["bobs"]},
                    {"topic": "news.>", "read": ["alices", "bobs"]},
                ]
            }
        ).auth
    )
    orders = Address(QUEUE, "orders.eu")
    assert auth.allowed("alice", orders, READ) and auth.allowed("bob", orders, READ)
    assert auth.allowed("bob", orders, WRITE) and not auth.allowed("alice", orders, WRITE)
    assert not auth.allowed("bob", Address(QUEUE, "orders.eu.late"), READ)  # * is one segment
    assert not auth.allowed("alice", Address(TOPIC, "orders.eu"), READ)  # queue entries only
    assert auth.allowed("bob", Address(TOPIC, "news.sport.live"), READ)
    assert not auth.allowed("alice", Address(TOPIC, "weather"), READ)  # no entry: denied
    # No temp entry: temporary destinations are everyone's (ActiveMQ).
    assert auth.allowed("bob", Address(TEMP_QUEUE, "ID:x:1"), ADMIN)
    assert auth.check("alice", orders, WRITE, "test") == (
        "User alice is not authorized to write to: queue://orders.eu"
    )
    assert auth.check("bob", orders, WRITE, "test", created=True) == (
        "User bob is not authorized to create: queue://orders.eu"
    )


def test_no_map_allows_everything() -> None:
    auth = Auth(load_settings(None, env={}, overrides={"auth.users": {"a": "b"}}).auth)
    assert not auth.authorizing
    assert auth.check("a", Address(QUEUE, "x"), ADMIN, "test", created=True) is None


def test_login_caches_a_verified_hash_and_throttles() -> None:
    now = [0.0]
    auth = Auth(settings(**{"auth.max_login_failures": 2}).auth, clock=lambda: now[0])
    assert auth.login("alice", ALICE_PASSWORD, "10.0.0.1", "test") is Login.OK
    assert auth.login("bob", BOB_PASSWORD, "10.0.0.1", "test") is Login.OK
    assert auth.login("bob", "no", "10.0.0.2", "test") is Login.INVALID
    assert auth.login("carol", "no", "10.0.0.2", "test") is Login.INVALID
    assert auth.login("bob", BOB_PASSWORD, "10.0.0.2", "test") is Login.THROTTLED
    assert auth.login("bob", BOB_PASSWORD, "10.0.0.1", "test") is Login.OK  # other address
    now[0] = 61.0
    assert auth.login("bob", BOB_PASSWORD, "10.0.0.2", "test") is Login.OK


def test_the_throttle_table_is_bounded() -> None:
    throttle = LoginThrottle(3, 60.0, 60.0, clock=lambda: 0.0, max_sources=100)
    for i in range(10_000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle) == 100


def test_passwd_prints_a_hash_the_broker_accepts() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "broker", "passwd", "--user", "carol"],
        input="c4rol pass\n",
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        check=True,
    ).stdout.strip()
    name, _, quoted = out.partition(" = ")
    assert name == "carol" and quoted.startswith('"scrypt$')
    hashed = quoted.strip('"')
    assert verify_password(hashed, "c4rol pass")
    auth = Auth(load_settings(None, env={}, overrides={"auth.users": {"carol": hashed}}).auth)
    assert auth.login("carol", "c4rol pass", "127.0.0.1", "test") is Login.OK


def _get(b: BrokerThread, path: str, user: str | None = None, password: str = "") -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{b.console_port}{path}")
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_console_requires_credentials_except_a_bare_healthz(
    broker_factory: Callable[..., BrokerThread],
) -> None:
    b = broker_factory(**overrides(**{"auth.max_login_failures": 3}))
    assert _get(b, "/healthz") == 200
    assert _get(b, "/metrics") == 401
    assert _get(b, "/healthz?verbose=1") == 401
    assert _get(b, "/metrics", "alice", ALICE_PASSWORD) == 200
    for _ in range(3):
        assert _get(b, "/metrics", "bob", "wrong") == 401
    assert _get(b, "/metrics", "bob", BOB_PASSWORD) == 429
    assert _get(b, "/healthz") == 200


def test_console_is_open_without_users(broker: BrokerThread) -> None:
    assert _get(broker, "/metrics") == 200
