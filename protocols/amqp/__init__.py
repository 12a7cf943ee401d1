"""AMQP 1.0 onto the core, as ActiveMQ 5.17 speaks it to JMS (Qpid JMS) and proton clients.

A transfer on a receiving link becomes a core Message sent to the link's target (or to
its `to` on the anonymous relay); a sending link is a core Subscription whose deliveries
are transfers; dispositions settle them (accepted = ack, released = back unchanged,
modified with delivery-failed = a counted return, rejected = dead letter); the
coordinator link drives core Transactions. The section and address mapping is written
out in `mapping.py`; proton's engine does the framing, `codec/` the hand-written section
codec of the usual shapes.
"""
