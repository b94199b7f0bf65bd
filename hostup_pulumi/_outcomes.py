"""What an attempt's outcome means: a 2xx body parsed into its model, or the typed error for
a non-2xx response or a transport failure. No I/O here.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pydantic

from ._endpoints import Operation
from ._retry import never_sent, server_wait
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    HostupError,
    error_from_response,
)
from .models import AgentExecStarted

__all__ = ["error_for", "invalid_body", "parse", "parse_started"]

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


def error_for(op: Operation, outcome: httpx.Response | Exception, *, now: datetime) -> HostupError:
    """The typed error for a failed attempt: a non-2xx response or a transport failure."""
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
        )
    may_have_started = op.starts_command and not never_sent(outcome)
    cls = APITimeoutError if isinstance(outcome, httpx.TimeoutException) else APIConnectionError
    kind = type(outcome).__name__
    return cls(
        f"{op.method} {op.target} failed: {kind}: {outcome}",
        method=op.method,
        path=op.target,
        command_may_have_started=may_have_started,
    )


def _validation_summary(exc: pydantic.ValidationError) -> str:
    # include_input=False: the rejected values may be command output.
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or '(body)'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)[:5]
    ]
    return "; ".join(parts)
