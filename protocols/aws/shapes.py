"""The input shapes of every SQS action (the 2012-11-05 API model) and one validator.

Handlers read their parameters with ``p.get(...)`` and trust the Python types they
find; a wrong type used to surface as a TypeError deep in a handler (HTTP 500). Every
request's parameters are checked here against its action's shape before the handler
runs, in the request's protocol:

- JSON 1.0: the JSON types must be the model's (string, integer, blob = base64 string,
  list, map, structure), else 400 SerializationException with AWS's wording ("STRING_VALUE
  can not be converted to an Integer", "Start of structure or map found where not
  expected."). Integers are 32-bit as in the model; ``1e400`` (a float) is not one.
  A JSON null member counts as absent, as AWS treats it.
- Query: every value is a string; only the nesting can be wrong (``QueueName.1=x`` makes
  a structure where a string belongs), answered with InvalidParameterValue. Integer
  values stay strings; the handlers range-check them (errors.int_param).

Only members the model names are checked; others are ignored, as AWS ignores them. The
walk follows the shape, never the input, so its depth is the model's (at most 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocols.aws.errors import SqsError


@dataclass(frozen=True)
class ListOf:
    """A list shape."""

    member: Shape


@dataclass(frozen=True)
class MapOf:
    """A map shape (string keys)."""

    value: Shape


# A scalar ("string", "integer", "blob"), a list, a map or a structure (member -> shape).
Shape = str | ListOf | MapOf | dict[str, "Shape"]

STR, INT, BLOB = "string", "integer", "blob"
_STRINGS = ListOf(STR)
_STRING_MAP = MapOf(STR)
_ATTRIBUTE = {
    "StringValue": STR,
    "BinaryValue": BLOB,
    "StringListValues": _STRINGS,
    "BinaryListValues": ListOf(BLOB),
    "DataType": STR,
}
_SEND = {
    "MessageBody": STR,
    "DelaySeconds": INT,
    "MessageAttributes": MapOf(_ATTRIBUTE),
    "MessageSystemAttributes": MapOf(_ATTRIBUTE),
    "MessageDeduplicationId": STR,
    "MessageGroupId": STR,
}
_Q = {"QueueUrl": STR}

INPUTS: dict[str, dict[str, Shape]] = {
    "AddPermission": {**_Q, "Label": STR, "AWSAccountIds": _STRINGS, "Actions": _STRINGS},
    "CancelMessageMoveTask": {"TaskHandle": STR},
    "ChangeMessageVisibility": {**_Q, "ReceiptHandle": STR, "VisibilityTimeout": INT},
    "ChangeMessageVisibilityBatch": {
        **_Q,
        "Entries": ListOf({"Id": STR, "ReceiptHandle": STR, "VisibilityTimeout": INT}),
    },
    # "tags" in JSON; the Query protocol's Tag.N.Key/Value arrive as "Tags" (wire.py).
    "CreateQueue": {
        "QueueName": STR,
        "Attributes": _STRING_MAP,
        "tags": _STRING_MAP,
        "Tags": _STRING_MAP,
    },
    "DeleteMessage": {**_Q, "ReceiptHandle": STR},
    "DeleteMessageBatch": {**_Q, "Entries": ListOf({"Id": STR, "ReceiptHandle": STR})},
    "DeleteQueue": _Q,
    "GetQueueAttributes": {**_Q, "AttributeNames": _STRINGS},
    "GetQueueUrl": {"QueueName": STR, "QueueOwnerAWSAccountId": STR},
    "ListDeadLetterSourceQueues": {**_Q, "NextToken": STR, "MaxResults": INT},
    "ListMessageMoveTasks": {"SourceArn": STR, "MaxResults": INT},
    "ListQueueTags": _Q,
    "ListQueues": {"QueueNamePrefix": STR, "NextToken": STR, "MaxResults": INT},
    "PurgeQueue": _Q,
    "ReceiveMessage": {
        **_Q,
        "AttributeNames": _STRINGS,
        "MessageSystemAttributeNames": _STRINGS,
        "MessageAttributeNames": _STRINGS,
        "MaxNumberOfMessages": INT,
        "VisibilityTimeout": INT,
        "WaitTimeSeconds": INT,
        "ReceiveRequestAttemptId": STR,
    },
    "RemovePermission": {**_Q, "Label": STR},
    "SendMessage": {**_Q, **_SEND},
    "SendMessageBatch": {**_Q, "Entries": ListOf({"Id": STR, **_SEND})},
    "SetQueueAttributes": {**_Q, "Attributes": _STRING_MAP},
    "StartMessageMoveTask": {
        "SourceArn": STR,
        "DestinationArn": STR,
        "MaxNumberOfMessagesPerSecond": INT,
    },
    "TagQueue": {**_Q, "Tags": _STRING_MAP},
    "UntagQueue": {**_Q, "TagKeys": _STRINGS},
}

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def check(action: str, params: dict[str, Any], as_json: bool) -> None:
    """Raise SqsError unless `params` fit `action`'s input shape; JSON nulls are removed
    from structures (absent, as AWS reads them)."""
    shape = INPUTS.get(action)
    if shape is not None:
        _struct(shape, params, action, as_json)


def _struct(shape: dict[str, Shape], value: dict[str, Any], path: str, as_json: bool) -> None:
    for name in [n for n in value if n in shape]:
        if value[name] is None:
            del value[name]
        else:
            _value(shape[name], value[name], name, as_json)


def _value(shape: Shape, value: Any, path: str, as_json: bool) -> None:
    if isinstance(shape, str):
        if shape == INT and as_json:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _wrong(value, "an Integer", path, as_json)
            if not _INT_MIN <= value <= _INT_MAX:
                raise SqsError(
                    "SerializationException", "NUMBER_VALUE can not be converted to an Integer"
                )
        elif not isinstance(value, str):
            raise _wrong(value, "a String" if shape != BLOB else "a Blob", path, as_json)
    elif isinstance(shape, ListOf):
        if not isinstance(value, list):
            raise _wrong(value, "a List", path, as_json)
        for i, item in enumerate(value):
            # A null list member is not absent: it is a value of the wrong type.
            _value(shape.member, item, f"{path}.{i + 1}", as_json)
    elif isinstance(shape, MapOf):
        if not isinstance(value, dict):
            raise _wrong(value, "a Map", path, as_json)
        for key, item in value.items():
            if not isinstance(key, str):
                raise _wrong(key, "a String", f"{path} key", as_json)
            _value(shape.value, item, f"{path}.{key}", as_json)
    else:
        if not isinstance(value, dict):
            raise _wrong(value, "a Structure", path, as_json)
        _struct(shape, value, path, as_json)


def _wrong(value: Any, expected: str, path: str, as_json: bool) -> SqsError:
    if not as_json:
        return SqsError(
            "InvalidParameterValue",
            f"Value for parameter {path} is invalid. Reason: must be {expected.lower()}.",
        )
    # Coral's (AWS's JSON front end's) wording, which SDKs show as the message.
    if isinstance(value, dict):
        return SqsError(
            "SerializationException", "Start of structure or map found where not expected."
        )
    if isinstance(value, list):
        return SqsError("SerializationException", "Start of list found where not expected")
    if value is None:
        return SqsError("SerializationException", f"NULL_VALUE can not be converted to {expected}")
    if isinstance(value, bool):
        token = "TRUE_VALUE" if value else "FALSE_VALUE"
    elif isinstance(value, int):
        token = "NUMBER_VALUE"
    elif isinstance(value, float):
        token = "DECIMAL_VALUE"
    else:
        token = "STRING_VALUE"
    return SqsError("SerializationException", f"{token} can not be converted to {expected}")
