"""SQS errors: one table from the error's name to its wire shape.

JSON protocol: HTTP status, body ``{"__type": "com.amazonaws.sqs#<Name>", "message": ...}``
and the header ``x-amzn-query-error: <query code>;Sender``, from which SDKs take the
error code (botocore reports ``AWS.SimpleQueueService.NonExistentQueue`` and raises
``QueueDoesNotExist`` from the ``__type``). Query protocol: the same status and an
``ErrorResponse`` XML document with ``Type``, ``Code`` (the query code) and ``Message``.
"""

from __future__ import annotations

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
    "InternalFailure": ("InternalFailure", 500),
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
