"""The error tree, and building an error from an HTTP response.

Every failure this package raises is a :class:`HostupError`. Errors carry plain data only
(method, path, status, problem fields): never an ``httpx`` request or response, whose headers
hold the API key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import AgentAvailability, AgentExecOutput

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AgentUnavailableError",
    "AuthenticationError",
    "BadRequestError",
    "CommandFailedError",
    "CommandTimeoutError",
    "ConfigurationError",
    "ConflictError",
    "FieldError",
    "HostupError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "UnprocessableEntityError",
    "ValidationError",
    "error_from_response",
]

_MAY_HAVE_STARTED = (
    "The command may have started on the VPS: it was not retried, so that it cannot run twice. "
    "Check the VPS before starting it again."
)


class HostupError(Exception):
    """Base class of every error raised by hostup_pulumi."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Most subclasses take keyword-only arguments, which pickle's default cannot replay:
        # rebuild from the message and the attributes instead (process pools, pytest-xdist).
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ConfigurationError(HostupError):
    """Missing or invalid settings: no credentials, a bad base URL, a bad timeout."""


class ValidationError(HostupError, ValueError):
    """An argument was refused locally, before any request was sent."""


class APIConnectionError(HostupError):
    """No usable response: the connection failed, dropped, or the body was cut off.

    ``command_may_have_started`` is true when the request that starts a command may have
    reached the server; such a request is never retried.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        command_may_have_started: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.command_may_have_started = command_may_have_started
        if command_may_have_started:
            message = f"{message}. {_MAY_HAVE_STARTED}"
        super().__init__(message)


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read, write or pool)."""


@dataclass(frozen=True)
class FieldError:
    """One entry of a problem document's ``errors[]``: which field, and what was wrong."""

    pointer: str | None
    detail: str | None
    code: str | None

    def __str__(self) -> str:
        text = f"{self.pointer or '(body)'}: {self.detail or 'invalid'}"
        return f"{text} ({self.code})" if self.code else text


# Problem-document members that have their own attribute; anything else is an extension.
_PROBLEM_FIELDS = {
    "type", "title", "status", "detail", "code", "instance", "requestId", "timestamp",
    "errors", "extensions",
}  # fmt: skip


class APIStatusError(HostupError):
    """The API answered with a non-2xx status.

    Branch on ``code`` (stable) and ``status_code``; ``title`` and ``detail`` are for humans
    and vary between occurrences.
    """

    status_code: int

    def __init__(
        self,
        *,
        status_code: int,
        method: str,
        path: str,
        code: str | None = None,
        title: str | None = None,
        detail: str | None = None,
        type: str | None = None,  # the RFC 7807 member name
        instance: str | None = None,
        request_id: str | None = None,
        timestamp: str | None = None,
        errors: tuple[FieldError, ...] = (),
        extensions: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        body_excerpt: str | None = None,
        required_scope: str | None = None,
        command_may_have_started: bool = False,
    ) -> None:
        self.status_code = status_code
        self.method = method
        self.path = path
        self.code = code
        self.title = title
        self.detail = detail
        self.type = type
        self.instance = instance
        self.request_id = request_id
        self.timestamp = timestamp
        self.errors = errors
        self.extensions: dict[str, Any] = dict(extensions or {})
        # Response headers minus cookies: a Set-Cookie could carry a session.
        self.headers: dict[str, str] = {
            k: v for k, v in (headers or {}).items() if k.lower() != "set-cookie"
        }
        self.body_excerpt = body_excerpt
        self.required_scope = required_scope
        self.command_may_have_started = command_may_have_started
        super().__init__(self._message())

    def _message(self) -> str:
        head = f"HTTP {self.status_code}"
        if self.code:
            head += f" {self.code}"
        text = ": ".join(part for part in (self.title, self.detail) if part)
        if not text and self.body_excerpt:
            text = f"non-JSON response body: {self.body_excerpt!r}"
        parts = [f"{head} on {self.method} {self.path}" + (f": {text}" if text else "")]
        if self.errors:
            parts.append("field errors: " + "; ".join(str(e) for e in self.errors))
        # A missing scope is (probably) a plain `forbidden`; other 403 codes such as
        # `account_inactive` have another fix.
        if self.status_code == 403 and self.required_scope and self.code in (None, "forbidden"):
            parts.append(
                f"This call needs an API key with the '{self.required_scope}' scope "
                "(create one at https://cloud.hostup.se/api-management); if the key has it, "
                "the VPS may belong to another account"
            )
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        if self.command_may_have_started:
            parts.append(_MAY_HAVE_STARTED)
        return ". ".join(part.rstrip(". ") for part in parts)


class BadRequestError(APIStatusError):
    """400: the API refused the request (``invalid_request``, ``invalid_cursor``, ...)."""


class AuthenticationError(APIStatusError):
    """401: missing or invalid API key or session cookie."""


class PermissionDeniedError(APIStatusError):
    """403: the key lacks a scope, or the VPS is not the caller's."""


class NotFoundError(APIStatusError):
    """404: no such VPS (``vps_not_found``), or a pid that is unknown or expired."""


class ConflictError(APIStatusError):
    """409: e.g. ``vps_not_ready``."""


class UnprocessableEntityError(APIStatusError):
    """422."""


class RateLimitError(APIStatusError):
    """429 ``rate_limited``; ``retry_after`` is the wait the server asked for, in seconds."""

    def __init__(self, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(**kwargs)


class InternalServerError(APIStatusError):
    """500 and above."""


class APIResponseValidationError(HostupError):
    """A 2xx response whose body is not what the API documents (bad JSON, wrong shape).

    ``command_may_have_started`` is true when it answered the request that starts a command.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        status_code: int | None = None,
        command_may_have_started: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.status_code = status_code
        self.command_may_have_started = command_may_have_started
        super().__init__(message)


class AgentUnavailableError(HostupError):
    """Guest-agent command execution is not available on the VPS (a failed precondition)."""

    def __init__(
        self,
        vps_id: str,
        reason: str | None,
        vm_running: bool | None,
        *,
        waited: float | None = None,
    ) -> None:
        self.vps_id = vps_id
        self.reason = reason
        self.vm_running = vm_running
        self.waited = waited
        why = reason or "the API gave no reason"
        state = "" if vm_running is None else f" (VM running: {str(vm_running).lower()})"
        after = "" if waited is None else f" after waiting {waited:g}s"
        fix = "Start the VM and make sure qemu-guest-agent is installed and running in it"
        if waited is None:
            fix += ", or pass wait_timeout= to wait for it"
        super().__init__(
            f"QEMU guest agent command execution is not available on {vps_id}{after}: "
            f"{why}{state}. {fix}"
        )


class CommandTimeoutError(HostupError):
    """A wait passed its deadline. ``last_output`` / ``last_availability`` hold the last state
    seen (command output is not put into the message: it may be secret)."""

    def __init__(
        self,
        message: str,
        *,
        vps_id: str,
        timeout: float,
        pid: int | None = None,
        last_output: AgentExecOutput | None = None,
        last_availability: AgentAvailability | None = None,
    ) -> None:
        self.vps_id = vps_id
        self.pid = pid
        self.timeout = timeout
        self.last_output = last_output
        self.last_availability = last_availability
        super().__init__(message)


class CommandFailedError(HostupError):
    """The command exited non-zero and the caller asked for that to fail.

    ``output`` holds the full result; the message names only the exit code, since stdout
    and stderr may be secret.
    """

    def __init__(self, *, vps_id: str, pid: int, exit_code: int | None, output: AgentExecOutput):
        self.vps_id = vps_id
        self.pid = pid
        self.exit_code = exit_code
        self.output = output
        super().__init__(
            f"command pid {pid} on {vps_id} exited with code {exit_code} "
            "(stdout and stderr are kept out of this message; read them from the result)"
        )


def _rebuild(cls: type[HostupError], args: tuple[Any, ...], state: dict[str, Any]) -> HostupError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}

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


def error_from_response(
    *,
    status_code: int,
    headers: Mapping[str, str],
    body: bytes,
    method: str,
    path: str,
    required_scope: str | None = None,
    retry_after: float | None = None,
    command_may_have_started: bool = False,
) -> APIStatusError:
    """Build the typed error for a non-2xx response, whatever its content type.

    A problem document gives its fields; anything else (an HTML 502 from a proxy) still gives
    the class for its status, with a short excerpt of the body.
    """
    problem: dict[str, Any] = {}
    try:
        parsed = json.loads(body) if body else None
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        problem = parsed
    extensions: dict[str, Any] = {}
    if isinstance(problem.get("extensions"), dict):
        extensions.update(problem["extensions"])
    # Some endpoints put extension members at the top level (e.g. blockerReasons).
    extensions.update({k: v for k, v in problem.items() if k not in _PROBLEM_FIELDS})
    cls = _STATUS_CLASSES.get(status_code)
    if cls is None:
        cls = InternalServerError if status_code >= 500 else APIStatusError
    kwargs: dict[str, Any] = {
        "status_code": status_code,
        "method": method,
        "path": path,
        "code": _str_or_none(problem.get("code")),
        "title": _str_or_none(problem.get("title")),
        "detail": _str_or_none(problem.get("detail")),
        "type": _str_or_none(problem.get("type")),
        "instance": _str_or_none(problem.get("instance")),
        "request_id": _str_or_none(problem.get("requestId"))
        or _str_or_none(headers.get("x-request-id")),
        "timestamp": _str_or_none(problem.get("timestamp")),
        "errors": _field_errors(problem.get("errors")),
        "extensions": extensions,
        "headers": headers,
        "body_excerpt": None if problem else (_excerpt(body) or None),
        "required_scope": required_scope,
        "command_may_have_started": command_may_have_started,
    }
    if cls is RateLimitError:
        return RateLimitError(retry_after=retry_after, **kwargs)
    return cls(**kwargs)
