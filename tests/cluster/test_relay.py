"""The standby's client relay (broker/cluster/relay.py) with real sockets and clients.

A real single-node broker runs in-process (tests/conftest.py's BrokerThread); a Relay runs
on the broker's own event loop, as it will in a standby, its target one of the broker's
client ports; stomp.py, proton's BlockingConnection and boto3 connect to the relay's
ephemeral port and must not be able to tell. Relay state is read on the loop
(`BrokerThread.call`); waiting is on events, receipts and bounded polls, never sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import stomp
import uvloop
from botocore.config import Config
from proton import Message
from proton.utils import BlockingConnection

from broker.cluster.relay import HIGH_WATER, READ_MAX, Relay
from tests.conftest import WAIT, BrokerThread, Client, Collector, RawClient, headers_of, wait_until

Address = tuple[str, int]


class OnLoop:
    """A Relay started on a broker's event loop; its target is settable from the test."""

    def __init__(self, broker: BrokerThread, target: Address | None, **kw: Any) -> None:
        self.broker = broker
        self.current = target
        self.relay = Relay("test", "127.0.0.1", 0, lambda: self.current, **kw)
        self._run(self.relay.start())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.broker.loop).result(WAIT * 2)

    @property
    def port(self) -> int:
        return self.relay.port

    def get(self, name: str) -> Any:
        return self.broker.call(lambda: getattr(self.relay, name))

    def retarget(self, target: Address | None) -> None:
        def change() -> None:
            self.current = target
            self.relay.changed()

        self.broker.call(change)

    def drop(self, reason: str) -> int:
        return int(self.broker.call(lambda: self.relay.drop(reason)))

    def stop(self) -> None:
        self._run(self.relay.stop())


def address(broker: BrokerThread, listener: str) -> Address:
    return ("127.0.0.1", broker.broker.port(listener))


@pytest.fixture
def relays() -> Iterator[Callable[..., OnLoop]]:
    started: list[OnLoop] = []

    def make(broker: BrokerThread, target: Address | None, **kw: Any) -> OnLoop:
        r = OnLoop(broker, target, **kw)
        started.append(r)
        return r

    yield make
    for r in started:
        with contextlib.suppress(Exception):
            r.stop()


def stomp_client(port: int, **kw: Any) -> Client:
    conn = stomp.Connection12([("127.0.0.1", port)], heartbeats=(0, 0), **kw)
    listener = Collector()
    conn.set_listener("collector", listener)
    conn.connect(wait=True)
    return Client(conn, listener, "1.2")


# -- the three protocols through a relay --------------------------------------------


def test_stomp_send_subscribe_receive_through_the_relay(
    broker: BrokerThread, relays: Callable[..., OnLoop]
) -> None:
    relay = relays(broker, address(broker, "stomp"))
    c = stomp_client(relay.port)
    try:
        c.subscribe("/queue/relayed", id="1", ack="client-individual", receipt="sub")
        assert c.listener.receipt() == "sub"
        c.send("/queue/relayed", "through the standby", receipt="sent")
        assert c.listener.receipt() == "sent"
        frame = c.listener.next()
        assert frame.body == "through the standby"
        c.ack_frame(frame)
        c.sync()
        assert broker.stats("relayed").depth == 0
        assert relay.get("connections") == 1
        assert relay.get("bytes_to_active") > 0
        assert relay.get("bytes_to_client") > 0
    finally:
        c.close()
    # DISCONNECT, the broker's close, the relay's: nothing is left behind.
    assert wait_until(lambda: relay.get("connections") == 0)


def test_amqp_send_receive_through_the_relay(
    broker: BrokerThread, relays: Callable[..., OnLoop]
) -> None:
    relay = relays(broker, address(broker, "amqp"))
    conn = BlockingConnection(f"127.0.0.1:{relay.port}", timeout=WAIT)
    try:
        receiver = conn.create_receiver("relayed", credit=10)
        # An unsettled send: returns once the broker's disposition came back through us.
        conn.create_sender("relayed").send(Message(body="amqp via relay"))
        got = receiver.receive(timeout=WAIT)
        assert got.body == "amqp via relay"
        receiver.accept()
        assert relay.get("connections") == 1
    finally:
        conn.close()
    assert wait_until(lambda: relay.get("connections") == 0)
    assert broker.stats("relayed").depth == 0


def sqs(port: int) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, read_timeout=30),
        aws_access_key_id="AKIDGOOD",
        aws_secret_access_key="s3cret",
    )


def test_sqs_through_the_relay_signed_and_queue_urls(
    broker_factory: Callable[..., BrokerThread], relays: Callable[..., OnLoop]
) -> None:
    # Users configured, so every request's SigV4 signature (over the Host header, which
    # names the relay) is checked by the broker behind it.
    broker = broker_factory(**{"auth.users": {"AKIDGOOD": "s3cret"}})
    relay = relays(broker, address(broker, "aws"))
    via_relay, direct = sqs(relay.port), sqs(broker.broker.port("aws"))
    url = via_relay.create_queue(QueueName="relayed")["QueueUrl"]
    # The broker builds queue URLs from the request's Host: through a relay they name
    # the relay (the node the client used), not the active.
    assert url == f"http://127.0.0.1:{relay.port}/000000000000/relayed"
    assert direct.get_queue_url(QueueName="relayed")["QueueUrl"].endswith(
        f":{broker.broker.port('aws')}/000000000000/relayed"
    )
    via_relay.send_message(QueueUrl=url, MessageBody="sqs via relay")
    got = via_relay.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in got] == ["sqs via relay"]
    via_relay.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
    # botocore sends to its endpoint_url whatever host the QueueUrl names, and the broker
    # finds a queue by account and name: a relay's URL works against the active directly.
    before = relay.get("bytes_to_active")
    direct.send_message(QueueUrl=url, MessageBody="direct")
    assert relay.get("bytes_to_active") == before
    got = direct.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in got] == ["direct"]


# -- no active, a failed connect, a changed active --------------------------------------


def test_no_active_known_closes_the_client_after_the_wait(
    broker: BrokerThread, relays: Callable[..., OnLoop], caplog: pytest.LogCaptureFixture
) -> None:
    relay = relays(broker, None, connect_timeout=0.3)
    started = time.monotonic()
    with (
        caplog.at_level(logging.WARNING, "zonemq.cluster"),
        pytest.raises(stomp.exception.ConnectFailedException),
    ):
        stomp_client(relay.port, reconnect_attempts_max=1)
    assert 0.3 <= time.monotonic() - started < 0.3 + WAIT
    assert relay.get("refused") == 1
    assert relay.get("connections") == 0
    reasons = [r.getMessage() for r in caplog.records if r.name == "zonemq.cluster"]
    assert len(reasons) == 1
    assert "no active known within 0.3s" in reasons[0]


def test_a_client_waits_for_an_active_to_appear(
    broker: BrokerThread, relays: Callable[..., OnLoop]
) -> None:
    relay = relays(broker, None, connect_timeout=60)
    raw = RawClient(relay.port)
    try:
        # Sent before any active is known: held (or left in the kernel) until there is one.
        raw.send(b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\x00")
        assert wait_until(lambda: relay.get("accepted") == 1)
        relay.retarget(address(broker, "stomp"))
        command, _ = headers_of(raw.frame())
        assert command == "CONNECTED"
        assert relay.get("refused") == 0
    finally:
        raw.close()


def test_a_refused_connect_closes_the_client_at_once(
    broker: BrokerThread, relays: Callable[..., OnLoop], caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as gone:
        gone.bind(("127.0.0.1", 0))
        dead = gone.getsockname()[:2]  # nothing listens there once closed
    relay = relays(broker, dead, connect_timeout=60)
    raw = RawClient(relay.port)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "zonemq.cluster"):
        try:
            assert raw.closed()
        finally:
            raw.close()
    # Not the 60 s connect_timeout: a refusal is final unless the target changed.
    assert time.monotonic() - started < WAIT
    assert relay.get("refused") == 1
    assert any("cannot connect to the active" in r.getMessage() for r in caplog.records)


def test_drop_cuts_relayed_connections_and_new_ones_reach_the_new_active(
    broker_factory: Callable[..., BrokerThread], relays: Callable[..., OnLoop]
) -> None:
    old, new = broker_factory(), broker_factory()
    relay = relays(old, address(old, "stomp"))
    first = stomp_client(relay.port, reconnect_attempts_max=1)
    try:
        first.send("/queue/where", "to the old active", receipt="r1")
        assert first.listener.receipt() == "r1"
        relay.retarget(address(new, "stomp"))
        # Retargeting alone leaves a relayed connection where it is; drop() cuts it.
        assert first.conn.is_connected()
        assert relay.drop("the active changed") == 1
        assert first.listener.disconnected.wait(WAIT)
        assert wait_until(lambda: relay.get("connections") == 0)
    finally:
        with contextlib.suppress(Exception):
            first.close()
    second = stomp_client(relay.port)
    try:
        second.send("/queue/where", "to the new active", receipt="r2")
        assert second.listener.receipt() == "r2"
    finally:
        second.close()
    assert old.stats("where").depth == 1
    assert new.stats("where").depth == 1


def test_a_target_that_is_the_relay_itself_does_not_loop(
    broker: BrokerThread, relays: Callable[..., OnLoop]
) -> None:
    relay = relays(broker, None)
    relay.retarget(("127.0.0.1", relay.port))
    raw = RawClient(relay.port)
    try:
        assert raw.closed()
    finally:
        raw.close()
    assert wait_until(lambda: relay.get("connections") == 0)
    # The client's connection and the relay's one connection to itself, no more.
    assert relay.get("accepted") == 2


# -- half-close and reset ----------------------------------------------------------------


class Upstream:
    """A plain TCP server in a thread that hands each accepted socket to `serve`."""

    def __init__(self, serve: Callable[[socket.socket], None], rcvbuf: int | None = None) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:
            # Set before listen, so accepted sockets inherit it (no autotuning past it).
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.address: Address = self.sock.getsockname()[:2]
        self.done = threading.Event()
        self.errors: list[BaseException] = []
        self._serve = serve
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn, _ = self.sock.accept()
        conn.settimeout(WAIT)
        try:
            self._serve(conn)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self.done.set()
            conn.close()

    def close(self) -> None:
        self.sock.close()


def read_to_eof(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_half_close_is_passed_on_both_ways(
    broker: BrokerThread, relays: Callable[..., OnLoop]
) -> None:
    def serve(conn: socket.socket) -> None:
        # Reads to the client's EOF, then answers and half-closes in turn.
        request = read_to_eof(conn)
        conn.sendall(b"got " + request)
        conn.shutdown(socket.SHUT_WR)

    upstream = Upstream(serve)
    relay = relays(broker, upstream.address)
    try:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=WAIT) as client:
            client.sendall(b"x" * 300_000)
            client.shutdown(socket.SHUT_WR)
            assert read_to_eof(client) == b"got " + b"x" * 300_000
        assert upstream.done.wait(WAIT)
        assert not upstream.errors
        assert wait_until(lambda: relay.get("connections") == 0)
    finally:
        upstream.close()


def test_a_reset_on_one_side_closes_both(
    broker: BrokerThread, relays: Callable[..., OnLoop]
) -> None:
    seen: list[bytes | str] = []

    def serve(conn: socket.socket) -> None:
        seen.append(conn.recv(100))
        try:
            seen.append(read_to_eof(conn))
        except ConnectionResetError:
            seen.append("reset")

    upstream = Upstream(serve)
    relay = relays(broker, upstream.address)
    try:
        client = socket.create_connection(("127.0.0.1", relay.port), timeout=WAIT)
        client.sendall(b"hello")
        assert wait_until(lambda: relay.get("bytes_to_active") == 5)
        # SO_LINGER 0: close() sends a RST, not a FIN.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        client.close()
        assert upstream.done.wait(WAIT)
        # The relay aborted its upstream socket too: a reset, not a clean EOF.
        assert seen == [b"hello", "reset"]
        assert wait_until(lambda: relay.get("connections") == 0)
    finally:
        upstream.close()


# -- memory bounds -----------------------------------------------------------------------

HIGH = 64 * 1024
BOUND = HIGH + READ_MAX  # what one direction may hold: see the relay's buffering policy


@pytest.mark.parametrize("high", [HIGH, HIGH_WATER], ids=["64KiB", "default"])
def test_a_client_that_never_reads_does_not_make_the_relay_buffer(
    broker: BrokerThread, relays: Callable[..., OnLoop], high: int
) -> None:
    bound = high + READ_MAX
    count, body = 48, "m" * (256 * 1024)  # 12 MiB: more than every kernel buffer between
    producer = stomp_client(broker.stomp_port)
    try:
        for i in range(count):
            producer.send(f"/queue/flood{high}", body, receipt=f"p{i}" if i == count - 1 else None)
        assert producer.listener.receipt() == f"p{count - 1}"
    finally:
        producer.close()
    relay = relays(broker, address(broker, "stomp"), high_water=high)
    sock = socket.socket()
    # Before connect: a small receive window that the kernel does not autotune.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", relay.port))
    try:
        sock.sendall(
            b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\x00"
            + f"SUBSCRIBE\nid:1\ndestination:/queue/flood{high}\nack:auto\n\n\x00".encode()
        )
        # The client's side of the relay filled up and stopped the relay reading the broker.
        assert wait_until(lambda: relay.get("pauses") >= 1, timeout=WAIT * 2)
        peak, now = relay.get("peak_buffered"), relay.get("buffered")
        relayed = relay.get("bytes_to_client")
        assert high <= peak <= bound
        assert now <= 2 * bound  # the whole connection's bound
        # Most of the flood is still behind the relay (in the broker and its socket).
        assert relayed < count * len(body) / 2
        # Reading again resumes the flow: every message arrives, none lost in the pauses.
        received = read_messages(sock, count)
        assert received == count
        assert relay.get("peak_buffered") <= bound
    finally:
        sock.close()
    print(f"\nrelay toward a non-reading client: high {high} B, peak {peak} B, bound {bound} B")


def read_messages(sock: socket.socket, count: int) -> int:
    """Count MESSAGE frames (256 KiB bodies, no NUL inside) until `count` arrived."""
    seen, tail = 0, b""
    while seen < count:
        chunk = sock.recv(1 << 20)
        assert chunk, "closed early"
        tail += chunk
        frames = tail.split(b"\x00")
        tail = frames.pop()
        seen += sum(1 for f in frames if f.lstrip(b"\r\n").startswith(b"MESSAGE\n"))
    return seen


def test_an_upstream_that_never_reads_does_not_make_the_relay_buffer(
    broker: BrokerThread, relays: Callable[..., OnLoop]
) -> None:
    release = threading.Event()

    def serve(conn: socket.socket) -> None:
        release.wait(WAIT * 4)  # reads nothing until the test has measured

    upstream = Upstream(serve, rcvbuf=64 * 1024)
    relay = relays(broker, upstream.address, high_water=HIGH)
    client = socket.create_connection(("127.0.0.1", relay.port), timeout=WAIT)
    client.setblocking(False)
    sent, chunk = 0, b"u" * 65536
    try:
        # Send until nothing more goes for half a second: every buffer in the way is full.
        while True:
            try:
                sent += client.send(chunk)
                continue
            except BlockingIOError:
                pass
            _, writable, _ = select.select([], [client], [], 0.5)
            if not writable:
                break
        peak, forwarded = relay.get("peak_buffered"), relay.get("bytes_to_active")
        assert relay.get("pauses") >= 1
        assert HIGH <= peak <= BOUND
        assert forwarded < sent  # the rest waits in the client's kernel, not in the relay
    finally:
        release.set()
        client.close()
        upstream.close()
    print(f"\nrelay toward a non-reading upstream: peak {peak} B of {sent} B sent")


def test_drop_resets_a_client_that_does_not_read_after_the_linger(
    broker: BrokerThread, relays: Callable[..., OnLoop]
) -> None:
    def serve(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the relay's reset ends it
            while True:
                conn.sendall(b"d" * 65536)

    upstream = Upstream(serve)
    relay = relays(broker, upstream.address, high_water=HIGH, linger=0.2)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    client.settimeout(WAIT)
    client.connect(("127.0.0.1", relay.port))
    try:
        assert wait_until(lambda: relay.get("pauses") >= 1)
        assert relay.drop("the active changed") == 1
        # Its buffer cannot flush to a client that does not read: reset after the linger.
        assert wait_until(lambda: relay.get("connections") == 0)
        assert upstream.done.wait(WAIT)
        with pytest.raises(ConnectionResetError):
            while client.recv(1 << 20):
                pass
    finally:
        client.close()
        upstream.close()


def test_a_target_that_raises_closes_the_client(
    broker: BrokerThread, caplog: pytest.LogCaptureFixture
) -> None:
    def target() -> Address | None:
        raise RuntimeError("election state unreadable")

    relay = Relay("test", "127.0.0.1", 0, target)
    asyncio.run_coroutine_threadsafe(relay.start(), broker.loop).result(WAIT)
    try:
        raw = RawClient(relay.port)
        with caplog.at_level(logging.WARNING, "zonemq.cluster"):
            try:
                assert raw.closed()
            finally:
                raw.close()
        assert any("election state unreadable" in r.getMessage() for r in caplog.records)
    finally:
        asyncio.run_coroutine_threadsafe(relay.stop(), broker.loop).result(WAIT)


def test_stop_closes_every_connection_and_the_port(
    broker: BrokerThread, relays: Callable[..., OnLoop]
) -> None:
    relay = relays(broker, address(broker, "stomp"))
    c = stomp_client(relay.port, reconnect_attempts_max=1)
    try:
        relay.stop()
        assert c.listener.disconnected.wait(WAIT)
        assert relay.get("connections") == 0
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", relay.port), timeout=WAIT).close()
    finally:
        with contextlib.suppress(Exception):
            c.close()


# -- the relay alone, on asyncio's loop and on uvloop --------------------------------------


async def relay_round_trips() -> tuple[int, int]:
    """50 echoed connections and 10 refused ones through a Relay; the descriptors this
    process holds after the first and after the last (every socket closed and waited
    for; the first round trip lets the loop open what it opens once: libuv reserves a
    descriptor of /dev/null at its first accept)."""
    fds = 0
    handlers: list[asyncio.Future[None]] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        done = asyncio.get_running_loop().create_future()
        handlers.append(done)
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write_eof()
        # The relay closes its upstream socket once both sides have sent EOF.
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        done.set_result(None)

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    upstream = server.sockets[0].getsockname()[:2]
    target: list[Address | None] = [upstream]
    relay = Relay("echo", "127.0.0.1", 0, lambda: target[0], connect_timeout=0.1)
    await relay.start()
    for i in range(50):
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"%d" % i * 50_000)  # sent before the upstream exists, at once
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), WAIT) == b"%d" % i * 50_000
        writer.close()
        await writer.wait_closed()
        if i == 0:
            await asyncio.wait_for(handlers[0], WAIT)
            fds = len(os.listdir("/proc/self/fd"))
    target[0] = None
    with caplog_off():
        for _ in range(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
            assert await asyncio.wait_for(reader.read(), WAIT) == b""
            writer.close()
            await writer.wait_closed()
    await asyncio.wait_for(asyncio.gather(*handlers), WAIT)
    await relay.stop()
    assert relay.connections == 0
    assert (relay.accepted, relay.refused) == (60, 10)
    server.close()
    await server.wait_closed()
    return fds, len(os.listdir("/proc/self/fd"))


@contextlib.contextmanager
def caplog_off() -> Iterator[None]:
    """Ten refusals are ten WARNING lines, as intended; not in the test output."""
    logger = logging.getLogger("zonemq.cluster")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_relay_on_either_loop_holds_no_descriptors(run: Callable[[Any], Any]) -> None:
    before, after = run(relay_round_trips())
    assert after <= before
