"""Journal replication over real loopback sockets (broker/cluster/source.py, replica.py,
mirror.py, insync.py, lineage.py).

An active Journal with a ReplicationSource, a standby mirror with a Replica, both in
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
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from broker.cluster.epoch import Fence, StaleEpoch
from broker.cluster.insync import InSync, NotReplicated
from broker.cluster.lineage import Lineage
from broker.cluster.mirror import scan_end
from broker.cluster.replica import READ_SIZE, Replica, ReplicationRefused
from broker.cluster.source import ReplicationSource, StandbyLink
from broker.cluster.wire import (
    ERROR,
    WELCOME,
    ZERO,
    Decoder,
    Error,
    Position,
    ProtocolError,
    Welcome,
    encode_ack,
    encode_hello,
    encode_records,
    encode_welcome,
)
from broker.store import Journal
from broker.store.format import (
    RECORD_HEADER,
    SEGMENT_HEADER_SIZE,
    TYPE_CRC,
    Damage,
    scan_records,
    zero_tail,
)

T = 10.0  # seconds before a wait counts as a hang
SEGMENT = 16 * 1024  # small, so streams cross segment boundaries


def open_journal(path: Path) -> tuple[Journal, list[tuple[int, bytes]]]:
    journal = Journal(path, segment_size=SEGMENT, fsync="always")
    records = [(rec.rtype, rec.payload) for rec in journal.open()]
    return journal, records


def make_records(n: int, seed: int) -> list[tuple[int, bytes]]:
    rng = random.Random(seed)
    return [(rng.randint(1, 6), rng.randbytes(rng.randint(0, 700))) for _ in range(n)]


def frames(directory: Path) -> dict[str, bytes]:
    """Each segment file's bytes, without the zeros the active's journal preallocates
    past the last record of its open head (the mirror writes only what it is sent); a
    tail that is not all zeros (a torn record) stays, and fails the comparison."""
    out = {}
    for p in sorted(directory.glob("*.zjournal")):
        data = p.read_bytes()
        view = memoryview(data)
        for item in scan_records(view, SEGMENT_HEADER_SIZE):
            if isinstance(item, Damage):
                if zero_tail(view, item.offset):
                    data = data[: item.offset]
                break
        out[p.name] = data
    return out


@dataclass
class Node:
    """One standby: its data directory, lineage, fence and running replica."""

    root: Path
    az: str = "az-b"
    name: str = "b"
    fence: Fence = field(default_factory=Fence)
    replica: Replica | None = None
    task: asyncio.Task[None] | None = None

    @property
    def journal_dir(self) -> Path:
        return self.root / "journal"

    def start(self, port: int, **kw: int) -> Replica:
        self.root.mkdir(parents=True, exist_ok=True)
        lineage = Lineage.load(self.root)
        position = scan_end(self.journal_dir)
        self.replica = Replica(
            self.journal_dir, position, lineage, self.fence, node=self.name, az=self.az, **kw
        )
        self.task = asyncio.create_task(self.replica.run("127.0.0.1", port))
        return self.replica

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self.task
        if self.replica is not None:
            await self.replica.close()
        self.task = self.replica = None


@dataclass
class Active:
    root: Path
    journal: Journal
    source: ReplicationSource
    insync: InSync
    port: int

    async def close(self) -> None:
        await self.source.close()
        self.insync.close()
        await self.journal.close()


async def start_active(root: Path, epoch: int, **kw: int) -> Active:
    root.mkdir(parents=True, exist_ok=True)
    journal, _ = open_journal(root / "journal")
    lineage = Lineage.load(root)
    head = journal.segments()[-1]
    lineage.begin(epoch, Position(head.id, head.size))
    insync = InSync("az-a", 1)

    def on_link(link: StandbyLink, what: str) -> None:
        if what == "caught_up":
            insync.add(link.node, link.az)
        elif what == "lost":
            insync.remove(link.node)

    source = ReplicationSource(journal, epoch, lineage, insync, on_link=on_link, **kw)
    journal.gate(insync.gate)
    port = await source.start()
    return Active(root, journal, source, insync, port)


async def append(journal: Journal, records: list[tuple[int, bytes]], per_batch: int = 7) -> None:
    futs = []
    for i, (rtype, payload) in enumerate(records):
        journal.append(rtype, payload)
        if i % per_batch == per_batch - 1:
            futs.append(journal.commit())
            await asyncio.sleep(0)  # let the batch go (pipelined, not awaited one by one)
    futs.append(journal.commit())
    await asyncio.wait_for(asyncio.gather(*futs), T)


async def in_sync(active: Active, node: str = "b") -> None:
    """Until `node` is in sync and has acknowledged everything appended so far."""
    while not (
        node in active.insync.members and active.insync.acked.get(node, ZERO) >= active.source.end
    ):
        link = next((s for s in active.source.standbys if s.node == node), None)
        if link is None:
            await asyncio.sleep(0.01)  # not connected yet: nothing to wait on
            continue
        link.wake.clear()
        await asyncio.wait_for(link.wake.wait(), T)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Active, Node]]:
    active = await start_active(tmp_path / "a", epoch=5)
    standby = Node(tmp_path / "b")
    standby.start(active.port)
    # The first write makes the standby catch up and join; before that, nobody is in sync.
    yield active, standby
    await standby.stop()
    await active.close()


async def test_mirror_is_byte_identical_and_opens_as_a_journal(
    pair: tuple[Active, Node], tmp_path: Path
) -> None:
    active, standby = pair
    sent = make_records(400, seed=1)
    with pytest.raises(NotReplicated, match="0 other zone"):
        active.journal.append(1, b"before anyone is in sync")
        await active.journal.commit()
    await in_sync(active)
    await append(active.journal, sent)
    assert active.source.end.segment > 1  # the stream crossed segments
    await standby.stop()
    assert frames(tmp_path / "b" / "journal") == frames(tmp_path / "a" / "journal")
    mirror, got = open_journal(tmp_path / "b" / "journal")
    await mirror.close()
    assert got[-400:] == sent
    assert Lineage.load(tmp_path / "b").entries == active.source.lineage.entries


async def test_commit_waits_for_the_standbys_fsync(pair: tuple[Active, Node]) -> None:
    active, standby = pair
    await in_sync(active)
    assert standby.replica is not None
    disk = threading.Event()
    held = asyncio.wrap_future(standby.replica.mirror._io.submit(disk.wait, T))
    active.journal.append(1, b"durable on two disks")
    committed = active.journal.commit()
    done, _ = await asyncio.wait([committed], timeout=0.3)  # bounded negative check
    assert not done
    disk.set()
    await held
    await asyncio.wait_for(committed, T)


async def test_min_insync_unmet_fails_writes_visibly_and_a_leaving_standby_releases(
    pair: tuple[Active, Node],
) -> None:
    active, standby = pair
    await in_sync(active)
    assert standby.replica is not None
    disk = threading.Event()
    held = asyncio.wrap_future(standby.replica.mirror._io.submit(disk.wait, T))
    active.journal.append(1, b"waits for b")
    waiting = active.journal.commit()
    await asyncio.sleep(0)
    active.insync.remove("b")  # the node would have recorded this in etcd first
    with pytest.raises(NotReplicated):
        await asyncio.wait_for(waiting, T)
    active.insync.min_insync_azs = 0  # the operator lowers it
    active.journal.append(1, b"alone")
    await asyncio.wait_for(active.journal.commit(), T)
    disk.set()
    await held


async def test_restart_and_late_join_catch_up_from_disk_while_serving(
    pair: tuple[Active, Node], tmp_path: Path
) -> None:
    active, standby = pair
    await in_sync(active)
    first = make_records(150, seed=3)
    await append(active.journal, first)
    await standby.stop()
    active.insync.min_insync_azs = 0
    second = make_records(300, seed=4)
    await append(active.journal, second)  # the active keeps serving while it is down
    # Drop the backlog so the returning standby must read the segments from disk.
    active.source._backlog.clear()
    active.source.backlog_bytes = 0
    standby.start(active.port)
    late = Node(tmp_path / "c", az="az-c", name="c")
    late.start(active.port)
    await in_sync(active, "b")
    await in_sync(active, "c")
    active.insync.min_insync_azs = 2
    await append(active.journal, make_records(10, seed=11))
    await standby.stop()
    await late.stop()
    want = frames(tmp_path / "a" / "journal")
    assert frames(tmp_path / "b" / "journal") == want
    assert frames(tmp_path / "c" / "journal") == want


async def test_deleted_segments_are_forgotten_on_the_standby(
    pair: tuple[Active, Node], tmp_path: Path
) -> None:
    active, standby = pair
    await in_sync(active)
    refs = []
    for rtype, payload in make_records(300, seed=12):
        refs.append(active.journal.append(rtype, payload))
    await active.journal.commit()
    for ref in refs:
        active.journal.release(ref)  # all dead: old segments go
    await append(active.journal, make_records(40, seed=13))
    first = active.journal.segments()[0].id
    assert first > 1
    await in_sync(active)
    assert standby.replica is not None
    await standby.replica.mirror.idle()
    assert min(int(n.split(".")[0]) for n in frames(tmp_path / "b" / "journal")) == first


async def test_torn_tail_on_the_standby_resumes_exactly(
    pair: tuple[Active, Node], tmp_path: Path
) -> None:
    active, standby = pair
    await in_sync(active)
    await append(active.journal, make_records(60, seed=5), per_batch=60)
    await standby.stop()
    head = sorted((tmp_path / "b" / "journal").glob("*.zjournal"))[-1]
    head.write_bytes(head.read_bytes()[:-3])  # a crash mid-write
    assert scan_end(tmp_path / "b" / "journal") < active.source.end
    standby.start(active.port)
    await in_sync(active)
    await append(active.journal, make_records(5, seed=6))
    await standby.stop()
    assert frames(tmp_path / "b" / "journal") == frames(tmp_path / "a" / "journal")


async def test_deposed_active_discards_its_unreplicated_tail(
    pair: tuple[Active, Node], tmp_path: Path
) -> None:
    active, standby = pair
    await in_sync(active)
    shared = make_records(80, seed=14)
    await append(active.journal, shared)
    await standby.stop()
    # The old active writes on alone (never acknowledged to anyone), then dies.
    active.insync.min_insync_azs = 0
    for rtype, payload in make_records(50, seed=15):
        active.journal.append(rtype, payload)
    await active.journal.commit()
    await active.close()
    # b takes over with a higher epoch and writes its own records.
    new = await start_active(tmp_path / "b", epoch=9)
    new.insync.min_insync_azs = 0
    await append(new.journal, make_records(30, seed=16))
    # a returns as a standby of b: its tail goes, b's records follow.
    old = Node(tmp_path / "a", az="az-a", name="a")
    old.start(new.port)
    new.insync.min_insync_azs = 1
    await in_sync(new, "a")
    await old.stop()
    await new.close()
    assert frames(tmp_path / "a" / "journal") == frames(tmp_path / "b" / "journal")
    journal, got = open_journal(tmp_path / "a" / "journal")
    await journal.close()
    assert got == shared + make_records(30, seed=16)
    assert [e.epoch for e in Lineage.load(tmp_path / "a").entries] == [5, 9]


async def test_standby_that_saw_a_newer_epoch_refuses_the_active(
    pair: tuple[Active, Node], tmp_path: Path
) -> None:
    active, standby = pair
    await standby.stop()
    newer = Node(tmp_path / "c", name="c", fence=Fence(9))
    replica = newer.start(active.port)
    with pytest.raises(ReplicationRefused, match="epoch 5 is stale"):
        await asyncio.wait_for(newer.task, T)  # type: ignore[arg-type]
    newer.task = None
    await replica.close()
    assert active.source.fence.current == 9  # the deposed active has learnt it


async def test_stale_records_frame_is_refused_and_closed(tmp_path: Path) -> None:
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def stale_active(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # the HELLO
        payload = b"from a deposed active"
        rec = RECORD_HEADER.pack(len(payload), 1, zlib.crc32(payload, TYPE_CRC[1])) + payload
        writer.write(encode_welcome(7, Position(1, 20), 1, []))
        writer.writelines(encode_records(3, Position(1, 20), rec))
        got.set_result(await reader.read())  # until the standby closes
        writer.close()

    server = await asyncio.start_server(stale_active, "127.0.0.1", 0)
    node = Node(tmp_path / "s", fence=Fence(7))
    node.start(server.sockets[0].getsockname()[1])
    try:
        with pytest.raises(StaleEpoch):
            await asyncio.wait_for(node.task, T)  # type: ignore[arg-type]
        node.task = None
        dec = Decoder(frozenset({ERROR}))
        dec.receive_data(await asyncio.wait_for(got, T))
        event = dec.next_event()
        assert isinstance(event, Error) and "epoch 3 is stale" in event.reason
        assert not frames(tmp_path / "s" / "journal")
    finally:
        server.close()
        await node.stop()


async def test_window_pauses_sender_and_backlog_bounds_memory(tmp_path: Path) -> None:
    window, backlog = 32 * 1024, 256 * 1024
    active = await start_active(tmp_path / "a", 1, window_bytes=window, backlog_bytes=backlog)
    active.insync.min_insync_azs = 0
    # A standby that says hello and then never reads nor acks.
    _reader, writer = await asyncio.open_connection("127.0.0.1", active.port)
    writer.write(encode_hello(0, 0, ZERO, "mute", "az-b"))
    try:
        while not active.source.standbys:
            await append(active.journal, make_records(1, seed=0))
        link = active.source.standbys[0]
        await append(active.journal, make_records(200, seed=6))  # well past the window
        await asyncio.wait_for(link.paused.wait(), T)
        largest_run = max(len(run.data) for run in active.source._backlog)
        sent = link.sent_bytes
        assert sent <= window + largest_run
        for i in range(60):
            await append(active.journal, make_records(20, seed=100 + i), per_batch=20)
            assert link.sent_bytes == sent  # paused: no more sent
            assert active.source.backlog_bytes <= backlog + largest_run
        # Not cut off: it would read from disk when it reads again.
        assert active.source.standbys == [link]
    finally:
        writer.close()
        await active.close()


async def test_standby_stops_reading_while_its_disk_lags(tmp_path: Path) -> None:
    active = await start_active(tmp_path / "a", 1, window_bytes=64 * 1024 * 1024)
    limit = 16 * 1024
    node = Node(tmp_path / "b")
    replica = node.start(active.port, max_unsynced=limit)
    try:
        await in_sync(active)
        await append(active.journal, make_records(5, seed=9))
        disk = threading.Event()
        held = asyncio.wrap_future(replica.mirror._io.submit(disk.wait, T))
        active.insync.min_insync_azs = 0
        active.insync.remove("b")
        await append(active.journal, make_records(3000, seed=10), per_batch=50)  # ~1 MiB
        await asyncio.wait_for(replica.stalled.wait(), T)
        # Reading stopped: what the standby holds is bounded by its limit and one read.
        assert limit < replica.unsynced_bytes <= limit + READ_SIZE
        assert replica.position < active.source.end
        disk.set()
        await held
        await in_sync(active)
    finally:
        await node.stop()
        await active.close()


async def test_malformed_frames_close_with_reason_active_keeps_serving(
    pair: tuple[Active, Node],
) -> None:
    active, _ = pair
    await in_sync(active)
    end = active.source.end
    reader, writer = await asyncio.open_connection("127.0.0.1", active.port)
    writer.write(encode_hello(0, 5, end, "x", "az-c") + b"\x03\x00\x00\x00\x09junk")
    dec = Decoder(frozenset({ERROR, WELCOME}))
    dec.receive_data(await asyncio.wait_for(reader.read(), T))
    assert isinstance(dec.next_event(), Welcome)
    event = dec.next_event()
    assert isinstance(event, Error) and "unexpected frame" in event.reason
    writer.close()
    # An ACK for records never sent must not release anything.
    reader, writer = await asyncio.open_connection("127.0.0.1", active.port)
    bogus = Position(end.segment, end.offset + 1000)
    writer.write(encode_hello(0, 5, end, "y", "az-c") + encode_ack(5, bogus))
    dec = Decoder(frozenset({ERROR, WELCOME}))
    dec.receive_data(await asyncio.wait_for(reader.read(), T))
    assert isinstance(dec.next_event(), Welcome)
    event = dec.next_event()
    assert isinstance(event, Error) and "not the end of a frame sent" in event.reason
    assert active.insync.acked.get("y", ZERO) < bogus
    writer.close()
    await append(active.journal, make_records(50, seed=7))
    await in_sync(active)
    assert [s.node for s in active.source.standbys] == ["b"]


async def test_damaged_records_close_the_standby_side(tmp_path: Path) -> None:
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def bad_active(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        rec = RECORD_HEADER.pack(4, 1, 12345) + b"oops"  # wrong CRC
        writer.write(encode_welcome(1, Position(1, 20), 1, []))
        writer.writelines(encode_records(1, Position(1, 20), rec))
        got.set_result(await reader.read())
        writer.close()

    server = await asyncio.start_server(bad_active, "127.0.0.1", 0)
    node = Node(tmp_path / "s")
    node.start(server.sockets[0].getsockname()[1])
    try:
        with pytest.raises(ProtocolError, match="damaged journal record"):
            await asyncio.wait_for(node.task, T)  # type: ignore[arg-type]
        node.task = None
        dec = Decoder(frozenset({ERROR}))
        dec.receive_data(await asyncio.wait_for(got, T))
        assert isinstance(dec.next_event(), Error)
    finally:
        server.close()
        await node.stop()


async def test_position_past_the_journal_is_refused_clearly(pair: tuple[Active, Node]) -> None:
    active, _ = pair
    await in_sync(active)
    reader, writer = await asyncio.open_connection("127.0.0.1", active.port)
    writer.write(encode_hello(0, 5, Position(999, 20), "z", "az-c"))
    dec = Decoder(frozenset({ERROR}))
    dec.receive_data(await asyncio.wait_for(reader.read(), T))
    event = dec.next_event()
    assert isinstance(event, Error) and "past this journal's end" in event.reason
    writer.close()
    assert [s.node for s in active.source.standbys] == ["b"]  # the real standby is served


@pytest.mark.parametrize("tail", [b"\0" * 4096, b"\0" * 100 + b"\x07" * 3], ids=["zeros", "torn"])
async def test_scan_end_truncates_a_tail_and_warns_only_of_damage(
    tmp_path: Path, tail: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A node that was an active and was SIGKILLed keeps its head segment's preallocated
    zeros; rejoining as a standby, its mirror cuts them off as the end of the log without
    the torn-tail warning, which stays for bytes that are not all zeros."""
    directory = tmp_path / "journal"
    journal, _ = open_journal(directory)
    await append(journal, make_records(20, seed=9))
    await journal.close()
    head = sorted(directory.glob("*.zjournal"))[-1]
    clean = head.read_bytes()
    head.write_bytes(clean + tail)
    with caplog.at_level("WARNING", logger="zonemq.cluster"):
        position = scan_end(directory)
    assert head.read_bytes() == clean
    assert position.offset == len(clean)
    warned = [r for r in caplog.records if "torn tail" in r.getMessage()]
    assert bool(warned) == (tail.strip(b"\0") != b"")
