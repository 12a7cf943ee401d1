"""XA through the real ActiveMQ 5.17 client (tests/openwire/java/Xa.java,
ActiveMQXAConnectionFactory): refused with the XAException errorCodes the client reads
(protocols/openwire/xa.py says why these).

The same program against ActiveMQ 5.17.2 (the shared instance, tcp://127.0.0.1:61626):
`commit-unknown` and `rollback-unknown` printed exactly the lines ZoneMQ prints
(XAException:-4, "Transaction 'XID:[...]' has not been started. xaErrorCode:-4"); every
other call printed `ok` there (`prepare-vote=0`, `recovered=0`), since ActiveMQ does XA.
"""

from __future__ import annotations

from tests.conftest import BrokerThread
from tests.openwire.conftest import Jms, url

NOTA = "XAException:-4:Transaction 'XID:[4242,globalId={},branchId=1]' has not been started. xaErrorCode:-4"  # noqa: E501
RMERR = "XAException:-3:XA transactions are not supported by ZoneMQ xaErrorCode:-3"


def test_xa_is_refused_with_the_error_codes_the_client_reads(
    jms: Jms, ow_broker: BrokerThread
) -> None:
    q = "ow.xa"
    out = jms.run(url(ow_broker), q, program="Xa")
    assert out == [
        ("commit-unknown", NOTA.format(f"never-{q}".encode().hex())),
        ("rollback-unknown", NOTA.format(f"never-{q}".encode().hex())),
        # The client begins an XA transaction without waiting for an answer...
        ("start", "ok"),
        ("send", "ok"),
        # ...end() is the first call that can fail: the transaction manager rolls back.
        ("end", RMERR),
        ("prepare", RMERR),
        ("commit", NOTA.format(f"xa-{q}".encode().hex())),
        # Nothing is ever prepared here: recovery finds nothing, and says so.
        ("recovered", "0"),
        ("recover", "ok"),
        ("xa-close", "ok"),
        # The connection was not closed by the refusals; another works as usual.
        ("plain", "plain"),
    ]
    # The message sent in the refused XA transaction was not stored.
    stats = ow_broker.stats(q)
    assert stats is None or stats.enqueued == 0
