"""The demo's STOMP clients (stomp.py, STOMP 1.2): a producer sending persistent
messages with a receipt per send, a client-individual consumer.

stomp.py's host list and reconnect settings only govern the socket connect inside
`connect()`: once a connection is up and drops, stomp.py calls `on_disconnected` and
does nothing more. So each client's thread owns reconnection: it waits for the drop,
then calls `connect()` again (which walks the host list with stomp.py's backoff) and,
for a consumer, subscribes again. `reconnect_attempts_max` is bounded (one round over
the list) so the thread comes back between rounds to see whether it was stopped:
with -1 stomp.py's connect loop never returns while no broker answers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from broker.demo.checker import Checker, decode_body, encode_body
from broker.demo.workloads import RECONNECT_DELAY, Address, ProducerBase, Workload

# A receipt not back within this long is treated like one lost with the connection:
# the message is sent again (a broker that is up answers in milliseconds).
RECEIPT_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0


class _Listener:
    """stomp.py callbacks (called on its receiver thread) onto a condition variable."""

    def __init__(self, on_message: Any = None) -> None:
        self.cond = threading.Condition()
        self.receipts: set[str] = set()
        self.drops = 0  # connections lost so far
        self.on_message_fn = on_message

    def on_receipt(self, frame: Any) -> None:
        with self.cond:
            self.receipts.add(frame.headers.get("receipt-id", ""))
            self.cond.notify_all()

    def on_disconnected(self) -> None:
        with self.cond:
            self.drops += 1
            self.cond.notify_all()

    def on_message(self, frame: Any) -> None:
        if self.on_message_fn is not None:
            self.on_message_fn(frame)

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()


class _StompClient(Workload):
    """Connection handling shared by the STOMP producer and consumer."""

    protocol = "stomp"

    def __init__(
        self, name: str, addresses: Sequence[Address], checker: Checker, queue: str, **kw: Any
    ) -> None:
        super().__init__(name, addresses, checker, queue, **kw)
        self.destination = f"/queue/{queue}"
        self.listener = _Listener(self._message)
        self.conn: Any = None
        # listener.drops when the current connection was made: any other value means
        # it has dropped since (read before connect(), so no drop can slip between).
        self.generation = 0

    def _make_connection(self) -> Any:
        import stomp

        conn = stomp.Connection12(
            self.addresses,
            heartbeats=(0, 0),
            reconnect_sleep_initial=0.1,
            reconnect_sleep_increase=0.5,
            reconnect_sleep_max=1.0,
            reconnect_attempts_max=len(self.addresses),
            timeout=CONNECT_TIMEOUT,
        )
        conn.set_listener("demo", self.listener)
        return conn

    def _message(self, frame: Any) -> None:
        """A MESSAGE frame (consumers only)."""

    def _wake(self) -> None:
        self.listener.wake()

    def ensure_connected(self) -> bool:
        """Connect (again) unless connected; False if stopped first."""
        import stomp.exception

        if self.conn is None:
            self.conn = self._make_connection()
        while not self.stopping:
            if self.conn.is_connected():
                return True
            self.connected.clear()
            with self.listener.cond:
                self.generation = self.listener.drops
            try:
                self.conn.connect(wait=True)
            except (stomp.exception.StompException, OSError):
                # No broker of the list answered this round: try the list again.
                if self.pause(RECONNECT_DELAY):
                    return False
                continue
            host, port = self.conn.transport.current_host_and_port
            try:
                self.after_connect()
            except (stomp.exception.StompException, OSError):
                continue  # dropped again at once: is_connected() is false now
            self.note(f"connected to {host}:{port}")
            self.connected.set()
        return False

    def dropped(self) -> bool:
        """The current connection has dropped (call with listener.cond held)."""
        return self.listener.drops != self.generation

    def dropped_or_stopping(self) -> bool:
        """A wait_for predicate: dropped, or stop() was called."""
        return self.dropped() or self.stopping

    def after_connect(self) -> None:
        """Runs on each new connection before it is used."""

    def disconnect(self) -> None:
        if self.conn is not None and self.conn.is_connected():
            try:
                self.conn.disconnect()
            except Exception as exc:  # the broker went away meanwhile: nothing to close
                self.note(f"disconnect: {exc!r}")


class StompProducer(_StompClient, ProducerBase):
    """Sends persistent messages to `/queue/<queue>`, each with a `receipt` header, and
    waits for that RECEIPT before the next; resends a message whose receipt did not come
    back (connection lost, or RECEIPT_TIMEOUT)."""

    def __init__(
        self,
        name: str,
        addresses: Sequence[Address],
        checker: Checker,
        queue: str,
        *,
        rate: float | None = None,
    ) -> None:
        super().__init__(name, addresses, checker, queue, rate=rate)
        self._attempt = 0

    def work(self) -> None:
        import stomp.exception

        try:
            while self.ensure_connected():
                if self.pause(self.pacer.delay()):
                    break
                # A receipt id per attempt, so a late receipt of an earlier attempt is
                # never taken for this one.
                self._attempt += 1
                rid = f"{self.name}:{self.seq}:{self._attempt}"
                self.sending()
                try:
                    self.conn.send(
                        self.destination,
                        encode_body(self.name, self.seq),
                        headers={"persistent": "true"},
                        receipt=rid,
                    )
                except (stomp.exception.StompException, OSError):
                    self.note(f"connection lost, seq {self.seq} unacknowledged")
                    continue
                if self._wait_receipt(rid):
                    self.acknowledged()
                elif not self.stopping and self.conn.is_connected():
                    self.note(f"no receipt for seq {self.seq} in {RECEIPT_TIMEOUT}s")
        finally:
            self.disconnect()

    def _wait_receipt(self, rid: str) -> bool:
        """True once `rid` is back; False if the connection dropped, or timeout, or stop."""
        with self.listener.cond:
            self.listener.cond.wait_for(
                lambda: rid in self.listener.receipts or self.dropped_or_stopping(),
                RECEIPT_TIMEOUT,
            )
            if rid in self.listener.receipts:
                self.listener.receipts.discard(rid)
                return True
            if self.dropped():
                self.note(f"connection lost, seq {self.seq} unacknowledged")
            return False


class StompConsumer(_StompClient):
    """Subscribes to `/queue/<queue>` in client-individual mode (prefetch `prefetch`),
    records each MESSAGE (`redelivered` header) and ACKs it; subscribes again on each
    new connection."""

    def __init__(
        self,
        name: str,
        addresses: Sequence[Address],
        checker: Checker,
        queue: str,
        *,
        prefetch: int = 10,
    ) -> None:
        super().__init__(name, addresses, checker, queue)
        self.prefetch = prefetch

    def after_connect(self) -> None:
        self.conn.subscribe(
            self.destination,
            id="demo",
            ack="client-individual",
            headers={"activemq.prefetchSize": str(self.prefetch)},
        )

    def _message(self, frame: Any) -> None:
        # Called on stomp.py's receiver thread: record first, then ACK, so a message the
        # broker counts as consumed is always in the Checker.
        try:
            producer, seq = decode_body(frame.body)
        except ValueError as exc:
            self.note(str(exc))
            return
        redelivered = frame.headers.get("redelivered") == "true"
        self.checker.delivered(self.protocol, producer, seq, redelivered)
        try:
            self.conn.ack(frame.headers["ack"])
        except Exception as exc:  # connection gone: the broker will redeliver it, flagged
            self.note(f"ack of {producer}:{seq} failed: {exc!r}")

    def _wait_for_drop(self) -> bool:
        """Wait until the connection drops (True) or stop() (False)."""
        with self.listener.cond:
            self.listener.cond.wait_for(self.dropped_or_stopping)
            return self.dropped()

    def work(self) -> None:
        try:
            while self.ensure_connected():
                if self._wait_for_drop():
                    self.note("connection lost")
        finally:
            self.disconnect()
