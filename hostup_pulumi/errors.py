"""The error tree (building one from an HTTP response is :mod:`hostup_pulumi._outcomes`'s).

Every failure this package raises is a :class:`HostupError`. Errors carry plain data only
(method, path, status, the :class:`Problem` document): never an ``httpx`` request or
response, whose headers hold the API key. The facts an error reports are its fields; the
message is written from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from ._advice import agent_fix
from ._problem import FieldError, Problem

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
    "Problem",
    "RateLimitError",
    "UnprocessableEntityError",
    "ValidationError",
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

    ``host`` and ``port`` name the server; ``connected`` is false when no connection was
    made at all (refused, unreachable, a connect timeout: check the base URL and the
    network), true when one was made and then failed, None when unknown. ``attempts`` counts
    the tries, retries included. ``command_may_have_started`` is true when the request that
    starts a command may have reached the server; such a request is never retried.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        command_may_have_started: bool = False,
        host: str | None = None,
        port: int | None = None,
        connected: bool | None = None,
        attempts: int = 1,
    ) -> None:
        self.method = method
        self.path = path
        self.command_may_have_started = command_may_have_started
        self.host = host
        self.port = port
        self.connected = connected
        self.attempts = attempts
        if command_may_have_started:
            message = f"{message}. {_MAY_HAVE_STARTED}"
        super().__init__(message)


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read, write or pool)."""


T = TypeVar("T")


class _FromProblem(Generic[T]):
    """A read-only attribute of a status error that is the same field of its ``problem``."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, error: None, owner: type) -> _FromProblem[T]: ...
    @overload
    def __get__(self, error: APIStatusError, owner: type) -> T: ...
    def __get__(self, error: APIStatusError | None, owner: type) -> T | _FromProblem[T]:
        if error is None:
            return self
        value: T = getattr(error.problem, self._name)
        return value


class APIStatusError(HostupError):
    """The API answered with a non-2xx status.

    ``problem`` holds the problem document's fields (each also readable here: ``code``,
    ``title``, ``detail``, ...). Branch on ``code`` (stable) and ``status_code``.
    """

    status_code: int

    def __init__(
        self,
        *,
        status_code: int,
        method: str,
        path: str,
        problem: Problem | None = None,
        headers: Mapping[str, str] | None = None,
        body_excerpt: str | None = None,
        required_scope: str | None = None,
        command_may_have_started: bool = False,
        advice: Sequence[str] = (),
    ) -> None:
        self.status_code = status_code
        self.method = method
        self.path = path
        self.problem = problem or Problem()
        # Response headers minus cookies: a Set-Cookie could carry a session.
        self.headers: dict[str, str] = {
            k: v for k, v in (headers or {}).items() if k.lower() != "set-cookie"
        }
        self.body_excerpt = body_excerpt
        self.required_scope = required_scope
        self.command_may_have_started = command_may_have_started
        #: What to do about it, as fits where the client runs (``_advice``).
        self.advice = tuple(advice)
        super().__init__(self._message())

    # The problem document's fields, each readable on the error too.
    code = _FromProblem[str | None]("The stable machine code (``vps_not_found``, ...).")
    title = _FromProblem[str | None]("Short human summary; varies between occurrences.")
    detail = _FromProblem[str | None]("Human explanation; not stable, never parse it.")
    type = _FromProblem[str | None]("The problem type URL (RFC 7807 ``type``).")
    instance = _FromProblem[str | None]("The request path the problem is about.")
    request_id = _FromProblem[str | None](
        "The ``requestId`` (or ``X-Request-Id`` header): quote it to HostUp support."
    )
    timestamp = _FromProblem[str | None]("When the server saw the problem (ISO 8601).")
    errors = _FromProblem[tuple[FieldError, ...]]("Field errors (``errors[]``) of a 400.")

    @property
    def extensions(self) -> dict[str, Any]:
        """Extension members, nested or top-level (a copy)."""
        return dict(self.problem.extensions)

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
        parts.extend(self.advice)
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
        wait_hint: str | None = None,
    ) -> None:
        self.vps_id = vps_id
        self.reason = reason
        self.vm_running = vm_running
        self.waited = waited
        why = reason or "the API gave no reason"
        state = "" if vm_running is None else f" (VM running: {str(vm_running).lower()})"
        after = "" if waited is None else f" after waiting {waited:g}s"
        # What makes it available follows what HostUp said of the VM; how to wait for it
        # (``wait_hint``) depends on where the caller runs (``_advice``).
        advice = [agent_fix(vm_running)] + ([wait_hint] if wait_hint else [])
        super().__init__(
            f"QEMU guest agent command execution is not available on {vps_id}{after}: "
            f"{why}{state}. " + ". ".join(advice)
        )


class CommandTimeoutError(HostupError):
    """A wait passed its deadline, or stopped just before it (``stopped_early``).

    ``last_output`` / ``last_availability`` hold the last state seen (command output is not
    put into the message: it may be secret). A wait stops early when its last poll failed
    and the next could not be sent before the deadline: ``server_wait`` is then the wait the
    API asked for (a 429's ``Retry-After``), ``failed_status`` the failed poll's HTTP status,
    and ``__cause__`` the failure itself.
    """

    def __init__(
        self,
        message: str,
        *,
        vps_id: str,
        timeout: float,
        pid: int | None = None,
        last_output: AgentExecOutput | None = None,
        last_availability: AgentAvailability | None = None,
        stopped_early: bool = False,
        server_wait: float | None = None,
        failed_status: int | None = None,
    ) -> None:
        self.vps_id = vps_id
        self.pid = pid
        self.timeout = timeout
        self.last_output = last_output
        self.last_availability = last_availability
        self.stopped_early = stopped_early
        self.server_wait = server_wait
        self.failed_status = failed_status
        if stopped_early:
            if server_wait is not None:
                message += (
                    f"; stopped early: the API answered HTTP {failed_status} and asked to wait "
                    f"{server_wait:g}s, past the deadline"
                )
            else:
                failed = f"HTTP {failed_status}" if failed_status else "no usable answer"
                message += (
                    f"; stopped early: the last poll failed ({failed}) and another try would "
                    "pass the deadline"
                )
        super().__init__(message)


class CommandFailedError(HostupError):
    """The command exited non-zero (or was killed) and the caller asked for that to fail.

    ``output`` holds the full result; the message names only the exit code (or signal) and
    how to see the output, since stdout and stderr may be secret.
    """

    def __init__(self, *, vps_id: str, pid: int, exit_code: int | None, output: AgentExecOutput):
        self.vps_id = vps_id
        self.pid = pid
        self.exit_code = exit_code
        self.output = output
        if exit_code is not None:
            ended = f"exited with code {exit_code}"
        else:
            signal = output.signal if output.signal not in (None, "", 0) else None
            ended = "ended without an exit code" + (f" (signal {signal})" if signal else "")
        super().__init__(
            f"command pid {pid} on {vps_id} {ended}; its output is kept out of this message "
            "(it may be secret): to see it, set fail_on_nonzero_exit=False and export "
            f"stdout/stderr, or run `hostup-pulumi output {vps_id} {pid}`"
        )


def _rebuild(cls: type[HostupError], args: tuple[Any, ...], state: dict[str, Any]) -> HostupError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error
