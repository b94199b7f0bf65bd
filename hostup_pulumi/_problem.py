"""The RFC 7807 problem document of an error response, as one frozen value, and reading it
from a response body (whatever its content type; a non-JSON body gives a short excerpt)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["FieldError", "Problem", "read_problem"]


@dataclass(frozen=True)
class FieldError:
    """One entry of a problem document's ``errors[]``: which field, and what was wrong."""

    pointer: str | None
    detail: str | None
    code: str | None

    def __str__(self) -> str:
        text = f"{self.pointer or '(body)'}: {self.detail or 'invalid'}"
        return f"{text} ({self.code})" if self.code else text


# Problem-document members that have their own field; anything else is an extension.
_PROBLEM_FIELDS = {
    "type", "title", "status", "detail", "code", "instance", "requestId", "timestamp",
    "errors", "extensions",
}  # fmt: skip


@dataclass(frozen=True)
class Problem:
    """The RFC 7807 problem document of an error response, as one value.

    ``code`` is the stable machine code to branch on; ``title`` and ``detail`` are for
    humans and vary between occurrences. ``status`` is the body's own ``status`` member.
    ``extensions`` holds the nested ``extensions`` object and any other top-level member.
    """

    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    code: str | None = None
    instance: str | None = None
    request_id: str | None = None
    timestamp: str | None = None
    errors: tuple[FieldError, ...] = ()
    extensions: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Problem:
        """Read a decoded problem document; members of the wrong type are left out."""
        extensions: dict[str, Any] = {}
        if isinstance(document.get("extensions"), dict):
            extensions.update(document["extensions"])
        # Some endpoints put extension members at the top level (e.g. blockerReasons).
        extensions.update({k: v for k, v in document.items() if k not in _PROBLEM_FIELDS})
        status = document.get("status")
        return cls(
            type=_str_or_none(document.get("type")),
            title=_str_or_none(document.get("title")),
            status=status if isinstance(status, int) and not isinstance(status, bool) else None,
            detail=_str_or_none(document.get("detail")),
            code=_str_or_none(document.get("code")),
            instance=_str_or_none(document.get("instance")),
            request_id=_str_or_none(document.get("requestId")),
            timestamp=_str_or_none(document.get("timestamp")),
            errors=_field_errors(document.get("errors")),
            extensions=extensions,
        )


def read_problem(body: bytes, headers: Mapping[str, str]) -> tuple[Problem, str | None]:
    """The problem document in ``body``, and a short excerpt of the body when it is not one
    (an HTML page from a proxy). The request id falls back to the ``X-Request-Id`` header."""
    try:
        parsed = json.loads(body) if body else None
    except (ValueError, RecursionError):
        parsed = None
    document: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    problem = Problem.from_json(document)
    if problem.request_id is None:
        problem = replace(problem, request_id=_str_or_none(headers.get("x-request-id")))
    return problem, None if document else (_excerpt(body) or None)


_TAGS = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def _excerpt(body: bytes, limit: int = 160) -> str:
    """A short, single-line, tag-free excerpt of a non-JSON body (an HTML proxy page)."""
    text = body[: limit * 8].decode("utf-8", errors="replace")
    text = _SPACE.sub(" ", _TAGS.sub(" ", text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _field_errors(value: object) -> tuple[FieldError, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        FieldError(
            pointer=_str_or_none(item.get("pointer")),
            detail=_str_or_none(item.get("detail")),
            code=_str_or_none(item.get("code")),
        )
        for item in value
        if isinstance(item, dict)
    )
