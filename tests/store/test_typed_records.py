"""Typed property values (broker.core.values) in the journal: an ADD record's layout did
not change for them (the property dict is marshalled as it is, a typed value being a
plain tuple), so a record written before they existed still recovers, and typed values
come back from replay and from a paged-out message's record (issue 12)."""

from __future__ import annotations

import asyncio
import marshal
from pathlib import Path

from broker.core import AUTO, QUEUE, Address, Core, CoreLimits, Message
from broker.store import Journal
from broker.store.messages import ADD, DEST, MessageStore
from tests.core.fakes import RecordingConsumer

Q = Address(QUEUE, "typed")
TYPED = {
    "u": ("uint", 4_000_000_000),
    "sym": ("symbol", "s"),
    "id": ("uuid", bytes(range(16))),
    "f": ("float", 1.5),
    "other": ("amqp", b"\x45", "[]"),
    "nil": None,
    "plain": "text",
}


def open_core(directory: Path, limit: int = 0) -> tuple[Journal, Core]:
    journal = Journal(directory, segment_size=65536, fsync="never")
    store = MessageStore(journal)
    recovered = store.recover(page_over=limit)
    loop = asyncio.get_running_loop()
    kwargs = {"queue_memory_limit": limit} if limit else {}
    core = Core(CoreLimits(**kwargs), call_later=loop.call_later, store=store)
    core.restore(recovered.queues, recovered.flags)
    return journal, core


async def close(journal: Journal, core: Core) -> None:
    done = core.barrier()
    if done is not None:
        await done
    core.close()
    await journal.close()


def drain(core: Core) -> list[Message]:
    c = RecordingConsumer()
    core.subscribe(Q, c, ack_mode=AUTO)
    return c.got


async def test_an_add_record_written_before_typed_values_recovers(tmp_path: Path) -> None:
    """The ADD payload exactly as the broker wrote it before issue 12's typed values."""
    journal = Journal(tmp_path, segment_size=65536, fsync="never")
    MessageStore(journal).recover()
    journal.append(DEST, marshal.dumps((QUEUE, "typed", True, {}), 4))
    old = (
        QUEUE, "typed", 1, "ID:old-1", b"body", 4, 1_700_000_000_000, 0, True, "corr", None,
        None, None, None, {"s": "x", "n": 5, "f": 1.5, "b": True, "bin": b"\x00"}, 0,
        (QUEUE, "typed"),
    )  # fmt: skip
    journal.append(ADD, marshal.dumps(old, 4))
    await journal.close()
    journal, core = open_core(tmp_path)
    [msg] = drain(core)
    assert (msg.id, msg.body, msg.correlation_id, msg.text) == ("ID:old-1", b"body", "corr", True)
    assert msg.properties == {"s": "x", "n": 5, "f": 1.5, "b": True, "bin": b"\x00"}
    await close(journal, core)


async def test_typed_values_come_back_from_replay(tmp_path: Path) -> None:
    journal, core = open_core(tmp_path)
    core.send(Q, Message(b"x", persistent=True, properties=dict(TYPED)))
    await close(journal, core)
    journal, core = open_core(tmp_path)
    [msg] = drain(core)
    assert msg.properties == TYPED
    assert all(type(v) is type(TYPED[k]) for k, v in msg.properties.items())
    await close(journal, core)


async def test_typed_values_come_back_from_a_paged_out_record(tmp_path: Path) -> None:
    journal, core = open_core(tmp_path, limit=1024)
    for i in range(20):
        core.send(Q, Message(b"y" * 200, persistent=True, properties={**TYPED, "i": i}))
    assert any(type(e) is int for e in core.queue(Q).entries())  # some are stubs
    got = drain(core)
    assert [m.properties for m in got] == [{**TYPED, "i": i} for i in range(20)]
    await close(journal, core)
