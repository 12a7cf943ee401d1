"""Restart time tracks live data, not history (issue 10).

A journal smaller than one segment used to be compacted never: its head kept every dead
record until it filled a whole segment (64 MiB by default), so a broker that produced,
consumed and restarted replayed more at every start. Here a store with a small live
backlog goes through many restart cycles, each one compacting as the broker does right
after start, producing and consuming, and closing; what the next start replays (records,
bytes on disk) must stay bounded by the live data, whatever the number of cycles.

The backlog's messages were delivered before the first restart: their COUNT records
must survive the compactions that copy their ADDs forward (they come back redelivered,
with their count), or a message a client saw before a crash would come back unmarked.
"""

from __future__ import annotations

from pathlib import Path

from broker.core.message import Address, Message
from broker.store import Journal
from broker.store.messages import MessageStore

SEGMENT = 65536
QUEUE = Address("queue", "restart.cycles")
LIVE = 30  # messages that stay on the queue through every cycle
CHURN = 40  # messages produced, delivered and consumed in each cycle
CYCLES = 60


def message(n: int) -> Message:
    msg = Message(b"x" * 100, destination=QUEUE, persistent=True)
    msg.id = f"ID:m-{n}"
    return msg


def open_store(directory: Path) -> tuple[Journal, MessageStore, list[Message], int]:
    journal = Journal(directory, segment_size=SEGMENT, fsync="never")
    store = MessageStore(journal)
    recovered = store.recover()
    return journal, store, recovered.queues.get(QUEUE, []), recovered.records


def disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.zjournal"))


async def test_replay_stays_bounded_by_live_data_over_restart_cycles(tmp_path: Path) -> None:
    directory = tmp_path / "journal"
    journal, store, _, _ = open_store(directory)
    store.queue_created(QUEUE)
    for i in range(LIVE):
        msg = message(i)
        store.add(QUEUE, msg)
        store.delivered(QUEUE, msg)  # seen by a consumer, never acknowledged
    await journal.commit()
    await journal.close()

    n = LIVE
    replayed: list[int] = []
    sizes: list[int] = []
    for _ in range(CYCLES):
        sizes.append(disk_bytes(directory))
        journal, store, backlog, records = open_store(directory)
        replayed.append(records)
        assert sorted(m.id for m in backlog) == sorted(f"ID:m-{i}" for i in range(LIVE))
        assert all(m.redelivered and m.delivery_count == 1 for m in backlog)
        # As the broker does right after start: compact while a pass moves records.
        for _ in range(10):
            if not await store.compact():
                break
        for _ in range(CHURN):
            msg = message(n)
            n += 1
            store.add(QUEUE, msg)
            store.delivered(QUEUE, msg)
            store.remove(QUEUE, msg)
        await journal.commit()
        await journal.close()

    # One cycle writes CHURN * 3 records (ADD, COUNT, REMOVE) of about 150 bytes:
    # without compaction of the head, each start replays more until the head fills a
    # segment (here up to about 770 records; with the default 64 MiB, a million).
    # Bounded: the live records, at most 1/8 of a segment of dead head (the sealing
    # threshold), and the one cycle written since the last compaction.
    bound = 2 * LIVE + SEGMENT // 8 // 100 + 3 * CHURN + 1
    assert max(replayed[CYCLES // 2 :]) <= bound, replayed
    assert max(sizes[CYCLES // 2 :]) <= 2 * SEGMENT // 8 + 3 * CHURN * 160, sizes


async def test_a_journal_smaller_than_a_segment_is_compacted(tmp_path: Path) -> None:
    """The head alone: mostly dead after a produce/consume run, compaction seals it and
    copies the few live records forward, and the old head's file is deleted."""
    directory = tmp_path / "journal"
    journal, store, _, _ = open_store(directory)
    store.queue_created(QUEUE)
    keep = message(0)
    store.add(QUEUE, keep)
    for i in range(1, 200):
        msg = message(i)
        store.add(QUEUE, msg)
        store.remove(QUEUE, msg)
    await journal.commit()
    before = journal.segments()
    assert len(before) == 1 and before[0].size < SEGMENT  # all of it is the head
    moved = await store.compact()
    assert moved == 2  # the queue's DEST record and the one live ADD
    await journal.commit()
    after = journal.segments()
    assert [s.id for s in after] == [before[0].id + 1]
    assert after[0].size < before[0].size // 10
    await journal.close()
    _, _, backlog, records = open_store(directory)
    assert [m.id for m in backlog] == [keep.id]
    assert records == 2
