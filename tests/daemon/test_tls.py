"""TLS on every listener (issue 10): STOMP+SSL, AMQPS, HTTPS for SQS and the console, with
real clients (stomp.py's SSL mode, proton's SSL domain, boto3 with `verify=`, urllib)
against a CA, a server certificate and client certificates this module makes with the
`cryptography` package. TLS 1.1 is refused, a client without a certificate is refused
when one is required, a certificate's CN maps to a user, a plaintext client on a TLS port
is dropped alone, and a TLS listener without a certificate is a clear error."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import stomp
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from proton import Message, SSLDomain
from proton.utils import BlockingConnection

from broker.config import ConfigError, load_settings
from broker.server import StartupError
from tests.conftest import WAIT, BrokerThread, Collector

HOST = "127.0.0.1"
PASSWORD = "alice-password"


# -- certificates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, a server certificate for 127.0.0.1 / localhost, client
    certificates signed by the CA (CN alice-client and bob-client), one by a rogue CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    alice: tuple[Path, Path]
    bob: tuple[Path, Path]
    rogue: tuple[Path, Path]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue(
    cn: str,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    san: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (_name(cn), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _write(directory: Path, stem: str, cert: x509.Certificate, key: Any) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_key_pem(key))
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_cert, ca_key = _issue("ZoneMQ test CA", None, ca=True)
    ca = (ca_cert.subject, ca_key)
    rogue_cert, rogue_key = _issue("Rogue CA", None, ca=True)
    server = _issue(
        "localhost",
        ca,
        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))],
    )
    ca_path = d / "ca.crt"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server_cert, server_key = _write(d, "server", *server)
    return Pki(
        ca=ca_path,
        server_cert=server_cert,
        server_key=server_key,
        alice=_write(d, "alice", *_issue("alice-client", ca)),
        bob=_write(d, "bob", *_issue("bob-client", ca)),
        rogue=_write(d, "rogue", *_issue("alice-client", (rogue_cert.subject, rogue_key))),
    )


# -- brokers and clients ---------------------------------------------------------------------


def tls_overrides(pki: Pki, **extra: Any) -> dict[str, Any]:
    """Every listener's TLS endpoint on (beside the plain one), ephemeral ports."""
    out: dict[str, Any] = {
        "tls.cert_file": str(pki.server_cert),
        "tls.key_file": str(pki.server_key),
        # Bounds the closing TLS exchange too, so the fixture's stop is quick.
        "tls.handshake_timeout": 2.0,
    }
    for name in ("stomp", "amqp", "aws", "console"):
        out[f"listeners.{name}.tls_enabled"] = True
        out[f"listeners.{name}.tls_port"] = 0
    out.update(extra)
    return out


def client_context(pki: Pki, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def stomp_tls(
    port: int, pki: Pki, cert: tuple[Path, Path] | None = None, **connect: Any
) -> tuple[stomp.Connection12, Collector]:
    conn = stomp.Connection12([(HOST, port)], reconnect_attempts_max=1)
    conn.set_ssl(
        for_hosts=[(HOST, port)],
        ca_certs=str(pki.ca),
        cert_file=str(cert[0]) if cert else None,
        key_file=str(cert[1]) if cert else None,
    )
    listener = Collector()
    conn.set_listener("c", listener)
    conn.connect(wait=True, **connect)
    return conn, listener


def handshake(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    """A raw TLS connection; with TLS 1.3 a refused client certificate shows on the first
    read (the server's alert comes after the client's Finished), so read once."""
    sock = ssl.create_connection((HOST, port), timeout=WAIT)
    return ctx.wrap_socket(sock, server_hostname=HOST)


def refused(port: int, ctx: ssl.SSLContext) -> str:
    """The error a TLS client gets from the server (handshake or first read)."""
    try:
        with handshake(port, ctx) as tls:
            tls.sendall(b"CONNECT\naccept-version:1.2\n\n\0")
            data = tls.recv(100)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
        return str(exc)
    assert data == b"", f"the broker answered {data!r}"
    return "closed"


def assert_closed(sock: socket.socket) -> None:
    """The broker closes `sock` (an orderly close or a reset) without answering."""
    try:
        data = sock.recv(4096)
    except ConnectionResetError:
        return
    assert data == b"", f"the broker answered {data!r}"


def connections(broker: BrokerThread, name: str) -> list[Any]:
    return broker.call(lambda: list(broker.broker.listeners[name].connections))


# -- every protocol over TLS -----------------------------------------------------------------


def test_stomp_ssl_with_stomp_py_beside_the_plain_port(
    broker_factory: Callable[..., BrokerThread], pki: Pki
) -> None:
    broker = broker_factory(**tls_overrides(pki))
    tls_port, plain_port = broker.broker.port("stomp+ssl"), broker.broker.port("stomp")
    assert tls_port != plain_port
    conn, listener = stomp_tls(tls_port, pki)
    try:
        conn.subscribe("/queue/tls.stomp", id="1")
        plain = stomp.Connection12([(HOST, plain_port)])
        plain.connect(wait=True)
        plain.send("/queue/tls.stomp", "from the plain port", receipt="r")
        plain.disconnect()
        assert listener.next().body == "from the plain port"
        # One set holds both endpoints' connections (the plain one may still be closing).
        tls = [
            c
            for c in connections(broker, "stomp")
            if broker.call(lambda c=c: c.transport.get_extra_info("ssl_object")) is not None
        ]
        assert len(tls) == 1
        c = tls[0]
        assert broker.call(lambda: c.transport.get_extra_info("ssl_object")).version() in (
            "TLSv1.2",
            "TLSv1.3",
        )
    finally:
        conn.disconnect()


def _proton_domain(pki: Pki, cert: tuple[Path, Path] | None = None) -> SSLDomain:
    domain = SSLDomain(SSLDomain.MODE_CLIENT)
    domain.set_trusted_ca_db(str(pki.ca))
    domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME, str(pki.ca))
    if cert is not None:
        domain.set_credentials(str(cert[0]), str(cert[1]), None)
    return domain


def test_amqps_with_proton_ssl_domain(
    broker_factory: Callable[..., BrokerThread], pki: Pki
) -> None:
    broker = broker_factory(**tls_overrides(pki))
    url = f"amqps://localhost:{broker.broker.port('amqp+ssl')}"
    conn = BlockingConnection(url, ssl_domain=_proton_domain(pki), timeout=WAIT)
    try:
        sender = conn.create_sender("queue://tls.amqp")
        sender.send(Message(body="over amqps", durable=True))
        receiver = conn.create_receiver("queue://tls.amqp")
        msg = receiver.receive(timeout=WAIT)
        receiver.accept()
        assert msg.body == "over amqps"
    finally:
        conn.close()


def test_sqs_https_with_boto3_verify(broker_factory: Callable[..., BrokerThread], pki: Pki) -> None:
    broker = broker_factory(**tls_overrides(pki))
    sqs = boto3.client(
        "sqs",
        endpoint_url=f"https://{HOST}:{broker.broker.port('aws+ssl')}",
        region_name="us-east-1",
        verify=str(pki.ca),
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}),
    )
    url = sqs.create_queue(QueueName="tls-sqs")["QueueUrl"]
    assert url.startswith("https://"), url
    sqs.send_message(QueueUrl=url, MessageBody="over https")
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in got] == ["over https"]
    # A client that does not trust the CA is refused by its own check.
    untrusting = boto3.client(
        "sqs",
        endpoint_url=f"https://{HOST}:{broker.broker.port('aws+ssl')}",
        region_name="us-east-1",
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(Exception, match=r"(?i)certificate"):
        untrusting.list_queues()


def test_console_https_with_urllib(broker_factory: Callable[..., BrokerThread], pki: Pki) -> None:
    broker = broker_factory(**tls_overrides(pki))
    url = f"https://{HOST}:{broker.broker.port('console+ssl')}/healthz"
    with urllib.request.urlopen(url, context=client_context(pki), timeout=WAIT) as resp:
        assert resp.status == 200
        assert b'"ok"' in resp.read()


# -- versions, client certificates, plaintext clients ---------------------------------------


@pytest.mark.parametrize("name", ["stomp+ssl", "amqp+ssl", "aws+ssl", "console+ssl"])
def test_tls_1_1_is_refused(
    broker_factory: Callable[..., BrokerThread], pki: Pki, name: str
) -> None:
    broker = broker_factory(**tls_overrides(pki))
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(str(pki.ca))
    # Let OpenSSL offer TLS 1.0/1.1 at all (its default security level forbids them), so
    # the refusal seen is the server's (a client that cannot offer them fails with "no
    # protocols available" before sending anything).
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError) as info:
        handshake(broker.broker.port(name), old).close()
    # OpenSSL's server answers a TLS 1.1 hello with a protocol_version alert or a close.
    text = str(info.value).lower()
    assert "protocol version" in text or "unexpected_eof" in text, info.value
    # The same client allowed TLS 1.2 gets in.
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    handshake(broker.broker.port(name), old).close()


def test_min_version_1_3_refuses_tls_1_2(
    broker_factory: Callable[..., BrokerThread], pki: Pki
) -> None:
    broker = broker_factory(**tls_overrides(pki, **{"tls.min_version": "1.3"}))
    ctx = client_context(pki)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        handshake(broker.broker.port("stomp+ssl"), ctx).close()
    with handshake(broker.broker.port("stomp+ssl"), client_context(pki)) as tls:
        assert tls.version() == "TLSv1.3"


def test_require_client_cert_refuses_clients_without_a_valid_one(
    broker_factory: Callable[..., BrokerThread], pki: Pki
) -> None:
    broker = broker_factory(
        **tls_overrides(pki, **{"tls.ca_file": str(pki.ca), "tls.require_client_cert": True})
    )
    port = broker.broker.port("stomp+ssl")
    assert refused(port, client_context(pki)) != ""  # no certificate
    assert refused(port, client_context(pki, pki.rogue)) != ""  # not from the CA
    amqp = f"amqps://localhost:{broker.broker.port('amqp+ssl')}"
    with pytest.raises(Exception):  # noqa: B017 - proton raises ConnectionException or a timeout
        BlockingConnection(amqp, ssl_domain=_proton_domain(pki), timeout=WAIT).close()
    # With a certificate from the CA, every protocol works.
    conn, _ = stomp_tls(port, pki, pki.alice)
    conn.disconnect()
    BlockingConnection(amqp, ssl_domain=_proton_domain(pki, pki.alice), timeout=WAIT).close()
    url = f"https://{HOST}:{broker.broker.port('console+ssl')}/healthz"
    with pytest.raises(OSError):
        urllib.request.urlopen(url, context=client_context(pki), timeout=WAIT).close()
    with urllib.request.urlopen(url, context=client_context(pki, pki.alice), timeout=WAIT) as r:
        assert r.status == 200


def test_client_certificate_cn_is_mapped_to_a_user(
    broker_factory: Callable[..., BrokerThread], pki: Pki
) -> None:
    broker = broker_factory(
        **tls_overrides(
            pki,
            **{
                "tls.ca_file": str(pki.ca),
                "tls.cert_users": {"alice-client": "alice"},
                "auth.users": {"alice": PASSWORD, "bob": "bob-password"},
            },
        )
    )
    port = broker.broker.port("stomp+ssl")
    alice, _ = stomp_tls(port, pki, pki.alice, username="alice", passcode=PASSWORD)
    bob, _ = stomp_tls(port, pki, pki.bob, username="bob", passcode="bob-password")
    anonymous, _ = stomp_tls(port, pki, None, username="bob", passcode="bob-password")
    try:
        users = broker.call(
            lambda: sorted(str(c.tls_user) for c in broker.broker.listeners["stomp"].connections)
        )
        # bob-client's CN is in no mapping; without a certificate there is none either.
        assert users == ["None", "None", "alice"]
    finally:
        for c in (alice, bob, anonymous):
            c.disconnect()
    url = f"amqps://localhost:{broker.broker.port('amqp+ssl')}"
    conn = BlockingConnection(
        url, ssl_domain=_proton_domain(pki, pki.alice), user="alice", password=PASSWORD
    )
    try:
        (amqp,) = connections(broker, "amqp")
        assert broker.call(lambda: amqp.tls_user) == "alice"
    finally:
        conn.close()
    # A certificate the CA did not sign is refused, whatever its CN says.
    assert refused(port, client_context(pki, pki.rogue)) != ""


def test_plaintext_client_on_a_tls_port_is_dropped_alone(
    broker_factory: Callable[..., BrokerThread], pki: Pki
) -> None:
    broker = broker_factory(**tls_overrides(pki, **{"tls.handshake_timeout": 0.5}))
    port = broker.broker.port("stomp+ssl")
    conn, listener = stomp_tls(port, pki)
    try:
        conn.subscribe("/queue/tls.bystander", id="1")
        # A STOMP frame in clear on the TLS port: the handshake fails, the socket closes.
        with socket.create_connection((HOST, port), timeout=WAIT) as raw:
            raw.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
            assert_closed(raw)
        # One that sends nothing is dropped after the handshake timeout.
        with socket.create_connection((HOST, port), timeout=WAIT) as silent:
            assert_closed(silent)
        # Plain AMQP on AMQPS, likewise.
        with socket.create_connection((HOST, broker.broker.port("amqp+ssl")), timeout=WAIT) as raw:
            raw.sendall(b"AMQP\x00\x01\x00\x00")
            assert_closed(raw)
        conn.send("/queue/tls.bystander", "still here", receipt="r")
        assert listener.next().body == "still here"
        assert listener.errors.empty()
    finally:
        conn.disconnect()


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["stomp", "amqp", "aws", "console"])
def test_tls_listener_without_a_certificate_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"listeners\.{name}\.tls_enabled.*tls\.cert_file"):
        load_settings(None, env={}, overrides={f"listeners.{name}.tls_enabled": True})


def test_client_cert_settings_need_a_ca() -> None:
    with pytest.raises(ConfigError, match=r"tls\.require_client_cert"):
        load_settings(None, env={}, overrides={"tls.require_client_cert": True})
    with pytest.raises(ConfigError, match=r"tls\.cert_users\.x.*auth\.users"):
        load_settings(
            None, env={}, overrides={"tls.ca_file": "ca.pem", "tls.cert_users": {"x": "nobody"}}
        )


def test_certificate_that_does_not_load_stops_start_up_naming_the_key(
    tmp_path: Path, pki: Pki
) -> None:
    missing = tmp_path / "missing.pem"
    broker = BrokerThread(
        tmp_path / "data", **tls_overrides(pki, **{"tls.cert_file": str(missing)})
    )
    with pytest.raises(StartupError, match=r"tls\.cert_file.*missing\.pem"):
        broker.start()
    broker.stop()
    # The data directory was never locked: a broker with a good certificate starts on it.
    good = BrokerThread(tmp_path / "data", **tls_overrides(pki)).start()
    good.stop()


def test_defaults_bind_no_tls_port(broker: BrokerThread) -> None:
    labels = {label for lst in broker.broker.listeners.values() for label in lst.addresses}
    assert labels == {"stomp", "amqp", "openwire", "aws", "console"}
