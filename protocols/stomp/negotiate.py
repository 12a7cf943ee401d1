"""What a client asks for in CONNECT and SUBSCRIBE, sans-IO: the protocol version and
heart-beats, a subscription's ack mode, prefetch, selector, priority and exclusivity,
with ActiveMQ 5.17's answers; and ProtocolError, the client errors the connection turns
into ERROR frames."""

from __future__ import annotations

from broker.core import ACK_MODES, AUTO, Selector, SelectorError

VERSIONS = ("1.0", "1.1", "1.2")


class ProtocolError(Exception):
    """A client error answered with an ERROR frame; `fatal` ones close the connection."""

    def __init__(self, message: str, *, fatal: bool = False, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fatal = fatal
        self.detail = detail


def negotiate_version(accepted: str | None) -> str:
    """The highest version both sides speak; no accept-version header means 1.0."""
    if accepted is None:
        return "1.0"
    offered = {v.strip() for v in accepted.split(",")}
    common = [v for v in VERSIONS if v in offered]
    if not common:
        raise ProtocolError(
            f"Invalid Protocol version[{accepted}], supported versions are: [1.2, 1.1, 1.0]",
            fatal=True,
        )
    return common[-1]


def parse_heart_beat(value: str | None) -> tuple[int, int]:
    """(cx, cy) of a client's heart-beat header, ms. ActiveMQ honours heart-beats on 1.0
    connections too, and reads negatives as 0."""
    if value is None:
        return 0, 0
    try:
        cx, cy = value.split(",")
        return max(0, int(cx)), max(0, int(cy))
    except ValueError:
        raise ProtocolError(f"Invalid heart-beat header: {value}", fatal=True) from None


def subscribe_options(headers: dict[str, str], *, strict: bool) -> tuple[str, int | None]:
    """A SUBSCRIBE's ack mode and prefetch (`activemq.prefetchSize`, None: the default),
    or ProtocolError for what it asks that ZoneMQ does not do or cannot read."""
    ack = headers.get("ack", AUTO)
    if ack not in ACK_MODES:
        # ActiveMQ reads an ack mode it does not know as auto; strict refuses it.
        if strict:
            raise ProtocolError(f"Invalid ack mode: {ack}")
        ack = AUTO
    prefetch = None
    if "activemq.prefetchSize" in headers:
        try:
            prefetch = int(headers["activemq.prefetchSize"])
        except ValueError:
            raise ProtocolError(
                f"Invalid activemq.prefetchSize: {headers['activemq.prefetchSize']}"
            ) from None
        if prefetch < 1:
            raise ProtocolError("activemq.prefetchSize must be at least 1")
    return ack, prefetch


def subscribe_dispatch(headers: dict[str, str]) -> tuple[int, bool]:
    """A SUBSCRIBE's consumer priority (`activemq.priority`, a byte as in ActiveMQ,
    default 0) and `activemq.exclusive` (true / false, any case, as Java's
    Boolean.valueOf reads it). ActiveMQ logs and ignores a value it cannot convert;
    ZoneMQ answers it with an ERROR, as for `activemq.prefetchSize`."""
    priority = 0
    text = headers.get("activemq.priority")
    if text is not None:
        try:
            priority = int(text)
        except ValueError:
            raise ProtocolError(f"Invalid activemq.priority: {text}") from None
        if not -128 <= priority <= 127:
            raise ProtocolError(f"Invalid activemq.priority: {text} (must be -128 to 127)")
    exclusive = False
    text = headers.get("activemq.exclusive")
    if text is not None:
        flag = text.lower()
        if flag not in ("true", "false"):
            raise ProtocolError(f"Invalid activemq.exclusive: {text} (must be true or false)")
        exclusive = flag == "true"
    return priority, exclusive


def subscribe_selector(headers: dict[str, str]) -> Selector | None:
    """A SUBSCRIBE's `selector`, compiled as ActiveMQ's STOMP transport reads it: headers
    are string properties, compared with numbers after conversion
    (`convert_string_expressions`). One that does not parse (an empty one too, as in
    ActiveMQ) is an ERROR naming the column; like ActiveMQ's, it leaves the connection
    open."""
    text = headers.get("selector")
    if text is None:
        return None
    try:
        return Selector(text, convert_strings=True)
    except SelectorError as exc:
        raise ProtocolError(str(exc)) from None
