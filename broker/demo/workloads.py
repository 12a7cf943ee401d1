"""Demo producers and consumers: one thread per client, each given a list of broker
addresses, reconnecting across them by itself when its connection drops.

`Workload` is the thread and its stop; the clients are `StompProducer` /
`StompConsumer` (broker.demo.stomp_clients, stomp.py), `AmqpProducer` / `AmqpConsumer`
(broker.demo.amqp_clients, python-qpid-proton) and `SqsProducer` / `SqsConsumer`
(broker.demo.sqs_clients, boto3). `make_workloads()` builds a set of them for a demo
or a fault test. Every producer sends persistent messages one at a time and waits for the
broker's acknowledgement before the next; a send whose acknowledgement did not come
before the connection dropped is sent again with the same seq (the consumer may see
both copies: the Checker counts that as a resend, not a loss). Consumers acknowledge
each message individually after recording it.

The client libraries are imported inside the client modules' methods, when a client
runs, so importing this package needs none of them and the broker never does (they
are the `demo` optional dependencies). Messages a queue still holds from an earlier
run count as unexpected: a demo run wants a queue name of its own (`queue=`).
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from broker.demo.checker import Checker

Address = tuple[str, int]

# How long a client waits between rounds of connection attempts over its address list:
# short, since a failover should be over in seconds and the demo measures it.
RECONNECT_DELAY = 0.2


class Workload(threading.Thread):
    """A demo client thread: `start()`, then `stop()` (waits for the thread to end).

    `connected` is set while the client has a working connection (a test can wait for
    the first one); `error` holds what ended `run()` abnormally, if anything."""

    protocol: ClassVar[str]

    def __init__(
        self, name: str, addresses: Sequence[Address], checker: Checker, queue: str
    ) -> None:
        if not addresses:
            raise ValueError("a demo client needs at least one broker address")
        super().__init__(name=name, daemon=True)
        # Tuples, as stomp.py reports the address it connected to.
        self.addresses = [(str(host), int(port)) for host, port in addresses]
        self.checker = checker
        self.queue = queue
        self.connected = threading.Event()
        self.error: BaseException | None = None
        self._stopping = threading.Event()

    @property
    def stopping(self) -> bool:
        """True once stop() has been called."""
        return self._stopping.is_set()

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # kept for stop() and the demo's report
            self.error = exc
            self.checker.event(self.name, f"failed: {exc!r}")
            raise
        finally:
            self.connected.clear()

    def work(self) -> None:
        """The client's body, until `stopping`."""
        raise NotImplementedError

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the client to finish and wait for its thread; a failure in it is raised."""
        self._stopping.set()
        self._wake()
        if self.is_alive():
            self.join(timeout)
        if self.is_alive():
            raise TimeoutError(f"{self.name} did not stop within {timeout}s")
        if self.error is not None:
            raise RuntimeError(f"{self.name} failed") from self.error

    def _wake(self) -> None:
        """Interrupt whatever the thread waits on (subclasses whose waits are not on
        `_stopping` override this)."""

    def pause(self, seconds: float) -> bool:
        """Wait `seconds` unless stopped first; True if stopping."""
        return self._stopping.wait(seconds)

    def note(self, text: str) -> None:
        """A line on the Checker's timeline, from this client."""
        self.checker.event(self.name, text)


class Pacer:
    """Spaces a producer's sends to `rate` per second (None: as fast as acknowledged),
    without catching up in a burst after a pause such as a failover."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be above 0 messages/s (or None)")
        self.interval = 0.0 if rate is None else 1.0 / rate
        self._next = time.monotonic()

    def delay(self) -> float:
        """Seconds to wait before the next send (0 when it is due)."""
        return max(0.0, self._next - time.monotonic())

    def sent(self) -> None:
        """A send went out: the next is due one interval from now or from its slot."""
        self._next = max(self._next, time.monotonic() - self.interval) + self.interval


# protocol -> (module, producer class, consumer class)
CLIENTS = {
    "stomp": ("broker.demo.stomp_clients", "StompProducer", "StompConsumer"),
    "amqp": ("broker.demo.amqp_clients", "AmqpProducer", "AmqpConsumer"),
    "sqs": ("broker.demo.sqs_clients", "SqsProducer", "SqsConsumer"),
}


def make_workloads(
    checker: Checker,
    addresses: dict[str, Sequence[Address]],
    *,
    producers: int = 1,
    consumers: int = 1,
    rate: float | None = None,
    queue: str = "demo",
    heartbeat: float | None = None,
    visibility_timeout: int | None = None,
) -> list[Workload]:
    """Producers and consumers (not started) for each protocol named in `addresses`
    ("stomp", "amqp", "sqs" → that protocol's broker addresses), `rate` messages/s per
    producer, on one queue per protocol, `<queue>-<protocol>`. `heartbeat` (STOMP
    heart-beats, AMQP idle timeout, seconds) and `visibility_timeout` (SQS, seconds)
    override the clients' defaults when given."""
    unknown = set(addresses) - set(CLIENTS)
    if unknown:
        raise ValueError(f"unknown protocols {sorted(unknown)}; known: {sorted(CLIENTS)}")
    made: list[Workload] = []
    for protocol, addrs in addresses.items():
        module_name, producer_name, consumer_name = CLIENTS[protocol]
        # Imported only for the protocols asked for: each pulls in its client library.
        module = importlib.import_module(module_name)
        producer = getattr(module, producer_name)
        consumer = getattr(module, consumer_name)
        name = f"{queue}-{protocol}"
        options: dict[str, Any] = {}
        if heartbeat is not None and protocol in ("stomp", "amqp"):
            options["heartbeat"] = heartbeat
        if visibility_timeout is not None and protocol == "sqs":
            options["visibility_timeout"] = visibility_timeout
        made += [
            consumer(f"{protocol}-consumer-{i}", addrs, checker, name, **options)
            for i in range(consumers)
        ]
        made += [
            producer(f"{protocol}-producer-{i}", addrs, checker, name, rate=rate, **options)
            for i in range(producers)
        ]
    return made


class ProducerBase(Workload):
    """A producer: seq numbers from 0, a Pacer, and the Checker calls for each send."""

    def __init__(
        self,
        name: str,
        addresses: Sequence[Address],
        checker: Checker,
        queue: str,
        *,
        rate: float | None = None,
    ) -> None:
        super().__init__(name, addresses, checker, queue)
        self.pacer = Pacer(rate)
        self.seq = 0  # the next message to have acknowledged

    def sending(self) -> None:
        """The message `seq` goes on the wire (again, after a dropped connection)."""
        self.checker.sent(self.protocol, self.name, self.seq)
        self.pacer.sent()

    def acknowledged(self) -> None:
        """The broker acknowledged `seq`: move on to the next."""
        self.checker.acknowledged(self.protocol, self.name, self.seq)
        self.seq += 1
