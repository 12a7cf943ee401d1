"""The CONNECT frame's negotiation, sans-IO: the protocol version and heart-beats, with
ActiveMQ 5.17's answers; and ProtocolError, the client errors the connection turns into
ERROR frames."""

from __future__ import annotations

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
