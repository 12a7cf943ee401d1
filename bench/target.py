"""Parse `--target` URLs: ``stomp://host:port?pid=1234&name=activemq&login=u&passcode=p``,
``amqp://host:port?...&addr=/queue/{}`` (AMQP 1.0) and ``sqs://host:port?...`` (SQS JSON).

Only loopback hosts are accepted unless --allow-remote says otherwise: the benchmark never
sends traffic off this machine by accident.
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
    scheme: str = "stomp"
    # AMQP: the address of queue NAME with "{}" for NAME (default: guessed from the broker).
    address: str | None = None
    # Messages per run for this target only (a slow reference may need fewer).
    messages: int | None = None
    # AMQP: a STOMP port of the same broker on which to declare the queue durable first
    # (RabbitMQ 3.10's AMQP 1.0 plugin declares /queue/NAME non-durable; use with
    # addr=/amq/queue/{}).
    declare_port: int | None = None


DEFAULT_PORTS = {"stomp": 61613, "amqp": 5672, "sqs": 9324}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_target(url: str, *, allow_remote: bool = False) -> Target:
    """A Target from its URL; raises ValueError for a bad URL, or a host not on this
    machine unless `allow_remote` (--allow-remote: load on another machine is a choice
    made explicitly, never a typo)."""
    parts = urlsplit(url if "://" in url else "stomp://" + url)
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError(f"{url}: only stomp://, amqp:// and sqs:// targets are supported")
    host = parts.hostname or "127.0.0.1"
    if not allow_remote and not _is_loopback(host):
        raise ValueError(
            f"{url}: only loopback hosts (127.0.0.0/8, ::1) may be targets without --allow-remote"
        )
    port = parts.port or DEFAULT_PORTS[parts.scheme]
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
        scheme=parts.scheme,
        address=query.get("addr") or None,
        messages=int(query["n"]) if query.get("n") else None,
        declare_port=int(query["declare"]) if query.get("declare") else None,
    )
