"""The SNS Query protocol (sans-IO): form fields → JSON-shaped parameters, results and
errors → SNS's XML (namespace http://sns.amazonaws.com/doc/2010-03-31/).

SNS's Query serialization is not flattened, unlike SQS's: a list is ``Name.member.N``, a
map ``Name.entry.N.key`` / ``.value`` (``MessageAttributes`` uses ``Name`` / ``Value``
instead, as botocore's sns model says). `parse_params` turns those into lists and dicts,
so handlers see the shapes of botocore's model. Responses put lists in ``<member>``
elements and maps in ``<entry><key/><value/></entry>``.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from protocols.aws import wire

XMLNS = "http://sns.amazonaws.com/doc/2010-03-31/"


class SnsError(Exception):
    """An SNS error response: AWS's code, HTTP status and message."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    @property
    def sender_fault(self) -> bool:
        return self.status < 500


def invalid(message: str) -> SnsError:
    """InvalidParameter (400) with AWS's "Invalid parameter: ..." text."""
    return SnsError("InvalidParameter", f"Invalid parameter: {message}")


def not_found(message: str) -> SnsError:
    return SnsError("NotFound", message, 404)


def parse_params(fields: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The action and JSON-shaped parameters of an SNS Query request's form fields, their
    shapes checked (`check_shapes`)."""
    action, tree = wire.parse_query(fields)
    params = _convert(tree)
    check_shapes(params)
    return action, params


# The non-string members of every SNS action's input (botocore's sns model); every other
# member is a string, so a name nested under it (``Message.a=...``) is refused rather
# than its dict turned into text.
_ATTRIBUTE_VALUE = ("DataType", "StringValue", "BinaryValue")
_CONTAINERS: dict[str, type[list[Any]] | type[dict[str, Any]]] = {
    "Attributes": dict,
    "MessageAttributes": dict,
    "Tags": list,
    "TagKeys": list,
    "PublishBatchRequestEntries": list,
}
_ENTRY = ("Id", "Message", "Subject", "MessageStructure", "MessageDeduplicationId",
          "MessageGroupId")  # fmt: skip


def check_shapes(params: dict[str, Any]) -> None:
    """InvalidParameter naming the first member whose shape is not the model's. An empty
    list or map is serialized as ``Name=`` (botocore's query serializer): it becomes []
    or {}."""
    for name, value in list(params.items()):
        if value == "" and name in _CONTAINERS:
            params[name] = value = _CONTAINERS[name]()
        if name in ("Attributes", "MessageAttributes"):
            _map(name, value, attribute_values=name == "MessageAttributes")
        elif name == "Tags":
            _list(name, value, ("Key", "Value"))
        elif name == "TagKeys":
            _list(name, value, None)
        elif name == "PublishBatchRequestEntries":
            if not isinstance(value, list):
                raise invalid(name)
            for i, entry in enumerate(value, 1):
                where = f"{name}.member.{i}"
                if not isinstance(entry, dict):
                    raise invalid(where)
                for key, item in entry.items():
                    if key == "MessageAttributes":
                        _map(f"{where}.MessageAttributes", item, attribute_values=True)
                    elif key not in _ENTRY or not isinstance(item, str):
                        raise invalid(f"{where}.{key}")
        elif not isinstance(value, str):
            raise invalid(name)


def _map(name: str, value: Any, *, attribute_values: bool) -> None:
    if not isinstance(value, dict):
        raise invalid(name)
    for key, item in value.items():
        if attribute_values:
            if not isinstance(item, dict) or any(
                k not in _ATTRIBUTE_VALUE or not isinstance(v, str) for k, v in item.items()
            ):
                raise invalid(f"{name}.{key}")
        elif not isinstance(item, str):
            raise invalid(f"{name}.{key}")


def _list(name: str, value: Any, fields: tuple[str, ...] | None) -> None:
    if not isinstance(value, list):
        raise invalid(name)
    for i, item in enumerate(value, 1):
        if fields is None:
            ok = isinstance(item, str)
        else:
            ok = isinstance(item, dict) and all(
                k in fields and isinstance(v, str) for k, v in item.items()
            )
        if not ok:
            raise invalid(f"{name}.member.{i}")


def _convert(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if set(node) == {"member"} and isinstance(node["member"], dict):
        return [_convert(v) for v in _indexed(node["member"])]
    if set(node) == {"entry"} and isinstance(node["entry"], dict):
        out: dict[str, Any] = {}
        for item in _indexed(node["entry"]):
            if not isinstance(item, dict):
                continue
            key = item.get("key", item.get("Name"))
            if key is None:
                continue
            value = item.get("value", item.get("Value"))
            out[str(key)] = _convert(value)
        return out
    return {k: _convert(v) for k, v in node.items()}


def _indexed(node: dict[str, Any]) -> list[Any]:
    try:
        items = sorted(((int(k), v) for k, v in node.items()), key=lambda kv: kv[0])
    except ValueError:
        raise invalid("Malformed list parameter") from None
    return [v for _, v in items]


# -- responses -------------------------------------------------------------------------------

# Result members that are maps (rendered as entry/key/value).
_MAPS = frozenset({"Attributes"})


def xml_response(action: str, result: dict[str, Any] | None, request_id: str) -> bytes:
    inner = _members(result or {})
    result_xml = f"<{action}Result>{inner}</{action}Result>" if result is not None else ""
    return (
        f'<?xml version="1.0"?><{action}Response xmlns="{XMLNS}">{result_xml}'
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    ).encode()


def _members(obj: dict[str, Any]) -> str:
    parts: list[str] = []
    for key, value in obj.items():
        if value is None:
            continue
        if key in _MAPS and isinstance(value, dict):
            entries = "".join(
                f"<entry><key>{_text(k)}</key><value>{_text(str(v))}</value></entry>"
                for k, v in value.items()
            )
            parts.append(f"<{key}>{entries}</{key}>")
        elif isinstance(value, list):
            items = "".join(
                f"<member>{_members(v) if isinstance(v, dict) else _text(str(v))}</member>"
                for v in value
            )
            parts.append(f"<{key}>{items}</{key}>")
        elif isinstance(value, dict):
            parts.append(f"<{key}>{_members(value)}</{key}>")
        elif isinstance(value, bool):
            parts.append(f"<{key}>{'true' if value else 'false'}</{key}>")
        else:
            parts.append(f"<{key}>{_text(str(value))}</{key}>")
    return "".join(parts)


def xml_error(
    code: str, message: str, status: int, request_id: str
) -> tuple[int, dict[str, str], bytes]:
    """SNS's ErrorResponse document (the shape botocore's query parser reads)."""
    fault = "Sender" if status < 500 else "Receiver"
    body = (
        f'<?xml version="1.0"?><ErrorResponse xmlns="{XMLNS}"><Error><Type>{fault}</Type>'
        f"<Code>{escape(code)}</Code><Message>{_text(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return status, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body.encode()


def _text(s: str) -> str:
    return escape(s, {'"': "&quot;", "\r": "&#xD;"})
