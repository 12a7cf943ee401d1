"""The cluster coordinator (issue 11, in progress): election and fencing on etcd.

`etcd` is the etcd client (etcd's JSON gateway over aiohttp), `election` the campaign,
lease renewal and step-down, `epoch` the fence against stale epochs. Replication of the
journal is not built yet. Nothing in broker.core or broker.store imports this package
(an import-linter contract): the core does not know what a cluster is.
"""
