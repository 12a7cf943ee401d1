"""The demo's AMQP 1.0 clients (python-qpid-proton's event-driven Container, one per
client thread): a sender that settles on the broker's `accepted`, a receiver that
accepts each message.

Reconnection is proton's: `Container.connect(urls=[...], reconnect=...)` walks the URL
list with a backoff, rebinds the same Connection to a new transport, and the engine
re-opens the session and links on it. Two things proton does not do for us:

- a transfer in flight when the transport closed is never settled (its outcome is
  lost with the connection), so the sender forgets it on `on_disconnected` and sends the
  message again, with the same seq, once the re-attached link has credit;
- `proton.reactor.Backoff` hands out one shared iterator, so after the first outage
  every reconnect would continue from the grown delays; `_Delays` makes a fresh
  sequence (0, 0.1, … capped at MAX_RECONNECT_DELAY) per outage.

proton does notice a silent peer: `heartbeat` is its idle timeout, which also bounds
an attempt whose AMQP header is never answered, so a partitioned address in the list
costs one timeout before the next is tried.

`stop()` injects an application event into the container (`EventInjector`), the one
thread-safe way in; the handler then stops the container on its own thread.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from broker.demo.checker import Checker, decode_body, encode_body
from broker.demo.workloads import Address, ProducerBase, Workload

MAX_RECONNECT_DELAY = 1.0
# Seconds of silence after which a connection is given up (0: never): a node that
# vanished without a FIN or RST (a partition) is noticed.
HEARTBEAT = 2.0


class _Delays:
    """proton's reconnect delays, starting over at each outage (see the docstring)."""

    def __iter__(self) -> Iterator[float]:
        yield 0.0
        delay = 0.1
        while True:
            yield delay
            delay = min(MAX_RECONNECT_DELAY, delay * 2)


class _AmqpClient(Workload):
    """The container thread and its stop, shared by the AMQP sender and receiver."""

    protocol = "amqp"

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
        self.address = f"queue://{queue}"
        self.urls = [f"amqp://{host}:{port}" for host, port in self.addresses]
        self._injector: Any = None
        self._container: Any = None

    def handler(self) -> Any:
        """The MessagingHandler that is this client."""
        raise NotImplementedError

    def work(self) -> None:
        from proton.reactor import Container, EventInjector

        self._injector = EventInjector()
        container = self._container = Container(self.handler())
        container.selectable(self._injector)
        if self.stopping:  # stop() may have looked before the injector existed
            return
        container.run()

    def _wake(self) -> None:
        from proton.reactor import ApplicationEvent

        if self._injector is not None:
            self._injector.trigger(ApplicationEvent("demo_stop"))

    def connect(self, container: Any) -> Any:
        """A Connection that proton reconnects across `urls` by itself."""
        # heartbeat: proton's idle timeout, closing a transport that received nothing
        # for that long (the broker sends empty frames at half the advertised value).
        heartbeat = self.heartbeat or None
        return container.connect(urls=self.urls, reconnect=_Delays(), heartbeat=heartbeat)

    def closing(self) -> None:
        """The `demo_stop` event: close everything and let the container return."""
        self._injector.close()
        self._container.stop()


def _messaging_handler() -> type:
    """proton's MessagingHandler class, imported lazily (see the package docstring)."""
    from proton.handlers import MessagingHandler

    return MessagingHandler


class AmqpProducer(_AmqpClient, ProducerBase):
    """Sends durable messages to `queue://<queue>` one at a time; the next goes once the
    broker's `accepted` disposition for this one has arrived (the sender then settles)."""

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
        self._sender: Any = None
        self._inflight: Any = None  # the tag of the delivery awaiting its outcome
        self._timer: Any = None
        self._handler: Any = None

    def handler(self) -> Any:
        client = self

        class Handler(_messaging_handler()):  # type: ignore[misc]
            def on_start(self, event: Any) -> None:
                conn = client.connect(event.container)
                client._sender = event.container.create_sender(conn, client.address)

            def on_connection_opened(self, event: Any) -> None:
                client.note(f"connected to {event.connection.url}")
                client.connected.set()

            def on_disconnected(self, event: Any) -> None:
                # Called for each failed reconnect attempt too: note the first only.
                if client.connected.is_set():
                    client.connected.clear()
                    unacked = client._inflight is not None
                    client.note(
                        f"connection lost, seq {client.seq} unacknowledged"
                        if unacked
                        else "connection lost"
                    )
                client._inflight = None

            def on_sendable(self, event: Any) -> None:
                client.send_next(event.container)

            def on_timer_task(self, event: Any) -> None:
                client._timer = None
                client.send_next(event.container)

            def on_accepted(self, event: Any) -> None:
                if event.delivery.tag == client._inflight:
                    client._inflight = None
                    client.acknowledged()
                    client.send_next(event.container)

            def on_rejected(self, event: Any) -> None:
                self._retry(event, "rejected")

            def on_released(self, event: Any) -> None:
                self._retry(event, "released")

            def _retry(self, event: Any, outcome: str) -> None:
                if event.delivery.tag == client._inflight:
                    client.note(f"seq {client.seq} {outcome}: sending it again")
                    client._inflight = None
                    client.send_next(event.container)

            def on_demo_stop(self, event: Any) -> None:
                client.closing()

        self._handler = Handler()
        return self._handler

    def send_next(self, container: Any) -> None:
        """Send `seq` if nothing is in flight, the pacer allows it and there is credit."""
        from proton import Message

        sender = self._sender
        if self.stopping or self._inflight is not None or sender is None:
            return
        delay = self.pacer.delay()
        if delay > 0:
            if self._timer is None:
                self._timer = container.schedule(delay, self._handler)
            return
        if not sender.credit:
            return
        self.sending()
        body = encode_body(self.name, self.seq)
        # proton makes a new wrapper per event, so deliveries are matched by tag.
        self._inflight = sender.send(Message(body=body, durable=True)).tag


class AmqpConsumer(_AmqpClient):
    """A receiver on `queue://<queue>` with `prefetch` credit that records each message
    (delivery-count > 0: redelivered) and accepts it."""

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

    def handler(self) -> Any:
        client = self

        class Handler(_messaging_handler()):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__(prefetch=client.prefetch, auto_accept=False)

            def on_start(self, event: Any) -> None:
                conn = client.connect(event.container)
                event.container.create_receiver(conn, client.address)

            def on_connection_opened(self, event: Any) -> None:
                client.note(f"connected to {event.connection.url}")
                client.connected.set()

            def on_disconnected(self, event: Any) -> None:
                if client.connected.is_set():  # not again for each failed reconnect
                    client.connected.clear()
                    client.note("connection lost")

            def on_message(self, event: Any) -> None:
                msg = event.message
                try:
                    producer, seq = decode_body(msg.body)
                except ValueError as exc:
                    client.note(str(exc))
                    self.accept(event.delivery)
                    return
                redelivered = bool(msg.delivery_count)
                client.checker.delivered(
                    client.protocol, producer, seq, redelivered, consumer=client.name
                )
                self.accept(event.delivery)

            def on_demo_stop(self, event: Any) -> None:
                client.closing()

        return Handler()
