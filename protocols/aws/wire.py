"""The two SQS wire protocols onto one request/response shape (sans-IO: no aiohttp here).

Handlers take and return JSON-shaped dicts, exactly as the AWS JSON 1.0 protocol carries
them (``X-Amz-Target: AmazonSQS.<Action>``). The Query protocol (``Action=...`` form
fields, XML responses) is converted to that shape on the way in, using the 2012-11-05
model's flattened names: ``Attribute.N.Name/Value`` is the map ``Attributes``,
``AttributeName.N`` the list ``AttributeNames``, ``SendMessageBatchRequestEntry.N.*`` the
list ``Entries`` and so on; and back to XML on the way out.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote_to_bytes
from xml.sax.saxutils import escape

from protocols.aws.errors import SqsError

XMLNS = "http://queue.amazonaws.com/doc/2012-11-05/"
JSON_CONTENT_TYPE = "application/x-amz-json-1.0"

# Query list member name -> JSON member name.
_LISTS = {
    "AttributeName": "AttributeNames",
    "MessageAttributeName": "MessageAttributeNames",
    "MessageSystemAttributeName": "MessageSystemAttributeNames",
    "TagKey": "TagKeys",
    "AWSAccountId": "AWSAccountIds",
    "ActionName": "Actions",
    "SendMessageBatchRequestEntry": "Entries",
    "DeleteMessageBatchRequestEntry": "Entries",
    "ChangeMessageVisibilityBatchRequestEntry": "Entries",
    "StringListValue": "StringListValues",
    "BinaryListValue": "BinaryListValues",
}
# Query map member name -> (JSON member, key field, value field).
_MAPS = {
    "Attribute": ("Attributes", "Name", "Value"),
    "Tag": ("Tags", "Key", "Value"),
    "MessageAttribute": ("MessageAttributes", "Name", "Value"),
    "MessageSystemAttribute": ("MessageSystemAttributes", "Name", "Value"),
}
_INTS = frozenset(
    {"MaxNumberOfMessages", "VisibilityTimeout", "WaitTimeSeconds", "DelaySeconds", "MaxResults"}
)


def form_fields(text: str) -> list[tuple[str, str]]:
    """The name/value pairs of a form body or query string, percent-decoded as strict
    UTF-8: a value that is not (it used to be stored with U+FFFD, silently altered) is
    InvalidParameterValue naming the parameter, as for any value SQS cannot take."""
    pairs: list[tuple[str, str]] = []
    for part in text.split("&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition("=")
        try:
            name = unquote_to_bytes(raw_name.replace("+", " ")).decode("utf-8")
        except UnicodeDecodeError:
            raise SqsError(
                "InvalidParameterValue", "A parameter name is not valid UTF-8."
            ) from None
        try:
            value = unquote_to_bytes(raw_value.replace("+", " ")).decode("utf-8")
        except UnicodeDecodeError:
            raise SqsError(
                "InvalidParameterValue",
                f"Value for parameter {name} is invalid. Reason: it is not valid UTF-8.",
            ) from None
        pairs.append((name, value))
    return pairs


# No Query member name of the model has more parts than
# SendMessageBatchRequestEntry.N.MessageAttribute.N.Value.StringListValue.N (7); deeper
# names are refused before a tree is built for them.
MAX_QUERY_PARTS = 8


def parse_query(fields: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The action and JSON-shaped parameters of a Query request's form fields."""
    action = fields.get("Action", "")
    tree: dict[str, Any] = {}
    for key, value in fields.items():
        if key in ("Action", "Version") or not key or key.startswith("X-Amz-"):
            # X-Amz-*: a presigned request's signature fields (sigv4.py), not parameters.
            continue
        node = tree
        parts = key.split(".", MAX_QUERY_PARTS)
        if len(parts) > MAX_QUERY_PARTS:
            raise SqsError("InvalidParameterValue", f"Malformed parameter {key[:100]}.")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SqsError("InvalidParameterValue", f"Malformed parameter {key}.")
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise SqsError("InvalidParameterValue", f"Malformed parameter {key}.")
        node[parts[-1]] = value
    return action, _convert(tree)


def _indexed(node: dict[str, Any]) -> list[Any]:
    try:
        items = sorted(((int(k), v) for k, v in node.items()), key=lambda kv: kv[0])
    except ValueError:
        raise SqsError("InvalidParameterValue", "Malformed list parameter.") from None
    return [v for _, v in items]


def _convert(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _MAPS and isinstance(value, dict):
            name, kfield, vfield = _MAPS[key]
            mapping: dict[str, Any] = {}
            for entry in _indexed(value):
                if not isinstance(entry, dict) or kfield not in entry:
                    continue
                v = entry.get(vfield)
                mapping[entry[kfield]] = _convert(v) if isinstance(v, dict) else v
            out[name] = mapping
        elif key in _LISTS and isinstance(value, dict):
            out[_LISTS[key]] = [_convert(v) if isinstance(v, dict) else v for v in _indexed(value)]
        elif isinstance(value, dict):
            out[key] = _convert(value)
        elif key in _INTS:
            out[key] = value
        else:
            out[key] = value
    return out


def parse_json(body: bytes) -> dict[str, Any]:
    """A JSON 1.0 request body as a dict, or SerializationException (never a 500)."""
    if not body.strip():
        return {}
    if _too_deep(body):
        raise _serialization("Request body is nested too deeply.")
    try:
        params = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # ValueError includes integers past Python's digit limit.
        raise _serialization("Request body is not valid JSON.") from None
    if not isinstance(params, dict):
        raise _serialization("Request body must be a JSON object.")
    return params


def _serialization(message: str) -> SqsError:
    return SqsError("SerializationException", message)


# No SQS input nests deeper than 5 (SendMessageBatch entry -> attribute map -> attribute
# -> list); the JSON decoder recurses per level, so far deeper input is refused before it
# is decoded, in linear time: a running count of brackets outside strings.
MAX_JSON_DEPTH = 32
_BRACKETS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]')


def _too_deep(body: bytes) -> bool:
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    for m in _BRACKETS.finditer(body):
        c = m.group()[0]
        if c in b"[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif c in b"]}":
            depth -= 1
    return False


# -- responses -------------------------------------------------------------------------------


def json_error(err: SqsError) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"__type": f"com.amazonaws.sqs#{err.name}", "message": err.message})
    fault = "Sender" if err.sender_fault else "Receiver"
    headers = {
        "Content-Type": JSON_CONTENT_TYPE,
        "x-amzn-query-error": f"{err.query_code};{fault}",
    }
    return err.status, headers, body.encode()


def xml_error(err: SqsError, request_id: str) -> tuple[int, dict[str, str], bytes]:
    fault = "Sender" if err.sender_fault else "Receiver"
    body = (
        f'<?xml version="1.0"?><ErrorResponse xmlns="{XMLNS}"><Error><Type>{fault}</Type>'
        f"<Code>{escape(err.query_code)}</Code><Message>{_text(err.message)}</Message>"
        f"<Detail/></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return err.status, {"Content-Type": "text/xml"}, body.encode()


# JSON list member -> flattened XML element name (per action where they differ).
_ELEMENTS = {
    "QueueUrls": "QueueUrl",
    "queueUrls": "QueueUrl",
    "Messages": "Message",
    "Failed": "BatchResultErrorEntry",
    "Results": "ListMessageMoveTasksResultEntry",
}
_SUCCESSFUL = {
    "SendMessageBatch": "SendMessageBatchResultEntry",
    "DeleteMessageBatch": "DeleteMessageBatchResultEntry",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibilityBatchResultEntry",
}
# JSON map member -> (element, key element, value element)
_XML_MAPS = {
    "Attributes": ("Attribute", "Name", "Value"),
    "Tags": ("Tag", "Key", "Value"),
    "MessageAttributes": ("MessageAttribute", "Name", "Value"),
}


def xml_response(action: str, result: dict[str, Any], request_id: str) -> bytes:
    inner = _xml_members(action, result)
    result_xml = f"<{action}Result>{inner}</{action}Result>" if inner else ""
    return (
        f'<?xml version="1.0"?><{action}Response xmlns="{XMLNS}">{result_xml}'
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    ).encode()


def _xml_members(action: str, obj: dict[str, Any]) -> str:
    parts: list[str] = []
    for key, value in obj.items():
        if key in _XML_MAPS and isinstance(value, dict):
            element, kname, vname = _XML_MAPS[key]
            for k, v in value.items():
                inner = _xml_members(action, v) if isinstance(v, dict) else _text(str(v))
                parts.append(
                    f"<{element}><{kname}>{_text(k)}</{kname}><{vname}>{inner}</{vname}>"
                    f"</{element}>"
                )
        elif isinstance(value, list):
            element = _SUCCESSFUL.get(action, key) if key == "Successful" else None
            element = element or _ELEMENTS.get(key, key)
            for item in value:
                inner = _xml_members(action, item) if isinstance(item, dict) else _text(str(item))
                parts.append(f"<{element}>{inner}</{element}>")
        elif isinstance(value, dict):
            parts.append(f"<{key}>{_xml_members(action, value)}</{key}>")
        elif isinstance(value, bool):
            parts.append(f"<{key}>{'true' if value else 'false'}</{key}>")
        elif value is not None:
            parts.append(f"<{key}>{_text(str(value))}</{key}>")
    return "".join(parts)


def _text(s: str) -> str:
    # A bare CR would be normalised to LF by the client's XML parser: keep it as a ref.
    return escape(s, {'"': "&quot;", "\r": "&#xD;"})
