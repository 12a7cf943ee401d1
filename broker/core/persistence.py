"""The interface through which the core tells storage about persistent messages.

The core calls these only for persistent messages on durable queues (kind "queue");
broker.store.MessageStore implements them on the journal. Without a store (tests of
the core alone) nothing is written and nothing is waited for.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from broker.core.message import Address, Message


class Store(Protocol):
    """What the core needs from storage; see broker/store/messages.py for the records."""

    def add(self, queue: Address, msg: Message) -> None: ...

    def remove(self, queue: Address, msg: Message) -> None: ...

    def delivered(self, queue: Address, msg: Message) -> None: ...

    def returned(self, queue: Address, msg: Message) -> None: ...

    def transaction(
        self, adds: list[tuple[Address, Message]], removes: list[tuple[Address, Message]]
    ) -> None: ...

    def queue_created(self, queue: Address, flags: dict[str, bool] | None = None) -> None: ...

    def queue_deleted(self, queue: Address) -> None: ...

    def barrier(self) -> Awaitable[None] | None: ...

    def load(self, queue: Address, msg: Message) -> bytes: ...
