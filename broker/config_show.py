"""`zonemq config show`: the effective settings and where each came from, as TOML for
people (each value followed by a comment naming its source; it parses as TOML) or as
JSON for scripts (dotted key to value and source). Secrets (config.SECRET_SETTINGS) are
masked: a table's values, not its keys."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from broker.config import SECRET_SETTINGS, Settings, flatten

MASK = "********"
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _masked(key: str, value: Any) -> Any:
    if key not in SECRET_SETTINGS:
        return value
    if isinstance(value, Mapping):
        return {k: MASK for k in value}
    return MASK if value else value


def _plain(value: Any) -> Any:
    """A setting's value as JSON data (a policy entry: only the keys it states)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None
        }
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def toml_value(value: Any) -> str:
    """A value as an inline TOML value (strings JSON-quoted: TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        items = ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")  # pragma: no cover


def toml_key(key: str) -> str:
    return key if _BARE.fullmatch(key) else json.dumps(key)


def as_json(settings: Settings, sources: Mapping[str, str]) -> str:
    """Dotted key -> {"value", "source"} for every setting."""
    out = {
        key: {"value": _plain(_masked(key, value)), "source": sources[key]}
        for key, value in flatten(settings).items()
    }
    return json.dumps(out, indent=2)


def as_toml(settings: Settings, sources: Mapping[str, str]) -> str:
    """Every setting under its table header, `key = value  # source`; top-level keys
    first (TOML puts them before any header)."""
    tables: dict[str, list[str]] = {}
    for key, value in flatten(settings).items():
        table, _, name = key.rpartition(".")
        line = f"{toml_key(name)} = {toml_value(_plain(_masked(key, value)))}  # {sources[key]}"
        tables.setdefault(table, []).append(line)
    lines = list(tables.pop("", []))
    for table, rows in tables.items():
        lines += ["", f"[{table}]", *rows]
    return "\n".join(lines) + "\n"
