"""Protocol-neutral errors raised by the core; each protocol maps `code` to its wire error."""

from __future__ import annotations

NOT_FOUND = "not-found"
INVALID = "invalid"
DELETED = "deleted"


class CoreError(Exception):
    """A request the core refuses: `code` is one of the constants above, `message` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
