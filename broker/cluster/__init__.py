"""Replication across AZ-tagged nodes (issue 11), coordinated by etcd.

`node` runs a process as the active broker or a standby; `election` and `epoch` decide
who is active and fence the others; `source`, `replica`, `mirror`, `wire` and `lineage`
stream the active's journal to byte-for-byte mirrors on the standbys; `insync` decides
when a write is replicated; `relay` passes a standby's clients to the active; `status`
and `admin` are for operators. Nothing in broker.core or broker.store imports this
package (an import-linter contract): the core does not know what a cluster is.
"""
