"""Basic round trips through a real broker with stomp.py, in every STOMP version."""

from __future__ import annotations

import pytest

from tests.conftest import Client


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_queue_round_trip(connect, version: str) -> None:
    c: Client = connect(version)
    c.subscribe("/queue/smoke", id="s1", ack="client-individual")
    c.send("/queue/smoke", "hello", headers={"color": "blue"})
    msg = c.listener.next()
    assert msg.body == "hello"
    assert msg.headers["destination"] == "/queue/smoke"
    assert msg.headers["color"] == "blue"
    assert "redelivered" not in msg.headers
    c.ack_frame(msg)
    c.sync()
