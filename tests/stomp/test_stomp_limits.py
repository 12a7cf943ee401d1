"""Memory bounds a STOMP client cannot get around (issue 10): a producer that never reads
its receipts is stopped being read; an unauthenticated connection gets a small frame
budget, and all connections of a listener share a cap on half-received frames; a frame
must complete within `frame_timeout`."""

from __future__ import annotations

import contextlib
import socket
import threading

import stomp

from tests.conftest import WAIT, BrokerThread, RawClient, wait_until

USERS = {"auth.users": {"alice": "secret"}}


def buffered(b: BrokerThread) -> list[int]:
    """Bytes each live STOMP connection holds: transport write buffer, outbound list
    and half-parsed input."""

    def measure() -> list[int]:
        out = []
        for conn in b.broker.listeners["stomp"].connections:
            t = conn.transport
            size = t.get_write_buffer_size() if t is not None else 0
            out.append(size + conn._out_bytes + conn.parser.buffered())
        return out

    return b.call(measure)


def test_producer_that_never_reads_receipts_is_paused(broker_factory) -> None:
    high = 256 * 1024
    b: BrokerThread = broker_factory(
        **{
            "listeners.stomp.write_buffer_high": high,
            "listeners.stomp.write_buffer_low": high // 4,
            "store.fsync": "never",
        }
    )
    raw = RawClient(b.stomp_port)
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    raw.connect("1.2")
    # A long receipt id makes each RECEIPT as big as the SEND that asked for it.
    pad = "r" * 200
    frames = b"".join(
        f"SEND\ndestination:/queue/limits.noread\npersistent:true\nreceipt:{pad}{i}\n\nx\x00".encode()
        for i in range(500)
    )
    raw.sock.settimeout(2.0)
    sent = 0
    blocked = False
    # Without the pause the broker reads all of it and buffers as many bytes of receipts;
    # with it, the sockets' buffers and the watermark hold well under a megabyte.
    while sent < 24 * 1024 * 1024:
        try:
            raw.sock.sendall(frames)
        except TimeoutError:
            blocked = True
            break
        sent += len(frames)
    assert blocked, f"the broker kept reading: {sent} bytes sent, none read back"
    # What the broker holds for this connection stays near its watermark.
    assert max(buffered(b)) < 4 * high
    # Reading the receipts lets it go on.
    raw.sock.settimeout(WAIT)
    assert raw.frame().startswith(b"RECEIPT")
    raw.close()


def test_unauthenticated_connect_gets_a_small_budget(broker_factory) -> None:
    b: BrokerThread = broker_factory(**USERS)
    # A CONNECT declaring a 95 MB body is refused as soon as it is declared...
    raw = RawClient(b.stomp_port)
    raw.send(b"CONNECT\naccept-version:1.2\nlogin:alice\ncontent-length:99614720\n\n")
    raw.send(b"x" * 65536)
    assert raw.frame().startswith(b"ERROR")
    assert raw.closed()
    # ... and one without content-length once it holds more than the budget.
    raw = RawClient(b.stomp_port)
    raw.send(b"CONNECT\naccept-version:1.2\nlogin:alice\n\n")
    with contextlib.suppress(OSError):  # the broker may close first: what the test wants
        for _ in range(64):
            raw.send(b"y" * 65536)
    assert raw.closed()
    # A huge header block is not an escape either.
    raw = RawClient(b.stomp_port)
    line = b"h:" + b"z" * 10000 + b"\n"
    with contextlib.suppress(OSError):
        raw.send(b"CONNECT\naccept-version:1.2\n" + line * 200)
    assert raw.closed()
    assert b.call(lambda: b.broker.listeners["stomp"].partial_bytes) == 0


def test_after_connect_the_full_frame_size_applies(broker_factory) -> None:
    b: BrokerThread = broker_factory(**USERS)
    raw = RawClient(b.stomp_port)
    raw.connect("1.2", "login:alice\npasscode:secret\n")
    body = b"b" * (1024 * 1024)
    raw.send(
        b"SEND\ndestination:/queue/limits.big\nreceipt:r\n"
        + f"content-length:{len(body)}\n\n".encode()
        + body
        + b"\x00"
    )
    assert raw.frame().startswith(b"RECEIPT")
    raw.close()


def test_listener_caps_partial_frames_of_all_connections(broker_factory) -> None:
    budget = 1536 * 1024
    b: BrokerThread = broker_factory(**{"listeners.stomp.max_partial_bytes": budget})
    head = b"SEND\ndestination:/queue/limits.partial\nreceipt:r\ncontent-length:1000000\n\n"
    part = b"p" * (800 * 1024)
    first = RawClient(b.stomp_port)
    first.connect("1.2")
    first.send(head + part)
    assert wait_until(lambda: b.call(lambda: b.broker.listeners["stomp"].partial_bytes) > 0)
    second = RawClient(b.stomp_port)
    second.connect("1.2")
    second.send(head + part)
    # The connection that would take the listener past its budget is refused...
    error = second.frame()
    assert error.startswith(b"ERROR") and b"partial frames" in error
    assert second.closed()
    # ... the other finishes its frame.
    first.send(b"p" * (1000000 - len(part)) + b"\x00")
    assert first.frame().startswith(b"RECEIPT")
    assert wait_until(lambda: b.call(lambda: b.broker.listeners["stomp"].partial_bytes) == 0)
    first.close()


def test_half_sent_frame_times_out_even_while_bytes_trickle(broker_factory) -> None:
    b: BrokerThread = broker_factory(**{"listeners.stomp.frame_timeout": 0.5})
    raw = RawClient(b.stomp_port)
    # Heart-beats on both sides, so silence is not what drops it.
    raw.connect("1.2", "heart-beat:100,100\n")
    raw.send(b"SEND\ndestination:/queue/limits.slow\n")
    error = b""
    for _ in range(int(WAIT / 0.1)):
        try:
            raw.send(b"h")  # one byte of a header line, the frame never ends
        except OSError:
            break
        raw.sock.settimeout(0.1)
        try:
            chunk = raw.sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        raw.buf += chunk
        if b"ERROR" in raw.buf:
            error = raw.buf
            break
    assert b"Frame not completed" in error
    assert raw.closed()


def stored_bytes(b: BrokerThread) -> int:
    return b.call(lambda: b.broker.core.store.stored_bytes)


def test_store_limit_blocks_persistent_producer_until_consumed(broker_factory, connect) -> None:
    limit = 256 * 1024
    b: BrokerThread = broker_factory(**{"destinations.store_limit": limit, "store.fsync": "never"})
    total = 1500  # 15 MB (beyond socket buffers) against a 256 KiB store
    done = threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            conn = stomp.Connection12([("127.0.0.1", b.stomp_port)])
            conn.connect(wait=True)
            for i in range(total):
                conn.send(
                    "/queue/limits.store", b"s" * 10240, headers={"persistent": "true", "n": str(i)}
                )
            conn.disconnect()
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=produce, daemon=True).start()
    assert wait_until(lambda: stored_bytes(b) > limit)
    # The producer is held back while nobody consumes: the store stays near its limit.
    assert not done.wait(0.5)
    assert stored_bytes(b) <= limit + 1024 * 1024
    consumer = connect(port=b.stomp_port)
    consumer.subscribe("/queue/limits.store", id="c", ack="auto")
    got = [int(f.headers["n"]) for f in consumer.listener.take(total, timeout=30)]
    assert got == list(range(total))
    assert done.wait(WAIT) and not errors
    assert wait_until(lambda: stored_bytes(b) == 0)


def test_store_full_fail_policy_answers_an_error(broker_factory) -> None:
    b: BrokerThread = broker_factory(
        **{"destinations.store_limit": 64 * 1024, "destinations.store_full_policy": "fail"}
    )
    raw = RawClient(b.stomp_port)
    raw.connect("1.2")
    body = b"f" * 4096
    for i in range(100):
        raw.send(
            f"SEND\ndestination:/queue/limits.fail\npersistent:true\nreceipt:r{i}\n\n".encode()
            + body
            + b"\x00"
        )
        frame = raw.frame()
        if frame.startswith(b"ERROR"):
            break
        assert frame.startswith(b"RECEIPT")
    assert frame.startswith(b"ERROR"), "never refused"
    assert f"receipt-id:r{i}".encode() in frame and b"store is full" in frame
    assert 64 * 1024 // 4096 <= i <= 64 * 1024 // 4096 + 2
    # Not fatal; what the store does not hold is still taken.
    raw.send(b"SEND\ndestination:/queue/limits.fail\nreceipt:np\n\nn\x00")
    assert raw.frame().startswith(b"RECEIPT")
    assert b.stats("limits.fail").depth == i + 1
    raw.close()


def test_slow_consumer_not_read_for_backpressure_is_not_taken_for_idle(
    broker_factory, connect
) -> None:
    b: BrokerThread = broker_factory()
    raw = RawClient(b.stomp_port)
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    # The client promises a heart-beat every second: 1.5 s of silence drops it.
    raw.connect("1.2", "heart-beat:1000,0\n")
    raw.send(b"SUBSCRIBE\ndestination:/queue/limits.hb\nid:1\nack:auto\n\n\x00")
    producer = connect(port=b.stomp_port)
    for i in range(200):  # 12.8 MB: its outbound buffer fills, it is not read
        producer.send("/queue/limits.hb", b"h" * 65536, headers={"n": str(i)})
    producer.sync()

    def paused() -> bool:
        return b.call(lambda: any(c._read_paused for c in b.broker.listeners["stomp"].connections))

    assert wait_until(paused)
    # For 3 s it reads slowly, heart-beating into a socket the broker does not read: it
    # takes output, so it is alive.
    tick = threading.Event()
    raw.sock.settimeout(WAIT)
    for _ in range(30):
        raw.send(b"\n")
        raw.buf += raw.sock.recv(8192)
        tick.wait(0.1)
    # Still connected: every message arrives once it reads again.
    seen = 0
    while seen < 200:
        frame = raw.frame()
        assert frame.startswith(b"MESSAGE"), frame[:80]
        seen += 1
        raw.send(b"\n")
    raw.close()


def test_consumer_that_takes_nothing_is_still_dropped(broker_factory, connect) -> None:
    b: BrokerThread = broker_factory()
    raw = RawClient(b.stomp_port)
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    raw.connect("1.2", "heart-beat:100,0\n")
    raw.send(b"SUBSCRIBE\ndestination:/queue/limits.dead\nid:1\nack:auto\n\n\x00")
    producer = connect(port=b.stomp_port)
    for i in range(200):
        producer.send("/queue/limits.dead", b"d" * 65536, headers={"n": str(i)})
    producer.sync()
    # It neither reads nor sends: past its heart-beat limit it is dropped, paused or not.
    assert wait_until(
        lambda: len(b.call(lambda: list(b.broker.listeners["stomp"].connections))) == 1
    )
    raw.close()
