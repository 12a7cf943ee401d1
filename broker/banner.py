"""The start banner: one INFO block saying what this process is and what it exposes
(version, data directory, where the settings came from, every endpoint with its TLS
state, the auth state), so an operator reading a log knows what ran.

Settings sources name the config file and which ``ZONEMQ_*`` variables and flags were
given, never their values (a value may be a password).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from broker.config import Settings


def sources(config: str | None, env: Mapping[str, str], flags: Iterable[str]) -> list[str]:
    """Where the settings came from, in precedence order (lowest first)."""
    out = [f"file {config}" if config else "embedded defaults"]
    names = sorted(k for k in env if k.startswith("ZONEMQ_") and k != "ZONEMQ_CONFIG")
    if names:
        out.append("environment " + ", ".join(names))
    given = sorted(flags)
    if given:
        out.append("flags " + ", ".join(f"--{f}" for f in given))
    return out


def lines(
    settings: Settings,
    origin: list[str],
    endpoints: Mapping[str, tuple[str, int]],
    auth: str,
    version: str,
) -> list[str]:
    """The banner's lines (the caller logs them as one record)."""
    tls = settings.tls
    if tls.ca_file:
        clients = "client certificate required" if tls.require_client_cert else "optional"
        tls_note = f"TLS {tls.min_version}+, client certificates {clients}"
    else:
        tls_note = f"TLS {tls.min_version}+"
    out = [
        f"ZoneMQ {version}, broker {settings.broker.name}, pid {os.getpid()}",
        f"  data dir: {os.path.abspath(settings.broker.data_dir)}",
        f"  settings: {'; '.join(origin)}",
    ]
    for label, (host, port) in endpoints.items():
        name, _, ssl = label.partition("+")
        out.append(f"  listener {name}: {host}:{port} ({tls_note if ssl else 'plain'})")
    out.append(f"  auth: {auth}")
    if settings.cluster is not None:
        c = settings.cluster
        out.append(f"  cluster: node {c.node_id} in {c.az}, etcd {', '.join(c.etcd_endpoints)}")
    return out
