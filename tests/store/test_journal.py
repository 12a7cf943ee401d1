"""The record journal (broker/store): round trips, group commit, torn tails and
corruption, segment deletion and compaction, paging reads, crashes, the data-dir lock.

Real files in tmp_path, real fsyncs, real child processes for crashes and locks; no
mocked file system. Waiting is on futures and child output, never on bare sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from broker.store import (
    DataDirLock,
    DataDirLocked,
    Journal,
    JournalCorrupt,
    JournalError,
    Record,
    RecordRef,
)

REPO = Path(__file__).resolve().parents[2]
OpenJournal = Callable[..., tuple[Journal, list[Record]]]


def payload(i: int) -> bytes:
    """Distinct, varied-length payloads (no zero bytes, so no accidental frames)."""
    return f"record-{i:06d}:".encode() + b"abcdefghij"[: i % 11] * (1 + i % 7)


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[OpenJournal]:
    """Opens journals (consuming the replay) and closes every one at teardown."""
    made: list[Journal] = []

    def open_journal(directory: Path | None = None, **kw: Any) -> tuple[Journal, list[Record]]:
        journal = Journal(tmp_path / "j" if directory is None else directory, **kw)
        records = list(journal.open())
        made.append(journal)
        return journal, records

    yield open_journal
    for journal in made:
        await journal.close()


async def fill(journal: Journal, n: int, start: int = 0, rtype: int = 7) -> list[RecordRef]:
    refs = [journal.append(rtype, payload(i)) for i in range(start, start + n)]
    await journal.commit()
    return refs


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.zjournal"))


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# -- round trips -------------------------------------------------------------------------------


async def test_round_trip_survives_reopen(opened: OpenJournal, tmp_path: Path) -> None:
    journal, replayed = opened()
    assert replayed == []
    refs = [journal.append(i % 3, payload(i)) for i in range(10)]
    refs.append(journal.append(255, b""))  # empty payload, largest type
    await journal.commit()
    await journal.close()
    _, records = opened()
    assert [r.ref for r in records] == refs
    assert [r.rtype for r in records] == [i % 3 for i in range(10)] + [255]
    assert [r.payload for r in records] == [payload(i) for i in range(10)] + [b""]


async def test_many_segments_replay_in_order(opened: OpenJournal, tmp_path: Path) -> None:
    journal, _ = opened(segment_size=1024)
    refs = await fill(journal, 400)
    assert len({ref.segment for ref in refs}) > 10
    assert all(info.size <= 1024 for info in journal.segments())
    await journal.close()
    names = [p.name for p in segment_files(tmp_path / "j")]
    assert names == sorted(names) and names[0] == "00000001.zjournal"
    _, records = opened(segment_size=1024)
    assert [r.payload for r in records] == [payload(i) for i in range(400)]
    assert [r.ref for r in records] == refs


async def test_record_larger_than_a_segment_gets_its_own(opened: OpenJournal) -> None:
    journal, _ = opened(segment_size=256)
    small = journal.append(1, b"a" * 10)
    big = journal.append(2, b"B" * 5000)
    after = journal.append(3, b"c" * 10)
    await journal.commit()
    assert small.segment < big.segment < after.segment
    assert journal.read(big) == b"B" * 5000
    await journal.close()
    _, records = opened(segment_size=256)
    assert [r.payload for r in records] == [b"a" * 10, b"B" * 5000, b"c" * 10]


async def test_append_needs_a_fully_consumed_open(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    with pytest.raises(JournalError, match="not open"):
        journal.append(1, b"x")
    replay = journal.open()
    with pytest.raises(JournalError, match="not open"):
        journal.append(1, b"x")
    list(replay)
    journal.append(1, b"x")
    await journal.close()
    with pytest.raises(JournalError, match="closed"):
        journal.append(1, b"x")
    with pytest.raises(ValueError):
        Journal(tmp_path / "k", fsync="sometimes")  # type: ignore[arg-type]


# -- group commit --------------------------------------------------------------------------------


async def test_one_loop_turn_is_one_write_and_one_fsync(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    journal = Journal(tmp_path / "j", registry=registry)
    list(journal.open())
    assert journal.stats.fsyncs == 0
    seen_fsyncs: list[int] = []
    futures = []
    for i in range(1000):
        journal.append(1, payload(i))
        fut = journal.commit()
        fut.add_done_callback(lambda _f: seen_fsyncs.append(journal.stats.fsyncs))
        futures.append(fut)
    assert not any(f.done() for f in futures)  # append does no I/O
    await asyncio.gather(*futures)
    stats = journal.stats
    assert (stats.batches, stats.writes, stats.fsyncs) == (1, 1, 1)
    # Every future resolved after the one fsync had happened.
    assert seen_fsyncs == [1] * 1000
    assert registry.get_sample_value("zonemq_journal_group_records_count") == 1
    assert registry.get_sample_value("zonemq_journal_group_records_sum") == 1000
    assert registry.get_sample_value("zonemq_journal_fsync_seconds_count") == 1
    written = registry.get_sample_value("zonemq_journal_bytes_written_total")
    assert written == stats.bytes_written == sum(9 + len(payload(i)) for i in range(1000))
    assert registry.get_sample_value("zonemq_journal_segments") == 1
    await journal.close()


async def test_appends_during_a_write_form_the_next_batch(opened: OpenJournal) -> None:
    journal, _ = opened()
    journal.append(1, b"first")
    first = journal.commit()
    await asyncio.sleep(0)  # one loop turn: the first batch is cut and handed to the I/O thread
    assert not first.done()
    later = []
    for i in range(10):
        journal.append(1, payload(i))
        later.append(journal.commit())
    await asyncio.gather(first, *later)
    assert journal.stats.batches == 2
    assert journal.stats.fsyncs == 2


async def test_throughput_batches_grow_with_concurrency(opened: OpenJournal) -> None:
    journal, _ = opened()

    async def producer(k: int) -> None:
        for i in range(20):
            journal.append(1, payload(k * 100 + i))
            await journal.commit()

    await asyncio.gather(*(producer(k) for k in range(64)))
    # 1280 committed records; with 64 producers the batches carry dozens each.
    assert journal.stats.batches <= 1280 // 16


async def test_cancelling_one_waiter_does_not_cancel_the_others(opened: OpenJournal) -> None:
    journal, _ = opened()
    journal.append(1, b"x")
    a, b = journal.commit(), journal.commit()
    a.cancel()
    await b
    assert b.done() and not b.cancelled()


async def test_fsync_never_resolves_without_fsync(opened: OpenJournal) -> None:
    journal, _ = opened(fsync="never", segment_size=512)
    await fill(journal, 100)
    assert journal.stats.fsyncs == 0  # not even when rolling segments
    assert len(journal.segments()) > 3


async def test_fsync_interval_syncs_in_the_background(opened: OpenJournal) -> None:
    journal, _ = opened(fsync="interval", fsync_interval_ms=200)
    await fill(journal, 10)
    assert journal.stats.fsyncs == 0  # the future resolved after the write alone
    deadline = time.monotonic() + 5
    while journal.stats.fsyncs == 0:
        assert time.monotonic() < deadline, "no interval fsync within 5 s"
        await asyncio.sleep(0.01)
    assert journal.stats.fsyncs == 1


# -- torn tails and corruption ---------------------------------------------------------------


async def make_log(opened: OpenJournal, directory: Path, n: int) -> tuple[list[RecordRef], Path]:
    journal, _ = opened(directory)
    refs = await fill(journal, n)
    path = journal.segments()[-1].path
    await journal.close()
    return refs, path


async def test_torn_tail_at_every_offset_of_the_last_record(
    opened: OpenJournal, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    refs, path = await make_log(opened, tmp_path / "base", 6)
    good = path.read_bytes()
    last = refs[-1]
    end = last.offset + last.frame_size
    assert len(good) == end
    for cut in range(last.offset, end):
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        (directory / path.name).write_bytes(good[:cut])
        caplog.clear()
        journal, records = opened(directory)
        assert [r.payload for r in records] == [payload(i) for i in range(5)], cut
        assert len(warnings_of(caplog)) == (1 if cut > last.offset else 0), cut
        assert (directory / path.name).stat().st_size == last.offset
        new = journal.append(9, b"after the tear")
        await journal.commit()
        assert new.offset == last.offset
        await journal.close()
        caplog.clear()
        _, records = opened(directory)
        assert [r.payload for r in records] == [*(payload(i) for i in range(5)), b"after the tear"]
        assert warnings_of(caplog) == []


async def test_torn_header_of_a_new_last_segment_is_rewritten(
    opened: OpenJournal, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await make_log(opened, tmp_path / "j", 1)
    second = tmp_path / "j" / "00000002.zjournal"
    for size in (0, 7, 19):
        second.write_bytes(
            b"ZMQJ\x01\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"[:size]
        )
        caplog.clear()
        journal, records = opened()
        assert [r.payload for r in records] == [payload(0)]
        assert len(warnings_of(caplog)) == 1
        ref = journal.append(1, b"fresh")
        await journal.commit()
        assert ref.segment == 2
        await journal.close()
        assert [r.payload for r in opened()[1]] == [payload(0), b"fresh"]
        second.unlink()


async def test_flipped_byte_in_the_last_record_is_a_torn_tail(
    opened: OpenJournal, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    refs, path = await make_log(opened, tmp_path / "base", 6)
    good = path.read_bytes()
    last = refs[-1]
    for pos in range(last.offset, last.offset + last.frame_size):
        bad = bytearray(good)
        bad[pos] ^= 0x5A
        directory = tmp_path / f"flip{pos}"
        directory.mkdir()
        (directory / path.name).write_bytes(bad)
        caplog.clear()
        _, records = opened(directory)
        assert [r.payload for r in records] == [payload(i) for i in range(5)], pos
        assert len(warnings_of(caplog)) == 1
        assert (directory / path.name).stat().st_size == last.offset


async def test_flipped_byte_mid_log_is_reported_or_skipped(
    opened: OpenJournal, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    refs, path = await make_log(opened, tmp_path / "base", 10)
    good = path.read_bytes()
    victim = refs[4]
    for pos in range(victim.offset, victim.offset + victim.frame_size):
        bad = bytearray(good)
        bad[pos] ^= 0xA5
        directory = tmp_path / f"flip{pos}"
        directory.mkdir()
        (directory / path.name).write_bytes(bad)
        with pytest.raises(JournalCorrupt) as info:
            list(Journal(directory).open())
        assert info.value.offset == victim.offset
        assert info.value.path == directory / path.name
        assert (directory / path.name).read_bytes() == bad  # refusing touches nothing
        caplog.clear()
        journal, records = opened(directory, skip_corrupt=True)
        assert [r.payload for r in records] == [payload(i) for i in range(10) if i != 4]
        assert [r.ref for r in records] == refs[:4] + refs[5:]
        assert any("skipping corrupt bytes" in w for w in warnings_of(caplog))
    journal.append(1, b"still usable")
    await journal.commit()


async def test_damage_in_an_earlier_segment_is_corruption(
    opened: OpenJournal, tmp_path: Path
) -> None:
    journal, _ = opened(segment_size=512)
    refs = await fill(journal, 60)
    await journal.close()
    # The last record of segment 1: nothing valid follows it in that file, but later
    # segments exist, so it is not a torn tail.
    last_of_first = [r for r in refs if r.segment == 1][-1]
    path = tmp_path / "j" / "00000001.zjournal"
    data = bytearray(path.read_bytes())
    data[last_of_first.offset + 12] ^= 0xFF
    path.write_bytes(data)
    with pytest.raises(JournalCorrupt) as info:
        list(Journal(tmp_path / "j", segment_size=512).open())
    assert (info.value.path, info.value.offset) == (path, last_of_first.offset)
    _, records = opened(segment_size=512, skip_corrupt=True)
    assert [r.ref for r in records] == [r for r in refs if r != last_of_first]


async def test_missing_middle_segment_is_corruption(opened: OpenJournal, tmp_path: Path) -> None:
    journal, _ = opened(segment_size=512)
    await fill(journal, 60)
    await journal.close()
    (tmp_path / "j" / "00000002.zjournal").unlink()
    with pytest.raises(JournalCorrupt, match="missing"):
        list(Journal(tmp_path / "j").open())


# -- release, deletion, compaction -----------------------------------------------------------


async def test_released_old_segments_are_deleted_oldest_first(
    opened: OpenJournal, tmp_path: Path
) -> None:
    journal, _ = opened(segment_size=1024)
    refs = await fill(journal, 200)
    by_segment: dict[int, list[RecordRef]] = {}
    for ref in refs:
        by_segment.setdefault(ref.segment, []).append(ref)
    first, second, *_, head = sorted(by_segment)
    # Segment 2 empty but segment 1 still live: deleting 2 first could let an ack in 2
    # vanish while the record it cancels survives in 1, so 2 must stay.
    for ref in by_segment[second]:
        journal.release(ref)
    assert [s.id for s in journal.segments()][:2] == [first, second]
    for seg_id in sorted(by_segment)[:-1]:
        if seg_id != second:
            for ref in by_segment[seg_id]:
                journal.release(ref)
    assert [s.id for s in journal.segments()] == [head]
    with pytest.raises(JournalError):
        journal.release(refs[0])  # its segment is gone
    await journal.close()
    assert segment_files(tmp_path / "j") == [journal.segments()[0].path]
    _, records = opened(segment_size=1024)
    assert [r.ref for r in records] == by_segment[head]


async def test_compaction_unpins_old_segments(opened: OpenJournal, tmp_path: Path) -> None:
    journal, _ = opened(segment_size=2048)
    old = journal.append(3, b"the one old unacked message")
    live = {old}
    peak = 0
    for round_ in range(60):  # produce and consume ~30 segments' worth
        refs = await fill(journal, 10, start=round_ * 10)
        for ref in refs:
            journal.release(ref)
        peak = max(peak, len(journal.segments()))
    assert peak > 10  # without compaction the old record pins everything
    assert journal.segments()[0].id == old.segment
    mapping = await journal.compact(lambda record: record.ref in live)
    assert list(mapping) == [old]
    new = mapping[old]
    live = {new}
    assert new.segment == journal.segments()[-1].id
    # Until the copy is durable the old segments stay: a crash now must not lose it.
    assert journal.segments()[0].id == old.segment
    assert journal.read(old) == b"the one old unacked message"
    await journal.commit()  # the copy is durable, so the old segments may go
    assert len(journal.segments()) <= 2
    assert journal.read(new) == b"the one old unacked message"
    await journal.close()
    disk = sum(p.stat().st_size for p in segment_files(tmp_path / "j"))
    assert disk <= 2 * 2048
    _, records = opened(segment_size=2048)
    assert [r.payload for r in records if r.rtype == 3] == [b"the one old unacked message"]


async def test_disk_stays_bounded_with_periodic_compaction(opened: OpenJournal) -> None:
    journal, _ = opened(segment_size=2048)
    live = {journal.append(3, b"pinned")}  # the upper layer's index of live records
    peak = 0
    for round_ in range(150):
        refs = await fill(journal, 8, start=round_ * 8)
        for ref in refs:
            journal.release(ref)
        mapping = await journal.compact(lambda record: record.ref in live)
        for old, new in mapping.items():
            live.remove(old)
            live.add(new)
        peak = max(peak, len(journal.segments()))
    assert peak <= 4
    (ref,) = live
    assert journal.read(ref) == b"pinned"


async def test_compaction_leaves_a_mostly_live_backlog_alone(opened: OpenJournal) -> None:
    journal, _ = opened(segment_size=1024)
    await fill(journal, 100)  # all live: copying would free nothing
    assert await journal.compact(lambda record: True) == {}


# -- paging reads --------------------------------------------------------------------------------


async def test_read_returns_payloads_and_checks_crc(opened: OpenJournal, tmp_path: Path) -> None:
    journal, _ = opened(segment_size=1024)
    pending = journal.append(5, b"not yet written")
    assert journal.read(pending) == b"not yet written"  # served from the batch
    refs = await fill(journal, 50)
    assert journal.read(pending) == b"not yet written"
    assert [journal.read(ref) for ref in refs] == [payload(i) for i in range(50)]
    target = refs[3]
    path = journal.segments()[0].path
    with open(path, "r+b") as f:
        f.seek(target.offset + 9)
        byte = f.read(1)
        f.seek(target.offset + 9)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(JournalCorrupt) as info:
        journal.read(target)
    assert (info.value.path, info.value.offset) == (path, target.offset)


# -- failures, crashes, the lock ---------------------------------------------------------------

WRITE_FAILURE_CHILD = """
import asyncio, resource, signal, sys
from broker.store import Journal, JournalFailed

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write instead of death

async def main():
    failures = []
    journal = Journal(sys.argv[1], on_failure=failures.append)
    list(journal.open())
    journal.append(1, b"fits")
    await journal.commit()
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    journal.append(1, b"y" * 20000)
    try:
        await journal.commit()
        print("committed")
    except JournalFailed as exc:
        print("commit failed", type(exc.__cause__).__name__)
    print("on_failure", len(failures))
    try:
        journal.append(1, b"z")
        print("append accepted")
    except JournalFailed:
        print("append refused")
    await journal.close()

asyncio.run(main())
"""


async def test_failed_write_fails_futures_and_journal(opened: OpenJournal, tmp_path: Path) -> None:
    directory = tmp_path / "j"
    result = subprocess.run(
        [sys.executable, "-c", WRITE_FAILURE_CHILD, str(directory)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == [
        "commit failed OSError",
        "on_failure 1",
        "append refused",
    ], result.stdout + result.stderr
    _, records = opened(directory)  # the partial write is a torn tail
    assert [r.payload for r in records] == [b"fits"]


CRASH_CHILD = """
import asyncio, sys
from broker.store import Journal

async def main():
    journal = Journal(sys.argv[1], segment_size=16384)
    list(journal.open())

    async def producer(k):
        seq = k
        while True:
            journal.append(1, str(seq).encode().ljust(20 + seq % 300, b"."))
            await journal.commit()
            sys.stdout.write(f"{seq}\\n")
            sys.stdout.flush()
            seq += 8

    await asyncio.gather(*(producer(k) for k in range(8)))

asyncio.run(main())
"""


@pytest.mark.parametrize("kill_point", [0, 1, 2])
async def test_sigkill_never_loses_an_acknowledged_record(
    kill_point: int, opened: OpenJournal, tmp_path: Path
) -> None:
    rng = random.Random(kill_point)
    directory = tmp_path / "j"
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_CHILD, str(directory)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    acked: set[int] = set()
    target = rng.randint(100, 1500)
    try:
        while len(acked) < target:
            line = proc.stdout.readline()
            assert line.endswith(b"\n"), f"child died: {proc.communicate()[1]!r}"
            acked.add(int(line))
        time.sleep(rng.random() * 0.005)  # jitter the kill against the write/fsync cycle
    finally:
        proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=10)
    # Every complete line was printed after its commit future resolved.
    acked.update(int(line) for line in rest.split(b"\n")[:-1])
    assert proc.returncode == -signal.SIGKILL
    journal, records = opened(directory, segment_size=16384)
    stored = [int(r.payload.rstrip(b".")) for r in records]
    assert len(stored) == len(set(stored))
    assert acked <= set(stored), sorted(acked - set(stored))[:10]
    journal.append(1, b"after the crash")
    await journal.commit()


# -- preallocation ----------------------------------------------------------------------------


async def test_head_is_preallocated_while_open_and_trimmed_when_sealed_or_closed(
    opened: OpenJournal, tmp_path: Path
) -> None:
    journal, _ = opened(segment_size=4096)
    refs = await fill(journal, 10)
    head = segment_files(tmp_path / "j")[-1]
    end = refs[-1].offset + refs[-1].frame_size
    # Zeros run on past the records (up to the segment size), so fdatasync of later
    # records finds the file's size unchanged.
    assert head.stat().st_size == 4096 > end
    assert head.read_bytes()[end:] == bytes(4096 - end)
    await fill(journal, 400, start=10)  # rolls several segments
    *sealed, head = journal.segments()
    assert len(sealed) >= 2
    for seg in sealed:
        assert seg.path.stat().st_size == seg.size == seg.written  # trimmed before the roll
    assert head.path.stat().st_size > head.size
    await journal.close()
    assert head.path.stat().st_size == head.size
    # Reopened, the head grows into preallocated space again, and replay sees every record.
    journal, records = opened(segment_size=4096)
    assert [r.payload for r in records] == [payload(i) for i in range(410)]
    await fill(journal, 1, start=410)
    assert journal.segments()[-1].path.stat().st_size > journal.segments()[-1].size


async def test_zero_tail_is_the_end_of_the_log_without_a_warning(
    opened: OpenJournal, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    refs, path = await make_log(opened, tmp_path / "base", 6)
    good = path.read_bytes()
    last = refs[-1]
    end = last.offset + last.frame_size
    tail = bytes(4 * 1024 * 1024)  # more zeros than one preallocation step
    cases = {
        "zeros": (good + tail, 6, 0, end),  # a kill: every record, no warning
        "torn": (good[: end - 3] + tail, 5, 1, last.offset),  # a torn last record
    }
    for name, (data, kept, warned, size) in cases.items():
        directory = tmp_path / name
        directory.mkdir()
        (directory / path.name).write_bytes(data)
        caplog.clear()
        started = time.monotonic()
        journal, records = opened(directory)
        # find_record skips the zeros at C speed (a Python walk of 4 MiB takes seconds);
        # a generous bound for a loaded machine, not a benchmark.
        assert time.monotonic() - started < 2.0, name
        assert [r.payload for r in records] == [payload(i) for i in range(kept)], name
        assert len(warnings_of(caplog)) == warned, (name, warnings_of(caplog))
        assert (directory / path.name).stat().st_size == size, name
        ref = journal.append(9, b"after")
        await journal.commit()
        assert ref.offset == size
        await journal.close()
        _, records = opened(directory)
        assert [r.payload for r in records][-1] == b"after"


async def test_sigkill_leaves_a_zero_tail_only_on_the_head(
    opened: OpenJournal, tmp_path: Path
) -> None:
    directory = tmp_path / "j"
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_CHILD, str(directory)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    acked: set[int] = set()
    try:
        while len(acked) < 400:  # several 16 KiB segments
            line = proc.stdout.readline()
            assert line.endswith(b"\n"), f"child died: {proc.communicate()[1]!r}"
            acked.add(int(line))
    finally:
        proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=10)
    acked.update(int(line) for line in rest.split(b"\n")[:-1])
    files = segment_files(directory)
    assert len(files) >= 3
    head = files[-1].read_bytes()
    assert len(head) == 16384 and head.endswith(bytes(64))  # the kill left the zeros
    for sealed in files[:-1]:
        assert not sealed.read_bytes().endswith(bytes(16)), sealed  # trimmed at the roll
    journal, records = opened(directory, segment_size=16384)
    stored = [int(r.payload.rstrip(b".")) for r in records]
    assert acked <= set(stored), sorted(acked - set(stored))[:10]
    *_, last = journal.segments()
    assert files[-1].stat().st_size == last.size < 16384  # recovery trimmed the zeros


LOCK_CHILD = """
import sys
from broker.store import DataDirLock, DataDirLocked
try:
    with DataDirLock(sys.argv[1]):
        print("acquired")
except DataDirLocked as exc:
    print(exc)
    sys.exit(3)
"""


def try_lock_in_child(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LOCK_CHILD, str(directory)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_data_dir_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    with DataDirLock(tmp_path) as lock:
        assert lock.held
        child = try_lock_in_child(tmp_path)
        assert child.returncode == 3, child.stderr
        assert str(tmp_path) in child.stdout
        assert f"process {os.getpid()}" in child.stdout
        with pytest.raises(DataDirLocked) as info:
            DataDirLock(tmp_path).acquire()  # a second lock in the same process too
        assert info.value.pid == os.getpid()
        assert info.value.directory == tmp_path
    assert not lock.held
    child = try_lock_in_child(tmp_path)
    assert (child.returncode, child.stdout) == (0, "acquired\n"), child.stderr
