"""Broker: owns the core and the listeners; start, graceful drain, stop.

The broker never imports a protocol package: listeners are started through import
strings in LISTENERS, each naming an ``async def start(broker) -> Listener``. Stop order
(uvicorn's): stop accepting on every listener, let each finish what it owes (receipts)
within `broker.shutdown_timeout`, close connections, then stop the core's timers.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Protocol

from broker.config import Settings
from broker.core import Core, CoreLimits

log = logging.getLogger("zonemq")

# Listener name → "module:function"; the function is awaited with the Broker.
LISTENERS: dict[str, str] = {
    "stomp": "protocols.stomp.listener:start",
    "console": "protocols.http.console:start",
}


class Listener(Protocol):
    """What the broker needs from a started listener."""

    address: tuple[str, int]

    def stop_accepting(self) -> None: ...

    async def drain(self, timeout: float) -> None: ...


def core_limits(settings: Settings) -> CoreLimits:
    d = settings.destinations
    return CoreLimits(
        queue_prefetch=d.queue_prefetch,
        topic_prefetch=d.topic_prefetch,
        max_redeliveries=d.max_redeliveries,
        dead_letter_queue=d.dead_letter_queue,
        expired_to_dlq=d.expired_to_dlq,
        dead_letter_non_persistent=d.dead_letter_non_persistent,
        expiry_check_interval=d.expiry_check_interval,
        queue_memory_limit=d.queue_memory_limit,
        topic_pending_limit=d.topic_pending_limit,
        slow_consumer_policy=d.slow_consumer_policy,
        policies=tuple((p.pattern, p.dead_letter_queue, p.max_redeliveries) for p in d.policies),
    )


class Broker:
    """One broker process's state: settings, core, and the running listeners."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.core: Core = None  # type: ignore[assignment]  # created in start(), on the loop
        self.listeners: dict[str, Listener] = {}
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.core = Core(
            core_limits(self.settings), name=self.settings.broker.name, call_later=loop.call_later
        )
        enabled = {
            "stomp": self.settings.listeners.stomp.enabled,
            "console": self.settings.listeners.console.enabled,
        }
        try:
            for name, target in LISTENERS.items():
                if not enabled.get(name, True):
                    continue
                module_name, _, func = target.partition(":")
                start = getattr(importlib.import_module(module_name), func)
                listener = await start(self)
                self.listeners[name] = listener
                host, port = listener.address
                log.info("%s listener on %s:%d", name, host, port)
        except BaseException:
            await self.stop()
            raise
        self.started.set()

    def port(self, name: str) -> int:
        return self.listeners[name].address[1]

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
        if self.core is not None:
            self.core.close()
        self.stopped.set()
        log.info("broker stopped")
