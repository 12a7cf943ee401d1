"""Broker: owns the data directory, journal, core and listeners; start, drain, stop.

Start order: lock the data directory, replay the journal into the core, then start the
listeners (so no client sees a half-recovered broker); compaction runs once right after
(and again while it makes progress), so a restart after crashes sheds their dead
records early. The broker never imports a protocol package: listeners are started
through the registry in broker.listeners, each given a ListenerContext (not the Broker).
Stop order (uvicorn's, issue 10): stop accepting on every listener, which also stops
reading every connection (no new work arrives), let each pay what it owes (receipts,
dispositions, HTTP responses: their durability futures complete as the journal keeps
committing) within `broker.shutdown_timeout`, close connections, stop the core's
timers, flush and close the journal, release the lock. A failed journal write or fsync
sets `failed`: the process must stop, since acknowledging anything after it would be a
lie (redis' rule).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from broker.auth import Auth
from broker.config import (
    ConfigError,
    DeclaredDestination,
    DestinationPolicy,
    PolicyOverrides,
    Settings,
)
from broker.core import QUEUE, TOPIC, Address, Core, CoreLimits
from broker.core.core import default_policy
from broker.core.policy import Policy, wildcard_match
from broker.listeners import (
    LISTENERS,
    Listener,
    ListenerContext,
    enabled,
    start_listener,
    tls_context,
)
from broker.metrics import BrokerCollector, register_process
from broker.store import DataDirLock, DataDirLocked, Journal, JournalError, JournalFailed
from broker.store.messages import MessageStore, Recovered
from broker.version import broker_version

log = logging.getLogger("zonemq")


class StartupError(Exception):
    """The broker cannot start (data directory locked, journal corrupt, ...)."""


def core_limits(settings: Settings) -> CoreLimits:
    d = settings.destinations
    b = settings.broker
    limits = CoreLimits(
        queue_prefetch=d.queue_prefetch,
        topic_prefetch=d.topic_prefetch,
        max_redeliveries=d.max_redeliveries,
        dead_letter_queue=d.dead_letter_queue,
        expired_to_dlq=d.expired_to_dlq,
        dead_letter_non_persistent=d.dead_letter_non_persistent,
        expiry_check_interval=d.expiry_check_interval,
        inactive_purge_period=d.inactive_purge_period,
        queue_memory_limit=d.queue_memory_limit,
        producer_flow_control=d.producer_flow_control,
        overflow_memory_limit=d.overflow_memory_limit,
        send_fail_if_no_space=d.send_fail_if_no_space,
        store_limit=d.store_limit,
        store_full_policy=d.store_full_policy,
        topic_pending_limit=d.topic_pending_limit,
        slow_consumer_policy=d.slow_consumer_policy,
        prioritized_messages=d.prioritized_messages,
        advisory_support=b.advisory_support,
        virtual_topics=settings.virtual_topics.enabled,
        virtual_topic_name=settings.virtual_topics.name,
        virtual_topic_prefix=settings.virtual_topics.prefix,
        scheduler_support=b.scheduler_support,
        scheduler_max_jobs=b.scheduler_max_jobs,
        scheduler_max_bytes=b.scheduler_max_bytes,
        message_group_cache_size=d.message_group_cache_size,
    )
    default = default_policy(limits)
    rules = [_policy_rule(default, p) for p in d.policies]
    declared = [
        rule
        for kind, entries in ((QUEUE, settings.queues), (TOPIC, settings.topics))
        for entry in entries
        if (rule := _declared_rule(default, rules, entry, kind)) is not None
    ]
    return dataclasses.replace(limits, policies=tuple(declared + rules))


def _changes(p: PolicyOverrides) -> dict[str, Any]:
    return {
        f.name: getattr(p, f.name)
        for f in dataclasses.fields(Policy)
        if getattr(p, f.name, None) is not None
    }


def _policy_rule(default: Policy, p: DestinationPolicy) -> tuple[str, Policy, str]:
    """A policy entry as the core takes it: what it leaves out is `[destinations]`'s."""
    return (p.pattern, dataclasses.replace(default, **_changes(p)), p.kind)


def _declared_rule(
    default: Policy, rules: list[tuple[str, Policy, str]], d: DeclaredDestination, kind: str
) -> tuple[str, Policy, str] | None:
    """The policy of a declared destination that states some: its keys over the policy
    its name had anyway (the first matching `[destinations]` entry, else the defaults),
    so declaring `max_redeliveries` keeps a matching entry's dead-letter strategy.
    None when it states none (the configured entries apply as they are)."""
    changes = _changes(d)
    if not changes:
        return None
    base = next(
        (p for pattern, p, k in rules if k in ("", kind) and wildcard_match(pattern, d.name)),
        default,
    )
    return (d.name, dataclasses.replace(base, **changes), kind)


class Broker:
    """One broker process's state: settings, core, and the running listeners."""

    def __init__(
        self,
        settings: Settings,
        *,
        lock: DataDirLock | None = None,
        on_journal: Callable[[Journal], Awaitable[None]] | None = None,
        health: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """`lock`: the data directory's lock, already held by the caller (a cluster node
        holds it across roles). `on_journal`: awaited once the journal is replayed and
        before anything is written or served (replication installs its gate there)."""
        self.settings = settings
        self._held_lock = lock
        self._on_journal = on_journal
        self._health = health
        self.core: Core = None  # type: ignore[assignment]  # created in start(), on the loop
        self.listeners: dict[str, Listener] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.auth = Auth(settings.auth)
        self.registry.register(
            BrokerCollector(lambda: self.core, self._connection_counts, broker_version())
        )
        register_process(self.registry)
        self.lock: DataDirLock | None = None
        self.journal: Journal | None = None
        self.store: MessageStore | None = None
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
        self.failed = asyncio.Event()
        self._compactor: asyncio.Task[None] | None = None

    def _connection_counts(self) -> dict[str, int]:
        return {
            name: len(getattr(listener, "connections", ()))
            for name, listener in self.listeners.items()
            if hasattr(listener, "connections")
        }

    def _live_connections(self) -> dict[str, Iterable[Any]]:
        return {
            name: getattr(listener, "connections", ())
            for name, listener in self.listeners.items()
            if hasattr(listener, "connections")
        }

    def _open_store(self) -> Recovered:
        """Lock the data directory and replay the journal (blocking, before serving)."""
        data_dir = Path(self.settings.broker.data_dir)
        if self._held_lock is None:
            self.lock = DataDirLock(data_dir)
            try:
                self.lock.acquire()
            except DataDirLocked as exc:
                self.lock = None
                raise StartupError(str(exc)) from None
        st = self.settings.store
        self.journal = Journal(
            data_dir / "journal",
            segment_size=st.segment_size,
            fsync=st.fsync,  # type: ignore[arg-type]
            fsync_interval_ms=st.fsync_interval_ms,
            skip_corrupt=st.skip_corrupt,
            registry=self.registry,
            on_failure=self._journal_failed,
        )
        self.store = MessageStore(self.journal)
        started = time.monotonic()
        try:
            recovered = self.store.recover(self.settings.destinations.queue_memory_limit)
        except JournalError as exc:
            raise StartupError(
                f"{exc} (start with --recover-skip-corrupt to skip corrupt records)"
            ) from None
        count = sum(len(m) for m in recovered.queues.values())
        segments, size = self.journal.replayed
        log.info(
            "journal: %d records replayed, %d messages on %d queues recovered in %.2fs"
            " (%d segments, %.1f MiB)",
            recovered.records,
            count,
            len(recovered.queues),
            time.monotonic() - started,
            segments,
            size / 2**20,
        )
        return recovered

    def _journal_failed(self, exc: JournalFailed) -> None:
        log.critical("journal failure, stopping the broker: %s", exc)
        self.failed.set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.settings.cluster is not None and self._on_journal is None:
            # A cluster node is run by broker.cluster.node (zonemq run does that): a Broker
            # started alone would not replicate what it acknowledges.
            raise StartupError("[cluster] is set: run the broker through broker.cluster.node")
        self.auth.warn_plain()
        try:
            # Before the lock and the replay: a certificate that does not load stops us at once.
            tls = tls_context(self.settings)
        except ConfigError as exc:
            raise StartupError(str(exc)) from None
        try:
            recovered = self._open_store()
            if self._on_journal is not None:
                assert self.journal is not None
                await self._on_journal(self.journal)
        except BaseException:
            if self.journal is not None:
                with contextlib.suppress(JournalError):
                    await self.journal.close()
            self._release_lock()
            raise
        self.core = Core(
            core_limits(self.settings),
            name=self.settings.broker.name,
            call_later=loop.call_later,
            store=self.store,
        )
        self.core.restore(recovered.queues, recovered.flags, recovered.subscriptions)
        self.core.producer_audit = recovered.producers
        if recovered.jobs:
            self.core.scheduler.restore(recovered.jobs)
            log.info("scheduler: %d scheduled messages recovered", len(recovered.jobs))
        self._declare_destinations()
        if self.settings.store.compaction_interval > 0:
            self._compactor = asyncio.ensure_future(self._compact_forever())
        advertised = False
        try:
            for name in LISTENERS:
                if not enabled(self.settings, name):
                    continue
                ctx = ListenerContext(
                    name=name,
                    settings=self.settings,
                    core=self.core,
                    loop=loop,
                    registry=self.registry,
                    serving=self.serving,
                    auth=self.auth,
                    tls=tls,
                    health=self._health,
                    connections=self._live_connections,
                )
                listener = await start_listener(ctx)
                self.listeners[name] = listener
                for label, (host, port) in listener.addresses.items():
                    log.info("%s listener on %s:%d", label, host, port)
                    if not advertised and label in ("stomp", "amqp"):
                        # originBrokerURL of advisories: the first client listener's.
                        self.core.advisories.set_broker_url(f"{label}://{host}:{port}")
                        advertised = True
        except BaseException:
            await self.stop()
            raise
        self.started.set()

    def _declare_destinations(self) -> None:
        """Create the configured [[queues]] and [[topics]] (those that exist already, a
        queue recovered from the journal, are left as they are), before any listener
        starts: the first client sees them."""
        for entry in self.settings.queues:
            self.core.queue(Address(QUEUE, entry.name))
        for entry in self.settings.topics:
            self.core.topic(Address(TOPIC, entry.name))
        if self.settings.queues or self.settings.topics:
            log.info(
                "declared %d queues and %d topics from the configuration",
                len(self.settings.queues),
                len(self.settings.topics),
            )

    def serving(self) -> bool:
        """Started and not stopping: what /healthz reports."""
        return self.started.is_set() and not self.stopped.is_set()

    def port(self, name: str) -> int:
        """The bound port of an endpoint: a listener's name, or ``<name>+ssl``."""
        return self.listeners[name.partition("+")[0]].addresses[name][1]

    async def stop(self) -> None:
        """Graceful stop, bounded by broker.shutdown_timeout."""
        if self.stopped.is_set():
            return
        timeout = self.settings.broker.shutdown_timeout
        for listener in self.listeners.values():
            listener.stop_accepting()
        drains = [
            asyncio.ensure_future(listener.drain(timeout)) for listener in self.listeners.values()
        ]
        if drains:
            # The bound is the operator's promise; a listener that overruns it is cut off.
            done, late = await asyncio.wait(drains, timeout=timeout + 1.0)
            for task in late:
                task.cancel()
                log.warning("a listener did not stop within %.1fs", timeout)
            for task in done:
                if task.exception() is not None:
                    log.warning("listener did not stop cleanly: %r", task.exception())
        if self._compactor is not None:
            self._compactor.cancel()
            with contextlib.suppress(asyncio.CancelledError, JournalError):
                await self._compactor
        if self.core is not None:
            self.core.close()
        if self.journal is not None:
            with contextlib.suppress(JournalError):
                await self.journal.close()
        self._release_lock()
        self.stopped.set()
        log.info("broker stopped")

    def _release_lock(self) -> None:
        if self.lock is not None and self.lock.held:
            self.lock.release()
        self.lock = None

    async def _compact_forever(self) -> None:
        """Now and then copy live records out of old segments (and a mostly dead head) so
        they can be deleted. The first pass runs at once: a broker restarted after a crash
        may hold a journal of dead records, replayed again at every start until then. A
        pass that moved records is followed by another soon (a tenth of the interval),
        so a backlog of dead segments goes in a few seconds, not one per interval."""
        assert self.store is not None
        interval = self.settings.store.compaction_interval
        delay = 0.0
        while True:
            await asyncio.sleep(delay)
            try:
                moved = await self.store.compact()
            except JournalFailed:
                return  # _journal_failed has already stopped the broker
            except Exception as exc:
                # Not replicated (a cluster without enough standbys): the copies are in
                # our journal; the pass is tried again later.
                log.info("compaction: %s", exc)
                moved = 0
            if moved:
                log.debug("compaction moved %d live records", moved)
            delay = interval / 10 if moved else interval
