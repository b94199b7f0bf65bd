"""Responses and RFC 7807 problem documents as the HostUp API shapes them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .ids import iso_utc

PROBLEM_TYPE_BASE = "https://developer.hostup.se/errors/"
PROBLEM_CONTENT_TYPE = "application/problem+json"
JSON_CONTENT_TYPE = "application/json"

# Codes a bare status maps to when a caller (e.g. ``Fault.status``) names none.
DEFAULT_CODES: dict[int, str] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "vps_not_ready",
    413: "payload_too_large",
    422: "unprocessable_entity",
    429: "rate_limited",
    500: "internal_error",
    502: "upstream_failed",
    503: "upstream_unavailable",
    504: "upstream_failed",
}

_TITLES: dict[str, str] = {
    "invalid_request": "Validation failed",
    "invalid_cursor": "Invalid cursor",
    "unauthorized": "Unauthorized",
    "forbidden": "Forbidden",
    "not_found": "Not found",
    "vps_not_found": "VPS not found",
    "method_not_allowed": "Method not allowed",
    "request_timeout": "Request timeout",
    "vps_not_ready": "VPS not ready",
    "command_blocked": "Command blocked",
    "payload_too_large": "Payload too large",
    "unprocessable_entity": "Unprocessable entity",
    "rate_limited": "Too many requests",
    "internal_error": "Internal server error",
    "upstream_failed": "Upstream request failed",
    "upstream_unavailable": "Upstream service unavailable",
}

_DETAILS: dict[str, str] = {
    "invalid_cursor": "Cursor is invalid or malformed.",
    "unauthorized": "Missing or invalid authentication.",
    "vps_not_found": "No VPS matching the given ID was found.",
    "rate_limited": "Too many requests. Please slow down.",
    "internal_error": "An unexpected error occurred.",
    "upstream_failed": "The upstream provider request failed.",
    "upstream_unavailable": "The upstream provider is unavailable.",
}


def default_code(status: int) -> str:
    """Return the problem ``code`` used for ``status`` when none is given."""
    if status in DEFAULT_CODES:
        return DEFAULT_CODES[status]
    return "internal_error" if status >= 500 else "invalid_request"


@dataclass
class Response:
    """A complete HTTP response, ready for the handler to write."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    #: Content-Length to declare when it must differ from ``len(body)`` (truncation faults).
    content_length: int | None = None
    #: Close the connection after this response.
    close: bool = False


def json_response(payload: Any, status: int = 200) -> Response:
    """Return ``payload`` as an ``application/json`` response."""
    return Response(status, json.dumps(payload).encode(), JSON_CONTENT_TYPE)


def problem_response(
    status: int,
    code: str,
    *,
    instance: str,
    request_id: str,
    title: str | None = None,
    detail: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    extensions: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Build a problem+json response; ``extensions`` become top-level members."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title or _TITLES.get(code, code.replace("_", " ").capitalize()),
        "status": status,
        "detail": detail or _DETAILS.get(code, title or _TITLES.get(code, code)),
        "code": code,
        "instance": instance,
        "requestId": request_id,
        "timestamp": iso_utc(),
    }
    if errors:
        body["errors"] = [dict(item) for item in errors]
    if extensions:
        body.update(extensions)
    return Response(status, json.dumps(body).encode(), PROBLEM_CONTENT_TYPE, dict(headers or {}))
