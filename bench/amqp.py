"""AMQP 1.0 load through python-qpid-proton's Container (reactor), one process per link.

As with STOMP, a run's producers and consumers share one queue and every body starts
with a 12-digit index and a 20-digit send time, so lost and duplicated messages are
counted exactly (see bench.workers). To keep proton's Python layer as cheap as it can be:

- a producer encodes one Message (data section body, `durable` as asked) once, finds the
  body's bytes in the encoding and builds each transfer as prefix + index + time + suffix,
  streamed with `Sender.stream` into a delivery: no Message object per send;
- a consumer takes the raw transfer bytes (`Receiver.recv`) and reads the index from the
  data (or amqp-value binary) section it finds from the end, falling back to
  `Message.decode` only if neither is there; it grants credit in batches itself.

Settlement: `--ack auto` attaches consumers at-most-once (the broker pre-settles),
`client`/`client-individual` at-least-once with one `accepted` per delivery. Producers
send pre-settled, except with `--receipts` (the receipts scenario): durable messages,
unsettled, at most `--window` awaiting their `accepted` disposition per producer; the
time from a transfer to its disposition is the receipt latency.

Addresses: `queue://NAME` (ZoneMQ, ActiveMQ) unless the target URL says `addr=` with a
`{}` placeholder, or the broker's open frame names RabbitMQ (`/queue/NAME`, which its
AMQP 1.0 plugin declares as a durable queue on attach).
"""

from __future__ import annotations

import time
from typing import Any

from proton import Delivery, Endpoint, Handler, Message
from proton.reactor import AtLeastOnce, AtMostOnce, Container

from bench.workers import COUNT, LAST_NS, READY, Job, Shared, cpu_seconds, mark, wait_go

perf_ns = time.perf_counter_ns


def url_of(params: dict[str, Any]) -> str:
    return f"amqp://{params['host']}:{params['port']}"


def _connect(container: Container, params: dict[str, Any]) -> Any:
    return container.connect(
        url_of(params),
        user=params["login"],
        password=params["passcode"],
        allowed_mechs="PLAIN ANONYMOUS",
        heartbeat=None,
        virtual_host=params.get("vhost"),
    )


def body_template(size: int, durable: bool) -> tuple[bytes, bytes]:
    """The encoding of a `size`-byte data-section message, split around its first 32
    body bytes (index and send time go there)."""
    marker = b"\x01" * 32
    msg = Message(body=marker + b"x" * (size - 32), inferred=True, durable=durable)
    enc = bytes(msg.encode())
    at = enc.find(marker)
    if at < 0:  # pragma: no cover - proton always encodes binary bodies verbatim
        raise RuntimeError("body not found in the encoded message")
    return enc[:at], enc[at + 32 :]


def index_of(data: bytes) -> int:
    """The message index at the start of the body of an encoded AMQP message."""
    for marker in (b"\x00Su", b"\x00Sw"):
        at = data.rfind(marker)
        if at >= 0:
            ctor = data[at + 3]
            start = at + 5 if ctor == 0xA0 else at + 8 if ctor == 0xB0 else -1
            if start > 0 and data[start : start + 12].isdigit():
                return int(data[start : start + 12])
    msg = Message()
    msg.decode(data)
    body = msg.body
    if isinstance(body, str):
        body = body.encode()
    return int(bytes(body)[:12])


class _Base(Handler):  # type: ignore[misc]
    """Common plumbing: a stop check on a timer, errors recorded, the connection closed."""

    def __init__(self, job: Job, shared: Shared) -> None:
        super().__init__()
        self.p = job.params
        self.shared = shared
        self.errors: list[str] = []
        self.conn: Any = None
        self.link: Any = None
        self.closed = False

    def on_timer_task(self, event: Any) -> None:
        if self.shared.stop.is_set():
            self.close()
        elif not self.closed:
            event.container.schedule(0.05, self)

    def close(self) -> None:
        if not self.closed and self.conn is not None:
            self.closed = True
            self.conn.close()

    def _error(self, what: str, cond: Any) -> None:
        if cond is not None:
            text = f"{what}: {cond.name} {cond.description or ''}".strip()
            self.errors.append(text.splitlines()[0][:200])
        self.close()

    def on_link_remote_close(self, event: Any) -> None:
        self._error("link closed", event.link.remote_condition)

    def on_connection_remote_close(self, event: Any) -> None:
        self._error("connection closed", event.connection.remote_condition)
        if event.connection.state & Endpoint.LOCAL_ACTIVE:
            event.connection.close()

    def on_transport_error(self, event: Any) -> None:
        cond = event.transport.condition
        if not self.closed and cond is not None:
            self.errors.append(f"transport: {cond.name} {cond.description or ''}".strip())
        self.closed = True


class _Producer(_Base):
    def __init__(self, job: Job, shared: Shared) -> None:
        super().__init__(job, shared)
        start, stop = self.p["indices"]
        self.i = start
        self.stop_i = stop
        self.sent = 0
        self.unsettled = bool(self.p["receipts"])
        self.window = self.p["window"] or 100
        self.outstanding = 0
        self.sent_ns: dict[int, int] = {}
        self.latencies: list[int] = []
        self.first_ns = 0
        self.last_ns = 0
        self.started = False
        self.prefix, self.suffix = body_template(self.p["size"], self.p["persistent"])

    def on_reactor_init(self, event: Any) -> None:
        self.conn = _connect(event.container, self.p)
        opts = AtLeastOnce() if self.unsettled else AtMostOnce()
        self.link = event.container.create_sender(
            self.conn, self.p["address"], name=f"p{self.shared.wid}", options=opts
        )
        event.container.schedule(0.05, self)

    def on_link_remote_open(self, event: Any) -> None:
        if not wait_go(self.shared):
            self.close()
            return
        self.started = True
        self.pump()

    def on_link_flow(self, event: Any) -> None:
        if self.started:
            self.pump()

    def pump(self) -> None:
        link = self.link
        if self.closed or self.i >= self.stop_i:
            return
        credit = link.credit
        if self.unsettled:
            credit = min(credit, self.window - self.outstanding)
        if credit <= 0:
            return
        n = min(credit, self.stop_i - self.i)
        now = perf_ns()
        stamp = b"%020d" % now
        prefix, suffix = self.prefix, self.suffix
        stream, advance, delivery = link.stream, link.advance, link.delivery
        i = self.i
        if self.unsettled:
            sent_ns = self.sent_ns
            for g in range(i, i + n):
                tag = b"%d" % g
                delivery(tag)
                stream(prefix + b"%012d" % g + stamp + suffix)
                advance()
                sent_ns[g] = now
            self.outstanding += n
        else:
            for g in range(i, i + n):
                dlv = delivery(b"%d" % g)
                stream(prefix + b"%012d" % g + stamp + suffix)
                advance()
                dlv.settle()
        self.i = i + n
        self.sent += n
        if not self.first_ns:
            self.first_ns = now
        self.last_ns = perf_ns()
        mark(self.shared, self.sent, now)
        if self.i >= self.stop_i and not self.unsettled:
            self.close()

    def on_delivery(self, event: Any) -> None:
        dlv = event.delivery
        if not dlv.updated:
            return
        state = dlv.remote_state
        if state == Delivery.ACCEPTED:
            t = self.sent_ns.pop(int(dlv.tag), None)
            if t is not None:
                self.latencies.append(perf_ns() - t)
        else:
            self.errors.append(f"delivery outcome {state}")
        dlv.settle()
        self.outstanding -= 1
        if self.i >= self.stop_i and self.outstanding <= 0:
            self.close()
        else:
            self.pump()


class _Consumer(_Base):
    def __init__(self, job: Job, shared: Shared) -> None:
        super().__init__(job, shared)
        self.seen = bytearray(self.p["messages"])
        self.received = 0
        self.first_ns = 0
        self.last_ns = 0
        self.accept = self.p["ack"] != "auto"
        self.credit = self.p["prefetch"] or 1000

    def on_reactor_init(self, event: Any) -> None:
        self.conn = _connect(event.container, self.p)
        opts = AtLeastOnce() if self.accept else AtMostOnce()
        self.link = event.container.create_receiver(
            self.conn, self.p["address"], name=f"c{self.shared.wid}", options=opts
        )
        self.link.flow(self.credit)
        event.container.schedule(0.05, self)

    def on_link_remote_open(self, event: Any) -> None:
        self.shared.counters[3] = READY

    def on_delivery(self, event: Any) -> None:
        dlv = event.delivery
        if dlv.partial:
            return
        link = self.link
        data = link.recv(dlv.pending)
        link.advance()
        now = perf_ns()
        g = index_of(data)
        seen = self.seen
        if seen[g] < 255:
            seen[g] += 1
        if self.accept:
            dlv.update(Delivery.ACCEPTED)
        dlv.settle()
        self.received += 1
        c = self.shared.counters
        c[LAST_NS] = now
        c[COUNT] = self.received
        if not self.first_ns:
            self.first_ns = now
        self.last_ns = now
        credit = link.credit
        if credit < self.credit // 2:
            link.flow(self.credit - credit)


def worker(job: Job, shared: Shared) -> dict[str, Any]:
    """Run one AMQP producer or consumer until done or stopped; its figures."""
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    handler: _Base = _Producer(job, shared) if job.role == "producer" else _Consumer(job, shared)
    Container(handler).run()
    out: dict[str, Any] = {
        "cpu_s": cpu_seconds() - cpu0,
        "busy_s": time.perf_counter() - t0,
        "errors": handler.errors,
    }
    if isinstance(handler, _Producer):
        out.update(sent=handler.sent, first_ns=handler.first_ns, last_ns=handler.last_ns)
        out["latencies_ns"] = handler.latencies
    else:
        assert isinstance(handler, _Consumer)
        out.update(seen=bytes(handler.seen), last_ns=handler.last_ns)
    return out


def probe(params: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
    """The broker's open-frame properties (product, version), checking it answers."""
    from proton.utils import BlockingConnection

    conn = BlockingConnection(
        url_of(params),
        timeout=timeout,
        user=params["login"],
        password=params["passcode"],
        allowed_mechs="PLAIN ANONYMOUS",
    )
    try:
        props = conn.conn.remote_properties or {}
        return {str(k): (v.decode() if isinstance(v, bytes) else str(v)) for k, v in props.items()}
    finally:
        conn.close()


def address_for(template: str | None, props: dict[str, Any], name: str) -> str:
    """The AMQP address of queue `name` on this broker."""
    if template:
        return template.replace("{}", name)
    if "rabbit" in props.get("product", "").lower():
        return f"/queue/{name}"
    return f"queue://{name}"
