"""The error statuses each operation documents in the OpenAPI description, in the one error format.

Kept honest by tests/test_fuzz.py: every status a route can return is listed here or on the route.
"""

from __future__ import annotations

from typing import Any

from api.schemas import ErrorResponse

_WHY = {
    400: "The request body is not valid JSON",
    401: "No valid API key or token",
    403: "The caller's role may not use this route, or the path is outside the ingest roots",
    404: "No such resource (or model)",
    408: "The request body did not arrive in time",
    413: "The request body (or the question) is too long",
    422: "A parameter or the body does not match the schema",
    429: "Too many failed authentications from this address (see Retry-After)",
    503: "A dependency (database, audit log, index, generator) is unavailable",
    504: "The generator did not answer in time",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these statuses, each with the ErrorResponse body."""
    return {status: {"model": ErrorResponse, "description": _WHY[status]} for status in statuses}


# what the gate (api/request_audit.py) and the role check can answer on every audited route,
# whatever the route: authentication, role, size and deadline of the body, parameters, rate limit, audit store
GATE = errors(401, 403, 408, 413, 422, 429, 503)
JSON_BODY = errors(400)  # routes that parse a JSON body
NOT_FOUND = errors(404)


def _json_data(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "string", "contentMediaType": "application/json", "contentSchema": schema}


# one server-sent event as schemathesis and OpenAPI 3.1 read an event stream's `schema`: {event, data, ...}
QUERY_EVENT = {
    "oneOf": [
        {
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"const": "delta"},
                "data": _json_data(
                    {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}
                ),
            },
        },
        {
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"const": "final"},
                "data": _json_data({"$ref": "#/components/schemas/QueryResponse"}),
            },
        },
    ]
}
CHAT_EVENT = {  # `data: {chat.completion.chunk}` events, then `data: [DONE]`
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string"}},
}
