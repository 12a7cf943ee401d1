"""Fixtures of the core's own tests: a Core on a fake clock, with or without a store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.core import Core, CoreLimits
from tests.core.fakes import FakeLoop, MemoryStore

MakeCore = Callable[..., Core]


@pytest.fixture
def clock() -> Iterator[FakeLoop]:
    fake = FakeLoop()
    yield fake
    fake.close()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def make_core(clock: FakeLoop) -> Iterator[MakeCore]:
    """Core(limits...) on the fake clock; `store=` a Store or None (nothing persists)."""
    made: list[Core] = []

    def make(store: Any = None, **limits: Any) -> Core:
        core = Core(
            CoreLimits(**limits),
            clock=clock.time,
            call_later=clock.call_later,
            store=store,
            loop=clock,
        )
        made.append(core)
        return core

    yield make
    for core in made:
        core.close()


@pytest.fixture
def core(make_core: MakeCore) -> Core:
    """A Core without a store."""
    return make_core()


@pytest.fixture
def durable_core(make_core: MakeCore, store: MemoryStore) -> Core:
    """A Core journaling into `store`."""
    return make_core(store)
