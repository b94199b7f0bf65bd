"""Injected failures: what the network, a proxy or a broken upstream could do to a request."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Literal

from .problems import JSON_CONTENT_TYPE, Response, default_code, problem_response

FaultKind = Literal[
    "status",
    "html",
    "delay",
    "drop",
    "malformed_json",
    "truncated",
    "wrong_content_type",
    "rate_limited",
]

#: Kinds that let the request run normally and then spoil the response.
MUTATING_KINDS: frozenset[str] = frozenset({"truncated", "wrong_content_type"})

_MALFORMED_BODY = b'{"available": tru'


@dataclass(frozen=True)
class Fault:
    """One injected failure. Build it with the class methods, e.g. ``Fault.status(502)``."""

    kind: FaultKind
    status_code: int = 200
    code: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    retry_after: str | None = None
    reset: str | None = None

    @classmethod
    def status(
        cls, status: int, code: str | None = None, *, headers: Mapping[str, str] | None = None
    ) -> Fault:
        """A problem+json error; ``code`` defaults by status (e.g. 502 upstream_failed)."""
        return cls("status", status, code, tuple((headers or {}).items()))

    @classmethod
    def html(cls, status: int) -> Fault:
        """A ``text/html`` error page like the one nginx serves for a dead upstream."""
        return cls("html", status)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait ``seconds`` and then answer normally (to trip client read timeouts)."""
        return cls("delay", seconds=seconds)

    @classmethod
    def drop(cls) -> Fault:
        """Read the request, then close the connection without answering. Nothing runs."""
        return cls("drop")

    @classmethod
    def malformed_json(cls) -> Fault:
        """A 200 ``application/json`` response whose body is cut-off JSON."""
        return cls("malformed_json")

    @classmethod
    def truncated(cls) -> Fault:
        """Handle normally, then send half the body under the full Content-Length and close."""
        return cls("truncated")

    @classmethod
    def wrong_content_type(cls) -> Fault:
        """Handle normally, but label the (valid JSON) body ``text/plain``."""
        return cls("wrong_content_type")

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1", reset: str | None = None) -> Fault:
        """A 429 ``rate_limited`` problem; headers exactly as given, absent when ``None``."""
        return cls("rate_limited", 429, "rate_limited", retry_after=retry_after, reset=reset)


def render(fault: Fault, *, instance: str, request_id: str, limit: int) -> Response:
    """Build the response of a fault that replaces normal handling entirely."""
    if fault.kind == "html":
        phrase = _phrase(fault.status_code)
        page = (
            f"<html>\r\n<head><title>{fault.status_code} {phrase}</title></head>\r\n<body>\r\n"
            f"<center><h1>{fault.status_code} {phrase}</h1></center>\r\n"
            "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
        return Response(fault.status_code, page.encode(), "text/html")
    if fault.kind == "malformed_json":
        return Response(200, _MALFORMED_BODY, JSON_CONTENT_TYPE)
    headers: dict[str, str] = {}
    if fault.status_code == 429:
        # Real 429s always carry these two; callers may override them via ``headers``.
        headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0"}
    if fault.retry_after is not None:
        headers["Retry-After"] = fault.retry_after
    if fault.reset is not None:
        headers["X-RateLimit-Reset"] = fault.reset
    headers.update(fault.headers)
    code = fault.code or default_code(fault.status_code)
    return problem_response(
        fault.status_code, code, instance=instance, request_id=request_id, headers=headers
    )


def spoil(fault: Fault, response: Response) -> Response:
    """Apply a mutating fault (truncated, wrong content type) to a normal response."""
    if fault.kind == "wrong_content_type":
        response.content_type = "text/plain"
    elif fault.kind == "truncated":
        response.content_length = max(len(response.body), 1) + 16
        response.body = response.body[: len(response.body) // 2]
        response.close = True
    return response


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


@dataclass
class _Pending:
    route: str
    fault: Fault
    remaining: int


class FaultQueue:
    """Faults waiting for their requests, consumed in the order they were injected."""

    def __init__(self) -> None:
        """Create an empty queue."""
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []

    def add(self, route: str, fault: Fault, count: int) -> None:
        """Apply ``fault`` to the next ``count`` requests on ``route`` (``"*"`` for any)."""
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._pending.append(_Pending(route, fault, count))

    def take(self, route: str) -> Fault | None:
        """Consume and return the first fault that applies to ``route``."""
        with self._lock:
            for entry in self._pending:
                if entry.route in ("*", route):
                    entry.remaining -= 1
                    if entry.remaining == 0:
                        self._pending.remove(entry)
                    return entry.fault
        return None

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._pending.clear()
