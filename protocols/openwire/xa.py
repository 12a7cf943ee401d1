"""XA transactions (ActiveMQXAConnectionFactory, a JTA transaction manager) are refused,
the way the JMS client turns a refusal into the XAException a transaction manager acts on.

ZoneMQ has no durable prepared state (a prepare would have to be journaled and listed
by recover after a restart), so it takes part in no XA transaction. The client's
TransactionContext (read from ActiveMQ 5.17's source) sends the XA BEGIN without
waiting (asyncSendPacket): XAResource.start() cannot fail, and the refusal of BEGIN
reaches the connection's exception listener; the transaction's sends are refused the
same way (their transaction was never begun), so nothing of it is stored. The first
synchronous call, end(), fails. An ExceptionResponse naming
javax.transaction.xa.XAException carries only a message over OpenWire; the client
reads the XAException's errorCode from a trailing "xaErrorCode:<n>" in it (else
XAER_RMERR), which is how ActiveMQ's own refusals carry it. So:

- end / prepare (and a BEGIN, to the exception listener): XAER_RMERR (-3), "XA
  transactions are not supported by ZoneMQ";
- commit / rollback / forget of an XID: XAER_NOTA (-4), ActiveMQ's words for an XID it
  does not know ("Transaction 'XID:[...]' has not been started."): a transaction
  manager rolling back after the failed end() is told the branch is gone;
- recover: an empty list, which is true (nothing is ever prepared here), so a
  transaction manager's recovery scan at its start succeeds.

Compared with ActiveMQ 5.17.2 (tests/openwire/test_jms_xa.py): commit and rollback of an
unknown XID give the same errorCode and message; it takes the rest.
"""

from __future__ import annotations

from protocols.openwire.codec import commands as c

XA_EXCEPTION = "javax.transaction.xa.XAException"
XAER_RMERR = -3
XAER_NOTA = -4
NOT_SUPPORTED = f"XA transactions are not supported by ZoneMQ xaErrorCode:{XAER_RMERR}"


def xid_text(x: c.XATransactionId) -> str:
    """As ActiveMQ's XATransactionId.toString (each byte in hex, unpadded)."""

    def hexed(b: bytes | None) -> str:
        return "".join(f"{v:x}" for v in b or b"")

    return (
        f"XID:[{x.format_id},globalId={hexed(x.global_transaction_id)},"
        f"branchId={hexed(x.branch_qualifier)}]"
    )


def answer(info: c.TransactionInfo) -> c.Response | tuple[str, str]:
    """The answer to an XA TransactionInfo (or RECOVER): a Response to send, or the
    (Java class, message) of the ExceptionResponse to refuse it with."""
    kind = info.type
    if kind == c.TX_RECOVER:
        return c.DataArrayResponse(correlation_id=info.command_id, data=[])
    txid = info.transaction_id
    if kind in (c.TX_COMMIT_ONE_PHASE, c.TX_COMMIT_TWO_PHASE, c.TX_ROLLBACK, c.TX_FORGET):
        name = xid_text(txid) if isinstance(txid, c.XATransactionId) else str(txid)
        return (
            XA_EXCEPTION,
            f"Transaction '{name}' has not been started. xaErrorCode:{XAER_NOTA}",
        )
    return (XA_EXCEPTION, NOT_SUPPORTED)
