"""AMQP 1.0 transactions (part 4 of the spec) onto core Transactions: the coordinator.

A link whose target is a coordinator carries control messages: declare =
`core.begin()` (the transaction id is a small counter of the connection), discharge =
commit, accepted once the commit is durable, or abort (fail = true). Transfers and
dispositions whose delivery state is transactional-state join that transaction: a
transfer is settled with the transactional state at once (it is only routed at commit);
an outcome of a message we delivered is applied in the transaction and, when the
consumer left it unsettled, settled when the transaction ends; an abort makes those
messages in flight again (the core's Transaction.abort). An unknown transaction id is
amqp:transaction:unknown-id.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol

from proton import Delivery, Described, symbol, ulong
from proton import Message as AmqpMessage

from broker.core import Core, Subscription, Transaction

if TYPE_CHECKING:
    from protocols.amqp.links import OutLink

# Delivery states beyond the four outcomes (AMQP 1.0 part 4, transactions).
DECLARED = 0x33
TRANSACTIONAL = 0x34
_ACCEPTED_OUTCOME = Described(ulong(0x24), [])
_DECLARE = (ulong(0x31), symbol("amqp:declare:list"))
_DISCHARGE = (ulong(0x32), symbol("amqp:discharge:list"))
_OUTCOME_CODES = {0x24: Delivery.ACCEPTED, 0x25: Delivery.REJECTED, 0x26: Delivery.RELEASED}
_OUTCOME_CODES[0x27] = Delivery.MODIFIED
_ACCEPTED = int(Delivery.ACCEPTED)


class UnknownTransaction(Exception):
    """A transactional state naming a transaction this connection has not declared."""

    condition = "amqp:transaction:unknown-id"

    def __init__(self, txid: bytes) -> None:
        self.description = f"unknown transaction {txid!r}"
        super().__init__(self.description)


class CoordinatorHost(Protocol):
    """What the coordinator uses of its connection (protocols.amqp.deliveries provides
    it); typed here so that this module does not import the one that builds it."""

    core: Core
    _decoder: AmqpMessage

    def _close_connection(self, condition: str, description: str) -> None: ...

    def _reject(self, dlv: Any, condition: str, description: str, presettled: bool) -> None: ...

    def _settle_when(self, done: Awaitable[None] | None, dlv: Any, state: int) -> None: ...


class Coordinator:
    """The open transactions of one connection and its coordinator links' control
    messages (see the module docstring)."""

    def __init__(self, conn: CoordinatorHost) -> None:
        self.conn = conn
        self.txs: dict[bytes, Transaction] = {}
        # Deliveries acknowledged inside each transaction, settled when it ends.
        self.tx_deliveries: dict[bytes, list[tuple[OutLink, Delivery]]] = {}
        self._tx_ids = itertools.count(1)

    @staticmethod
    def txid_of(dlv: Delivery) -> bytes:
        """The transaction id of a delivery's (remote) transactional state."""
        data = dlv.remote.data or []
        return bytes(data[0]) if data else b""

    def transaction(self, dlv: Delivery) -> tuple[bytes, Transaction]:
        """The transaction a transfer with transactional state joins."""
        txid = self.txid_of(dlv)
        tx = self.txs.get(txid)
        if tx is None:
            raise UnknownTransaction(txid)
        return txid, tx

    @staticmethod
    def accept_transfer(dlv: Delivery, txid: bytes) -> None:
        """Settle a transactional transfer: accepted, as part of transaction `txid`."""
        dlv.local.data = [txid, _ACCEPTED_OUTCOME]
        dlv.update(TRANSACTIONAL)
        dlv.settle()

    def outcome(self, out: OutLink, sub: Subscription, msg_id: str, dlv: Delivery) -> bool:
        """A consumer's transactional disposition of a message we delivered; True when
        the delivery is to be settled now (the consumer settled it)."""
        data = dlv.remote.data or []
        txid = bytes(data[0]) if data else b""
        tx = self.txs.get(txid)
        outcome = data[1] if len(data) > 1 else None
        code = int(outcome.descriptor) if isinstance(outcome, Described) else 0
        if tx is None:
            exc = UnknownTransaction(txid)
            self.conn._close_connection(exc.condition, exc.description)
            return False
        kind = _OUTCOME_CODES.get(code)
        if kind == Delivery.ACCEPTED:
            sub.ack(msg_id, tx=tx)
        elif kind == Delivery.REJECTED:
            sub.dead_letter(msg_id, "rejected", tx=tx)
        elif kind == Delivery.MODIFIED:
            sub.nack(msg_id, tx=tx)
        elif kind == Delivery.RELEASED:
            sub.release(msg_id)
        else:
            return False  # no outcome yet
        if not dlv.settled:
            # Settled when the transaction ends; a rollback makes it ours again.
            self.tx_deliveries.setdefault(txid, []).append((out, dlv))
            return False
        return True

    def control(self, dlv: Delivery, data: bytes) -> None:
        """A control message (declare or discharge) on a coordinator link."""
        conn = self.conn
        pm = conn._decoder
        pm.clear()
        try:
            pm.decode(data)
        except Exception:
            conn._reject(
                dlv._impl, "amqp:decode-error", "cannot decode control message", dlv.settled
            )
            return
        body = pm.body
        descriptor = body.descriptor if isinstance(body, Described) else None
        fields = list(body.value or []) if isinstance(body, Described) else []
        if descriptor in _DECLARE:
            txid = str(next(self._tx_ids)).encode()
            self.txs[txid] = conn.core.begin()
            dlv.local.data = [txid]
            dlv.update(DECLARED)
            dlv.settle()
            return
        if descriptor not in _DISCHARGE:
            conn._reject(dlv._impl, "amqp:not-implemented", "unknown control message", dlv.settled)
            return
        txid = bytes(fields[0]) if fields and fields[0] is not None else b""
        fail = bool(fields[1]) if len(fields) > 1 else False
        tx = self.txs.pop(txid, None)
        if tx is None:
            exc = UnknownTransaction(txid)
            conn._reject(dlv._impl, exc.condition, exc.description, False)
            return
        acked = self.tx_deliveries.pop(txid, [])
        done: Any = None
        if fail:
            tx.abort()
        else:
            tx.commit()
            done = conn.core.barrier()
        for out, d in acked:
            if not fail:
                out.unacked.pop(d._impl, None)
                d.settle()
        conn._settle_when(done, dlv._impl, _ACCEPTED)

    def take(self) -> list[Transaction]:
        """Forget every open transaction (the connection ends) and return them."""
        txs, self.txs = self.txs, {}
        self.tx_deliveries.clear()
        return list(txs.values())
