"""Protocol-neutral errors raised by the core; each protocol maps `code` to its wire error.

Every refusal the core makes is a CoreError with one of the `CoreCode`s below: stable
strings (a StrEnum, so `code == "not-found"` and tables keyed by the plain strings keep
working), which protocols translate through a table of their own (e.g. SQS
`protocols/aws/errors.py` CORE_ERRORS, AMQP CORE_CONDITIONS).
"""

from __future__ import annotations

from enum import StrEnum


class CoreCode(StrEnum):
    """Why the core refused a request."""

    # A destination that is not there and is not created on use (create=False).
    NOT_FOUND = "not-found"
    # A malformed request: unknown destination kind or ack mode, empty name, prefetch
    # below 1, a non-temporary address given as temporary, a finished transaction.
    INVALID = "invalid"
    # A temporary destination that no longer exists (its owner has gone).
    DELETED = "deleted"
    # The store holds `store_limit` bytes of messages and the policy is to refuse more.
    STORE_FULL = "store-full"


NOT_FOUND = CoreCode.NOT_FOUND
INVALID = CoreCode.INVALID
DELETED = CoreCode.DELETED
STORE_FULL = CoreCode.STORE_FULL


class CoreError(Exception):
    """A request the core refuses: `code` is a CoreCode, `message` says why."""

    def __init__(self, code: CoreCode | str, message: str) -> None:
        super().__init__(message)
        # Not converted: a protocol's table must still give its fallback for a code it
        # does not know (tests/core/test_errors.py checks the core raises only CoreCodes).
        self.code = code
        self.message = message


class WriteRefused(Exception):
    """A barrier's failure that is not the disk's: the records are in the journal, but a
    durability condition beyond it refused to acknowledge them (a cluster with fewer
    in-sync zones than `min_insync_azs`). The writer must be told, with `str(exc)` as
    the reason; the message may still be delivered later (as after any failed write)."""
