"""Journal replication over real loopback sockets (broker/cluster/source.py, replica.py).

An active Journal with a ReplicationSource, a standby Journal with a Replica, both in
tmp_path with real fsyncs; ephemeral ports; waiting is on futures and events (with a
timeout so a bug fails instead of hanging), never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.cluster.epoch import Fence, StaleEpoch
from broker.cluster.replica import READ_SIZE, Replica, ReplicaState, ReplicationRefused, replay
from broker.cluster.source import ReplicationSource, after
from broker.cluster.wire import (
    ERROR,
    RECORDS,
    ZERO,
    Decoder,
    Error,
    Position,
    ProtocolError,
    encode_ack,
    encode_hello,
    encode_records,
)
from broker.store import Journal
from broker.store.format import RECORD_HEADER, TYPE_CRC

T = 10.0  # seconds before a wait counts as a hang
SEGMENT = 16 * 1024  # small, so streams cross segment boundaries


def open_journal(path: Path) -> Journal:
    journal = Journal(path, segment_size=SEGMENT, fsync="always")
    for _ in journal.open():
        pass
    return journal


def open_standby(path: Path) -> tuple[Journal, ReplicaState, list[tuple[int, bytes]]]:
    journal = Journal(path, segment_size=SEGMENT, fsync="always")
    state = ReplicaState()
    records = [(rec.rtype, rec.payload) for rec in replay(journal, state)]
    return journal, state, records


def make_records(n: int, seed: int) -> list[tuple[int, bytes]]:
    rng = random.Random(seed)
    return [(rng.randint(1, 6), rng.randbytes(rng.randint(0, 700))) for _ in range(n)]


@dataclass
class Pair:
    active: Journal
    source: ReplicationSource
    port: int
    standby: Journal
    replica: Replica
    task: asyncio.Task[None]
    sent: list[tuple[int, bytes]]


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
        await task


async def append(journal: Journal, records: list[tuple[int, bytes]], per_batch: int = 7) -> None:
    for i, (rtype, payload) in enumerate(records):
        journal.append(rtype, payload)
        if i % per_batch == per_batch - 1:
            await journal.commit()
    await journal.commit()


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    active = open_journal(tmp_path / "active")
    source = ReplicationSource(active, epoch=5, window_bytes=64 * 1024)
    port = await source.start()
    standby, state, _ = open_standby(tmp_path / "standby")
    replica = Replica(standby, state, Fence())
    task = asyncio.create_task(replica.run("127.0.0.1", port))
    p = Pair(active, source, port, standby, replica, task, [])
    yield p
    await stop(p.task)
    await source.close()
    await active.close()
    await p.standby.close()


async def test_records_arrive_in_order_byte_identical(pair: Pair, tmp_path: Path) -> None:
    sent = make_records(400, seed=1)
    await append(pair.active, sent[:-1])
    # Pipelined: every earlier record's durability is asked before the last is appended.
    last = pair.active.append(*sent[-1])
    durable = pair.source.durable(after(last))
    await asyncio.wait_for(durable, T)
    assert pair.source.end == after(last)
    assert pair.source.end.segment > 1  # the stream crossed segments on the active
    await stop(pair.task)
    await pair.standby.close()
    standby, state, got = open_standby(tmp_path / "standby")
    pair.standby = standby
    assert got == sent
    assert state.position == pair.source.end
    assert state.epoch == 5


async def test_ack_comes_after_the_standbys_fsync(pair: Pair, tmp_path: Path) -> None:
    await append(pair.active, make_records(20, seed=2))
    await asyncio.wait_for(pair.source.durable(pair.source.end), T)
    fsyncs = pair.standby.stats.fsyncs
    # Hold the standby's disk: its I/O thread runs one job at a time, so the write of
    # the next batch waits behind this one (a private handle: the test's only one).
    disk = threading.Event()
    io = pair.standby._io
    assert io is not None
    held = asyncio.wrap_future(io.submit(disk.wait, T))
    applied = asyncio.Event()
    pair.standby.observe(lambda segment, offset, chunks: applied.set())
    marker = b"only-on-disk-after-fsync-" + random.randbytes(16)
    pair.active.append(1, marker)
    await pair.active.commit()
    durable = pair.source.durable(pair.source.end)
    await asyncio.wait_for(applied.wait(), T)  # the standby has it, in memory only
    # Bounded negative check: an ack sent before the write would arrive within this.
    done, _ = await asyncio.wait([durable], timeout=0.3)
    assert not done
    disk.set()
    await held
    await asyncio.wait_for(durable, T)
    assert pair.standby.stats.fsyncs > fsyncs
    on_disk = b"".join(p.read_bytes() for p in sorted((tmp_path / "standby").iterdir()))
    assert marker in on_disk


async def test_standby_restart_resumes_from_its_durable_position(
    pair: Pair, tmp_path: Path
) -> None:
    first = make_records(150, seed=3)
    await append(pair.active, first)
    await asyncio.wait_for(pair.source.durable(pair.source.end), T)
    acked = pair.replica.acked
    await stop(pair.task)
    await pair.standby.close()
    second = make_records(120, seed=4)
    await append(pair.active, second)  # the active keeps serving while it is down
    standby, state, got = open_standby(tmp_path / "standby")
    pair.standby = standby
    assert got == first and state.position == acked
    pair.replica = Replica(standby, state, Fence())
    pair.task = asyncio.create_task(pair.replica.run("127.0.0.1", pair.port))
    await asyncio.wait_for(pair.source.durable(pair.source.end), T)
    await stop(pair.task)
    await standby.close()
    pair.standby, _, got = open_standby(tmp_path / "standby")
    assert got == first + second


async def test_resume_after_a_torn_tail_is_exact(pair: Pair, tmp_path: Path) -> None:
    await append(pair.active, make_records(60, seed=5), per_batch=60)
    await asyncio.wait_for(pair.source.durable(pair.source.end), T)
    await stop(pair.task)
    await pair.standby.close()
    # Tear the standby's last record in half, as a crash mid-write would.
    head = sorted((tmp_path / "standby").iterdir())[-1]
    data = head.read_bytes().rstrip(b"\0")
    head.write_bytes(data[:-3])
    standby, state, got = open_standby(tmp_path / "standby")
    pair.standby = standby
    assert len(got) == 59 and state.position < pair.source.end
    pair.replica = Replica(standby, state, Fence())
    pair.task = asyncio.create_task(pair.replica.run("127.0.0.1", pair.port))
    await asyncio.wait_for(pair.source.durable(pair.source.end), T)
    await stop(pair.task)
    await standby.close()
    pair.standby, _, got = open_standby(tmp_path / "standby")
    assert [r for r in got] == make_records(60, seed=5)


async def test_standby_that_saw_a_newer_epoch_refuses_the_active(
    pair: Pair, tmp_path: Path
) -> None:
    await stop(pair.task)
    replica = Replica(pair.standby, ReplicaState(), Fence(9))
    with pytest.raises(ReplicationRefused, match="epoch 5 is stale"):
        await asyncio.wait_for(replica.run("127.0.0.1", pair.port), T)
    assert pair.source.fence.current == 9  # the deposed active has learnt it


async def test_stale_records_frame_is_refused_and_closed(tmp_path: Path) -> None:
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def stale_active(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(5 + 30)  # the HELLO
        payload = b"from a deposed active"
        rec = RECORD_HEADER.pack(len(payload), 1, zlib.crc32(payload, TYPE_CRC[1])) + payload
        writer.writelines(encode_records(3, ZERO, rec))
        got.set_result(await reader.read())  # until the standby closes
        writer.close()

    server = await asyncio.start_server(stale_active, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    standby = open_journal(tmp_path / "standby")
    try:
        replica = Replica(standby, ReplicaState(), Fence(7))
        with pytest.raises(StaleEpoch):
            await asyncio.wait_for(replica.run("127.0.0.1", port), T)
        dec = Decoder(frozenset({ERROR}))
        dec.receive_data(await asyncio.wait_for(got, T))
        event = dec.next_event()
        assert isinstance(event, Error) and "epoch 3 is stale" in event.reason
        assert standby.stats.bytes_written == 0
    finally:
        server.close()
        await standby.close()


async def test_window_pauses_sender_and_backlog_bounds_memory(tmp_path: Path) -> None:
    active = open_journal(tmp_path / "active")
    window, backlog = 32 * 1024, 256 * 1024
    source = ReplicationSource(active, epoch=1, window_bytes=window, backlog_bytes=backlog)
    port = await source.start()
    # A standby that says hello and then never reads nor acks.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(encode_hello(0, ZERO))
    try:
        while not source.standbys:
            await append(active, make_records(1, seed=0))
        link = source.standbys[0]
        await append(active, make_records(200, seed=6))  # well past the window
        await asyncio.wait_for(link.paused.wait(), T)
        largest_run = 20 * (700 + 9)
        for i in range(60):
            await append(active, make_records(20, seed=100 + i), per_batch=20)
            assert link.sent_bytes <= window + largest_run  # paused: no more sent
            assert source.backlog_bytes <= backlog
        # Past the backlog bound the standby is cut off, its memory released.
        assert not source.standbys
        with contextlib.suppress(ConnectionError):
            while await asyncio.wait_for(reader.read(1 << 20), T):
                pass
    finally:
        writer.close()
        await source.close()
        await active.close()


async def test_standby_stops_reading_while_its_disk_lags(tmp_path: Path) -> None:
    active = open_journal(tmp_path / "active")
    source = ReplicationSource(active, epoch=1, window_bytes=64 * 1024 * 1024)
    port = await source.start()
    standby = open_journal(tmp_path / "standby")
    limit = 16 * 1024
    replica = Replica(standby, ReplicaState(), Fence(), max_unsynced=limit)
    task = asyncio.create_task(replica.run("127.0.0.1", port))
    try:
        await append(active, make_records(5, seed=9))
        await asyncio.wait_for(source.durable(source.end), T)
        disk = threading.Event()
        assert standby._io is not None  # hold its disk (see the fsync test)
        held = asyncio.wrap_future(standby._io.submit(disk.wait, T))
        await append(active, make_records(3000, seed=10), per_batch=50)  # about 1 MiB
        await asyncio.wait_for(replica.stalled.wait(), T)
        # Reading stopped: what the standby holds is bounded by its limit and one read.
        assert limit < replica.unsynced_bytes <= limit + READ_SIZE
        assert replica.position < source.end
        disk.set()
        await held
        await asyncio.wait_for(source.durable(source.end), T)
    finally:
        await stop(task)
        await source.close()
        await active.close()
        await standby.close()


async def test_malformed_frame_closes_with_reason_active_keeps_serving(
    pair: Pair, tmp_path: Path
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", pair.port)
    writer.write(encode_hello(0, pair.source.end) + b"\x03\x00\x00\x00\x09junk")
    data = await asyncio.wait_for(reader.read(), T)
    dec = Decoder(frozenset({ERROR, RECORDS}))
    dec.receive_data(data)
    event = dec.next_event()
    assert isinstance(event, Error) and "unexpected frame" in event.reason
    writer.close()
    # An ACK for records never sent must not release anything.
    waiting = pair.source.durable(Position(1, 1000))
    reader, writer = await asyncio.open_connection("127.0.0.1", pair.port)
    writer.write(encode_hello(0, pair.source.end) + encode_ack(5, Position(1, 1000)))
    dec = Decoder(frozenset({ERROR, RECORDS}))
    dec.receive_data(await asyncio.wait_for(reader.read(), T))
    event = dec.next_event()
    assert isinstance(event, Error) and "not the end of a frame sent" in event.reason
    assert not waiting.done()
    writer.close()
    sent = make_records(50, seed=7)
    await append(pair.active, sent)
    await asyncio.wait_for(pair.source.durable(pair.source.end), T)
    assert len(pair.source.standbys) == 1


async def test_damaged_records_close_the_standby_side(tmp_path: Path) -> None:
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def bad_active(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(5 + 30)
        rec = RECORD_HEADER.pack(4, 1, 12345) + b"oops"  # wrong CRC
        writer.writelines(encode_records(1, ZERO, rec))
        got.set_result(await reader.read())
        writer.close()

    server = await asyncio.start_server(bad_active, "127.0.0.1", 0)
    standby = open_journal(tmp_path / "standby")
    try:
        replica = Replica(standby, ReplicaState(), Fence())
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ProtocolError, match="damaged journal record"):
            await asyncio.wait_for(replica.run("127.0.0.1", port), T)
        dec = Decoder(frozenset({ERROR}))
        dec.receive_data(await asyncio.wait_for(got, T))
        assert isinstance(dec.next_event(), Error)
    finally:
        server.close()
        await standby.close()


async def test_position_not_retained_is_refused_clearly(pair: Pair, tmp_path: Path) -> None:
    await append(pair.active, make_records(5, seed=8))
    await asyncio.wait_for(pair.source.durable(pair.source.end), T)
    other = open_journal(tmp_path / "other")
    state = ReplicaState()
    state.position = Position(999, 20)  # a position this active never had
    try:
        with pytest.raises(ReplicationRefused, match="full catch-up"):
            await asyncio.wait_for(Replica(other, state, Fence()).run("127.0.0.1", pair.port), T)
    finally:
        await other.close()
    assert len(pair.source.standbys) == 1  # the real standby is still served
