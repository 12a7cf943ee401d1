"""Parse `--target` URLs: ``stomp://host:port?pid=1234&name=activemq&login=u&passcode=p``.

Only loopback hosts are accepted: the benchmark never sends traffic off this machine.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True, slots=True)
class Target:
    """One broker under test."""

    url: str
    host: str
    port: int
    name: str
    pid: int | None = None
    login: str = "guest"
    passcode: str = "guest"
    vhost: str = "/"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_target(url: str) -> Target:
    """A Target from its URL; raises ValueError for a bad URL or a non-loopback host."""
    parts = urlsplit(url if "://" in url else "stomp://" + url)
    if parts.scheme != "stomp":
        raise ValueError(f"{url}: only stomp:// targets are supported")
    host = parts.hostname or "127.0.0.1"
    if not _is_loopback(host):
        raise ValueError(f"{url}: only loopback hosts (127.0.0.0/8, ::1) may be targets")
    port = parts.port or 61613
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    pid = int(query["pid"]) if query.get("pid") else None
    return Target(
        url=url,
        host=host,
        port=port,
        name=query.get("name") or f"{host}:{port}",
        pid=pid,
        login=query.get("login", "guest"),
        passcode=query.get("passcode", "guest"),
        vhost=query.get("host", "/"),
    )
