"""SQS errors: one table from the error's name to its wire shape.

JSON protocol: HTTP status, body ``{"__type": "com.amazonaws.sqs#<Name>", "message": ...}``
and the header ``x-amzn-query-error: <query code>;Sender``, from which SDKs take the
error code (botocore reports ``AWS.SimpleQueueService.NonExistentQueue`` and raises
``QueueDoesNotExist`` from the ``__type``). Query protocol: the same status and an
``ErrorResponse`` XML document with ``Type``, ``Code`` (the query code) and ``Message``.

A CoreError (broker/core/errors.py) reaching the SQS layer is turned into an SQS error by
the one table CORE_ERRORS (`from_core`), applied where the listener dispatches a request
and per entry in batches, so a refusal of the core is a client error with AWS's code,
not a 500; only a code missing from the table is an InternalFailure.
"""

from __future__ import annotations

from typing import Any

from broker.core.errors import DELETED, INVALID, NOT_FOUND, STORE_FULL, CoreError

# name -> (query error code, HTTP status)
ERRORS: dict[str, tuple[str, int]] = {
    "QueueDoesNotExist": ("AWS.SimpleQueueService.NonExistentQueue", 400),
    "QueueNameExists": ("QueueAlreadyExists", 400),
    "QueueDeletedRecently": ("AWS.SimpleQueueService.QueueDeletedRecently", 400),
    "PurgeQueueInProgress": ("AWS.SimpleQueueService.PurgeQueueInProgress", 403),
    "ReceiptHandleIsInvalid": ("ReceiptHandleIsInvalid", 400),
    "MessageNotInflight": ("AWS.SimpleQueueService.MessageNotInflight", 400),
    "BatchEntryIdsNotDistinct": ("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400),
    "BatchRequestTooLong": ("AWS.SimpleQueueService.BatchRequestTooLong", 400),
    "EmptyBatchRequest": ("AWS.SimpleQueueService.EmptyBatchRequest", 400),
    "InvalidBatchEntryId": ("AWS.SimpleQueueService.InvalidBatchEntryId", 400),
    "TooManyEntriesInBatchRequest": ("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400),
    "UnsupportedOperation": ("AWS.SimpleQueueService.UnsupportedOperation", 400),
    "InvalidAttributeName": ("InvalidAttributeName", 400),
    "InvalidAttributeValue": ("InvalidAttributeValue", 400),
    "InvalidMessageContents": ("InvalidMessageContents", 400),
    "InvalidSecurity": ("InvalidSecurity", 403),
    "InvalidAddress": ("InvalidAddress", 404),
    "OverLimit": ("OverLimit", 403),
    "ResourceNotFoundException": ("ResourceNotFoundException", 404),
    # Common errors of every AWS query service (not in the SQS model).
    "InvalidParameterValue": ("InvalidParameterValue", 400),
    "MissingParameter": ("MissingParameter", 400),
    "InvalidAction": ("InvalidAction", 400),
    "UnknownOperationException": ("UnknownOperationException", 400),
    "SerializationException": ("SerializationException", 400),
    "IncompleteSignature": ("IncompleteSignature", 400),
    "MissingAuthenticationToken": ("MissingAuthenticationToken", 403),
    "InvalidClientTokenId": ("InvalidClientTokenId", 403),
    "SignatureDoesNotMatch": ("SignatureDoesNotMatch", 403),
    "AccessDenied": ("AccessDenied", 403),
    # A body past listeners.aws.max_request_size (or the unsigned budget): HTTP 413.
    "RequestEntityTooLarge": ("RequestEntityTooLarge", 413),
    "InternalFailure": ("InternalFailure", 500),
    # A send held back by destinations.store_limit past listeners.aws.send_block_timeout,
    # or beyond max_blocked_sends (protocols/aws/flow.py). RequestThrottled is the code
    # SQS's own model lists for SendMessage(Batch) (botocore/data/sqs/2012-11-05/
    # service-2.json); AWS sends it with 403, which boto3's default "legacy" retry mode
    # does not retry (botocore/data/_retry.json retries 5xx, 429 and four other throttle
    # codes with 400). With 503 both modes retry it: legacy by the status
    # ("service_unavailable"), standard/adaptive by the code, as throttling
    # (botocore/retries/standard.py ThrottledRetryableChecker lists 'RequestThrottled').
    "RequestThrottled": ("RequestThrottled", 503),
    # The broker is stopping: a request that arrives during the drain is refused (AWS's
    # common error for a temporary failure; every SDK retries a 503).
    "ServiceUnavailable": ("ServiceUnavailable", 503),
}


# CoreError code -> (ERRORS name, message; None: the core's own message). The core's
# messages name its queues and kinds; SQS clients get AWS's text where AWS has one.
CORE_ERRORS: dict[str, tuple[str, str | None]] = {
    NOT_FOUND: ("QueueDoesNotExist", "The specified queue does not exist."),
    # A temporary destination that has gone: to an SQS client, a queue that is not there.
    DELETED: ("QueueDoesNotExist", "The specified queue does not exist."),
    INVALID: ("InvalidParameterValue", None),
    # destinations.store_full_policy = "fail" and the store is at its limit.
    STORE_FULL: ("OverLimit", None),
}


class SqsError(Exception):
    """An SQS error response; `name` is a key of ERRORS."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        assert name in ERRORS, name
        self.name = name
        self.message = message

    @property
    def query_code(self) -> str:
        return ERRORS[self.name][0]

    @property
    def status(self) -> int:
        return ERRORS[self.name][1]

    @property
    def sender_fault(self) -> bool:
        return self.status < 500


def invalid(message: str) -> SqsError:
    return SqsError("InvalidParameterValue", message)


def missing(parameter: str) -> SqsError:
    return SqsError("MissingParameter", f"The request must contain the parameter {parameter}.")


def no_queue() -> SqsError:
    return SqsError("QueueDoesNotExist", "The specified queue does not exist.")


def from_core(err: CoreError) -> SqsError:
    """The SQS error for a core refusal (CORE_ERRORS; InternalFailure for other codes)."""
    name, message = CORE_ERRORS.get(err.code, ("InternalFailure", None))
    return SqsError(name, message if message is not None else err.message)


def int_param(value: Any, name: str, lo: int, hi: int, reason: str) -> int:
    """An integer request parameter in lo..hi, else InvalidParameterValue with `reason`."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or not lo <= number <= hi:
        raise invalid(f"Value {value} for parameter {name} is invalid. Reason: {reason}")
    return number
