"""A verified TLS client certificate mapped to a user ([tls] cert_users) logs in as that
user: STOMP without a login header, AMQP with SASL EXTERNAL; the authorization map then
applies to that user (tests/authmap.py). The PKI and TLS clients are test_tls.py's."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from proton import Message
from proton.utils import BlockingConnection, LinkDetached

from tests.authmap import overrides
from tests.conftest import WAIT, BrokerThread
from tests.daemon.test_tls import Pki, _proton_domain, pki, stomp_tls, tls_overrides

__all__ = ["pki"]  # the module-scoped PKI fixture, shared with test_tls.py


@pytest.fixture
def secured(broker_factory: Callable[..., BrokerThread], pki: Pki) -> BrokerThread:
    return broker_factory(
        **tls_overrides(
            pki,
            **overrides(
                **{"tls.ca_file": str(pki.ca), "tls.cert_users": {"alice-client": "alice"}}
            ),
        )
    )


def test_stomp_client_certificate_logs_in_as_its_user(secured: BrokerThread, pki: Pki) -> None:
    port = secured.broker.port("stomp+ssl")
    alice, listener = stomp_tls(port, pki, pki.alice)  # no login header
    try:
        alice.send("/queue/alice.cert", "by certificate", receipt="r")
        assert listener.receipts.get(timeout=WAIT) == "r"
        alice.subscribe("/queue/alice.cert", id="1")
        assert listener.next().body == "by certificate"
    finally:
        alice.disconnect()
    # bob-client's CN maps to no user: no login, no connection.
    with pytest.raises(Exception):  # noqa: B017 - stomp.py's ConnectFailedException
        stomp_tls(port, pki, pki.bob)


def test_amqp_sasl_external_logs_in_as_the_certificate_user(
    secured: BrokerThread, pki: Pki
) -> None:
    url = f"amqps://localhost:{secured.broker.port('amqp+ssl')}"
    conn = BlockingConnection(
        url, ssl_domain=_proton_domain(pki, pki.alice), timeout=WAIT, sasl_enabled=True
    )
    try:
        conn.create_sender("queue://alice.ext").send(Message(body="external"))
        got = conn.create_receiver("queue://alice.ext").receive(timeout=WAIT)
        assert got.body == "external"
        (amqp,) = secured.broker.listeners["amqp"].connections
        assert secured.call(lambda: amqp.sasl.user) == "alice"
        # The map applies to the certificate's user: no entry matches this queue.
        with pytest.raises(LinkDetached) as info:
            conn.create_receiver("queue://nobody.else")
        assert "User alice is not authorized to" in str(info.value)
    finally:
        conn.close()
