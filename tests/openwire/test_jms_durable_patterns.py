"""A JMS durable subscriber on a wildcard and on a composite topic through the real
ActiveMQ 5.17 client (tests/openwire/java/DurablePatterns.java; issue 12).

The same program against ActiveMQ 5.17.2's OpenWire connector (the shared instance,
tcp://127.0.0.1:61626, three runs) printed the same `w` lines, nothing `replaced`, and
the same three `c` messages, the composite send once, but not always in send order nor
always its first copy: `to-c.x@c.x, to-c.y@c.y, composite@c.y` once, `to-c.x@c.x,
composite@c.x, to-c.y@c.y` twice (its durable subscriber recovers topic by topic, one
store cursor each). ZoneMQ's subscription is one queue: send order, the first copy."""

from __future__ import annotations

import itertools

from tests.conftest import BrokerThread
from tests.openwire.conftest import Jms, url

_ids = itertools.count(1)


def test_durable_subscribers_on_a_wildcard_and_a_composite_topic(
    jms: Jms, ow_broker: BrokerThread
) -> None:
    p = f"owdw{next(_ids)}"
    out = jms.run(url(ow_broker), "away", p, program="DurablePatterns")
    assert [v for k, v in out if k == "w"] == [f"to-a.one@{p}.a.one", f"to-a.two@{p}.a.two"]
    assert [v for k, v in out if k == "c"] == [
        f"to-c.x@{p}.c.x",
        f"to-c.y@{p}.c.y",
        f"composite@{p}.c.x",
    ]
    assert [v for k, v in out if k == "replaced"] == []
    assert ("unsubscribed", "true") in out
    assert ow_broker.call(lambda: len(ow_broker.broker.core.durables.subs)) == 0
