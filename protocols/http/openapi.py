"""The OpenAPI 3 document of the admin API, built from its table of routes (ROUTES in
protocols/http/admin.py), so it lists exactly the routes the app registers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protocols.http.admin import Route

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    "required": ["error", "message"],
}


def document(routes: Iterable[Route], version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes`."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        params: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "URL-encoded (a/b is a%2Fb)",
            }
            for name in re.findall(r"{(\w+)}", route.path)
        ]
        params += [
            {"name": n, "in": "query", "required": False, "schema": {"type": t}, "description": d}
            for n, t, d in route.query
        ]
        op: dict[str, Any] = {
            "operationId": route.handler,
            "summary": route.summary,
            "tags": [route.tag],
            "responses": {
                str(status): _response(status, text) for status, text in route.responses.items()
            },
        }
        op["responses"].setdefault("401", _response(401, "credentials required"))
        op["responses"].setdefault("403", _response(403, "denied by the authorization map"))
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {
                "required": route.body_required,
                "content": {"application/json": {"schema": route.body}},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "ZoneMQ admin API", "version": version},
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
        },
        "security": [{"basic": []}],
        "paths": paths,
    }


def _response(status: int, text: str) -> dict[str, Any]:
    if status < 400:
        return {
            "description": text,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    return {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
