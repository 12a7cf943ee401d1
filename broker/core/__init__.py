"""The broker core: the one protocol-neutral API every wire protocol uses.

See DESIGN.md "The core, as the protocols see it". Import from here, not from the
submodules, so the core's layout can change without touching protocols.
"""

from broker.core.core import Core, CoreLimits, DestinationStats
from broker.core.durable import DurableSub
from broker.core.errors import CoreCode, CoreError
from broker.core.message import QUEUE, TEMP_QUEUE, TEMP_TOPIC, TOPIC, Address, Message
from broker.core.queue import (
    ACK_MODES,
    AUTO,
    CLIENT,
    INDIVIDUAL,
    Consumer,
    MessageQueue,
    Subscription,
)
from broker.core.scheduler import Schedule, ScheduleError, schedule_of
from broker.core.selector import Selector, SelectorError
from broker.core.subjects import is_wildcard
from broker.core.transaction import Transaction
from broker.core.values import (
    PropertyValue,
    TypedValue,
    property_is_number,
    property_operand,
    property_text,
)

__all__ = [
    "ACK_MODES",
    "AUTO",
    "CLIENT",
    "INDIVIDUAL",
    "QUEUE",
    "TEMP_QUEUE",
    "TEMP_TOPIC",
    "TOPIC",
    "Address",
    "Consumer",
    "Core",
    "CoreCode",
    "CoreError",
    "CoreLimits",
    "DestinationStats",
    "DurableSub",
    "Message",
    "MessageQueue",
    "PropertyValue",
    "Schedule",
    "ScheduleError",
    "Selector",
    "SelectorError",
    "Subscription",
    "Transaction",
    "TypedValue",
    "is_wildcard",
    "property_is_number",
    "property_operand",
    "property_text",
    "schedule_of",
]
