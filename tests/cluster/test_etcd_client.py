"""EtcdClient against a real etcd: the campaign transaction, leases, watch, and moving
to the next endpoint when one refuses or does not answer."""

from __future__ import annotations

import asyncio
import itertools
import os

import pytest

from broker.cluster.etcd import EtcdClient, EtcdUnavailable
from broker.demo.faultproxy import FaultProxy
from tests.cluster.conftest import EtcdServer, free_port

_keys = itertools.count()


def key() -> bytes:
    return f"/zonemq-test/client/{os.getpid()}-{next(_keys)}".encode()


async def test_create_is_exclusive_and_dies_with_its_lease(etcd: EtcdServer) -> None:
    async with EtcdClient([etcd.url]) as client:
        k = key()
        first, granted = await client.grant(2, timeout=2)
        assert granted == 2
        created, holder, revision = await client.create(k, b"one", first, timeout=2)
        assert created and holder is None
        second, _ = await client.grant(2, timeout=2)
        created, holder, _ = await client.create(k, b"two", second, timeout=2)
        assert not created
        assert holder is not None
        assert (holder.value, holder.lease, holder.create_revision) == (b"one", first, revision)
        kv, _ = await client.get(k, timeout=2)
        assert kv == holder

        # Revoking the lease deletes the key, and the watch from its revision says so.
        events = client.watch(k, revision + 1, idle=5)
        await client.revoke(first, timeout=2)
        event = await asyncio.wait_for(anext(events), 5)
        await events.aclose()
        assert event.deleted and event.kv.key == k
        assert await client.keepalive(first, timeout=2) == 0  # gone
        assert await client.keepalive(second, timeout=2) == 2
        await client.revoke(first, timeout=2)  # already gone: not an error
        await client.revoke(second, timeout=2)


async def test_a_refused_endpoint_is_skipped_within_the_call(etcd: EtcdServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with EtcdClient([dead, etcd.url]) as client:
        kv, revision = await client.get(key(), timeout=2)
        assert kv is None and revision > 0


async def test_a_silent_endpoint_costs_one_call_and_the_next_goes_elsewhere(
    etcd: EtcdServer,
) -> None:
    proxy = await FaultProxy(("127.0.0.1", etcd.port)).start()
    proxy.blackhole()
    try:
        async with EtcdClient([proxy.url, etcd.url]) as client:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(EtcdUnavailable, match=r"no answer within 0\.30s"):
                await client.get(key(), timeout=0.3)
            assert loop.time() - started < 1.0  # the deadline held
            kv, _ = await client.get(key(), timeout=2)
            assert kv is None
    finally:
        await proxy.close()


async def test_an_idle_watch_ends_so_the_caller_reads_again(etcd: EtcdServer) -> None:
    async with EtcdClient([etcd.url]) as client:
        _, revision = await client.get(key(), timeout=2)
        k = key()

        async def drain() -> list[object]:
            return [e async for e in client.watch(k, revision + 1, idle=0.3)]

        # A watch that never ended on its own would hang here until the bound.
        assert await asyncio.wait_for(drain(), 5) == []
