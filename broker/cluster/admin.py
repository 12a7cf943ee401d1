"""`zonemq cluster ...`: operator commands that change the cluster through etcd.

`min-insync-azs N` writes `<etcd_prefix>/min_insync_azs`; every node reads it with the
in-sync set (about every lease_ttl/6) and the active applies it at once, logging the
change: lowering it lets writes that were refused for want of zones succeed again,
raising it refuses writes the in-sync zones no longer cover. The key outlives
failovers, so a new active keeps the operator's value rather than the config file's.
"""

from __future__ import annotations

from broker.cluster.etcd import EtcdClient, EtcdError
from broker.config import Settings


def key(settings: Settings) -> bytes:
    assert settings.cluster is not None
    return f"{settings.cluster.etcd_prefix.rstrip('/')}/min_insync_azs".encode()


async def set_min_insync_azs(settings: Settings, value: int) -> str:
    """Write the cluster-wide value; returns what to print."""
    if settings.cluster is None:
        raise ValueError("no [cluster] in this configuration")
    if value < 0:
        raise ValueError("min_insync_azs must be 0 or more")
    client = EtcdClient(settings.cluster.etcd_endpoints)
    try:
        revision = await client.put(key(settings), str(value).encode(), timeout=5.0)
    except EtcdError as exc:
        raise ValueError(f"etcd: {exc}") from None
    finally:
        await client.close()
    return f"min_insync_azs = {value} (etcd revision {revision})"
