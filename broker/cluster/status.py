"""What a cluster node reports: Prometheus metrics and the /healthz body, and the small
console a standby serves on the console port (an active's console is the broker's own,
with the same metrics registered in it).

Metrics (every node): `zonemq_cluster_role{role}` (1 for the current role),
`zonemq_cluster_epoch` (the active's epoch; 0 on a standby that knows none),
`zonemq_cluster_insync_zones` (zones other than the active's with an in-sync standby),
`zonemq_cluster_min_insync_azs`; on the active, per connected standby,
`zonemq_cluster_standby_lag_bytes{node,az}` (journal bytes not yet acknowledged),
`zonemq_cluster_standby_lag_records{node,az}` (records handed to the journal since the
standby connected and not yet acknowledged; records it still copies from disk are not
counted, only their bytes) and `zonemq_cluster_standby_in_sync{node,az}`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from broker.auth import Auth, Login
from broker.config import Settings
from broker.metrics import render

if TYPE_CHECKING:
    from broker.cluster.node import ClusterNode

ROLES = ("standby", "promoting", "active", "stepping down")


def lag_bytes(active_end: tuple[int, int], acked: tuple[int, int], sizes: dict[int, int]) -> int:
    """Bytes of the journal between `acked` and `active_end` (segment sizes by id)."""
    if acked >= active_end:
        return 0
    if acked[0] == active_end[0]:
        return active_end[1] - acked[1]
    total = sizes.get(acked[0], acked[1]) - acked[1]
    for sid in range(acked[0] + 1, active_end[0]):
        total += sizes.get(sid, 0)
    return total + active_end[1]


def status(node: ClusterNode) -> dict[str, Any]:
    """The node's state as /healthz reports it (JSON)."""
    leader = node.leader
    insync = node.insync
    out: dict[str, Any] = {
        "node": node.cfg.node_id,
        "az": node.cfg.az,
        "role": node.role,
        "epoch": node.epoch if node.role == "active" else (leader.epoch if leader else 0),
        "active": leader.node.node_id if leader else None,
        "min_insync_azs": insync.min_insync_azs if insync else node.cfg.min_insync_azs,
    }
    if node.source is not None and node.insync is not None:
        sizes = {s.id: s.size for s in node.source._journal.segments()}
        end = node.source.end
        out["insync_zones"] = sorted(node.insync.zones())
        out["standbys"] = [
            {
                "node": link.node,
                "az": link.az,
                "in_sync": link.node in node.insync.members,
                "lag_bytes": lag_bytes(end, link.acked, sizes),
                "lag_records": node.source.lag_records(link),
            }
            for link in node.source.standbys
        ]
    elif node.replica is not None:
        out["mirror_position"] = list(node.replica.position)
        out["mirror_durable"] = list(node.replica.acked)
    return out


class ClusterCollector(Collector):
    """Reads the node's state on each scrape."""

    def __init__(self, node: ClusterNode) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        st = status(self._node)
        role = GaugeMetricFamily("zonemq_cluster_role", "This node's role", labels=["role"])
        for name in ROLES:
            role.add_metric([name], 1.0 if st["role"] == name else 0.0)
        yield role
        yield GaugeMetricFamily("zonemq_cluster_epoch", "The active's epoch", value=st["epoch"])
        yield GaugeMetricFamily(
            "zonemq_cluster_min_insync_azs", "Zones a write must reach", value=st["min_insync_azs"]
        )
        yield GaugeMetricFamily(
            "zonemq_cluster_insync_zones",
            "Other zones with an in-sync standby (active only)",
            value=len(st.get("insync_zones", ())),
        )
        labels = ["node", "az"]
        lag_b = GaugeMetricFamily(
            "zonemq_cluster_standby_lag_bytes", "Journal bytes not acknowledged", labels=labels
        )
        lag_r = GaugeMetricFamily(
            "zonemq_cluster_standby_lag_records", "Records not acknowledged", labels=labels
        )
        insync = GaugeMetricFamily(
            "zonemq_cluster_standby_in_sync", "1 while the standby is in sync", labels=labels
        )
        for sb in st.get("standbys", ()):
            key = [sb["node"], sb["az"]]
            lag_b.add_metric(key, sb["lag_bytes"])
            lag_r.add_metric(key, sb["lag_records"])
            insync.add_metric(key, 1.0 if sb["in_sync"] else 0.0)
        yield lag_b
        yield lag_r
        yield insync


async def standby_console(
    node: ClusterNode, host: str, port: int, settings: Settings
) -> web.AppRunner:
    """Serve /healthz and /metrics on a standby's console port (no broker runs there).
    With users configured, /metrics and a /healthz with a query need HTTP Basic
    credentials, as on the broker's console."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(node))
    auth = Auth(settings.auth)

    def allowed(request: web.Request) -> bool:
        if not auth.required:
            return True
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        source = request.remote or "?"
        return (
            scheme.lower() == "basic" and auth.login(user, password, source, "console") is Login.OK
        )

    async def healthz(request: web.Request) -> web.Response:
        body: dict[str, Any] = {"status": "standby"}
        if request.query_string:
            if not allowed(request):
                return web.Response(status=401, text="credentials required\n")
            body["cluster"] = status(node)
        return web.json_response(body)

    async def metrics(request: web.Request) -> web.Response:
        if not allowed(request):
            return web.Response(status=401, text="credentials required\n")
        return web.Response(body=render(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
