"""What an attempt's outcome means: a 2xx body parsed into its model, or the typed error for
a non-2xx response or a transport failure. No I/O here.
"""

from __future__ import annotations

import errno
import json
import re
import socket
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pydantic

from . import _advice as advisor
from ._advice import Where
from ._endpoints import Operation
from ._problem import read_problem
from ._retry import never_sent, server_wait
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    HostupError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from .models import AgentExecStarted

__all__ = [
    "LargeBody",
    "SlowBody",
    "error_for",
    "error_from_response",
    "invalid_body",
    "parse",
    "parse_started",
]

M = TypeVar("M", bound=pydantic.BaseModel)


def parse(op: Operation, response: httpx.Response, model: type[M]) -> M:
    """Validate a 2xx body against ``model``; anything else is APIResponseValidationError."""
    try:
        data = json.loads(response.content)
    except (ValueError, RecursionError):
        raise invalid_body(op, response, "a body that is not valid JSON") from None
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise invalid_body(op, response, _validation_summary(exc)) from None


def invalid_body(op: Operation, response: httpx.Response, what: str) -> HostupError:
    """The error for a 2xx answer whose body is not what the API documents."""
    note = (
        ". The command may have started on the VPS; check before starting it again"
        if op.starts_command
        else ""
    )
    return APIResponseValidationError(
        f"{op.method} {op.target} returned HTTP {response.status_code} with an unexpected "
        f"body ({what}){note}",
        method=op.method,
        path=op.target,
        status_code=response.status_code,
        command_may_have_started=op.starts_command,
    )


class _StartBody(pydantic.BaseModel):
    # The POST response as sent: both fields are marked optional in the API's schema.
    model_config = pydantic.ConfigDict(extra="allow", populate_by_name=True)
    pid: int | None = None
    poll_url: str | None = pydantic.Field(default=None, alias="pollUrl")

    @property
    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def parse_started(op: Operation, response: httpx.Response, base_url: str) -> AgentExecStarted:
    """The answer to a command's start: a missing ``pid`` is taken from ``pollUrl`` when it
    carries one; ``poll_url`` is made absolute against ``base_url``."""
    raw = parse(op, response, _StartBody)
    pid = raw.pid
    if pid is None and raw.poll_url:
        values = parse_qs(urlsplit(raw.poll_url).query).get("pid", [])
        # isascii: str.isdigit() is also true of '²', which int() refuses.
        ok = values and values[0].isascii() and values[0].isdigit()
        pid = int(values[0]) if ok else None
    if pid is None or pid <= 0:
        raise invalid_body(op, response, "no pid in the response")
    poll_url = raw.poll_url or None
    if poll_url and poll_url.startswith("/") and not poll_url.startswith("//"):
        # A path from the API root: prefix the base URL (keeping any path in it), as every
        # request of this client is sent to base_url + path.
        poll_url = base_url + poll_url
    elif poll_url:
        poll_url = urljoin(base_url + "/", poll_url)
    return AgentExecStarted.model_validate({**raw.extras, "pid": pid, "pollUrl": poll_url})


class SlowBody(httpx.ReadTimeout):
    """The body was still arriving when the attempt's time was up (``seconds`` allowed)."""

    def __init__(self, seconds: float, request: httpx.Request) -> None:
        super().__init__("the response took longer than the call allows", request=request)
        self.seconds = seconds


class LargeBody(httpx.ReadError):
    """The body passed the size cap."""


def error_for(
    op: Operation,
    outcome: httpx.Response | Exception,
    *,
    now: datetime,
    request: httpx.Request | None = None,
    attempts: int = 1,
    where: Where = Where.PROGRAM,
    bearer_prefix: bool = False,
) -> HostupError:
    """The typed error for a failed attempt (the last of ``attempts``): a non-2xx response,
    or a transport failure named for what it is, with the server's host and port (from
    ``request``, the request that failed)."""
    if isinstance(outcome, httpx.Response):
        return error_from_response(
            status_code=outcome.status_code,
            headers=outcome.headers,
            body=outcome.content,
            method=op.method,
            path=op.target,
            required_scope=op.scope,
            retry_after=server_wait(outcome.headers, now),
            command_may_have_started=op.starts_command and outcome.status_code >= 500,
            where=where,
            bearer_prefix=bearer_prefix,
        )
    host, port = _server(request)
    server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    timeouts = request.extensions.get("timeout", {}) if request is not None else {}
    head = f"{op.method} {op.target} failed" + (
        f" after {attempts} attempts" if attempts > 1 else ""
    )
    cls = APITimeoutError if isinstance(outcome, httpx.TimeoutException) else APIConnectionError
    return cls(
        f"{head}: {_what_failed(outcome, server, timeouts)}",
        method=op.method,
        path=op.target,
        command_may_have_started=op.starts_command and not never_sent(outcome),
        host=host or None,
        port=port or None,
        connected=not never_sent(outcome),
        attempts=attempts,
    )


def _server(request: httpx.Request | None) -> tuple[str, int]:
    if request is None:
        return "", 0
    url = request.url
    return url.host, url.port or (443 if url.scheme == "https" else 80)


def _within(timeouts: dict[str, float | None], which: str) -> str:
    seconds = timeouts.get(which)
    return f"within {seconds:g}s" if seconds is not None else "in time"


def _what_failed(exc: Exception, where: str, timeouts: dict[str, float | None]) -> str:
    """One phrase for a transport failure; the timeouts say which one ran out."""
    kind = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return f"could not connect to {where} {_within(timeouts, 'connect')}"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect to {where}: {_connect_failure(exc)}"
    if isinstance(exc, httpx.PoolTimeout):
        return f"no free connection to {where} {_within(timeouts, 'pool')} (pool timeout)"
    if isinstance(exc, SlowBody):
        return f"the answer from {where} was still arriving after {exc.seconds:g}s (read timeout)"
    if isinstance(exc, httpx.ReadTimeout):
        return f"no answer from {where} {_within(timeouts, 'read')} (read timeout)"
    if isinstance(exc, httpx.WriteTimeout):
        return f"could not send the request to {where} {_within(timeouts, 'write')} (write timeout)"
    if isinstance(exc, LargeBody):
        return f"the answer from {where} was refused: {exc}"
    if isinstance(exc, httpx.DecodingError):
        return f"the answer from {where} could not be decoded ({kind})"
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        return f"the connection to {where} broke before a complete answer ({kind})"
    return f"{kind} (talking to {where})"


_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")


def _connect_failure(exc: BaseException) -> str:
    """Why a connection could not be made, from the OS error behind httpx's (the async
    transport says only "All connection attempts failed")."""
    texts = []
    seen: BaseException | None = exc
    for _ in range(10):  # a cause chain, not a cycle
        if seen is None:
            break
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return "host name not found"
        if isinstance(seen, OSError) and seen.errno in _OS_ERRORS:
            return _OS_ERRORS[seen.errno]
        texts.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    text = _ERRNO.sub("", texts[0]).strip() if texts else ""
    lowered = text.lower()
    for needle, said in _CONNECT_TEXTS:
        if needle in lowered:
            return said
    return text or "connection failed"


_OS_ERRORS = {
    errno.ENETUNREACH: "network is unreachable",
    errno.EHOSTUNREACH: "host is unreachable",
    errno.ETIMEDOUT: "timed out",
    errno.ECONNRESET: "connection reset",
}
# The same, read from the text of an error that carries no OS error.
_CONNECT_TEXTS = (
    ("refused", "connection refused"),
    ("name or service not known", "host name not found"),
    ("nodename nor servname", "host name not found"),
    ("name resolution", "host name not found"),
    ("getaddrinfo", "host name not found"),
    ("network is unreachable", "network is unreachable"),
    ("no route to host", "host is unreachable"),
)


def _validation_summary(exc: pydantic.ValidationError) -> str:
    # include_input=False: the rejected values may be command output.
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or '(body)'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)[:5]
    ]
    return "; ".join(parts)


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


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
    where: Where = Where.PROGRAM,
    bearer_prefix: bool = False,
) -> APIStatusError:
    """Build the typed error for a non-2xx response, whatever its content type.

    A problem document gives its fields; anything else (an HTML 502 from a proxy) still gives
    the class for its status, with a short excerpt of the body. The advice fits ``where``
    the client runs (``bearer_prefix``: the key given starts with ``Bearer ``).
    """
    problem, excerpt = read_problem(body, headers)
    advice = []
    if status_code == 401:
        advice.append(advisor.credentials(where, bearer_prefix=bearer_prefix))
    elif status_code == 404 and problem.code == "vps_not_found":
        advice.append(advisor.vps_not_found(where))
    cls = _STATUS_CLASSES.get(status_code)
    if cls is None:
        cls = InternalServerError if status_code >= 500 else APIStatusError
    error = cls(status_code=status_code, method=method, path=path, problem=problem,
                headers=headers, body_excerpt=excerpt, required_scope=required_scope,
                command_may_have_started=command_may_have_started, advice=advice)  # fmt: skip
    if isinstance(error, RateLimitError):
        error.retry_after = retry_after
    return error
