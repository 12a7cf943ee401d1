"""free_port (broker/demo/failover.py): the demo's and tests/cluster's listener ports."""

from __future__ import annotations

import socket

from broker.demo.failover import _ephemeral_range, free_port


def test_free_port_never_hands_out_a_port_twice() -> None:
    # A cluster of three nodes draws 20-odd ports, each free only until its probe
    # closes; 300 draws from the ~12,000 outside the ephemeral range would repeat one
    # almost surely if free_port forgot what it had handed out.
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    low, high = _ephemeral_range()
    assert not any(low <= p <= high for p in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))  # and it was free
