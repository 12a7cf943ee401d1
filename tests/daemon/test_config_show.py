"""`zonemq config show` as operators run it (a subprocess): every setting with its
source (default, the file, a ZONEMQ_ variable, a flag), secrets masked, TOML that loads
back to the same settings, and --json for scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from broker.config import SECRET_SETTINGS, Settings, flatten, load_settings
from broker.config_show import MASK
from tests.conftest import REPO


def show(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("ZONEMQ_")}
    full.update(PYTHONPATH=str(REPO), **env)
    return subprocess.run(
        [sys.executable, "-m", "broker", "config", "show", *args],
        cwd=tmp_path,
        env=full,
        capture_output=True,
        text=True,
        timeout=30,
    )


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "z.toml"
    path.write_text(
        '[broker]\nname = "from-file"\n[listeners.stomp]\nport = 1111\n'
        '[auth]\nusers = { alice = "wonderland" }\n[tls]\nkey_password = "hush"\n'
        '[[queues]]\nname = "orders"\n'
    )
    return path


ENV = {"ZONEMQ_LISTENERS__STOMP__PORT": "2222", "ZONEMQ_AUTH__SQS_SECRETS__ALICE": "s3cr3t"}


def test_text_names_each_source_and_masks_secrets(tmp_path: Path) -> None:
    path = config_file(tmp_path)
    done = show(tmp_path, "--config", str(path), "--amqp-port", "3333", **ENV)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f'name = "from-file"  # {path}' in lines
    assert "port = 2222  # ZONEMQ_LISTENERS__STOMP__PORT" in lines
    assert "port = 3333  # --amqp-port" in lines
    assert 'data_dir = "./data"  # default' in lines
    assert f'users = {{ alice = "{MASK}" }}  # {path}' in lines
    assert f'sqs_secrets = {{ alice = "{MASK}" }}  # ZONEMQ_AUTH__SQS_SECRETS__ALICE' in lines
    assert f'key_password = "{MASK}"  # {path}' in lines
    for secret in ("wonderland", "s3cr3t", "hush"):
        assert secret not in done.stdout
    # It is TOML: with the secrets put back it loads to the settings the broker would use.
    tomllib.loads(done.stdout)
    expected = load_settings(path, env=ENV, overrides={"listeners.amqp.port": 3333})
    fixed = tmp_path / "fixed.toml"
    fixed.write_text(
        done.stdout.replace(f'"{MASK}" }}  # {path}', '"wonderland" }')
        .replace(f'"{MASK}" }}  # ZONEMQ', '"s3cr3t" } # ZONEMQ')
        .replace(f'key_password = "{MASK}"', 'key_password = "hush"')
    )
    assert load_settings(fixed, env={}) == expected


def test_json_gives_value_and_source_per_dotted_key(tmp_path: Path) -> None:
    done = show(tmp_path, "--json", "--stomp-port", "0", ZONEMQ_BROKER__NAME="n1")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == set(flatten(Settings()))
    assert out["listeners.stomp.port"] == {"value": 0, "source": "--stomp-port"}
    assert out["broker.name"] == {"value": "n1", "source": "ZONEMQ_BROKER__NAME"}
    assert out["queues"] == {"value": [], "source": "default"}


def test_bad_configuration_exits_2_naming_the_key(tmp_path: Path) -> None:
    done = show(tmp_path, ZONEMQ_LISTENERS__STOMP__PROT="1")
    assert done.returncode == 2
    assert "listeners.stomp.prot: unknown setting" in done.stderr
    assert done.stdout == ""


def test_every_secret_looking_setting_is_masked() -> None:
    """A new password, secret or key setting must be added to SECRET_SETTINGS."""

    flat = set(flatten(Settings()))
    secretish = {
        k
        for k in flat
        if any(w in k.rsplit(".", 1)[-1] for w in ("password", "secret", "users"))
        and k != "tls.cert_users"
    }
    assert secretish <= SECRET_SETTINGS
    assert flat >= SECRET_SETTINGS
