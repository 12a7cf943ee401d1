"""The broker core: the one protocol-neutral API every wire protocol uses.

See DESIGN.md "The core, as the protocols see it". Import from here, not from the
submodules, so the core's layout can change without touching protocols.
"""

from broker.core.core import Core, CoreLimits, DestinationStats
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
from broker.core.selector import Selector, SelectorError
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
    "Message",
    "MessageQueue",
    "PropertyValue",
    "Selector",
    "SelectorError",
    "Subscription",
    "Transaction",
    "TypedValue",
    "property_is_number",
    "property_operand",
    "property_text",
]
