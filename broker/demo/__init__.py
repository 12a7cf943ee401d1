"""Failover demo clients and their checker (issue 11's `zonemq demo failover`).

`checker.Checker` records every send, acknowledgement and delivery and reports per
protocol: sent, acknowledged, consumed, lost (acknowledged, never delivered),
duplicated without the redelivered flag, reordered within a producer, redelivered.
`workloads.make_workloads()` builds STOMP, AMQP and SQS producers and consumers, one
thread each, that take a list of broker addresses and reconnect across it by
themselves; they work against any brokers at those addresses, a cluster or one node
restarted.

The client libraries (stomp.py, python-qpid-proton, boto3) are imported only by the
client modules, when a client runs: the broker itself never needs stomp.py or boto3
(`pip install zonemq[demo]`).
"""

from broker.demo.checker import Checker, ProtocolReport, decode_body, encode_body
from broker.demo.workloads import Address, Pacer, ProducerBase, Workload, make_workloads

__all__ = [
    "Address",
    "Checker",
    "Pacer",
    "ProducerBase",
    "ProtocolReport",
    "Workload",
    "decode_body",
    "encode_body",
    "make_workloads",
]
