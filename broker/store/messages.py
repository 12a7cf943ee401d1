"""MessageStore: persistent messages of durable queues as journal records.

The journal stores opaque records; this layer decides what they mean. Records (payloads
are `marshal` format 4 tuples of primitives, which CPython reads and writes in C):

  ADD       (queue, seq, message fields...)   a persistent message now held by a queue
  REMOVE    (queue, msg id)                   consumed, purged or moved: dead on arrival
  COUNT     (queue, msg id, delivery count)   delivered, or returned with a higher count
  TX        ([ADD...], [REMOVE...])           a transaction's sends and acks, atomically
  DEST      (kind, name, created?, flags)     a queue was created (with its flags, e.g.
                                              own_limit) / deleted; a later DEST of the
                                              same queue replaces the earlier one
  DEST_META (owner, name, blob | None)        a facade's opaque metadata of one of its
                                              destinations (e.g. SQS queue attributes);
                                              the latest per (owner, name) wins, None
                                              deletes it
  DURABLE_SUB (client id, name, info | None)  a durable topic subscription (its topic,
                                              selector, no-local: broker/core/durable.py
                                              `Info`); the latest per key wins, None
                                              deletes it. Its messages are ADDs under
                                              its queue address (kind "durable")

  JOB, JOB_NEXT, JOB_DONE (20-22)            scheduled jobs: broker/store/scheduled.py

Only persistent messages on queues of kind "queue" and on durable subscriptions' queues
(kind "durable") are written; non-persistent messages, plain topic subscriptions and
temporary queues never are (a scheduled job of a persistent message is, for a queue or
a topic, until it is due).

Liveness: an ADD is live until its message is removed; a TX record is live while any of
its messages is; REMOVE and COUNT are dead on arrival (the journal deletes segments
oldest first, so they outlive the ADDs they refer to). The latest COUNT of each live
message is remembered (`_counts`): when compaction copies the message's ADD (or TX)
forward, the COUNT is written again right after the copy, in the same batch, so the
count survives the deletion of the segment that held it. Compaction also seals the
head when most of it is dead (journal.py), so this is the common case, not a rare one.

Replay is keyed by (queue, message id), so duplicate ADDs (a crash between compaction's
copy and the deletion of the old segment) collapse, and queue order comes from `seq`,
the enqueue sequence stored in each ADD, not from record order. A message once removed
never comes back under the same key, so replay ignores later ADDs of a removed key: that
is what makes a compaction copy of a partly consumed TX record safe.

Paged-out messages (issue 10: one cost about 860 bytes of index): a durable queue past
its memory limit offers a message to `page_out`, which forgets it (no Message, no
`_refs` key, no `_live_adds` entry) and returns a *stub*, an int the queue keeps in its
lane in its place; `page_in` rebuilds the Message from its record and knows it again.
`PagedIndex` (paging.py) maps stubs to records and answers compaction for them. A
message qualifies when its own ADD record holds it (not a TX: its index in the TX would
change when compaction rewrites a partly consumed TX), it has no COUNT for its current
delivery, and it neither expires nor belongs to a group (the core's expiry sweep and
group picks read those fields of what is pending; a stub has none). For the store
limit a paged message counts its record's length, not its `Message.size` (a rebuilt
copy may count differently; the record is what the disk holds).

Ownership: used only from the event loop thread; no method awaits.
"""

from __future__ import annotations

import asyncio
import marshal
from collections.abc import Awaitable, Callable
from typing import Any

from broker.core.audit import PRODUCER_MESSAGE_ID, ProducerAudit
from broker.core.message import QUEUE, Address, Message
from broker.core.scheduler import Job
from broker.store import scheduled
from broker.store.format import Record, RecordRef
from broker.store.journal import Journal
from broker.store.paging import PagedIndex, pack, unpack

ADD = 1
REMOVE = 2
COUNT = 3
TX = 4
DEST = 5
DEST_META = 6
# 30 and up: durable topic subscriptions (other ranges are taken by other features).
DURABLE_SUB = 30

_MARSHAL_VERSION = 4


def _message_tuple(queue: Address, seq: int, m: Message) -> tuple[Any, ...]:
    reply = (m.reply_to.kind, m.reply_to.name) if m.reply_to is not None else None
    dest = (m.destination.kind, m.destination.name) if m.destination is not None else None
    return (
        queue.kind,
        queue.name,
        seq,
        m.id,
        m.body,
        m.priority,
        m.timestamp,
        m.expiration,
        m.text,
        m.correlation_id,
        reply,
        m.content_type,
        m.group_id,
        m.type,
        m.properties,
        m.delivery_count,
        dest,
    )


def _message_from(t: tuple[Any, ...]) -> tuple[Address, int, Message]:
    (kind, name, seq, mid, body, prio, ts, exp, text, corr, reply, ctype, group, mtype,
     props, count, dest) = t  # fmt: skip
    m = Message(
        body,
        destination=Address(*dest) if dest is not None else Address(kind, name),
        properties=props,
        persistent=True,
        priority=prio,
        timestamp=ts,
        expiration=exp,
        text=text,
        correlation_id=corr,
        reply_to=Address(*reply) if reply is not None else None,
        content_type=ctype,
        group_id=group,
        type=mtype,
    )
    m.id = mid
    m.delivery_count = count
    return Address(kind, name), seq, m


# What replay keeps of a message until the end of the scan: (seq, holder, the ADD's
# fields or None, body length, priority, stub-able); or, in the common case of a deep
# backlog (its own ADD record, fields not kept), the same packed into one int, about 44
# bytes instead of some 210 with the tuple and its RecordRef: a replay of a million
# paged messages holds that much less at its peak, and keeps less of it afterwards
# (freed small objects leave arenas the process does not give back).
_Replayed = tuple[int, "RecordRef | _Shared", Any, int, int, bool] | int
_SLIM_SEGMENTS = 1 << 32  # a packed RecordRef fits 96 bits below this segment id
_LOC_BITS = 96
_LOC_MASK = (1 << _LOC_BITS) - 1


def _slim(seq: int, priority: int, stubbable: bool, ref: RecordRef) -> int:
    return (((seq << 5) | (priority << 1) | stubbable) << _LOC_BITS) | pack(ref)


def _unslim(v: _Replayed) -> tuple[int, RecordRef | _Shared, Any, int, int, bool]:
    if type(v) is not int:
        return v  # type: ignore[return-value]
    ref = unpack(v & _LOC_MASK)
    flags = v >> _LOC_BITS
    # The record's length stands in for the body's: only the paging decision reads it.
    return (flags >> 5, ref, None, ref.length, (flags >> 1) & 15, bool(flags & 1))


def _seq(v: _Replayed) -> int:
    return v >> (_LOC_BITS + 5) if type(v) is int else v[0]  # type: ignore[operator,index]


def _holder(v: _Replayed) -> RecordRef | _Shared:
    return unpack(v & _LOC_MASK) if type(v) is int else v[1]  # type: ignore[operator,index]


def _stub_ok(expiration: int, group_id: str | None) -> bool:
    """May a message with these fields be paged out as a stub? Not one that expires (the
    core's expiry sweep reads `expiration` of what is pending) nor one of a group (a
    group pick reads `group_id`): a stub has neither."""
    return not expiration and group_id is None


class _Shared:
    """A TX record referenced by several messages; released when the last one goes."""

    __slots__ = ("ref", "users")

    def __init__(self, ref: RecordRef, users: int) -> None:
        self.ref = ref
        self.users = users


class Recovered:
    """What replay rebuilt: queues (in creation order) and their messages in order (a
    paged-out one as its stub and priority, see the module docstring), and the flags queues were
    recorded with."""

    def __init__(self) -> None:
        self.queues: dict[Address, list[Message | tuple[int, int]]] = {}
        self.flags: dict[Address, dict[str, bool]] = {}
        # Durable topic subscriptions: (client id, name) -> broker.core.durable.Info.
        self.subscriptions: dict[tuple[str, str], tuple[Any, ...]] = {}
        # Scheduled jobs (broker/store/scheduled.py), for Core.scheduler.restore.
        self.jobs: list[Job] = []
        # The last sequence per producer of every ADD replayed (broker/core/audit.py).
        self.producers = ProducerAudit()
        self.records = 0


class MessageStore:
    """Maps the core's persistent-message events to journal records (see module doc)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        # (queue, msg id) -> the record keeping the message alive.
        self._refs: dict[tuple[Address, str], RecordRef | _Shared] = {}
        # Messages that have had a COUNT written for their current delivery.
        self._marked: set[tuple[Address, str]] = set()
        # The count of the latest COUNT record of each live message (re-written after a
        # compaction copy of its ADD / TX, see the module docstring).
        self._counts: dict[tuple[Address, str], int] = {}
        self._dest_refs: dict[Address, RecordRef] = {}
        # (owner, name) -> (the live DEST_META record, its blob).
        self._meta: dict[tuple[str, str], tuple[RecordRef, bytes]] = {}
        # (client id, name) -> (the live DURABLE_SUB record, its info).
        self._subs: dict[tuple[str, str], tuple[RecordRef, tuple[Any, ...]]] = {}
        # Live TX records by where they are (compaction asks about them).
        self._shared: dict[RecordRef, _Shared] = {}
        # Where the live ADD records are (the values of _refs that are RecordRefs).
        self._live_adds: set[RecordRef] = set()
        # Paged-out messages, by stub (broker/store/paging.py).
        self._paged = PagedIndex()
        self._seq = 1
        self._dirty = False
        # Bytes (Message.size) of the messages held: the core's store limit reads it.
        self.stored_bytes = 0
        # The commit future of the newest barrier, until it completes.
        self._last: asyncio.Future[None] | None = None
        # Scheduled jobs' records (record types 20-22).
        self._jobs = scheduled.ScheduledRecords(
            lambda rtype, value, live: self._append(rtype, value, live=live),
            self.journal.release,
            _message_tuple,
            _message_from,
        )
        # The Store protocol's job methods are the job records' own.
        self.job_added: Callable[[Job], None] = self._jobs.added
        self.job_moved: Callable[[Job], None] = self._jobs.moved
        self.job_done: Callable[[Job], None] = self._jobs.done

    # -- recovery -------------------------------------------------------------------------

    def recover(self, page_over: int = 0) -> Recovered:
        """Replay the journal (blocking; call before serving). Beyond `page_over` bytes
        of bodies per queue (0 = no limit) messages stay paged out (as stubs where they
        qualify, see the module docstring), so a deep backlog does not have to fit in
        memory at start-up, nor while it is replayed: the scan keeps a record's fields
        only while its queue's bodies so far fit in `page_over`, and reads the others
        back at the end if they turn out to be needed."""
        out = Recovered()
        # queue -> msg id -> what replay knows of the message (`_Replayed`).
        msgs: dict[Address, dict[str, _Replayed]] = {}
        counts: dict[tuple[Address, str], int] = {}
        queues: dict[Address, RecordRef | None] = {}
        addresses: dict[tuple[str, str], Address] = {}
        scanned: dict[Address, int] = {}
        dead: list[RecordRef] = []
        release_later: list[RecordRef] = []
        removed: set[tuple[Address, str]] = set()
        max_seq = 0
        jobs = self._jobs.replayer()
        note_id = out.producers.note_id

        def address(kind: str, name: str) -> Address:
            a = addresses.get((kind, name))
            if a is None:
                a = addresses[(kind, name)] = Address(kind, name)
            return a

        def add(t: tuple[Any, ...], holder: RecordRef | _Shared) -> bool:
            nonlocal max_seq
            queue = address(t[0], t[1])
            seq = t[2]
            mid = t[3]
            max_seq = max(max_seq, seq)
            props = t[14]
            if props:
                # Consumed or not: a resend of it after a failover is still a duplicate.
                note_id(props.get(PRODUCER_MESSAGE_ID))
            if (queue, mid) in removed:
                return False
            held = msgs.get(queue)
            if held is None:
                held = msgs[queue] = {}
            old = held.get(mid)
            if old is not None:
                # A compaction copy of a message we already have: keep the first position.
                _drop(_holder(old))
                seq = _seq(old)
            body_len = len(t[4])
            keep = True
            if page_over:
                size = scanned.get(queue, 0) + body_len
                if size > page_over:
                    keep = False
                else:
                    scanned[queue] = size
            stubbable = type(holder) is RecordRef and _stub_ok(t[7], t[12])
            if not keep and type(holder) is RecordRef and holder.segment < _SLIM_SEGMENTS:
                held[mid] = _slim(seq, t[5], stubbable, holder)
            else:
                held[mid] = (seq, holder, t if keep else None, body_len, t[5], stubbable)
            queues.setdefault(queue, None)
            return True

        def remove(kind: str, name: str, mid: str) -> None:
            queue = address(kind, name)
            removed.add((queue, mid))
            held = msgs.get(queue)
            old = held.pop(mid, None) if held is not None else None
            if old is not None:
                _drop(_holder(old))
            counts.pop((queue, mid), None)

        def _drop(holder: RecordRef | _Shared) -> None:
            if isinstance(holder, _Shared):
                holder.users -= 1
                if holder.users == 0:
                    self._shared.pop(holder.ref, None)
                    release_later.append(holder.ref)
            else:
                release_later.append(holder)

        record: Record
        for record in self.journal.open():
            out.records += 1
            t = marshal.loads(record.payload)
            rtype = record.rtype
            if rtype == ADD:
                if not add(t, record.ref):
                    dead.append(record.ref)
            elif rtype == REMOVE:
                remove(*t)
                dead.append(record.ref)
            elif rtype == COUNT:
                kind, name, mid, count = t
                queue = address(kind, name)
                if mid in msgs.get(queue, ()):
                    counts[(queue, mid)] = count
                dead.append(record.ref)
            elif rtype == TX:
                adds, removes = t
                shared = _Shared(record.ref, 0)
                for r in removes:
                    remove(*r)
                for a in adds:
                    shared.users += add(a, shared)
                if shared.users:
                    self._shared[record.ref] = shared
                else:
                    dead.append(record.ref)
            elif rtype == DEST:
                kind, name, created, *rest = t
                queue = address(kind, name)
                old_ref = queues.pop(queue, None)
                out.flags.pop(queue, None)
                if old_ref is not None:
                    release_later.append(old_ref)
                if created:
                    queues[queue] = record.ref
                    if rest and rest[0]:
                        out.flags[queue] = rest[0]
                else:
                    dead.append(record.ref)
            elif rtype == DEST_META:
                self._replay_meta(t, record.ref)
            elif rtype == DURABLE_SUB:
                self._replay_sub(t, record.ref)
            elif rtype in scheduled.TYPES:
                jobs.record(rtype, t, record.ref)
            else:
                raise ValueError(f"unknown journal record type {rtype} at {record.ref}")
        out.jobs, dead_jobs = jobs.finish()
        dead.extend(dead_jobs)
        for ref in dead:
            self.journal.release(ref)
        for ref in release_later:
            self.journal.release(ref)
        # The scan's own indexes can go before the Messages are built.
        removed.clear()
        for queue in queues:
            msgs.setdefault(queue, {})
        for queue, held in msgs.items():
            order = sorted((_seq(v), mid) for mid, v in held.items())
            out.queues[queue] = self._rebuild(queue, order, held, counts, page_over)
        for queue, ref in queues.items():
            if ref is not None:
                self._dest_refs[queue] = ref
        self._seq = max_seq + 1
        out.subscriptions = {key: info for key, (_ref, info) in self._subs.items()}
        return out

    def _rebuild(
        self,
        queue: Address,
        order: list[tuple[int, str]],
        replayed: dict[str, _Replayed],
        counts: dict[tuple[Address, str], int],
        page_over: int,
    ) -> list[Message | tuple[int, int]]:
        """One queue's replayed messages in order: in memory while their bodies fit in
        `page_over`, stubs past it where they qualify, body-less Messages otherwise."""
        entries: list[Message | tuple[int, int]] = []
        held = 0
        for _seq, mid in order:
            key = (queue, mid)
            _, holder, t, body_len, priority, stubbable = _unslim(replayed.pop(mid))
            count = counts.get(key)
            paged = bool(page_over) and held + body_len > page_over
            if not paged:
                held += body_len
            if paged and stubbable and count is None:
                assert type(holder) is RecordRef
                stub = self._stub(holder)
                if stub is not None:
                    entries.append((stub, priority))
                    continue
            if t is None:
                t = self._fields(queue, mid, holder)
            m = _message_from(t)[2]
            if paged:
                m.body = None  # type: ignore[assignment]
            if count is not None:
                # Delivered before the restart and never acknowledged: it comes back
                # the way a closed subscription returns it.
                m.delivery_count = count + 1
                m.redelivered = True
                self._counts[key] = count
            self._refs[key] = holder
            self.stored_bytes += m.size
            if not isinstance(holder, _Shared):
                self._live_adds.add(holder)
            entries.append(m)
        return entries

    def _fields(self, queue: Address, mid: str, holder: RecordRef | _Shared) -> tuple[Any, ...]:
        """The ADD fields of message `mid` of `queue`, read back from its record."""
        ref = holder.ref if isinstance(holder, _Shared) else holder
        t = marshal.loads(self.journal.read(ref))
        if len(t) == 2:  # a TX record: ([adds], [removes])
            key = (queue.kind, queue.name, mid)
            t = next(a for a in t[0] if (a[0], a[1], a[3]) == key)
        return t  # type: ignore[no-any-return]

    # -- the core's events ----------------------------------------------------------------

    def _append(self, rtype: int, value: Any, *, live: bool) -> RecordRef:
        self._dirty = True
        return self.journal.append(rtype, marshal.dumps(value, _MARSHAL_VERSION), live=live)

    def add(self, queue: Address, msg: Message) -> None:
        seq = self._seq
        self._seq = seq + 1
        ref = self._append(ADD, _message_tuple(queue, seq, msg), live=True)
        self._refs[(queue, msg.id)] = ref
        self._live_adds.add(ref)
        self.stored_bytes += msg.size

    def remove(self, queue: Address, msg: Message) -> None:
        key = (queue, msg.id)
        holder = self._refs.pop(key, None)
        if holder is None:
            return
        self.stored_bytes -= msg.size
        self._marked.discard(key)
        self._counts.pop(key, None)
        self._append(REMOVE, (queue.kind, queue.name, msg.id), live=False)
        self._release(holder)

    def delivered(self, queue: Address, msg: Message) -> None:
        """First delivery of this copy: after a crash it must come back redelivered."""
        key = (queue, msg.id)
        if key in self._marked or key not in self._refs:
            return
        self._marked.add(key)
        self._counts[key] = msg.delivery_count
        self._append(COUNT, (queue.kind, queue.name, msg.id, msg.delivery_count), live=False)

    def returned(self, queue: Address, msg: Message) -> None:
        """The message came back (count raised); its next delivery is marked again."""
        key = (queue, msg.id)
        if key not in self._refs:
            return
        self._marked.discard(key)
        self._counts[key] = msg.delivery_count - 1
        self._append(COUNT, (queue.kind, queue.name, msg.id, msg.delivery_count - 1), live=False)

    def transaction(
        self, adds: list[tuple[Address, Message]], removes: list[tuple[Address, Message]]
    ) -> None:
        """Several adds and removes that must survive a crash together or not at all."""
        add_tuples = []
        seqs = []
        for queue, msg in adds:
            seqs.append(self._seq)
            add_tuples.append(_message_tuple(queue, self._seq, msg))
            self._seq += 1
        remove_tuples = []
        holders = []
        for queue, msg in removes:
            key = (queue, msg.id)
            holder = self._refs.pop(key, None)
            if holder is None:
                continue
            self.stored_bytes -= msg.size
            self._marked.discard(key)
            self._counts.pop(key, None)
            holders.append(holder)
            remove_tuples.append((queue.kind, queue.name, msg.id))
        if not add_tuples and not remove_tuples:
            return
        ref = self._append(TX, (add_tuples, remove_tuples), live=bool(add_tuples))
        if add_tuples:
            shared = _Shared(ref, len(add_tuples))
            self._shared[ref] = shared
            for queue, msg in adds:
                self._refs[(queue, msg.id)] = shared
                self.stored_bytes += msg.size
        for holder in holders:
            self._release(holder)

    def queue_created(self, queue: Address, flags: dict[str, bool] | None = None) -> None:
        """Record the queue (once), or with `flags` record it again with those flags."""
        if queue.kind != QUEUE:
            return
        old = self._dest_refs.get(queue)
        if old is not None and flags is None:
            return
        value = (queue.kind, queue.name, True, flags or {})
        self._dest_refs[queue] = self._append(DEST, value, live=True)
        if old is not None:
            self.journal.release(old)

    def queue_deleted(self, queue: Address) -> None:
        ref = self._dest_refs.pop(queue, None)
        if ref is not None:
            self._append(DEST, (queue.kind, queue.name, False), live=False)
            self.journal.release(ref)

    def load(self, queue: Address, msg: Message) -> bytes:
        """Read a paged-out message's body back from its record."""
        return self._fields(queue, msg.id, self._refs[(queue, msg.id)])[4]  # type: ignore[no-any-return]

    def holds(self, queue: Address, msg: Message) -> bool:
        return (queue, msg.id) in self._refs

    # -- paged-out messages (module docstring) ---------------------------------------------

    def page_out(self, queue: Address, msg: Message) -> int | None:
        """Forget `msg` (held by `queue`) until `page_in`: its stub, or None when it does
        not qualify (then the caller keeps the Message, and may drop its body)."""
        if not _stub_ok(msg.expiration, msg.group_id):
            return None
        key = (queue, msg.id)
        ref = self._refs.get(key)
        if type(ref) is not RecordRef or key in self._counts:
            return None
        stub = self._stub(ref)
        if stub is None:
            return None
        del self._refs[key]
        self._live_adds.discard(ref)
        self.stored_bytes -= msg.size  # _stub counted the record's length instead
        return stub

    def _stub(self, ref: RecordRef) -> int | None:
        stub = self._paged.add(ref)
        if stub is not None:
            self.stored_bytes += ref.length
        return stub

    def page_in(self, queue: Address, stub: int) -> Message:
        """The paged-out message `stub` of `queue`, rebuilt from its record and known
        again (acknowledged, counted, removed) like any other."""
        ref = self._paged.take(stub)
        msg = _message_from(marshal.loads(self.journal.read(ref)))[2]
        self._refs[(queue, msg.id)] = ref
        self._live_adds.add(ref)
        self.stored_bytes += msg.size - ref.length
        return msg

    def peek(self, queue: Address, stub: int) -> Message:
        """A copy of the paged-out message `stub` (for browsing); it stays paged out.
        KeyError (a LookupError) when it is no longer paged out."""
        return _message_from(marshal.loads(self.journal.read(self._paged.where(stub))))[2]

    def discard(self, queue: Address, stub: int) -> None:
        """Remove the paged-out message `stub` for good (purge): its id is in the record."""
        self.remove(queue, self.page_in(queue, stub))

    def barrier(self) -> Awaitable[None] | None:
        """An awaitable that completes when everything written so far is durable, or
        None when all of it already is."""
        last = self._last
        if self._dirty:
            self._dirty = False
            last = self._last = self.journal.commit()
        if last is None or last.done():
            self._last = None
            return None
        return last

    def _release(self, holder: RecordRef | _Shared) -> None:
        if isinstance(holder, _Shared):
            holder.users -= 1
            if holder.users:
                return
            self._shared.pop(holder.ref, None)
            holder = holder.ref
        else:
            self._live_adds.discard(holder)
        self.journal.release(holder)

    # -- compaction -----------------------------------------------------------------------

    def live(self, record: Record) -> bool | bytes:
        """Compaction asks: does this record still hold something? (our own index)

        A TX record some of whose messages are gone is copied as a TX of the live ones
        only: the REMOVEs of the others may be deleted with the old segments, and a
        verbatim copy would bring those messages back at the next replay."""
        if record.rtype == ADD:
            # By location, without unmarshalling the payload: compaction asks this for
            # every record of a segment, and most of them are long dead.
            return record.ref in self._live_adds or self._paged.holds(record.ref)
        if record.rtype == TX:
            shared = self._shared.get(record.ref)
            if shared is None:
                return False
            adds, _removes = marshal.loads(record.payload)
            live = [a for a in adds if self._refs.get((Address(a[0], a[1]), a[3])) is shared]
            if len(live) == len(adds):
                return True
            return marshal.dumps((live, []), _MARSHAL_VERSION)
        if record.rtype == DEST:
            t = marshal.loads(record.payload)
            return self._dest_refs.get(Address(t[0], t[1])) == record.ref
        if record.rtype == DEST_META:
            return self._meta_live(record)
        if record.rtype == DURABLE_SUB:
            client_id, name, _info = marshal.loads(record.payload)
            current = self._subs.get((client_id, name))
            return current is not None and current[0] == record.ref
        if record.rtype in scheduled.TYPES:
            return self._jobs.live(record.rtype, record.payload, record.ref)
        return False

    async def compact(self) -> int:
        """Copy live records out of the oldest segments; returns how many moved."""
        self._paged.begin_compaction()
        mapping = await self.journal.compact(self.live)
        self._paged.moved(mapping)
        if not mapping:
            return 0
        # No await between the move and re-pointing (see Journal.compact).
        moved_shared = {h for old, h in self._shared.items() if old in mapping}
        recount: list[tuple[Address, str]] = []
        counts = self._counts
        for key, holder in self._refs.items():
            if isinstance(holder, RecordRef):
                new = mapping.get(holder)
                if new is not None:
                    self._refs[key] = new
                    self._live_adds.discard(holder)
                    self._live_adds.add(new)
                    if key in counts:
                        recount.append(key)
            elif holder in moved_shared and key in counts:
                recount.append(key)
        for old, h in list(self._shared.items()):
            new = mapping.get(old)
            if new is not None:
                h.ref = new
                del self._shared[old]
                self._shared[new] = h
        # The copies carry the count their ADD was written with; the COUNT that raised
        # it may be in a segment that goes now, so it follows its copy (same batch).
        for queue, mid in recount:
            self._append(COUNT, (queue.kind, queue.name, mid, counts[(queue, mid)]), live=False)
        for queue, ref in self._dest_refs.items():
            new = mapping.get(ref)
            if new is not None:
                self._dest_refs[queue] = new
        self._remap_meta(mapping)
        for key, (ref, info) in self._subs.items():
            new = mapping.get(ref)
            if new is not None:
                self._subs[key] = (new, info)
        self._jobs.remap(mapping)
        return len(mapping)

    # -- destination metadata (opaque to the store; the owning facade decodes it) ----------

    def _replay_meta(self, t: tuple[Any, ...], ref: RecordRef) -> None:
        """Replay one DEST_META record: it replaces any earlier one of its key, and a
        deletion (blob None) is dead on arrival."""
        owner, name, blob = t
        old = self._meta.pop((owner, name), None)
        if old is not None:
            self.journal.release(old[0])
        if blob is None:
            self.journal.release(ref)
        else:
            self._meta[(owner, name)] = (ref, blob)

    def _meta_live(self, record: Record) -> bool:
        owner, name, _blob = marshal.loads(record.payload)
        current = self._meta.get((owner, name))
        return current is not None and current[0] == record.ref

    def _remap_meta(self, mapping: dict[RecordRef, RecordRef]) -> None:
        for key, (ref, blob) in self._meta.items():
            new = mapping.get(ref)
            if new is not None:
                self._meta[key] = (new, blob)

    def metadata(self, owner: str) -> dict[str, bytes]:
        """The metadata blobs `owner` has recorded, by destination name (as recovered,
        plus every change since)."""
        return {name: blob for (o, name), (_ref, blob) in self._meta.items() if o == owner}

    def put_metadata(self, owner: str, name: str, blob: bytes) -> Awaitable[None] | None:
        """Record `owner`'s metadata of destination `name`, replacing the previous one;
        returns the durability awaitable (as `barrier`)."""
        key = (owner, name)
        old = self._meta.get(key)
        self._meta[key] = (self._append(DEST_META, (owner, name, bytes(blob)), live=True), blob)
        if old is not None:
            self.journal.release(old[0])
        return self.barrier()

    def delete_metadata(self, owner: str, name: str) -> Awaitable[None] | None:
        """Forget `owner`'s metadata of `name` (nothing to write if there is none)."""
        old = self._meta.pop((owner, name), None)
        if old is not None:
            self._append(DEST_META, (owner, name, None), live=False)
            self.journal.release(old[0])
        return self.barrier()

    # -- durable topic subscriptions (DURABLE_SUB) ------------------------------------------

    def _replay_sub(self, t: tuple[Any, ...], ref: RecordRef) -> None:
        client_id, name, info = t
        old = self._subs.pop((client_id, name), None)
        if old is not None:
            self.journal.release(old[0])
        if info is None:
            self.journal.release(ref)
        else:
            self._subs[(client_id, name)] = (ref, tuple(info))

    def subscription_saved(self, client_id: str, name: str, info: tuple[Any, ...]) -> None:
        """Record durable subscription (client_id, name), replacing an earlier record."""
        key = (client_id, name)
        old = self._subs.get(key)
        ref = self._append(DURABLE_SUB, (client_id, name, tuple(info)), live=True)
        self._subs[key] = (ref, tuple(info))
        if old is not None:
            self.journal.release(old[0])

    def subscription_deleted(self, client_id: str, name: str) -> None:
        old = self._subs.pop((client_id, name), None)
        if old is not None:
            self._append(DURABLE_SUB, (client_id, name, None), live=False)
            self.journal.release(old[0])
