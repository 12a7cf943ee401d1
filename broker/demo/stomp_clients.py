"""The demo's STOMP clients (stomp.py, STOMP 1.2): a producer sending persistent
messages with a receipt per send, a client-individual consumer.

stomp.py's host list and reconnect settings only govern the socket connect inside
`connect()`: once a connection is up and drops, stomp.py calls `on_disconnected` and
does nothing more. So each client's thread owns reconnection: it waits for the drop,
then makes a new stomp.py connection (which walks the host list with stomp.py's
backoff) and, for a consumer, subscribes again. Worked around, in stomp.py 8:

- `reconnect_attempts_max` is bounded (one round over the list) so the thread comes
  back between rounds to see whether it was stopped: with -1 stomp.py's connect loop
  never returns while no broker answers;
- `connect(wait=True)` waits for CONNECTED with no timeout, and every attempt starts
  at the head of the host list: a host that takes the socket but never answers (a
  partitioned node) would hold the client forever. The thread waits for CONNECTED
  itself (CONNECT_TIMEOUT) and starts the next attempt at the following address;
- `timeout` is also the socket's read timeout (silence past it closes the
  connection), so it is set above the heart-beat interval;
- a receipt not back within RECEIPT_TIMEOUT abandons the connection like a
  heart-beat timeout does.
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
# Heart-beats both ways (seconds; 0: none): a connection to a node that vanished
# without a FIN or RST (a partition) is noticed within about 1.5 times this.
HEARTBEAT = 2.0


class _Listener:
    """One connection's stomp.py callbacks (called on its receiver thread) onto a
    condition variable. A new connection gets a new listener, so a late callback of an
    abandoned connection can never be taken for the current one's."""

    def __init__(self, on_message: Any = None) -> None:
        self.cond = threading.Condition()
        self.receipts: set[str] = set()
        self.up = False  # CONNECTED arrived
        self.dropped = False
        self.on_message_fn = on_message

    def on_connected(self, frame: Any) -> None:
        with self.cond:
            self.up = True
            self.cond.notify_all()

    def on_receipt(self, frame: Any) -> None:
        with self.cond:
            self.receipts.add(frame.headers.get("receipt-id", ""))
            self.cond.notify_all()

    def on_disconnected(self) -> None:
        with self.cond:
            self.dropped = True
            self.cond.notify_all()

    def on_heartbeat_timeout(self) -> None:
        # stomp.py closes the socket; whether on_disconnected follows depends on its
        # receiver thread's state, so this is the drop.
        self.on_disconnected()

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
        self,
        name: str,
        addresses: Sequence[Address],
        checker: Checker,
        queue: str,
        *,
        heartbeat: float = HEARTBEAT,
        **kw: Any,
    ) -> None:
        super().__init__(name, addresses, checker, queue, **kw)
        self.heartbeat = heartbeat
        self.destination = f"/queue/{queue}"
        self.listener = _Listener()
        self.conn: Any = None
        self._first = 0  # the address the next connection attempt starts from

    def _make_connection(self) -> Any:
        import stomp

        # stomp.py always walks its host list from the head: rotated here, so an
        # address that accepts TCP but never answers CONNECT cannot hold us forever.
        hosts = self.addresses[self._first :] + self.addresses[: self._first]
        beat = int(self.heartbeat * 1000)
        conn = stomp.Connection12(
            hosts,
            heartbeats=(beat, beat),
            reconnect_sleep_initial=0.1,
            reconnect_sleep_increase=0.5,
            reconnect_sleep_max=1.0,
            reconnect_attempts_max=len(hosts),
            # stomp.py's `timeout` is the connect timeout and also the socket's read
            # timeout, after which it calls the connection closed: above the
            # heart-beat interval, or none (a quiet consumer is not a dead one).
            timeout=max(CONNECT_TIMEOUT, 2 * self.heartbeat) if self.heartbeat else None,
        )
        # MESSAGEs are acked on the connection that delivered them.
        self.listener = _Listener(lambda frame: self._message(conn, frame))
        conn.set_listener("demo", self.listener)
        return conn

    def _message(self, conn: Any, frame: Any) -> None:
        """A MESSAGE frame that arrived on `conn` (consumers only)."""

    def _wake(self) -> None:
        self.listener.wake()

    def _abandon(self) -> None:
        """Close the current connection's socket without a DISCONNECT (it is dead, or
        never answered); its threads end with it."""
        if self.conn is not None:
            try:
                self.conn.transport.set_connected(False)
                self.conn.transport.disconnect_socket()
            except Exception as exc:  # already closed by stomp.py: nothing to do
                self.note(f"closing a dead connection: {exc!r}")
            self.conn = None

    def ensure_connected(self) -> bool:
        """Connect (again) unless connected; False if stopped first."""
        import stomp.exception

        while not self.stopping:
            if self.conn is not None and self.conn.is_connected() and not self.dropped():
                return True
            self.connected.clear()
            self._abandon()
            self.conn = self._make_connection()
            try:
                # Not wait=True: stomp.py would wait for CONNECTED with no timeout.
                self.conn.connect(wait=False)
            except (stomp.exception.StompException, OSError):
                # No broker of the list took the socket this round: try it again.
                if self.pause(RECONNECT_DELAY):
                    return False
                continue
            host, port = self.conn.transport.current_host_and_port
            index = self.addresses.index((host, port))
            if not self._wait_connected():
                if not self.stopping:
                    self.note(f"no CONNECTED from {host}:{port} in {CONNECT_TIMEOUT}s")
                self._first = (index + 1) % len(self.addresses)
                continue
            self._first = index
            try:
                self.after_connect()
            except (stomp.exception.StompException, OSError):
                continue  # dropped again at once
            self.note(f"connected to {host}:{port}")
            self.connected.set()
        return False

    def _wait_connected(self) -> bool:
        """Wait for this connection's CONNECTED frame (not a drop, a stop or timeout)."""
        listener = self.listener
        with listener.cond:
            listener.cond.wait_for(
                lambda: listener.up or listener.dropped or self.stopping, CONNECT_TIMEOUT
            )
            return listener.up and not listener.dropped

    def dropped(self) -> bool:
        """The current connection has dropped."""
        return self.listener.dropped

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
        heartbeat: float = HEARTBEAT,
    ) -> None:
        super().__init__(name, addresses, checker, queue, rate=rate, heartbeat=heartbeat)
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
                    # A broker that keeps the connection but answers nothing (frozen,
                    # or partitioned faster than heart-beats tell): drop it and try the
                    # address list again, as stomp.py does on a heart-beat timeout.
                    self.note(f"no receipt for seq {self.seq} in {RECEIPT_TIMEOUT}s")
                    self._abandon()
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
        heartbeat: float = HEARTBEAT,
    ) -> None:
        super().__init__(name, addresses, checker, queue, heartbeat=heartbeat)
        self.prefetch = prefetch

    def after_connect(self) -> None:
        self.conn.subscribe(
            self.destination,
            id="demo",
            ack="client-individual",
            headers={"activemq.prefetchSize": str(self.prefetch)},
        )

    def _message(self, conn: Any, frame: Any) -> None:
        # Called on stomp.py's receiver thread: record first, then ACK, so a message the
        # broker counts as consumed is always in the Checker.
        try:
            producer, seq = decode_body(frame.body)
        except ValueError as exc:
            self.note(str(exc))
            return
        redelivered = frame.headers.get("redelivered") == "true"
        self.checker.delivered(self.protocol, producer, seq, redelivered, consumer=self.name)
        try:
            conn.ack(frame.headers["ack"])
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
