"""TLS for the listeners: one server SSLContext built from ``[tls]``, and the user name
a verified client certificate maps to.

TLS lives in asyncio's transport (``create_server(ssl=...)``, aiohttp's
``TCPSite(ssl_context=...)``): a protocol never sees it, so STOMP+SSL, AMQPS and HTTPS
are the plain protocols behind a TLS handshake (as ActiveMQ's ``stomp+ssl``,
``amqp+ssl``; AMQP's SASL-layer TLS negotiation is not used). The handshake is done before
a protocol's ``connection_made``, so a peer's certificate is known there.

- TLS 1.2 at least (``min_version`` "1.2" or "1.3"); no compression, no renegotiation;
  SNI is ignored (one certificate for every name).
- With ``ca_file`` a client certificate is verified when presented; with
  ``require_client_cert`` as well, a client without a valid one fails the handshake.
- `peer_user`: the subject CN of a verified client certificate, mapped through
  ``[tls] cert_users`` (CN → user); any other CN maps to no user.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from broker.config import ConfigError, TlsSettings

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def server_context(tls: TlsSettings) -> ssl.SSLContext:
    """The SSLContext every TLS listener serves with; a file that cannot be loaded is a
    ConfigError naming its key."""
    if not tls.cert_file:
        raise ConfigError("tls.cert_file: a TLS listener is enabled but no certificate is set")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[tls.min_version]
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    password = tls.key_password or None
    try:
        ctx.load_cert_chain(
            tls.cert_file,
            tls.key_file or None,
            # A callable, so an encrypted key without a password fails instead of asking
            # on the terminal.
            password=lambda: password or "",
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"tls.cert_file: cannot load {tls.cert_file!r}"
            f"{f' with tls.key_file {tls.key_file!r}' if tls.key_file else ''}: {exc}"
        ) from None
    if tls.ca_file:
        try:
            ctx.load_verify_locations(cafile=tls.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"tls.ca_file: cannot load {tls.ca_file!r}: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
    return ctx


def peer_cn(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """The subject common name of the peer's certificate, when it was verified (a
    certificate is only returned by `getpeercert` once the CA has verified it)."""
    if ssl_object is None:
        return None
    cert: Any = ssl_object.getpeercert()
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def peer_user(
    ssl_object: ssl.SSLObject | ssl.SSLSocket | None, cert_users: Mapping[str, str]
) -> str | None:
    """The user a connection's verified client certificate stands for: its CN looked up
    in `cert_users` (``[tls] cert_users``); None without a certificate or a mapping.

    `ssl_object` is ``transport.get_extra_info("ssl_object")`` (None on a plain port).
    """
    cn = peer_cn(ssl_object)
    return None if cn is None else cert_users.get(cn)
