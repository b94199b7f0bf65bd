"""The API's endpoints: one :class:`Operation` builder per endpoint, named like the client
method that calls it (``get_agent_availability``, ``start_agent_exec``, ...), and the
``httpx.Request`` an operation becomes.

Builders check their arguments (``_validation``), so a bad id or pid fails before any
request exists. No I/O here.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from ._validation import validate_command, validate_pid, validate_seconds, validate_vps_id
from ._version import __version__
from .errors import ValidationError
from .settings import Settings

__all__ = [
    "READ_SCOPE",
    "USER_AGENT",
    "WRITE_SCOPE",
    "Operation",
    "attempt_deadline",
    "build_request",
    "get_agent_availability",
    "get_agent_exec_output",
    "get_vps",
    "http_timeout",
    "list_vps",
    "start_agent_exec",
]

USER_AGENT = f"hostup-pulumi/{__version__} python-httpx/{httpx.__version__}"
READ_SCOPE = "read:vm"
WRITE_SCOPE = "write:vm"


@dataclass(frozen=True)
class Operation:
    """One API call: what to send, which scope it needs, and whether it may be retried freely.

    ``name`` is the client method's name. ``timeout`` is a per-call read timeout;
    ``deadline`` (on the core's clock) is a wait's end, which bounds every attempt too.
    """

    name: str
    method: str
    path: str
    scope: str
    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    # POST agent/exec is not idempotent: retried only when it provably never arrived.
    starts_command: bool = False
    timeout: float | None = None
    deadline: float | None = None

    @property
    def target(self) -> str:
        """Path and query, for logs and error messages (never carries credentials)."""
        if not self.params:
            return self.path
        return self.path + "?" + "&".join(f"{k}={quote(v)}" for k, v in self.params.items())


def _vps_path(vps_id: str, suffix: str = "") -> str:
    return f"/api/v2/vps/{quote(validate_vps_id(vps_id), safe='')}{suffix}"


def get_agent_availability(
    vps_id: str, timeout: float | None = None, deadline: float | None = None
) -> Operation:
    """``GET /api/v2/vps/{id}/agent/exec`` (no pid): is command execution available?"""
    return Operation(
        "get_agent_availability", "GET", _vps_path(vps_id, "/agent/exec"), READ_SCOPE,
        timeout=timeout, deadline=deadline,
    )  # fmt: skip


def get_agent_exec_output(
    vps_id: str, pid: int, timeout: float | None = None, deadline: float | None = None
) -> Operation:
    """``GET /api/v2/vps/{id}/agent/exec?pid=``: a command's state and output."""
    return Operation(
        "get_agent_exec_output", "GET", _vps_path(vps_id, "/agent/exec"), WRITE_SCOPE,
        params={"pid": str(validate_pid(pid))}, timeout=timeout, deadline=deadline,
    )  # fmt: skip


def start_agent_exec(vps_id: str, command: str, timeout: float | None = None) -> Operation:
    """``POST /api/v2/vps/{id}/agent/exec``: start a command (not idempotent)."""
    return Operation(
        "start_agent_exec", "POST", _vps_path(vps_id, "/agent/exec"), WRITE_SCOPE,
        body={"command": validate_command(command)}, starts_command=True, timeout=timeout,
    )  # fmt: skip


def get_vps(vps_id: str, timeout: float | None = None) -> Operation:
    """``GET /api/v2/vps/{id}``."""
    return Operation("get_vps", "GET", _vps_path(vps_id), READ_SCOPE, timeout=timeout)


def list_vps(
    *,
    name: str | None = None,
    primary_ip: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
    timeout: float | None = None,
) -> Operation:
    """One page of ``GET /api/v2/vps``."""
    params = {"limit": str(limit)}
    for key, value in (("name", name), ("primaryIp", primary_ip), ("cursor", cursor)):
        if value is not None:
            if not isinstance(value, str) or not value.strip():
                raise ValidationError(f"list_vps: {key} must be a non-empty string")
            params[key] = value
    if primary_ip is not None:
        try:  # no VPS can have it: say so, rather than "no VPS matched"
            ipaddress.ip_address(primary_ip.strip())
        except ValueError:
            raise ValidationError(
                f"{primary_ip!r} is not a valid IP address (IPv4 like 192.0.2.10, or IPv6)"
            ) from None
    return Operation("list_vps", "GET", "/api/v2/vps", READ_SCOPE, params, timeout=timeout)


# -- the request an operation becomes -------------------------------------------------------


def http_timeout(settings: Settings, seconds: float | None = None) -> httpx.Timeout:
    """The httpx timeout for one request: ``seconds`` (or the default) for reads."""
    read = seconds if seconds is not None else settings.timeout
    return httpx.Timeout(read, connect=min(settings.connect_timeout, read))


def build_request(op: Operation, settings: Settings, now: float) -> httpx.Request:
    """The httpx request for ``op``, with auth, JSON and a bounded timeout (``now`` is the
    core's clock, against which ``op.deadline`` is set)."""
    if op.timeout is not None:
        validate_seconds(op.timeout)  # a per-call timeout= must be a positive number
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if settings.api_key:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    elif settings.session_cookie:
        headers["Cookie"] = f"hostup_session={settings.session_cookie}"
    content = None
    if op.body is not None:
        headers["Content-Type"] = "application/json"
        content = json.dumps(op.body).encode()
    seconds = op.timeout
    if op.deadline is not None:
        # A wait's deadline bounds each request too (at least 1 s, to get an answer).
        remaining = max(1.0, op.deadline - now)
        seconds = min(seconds or settings.timeout, remaining)
    return httpx.Request(
        op.method,
        settings.base_url + op.path,
        params=op.params or None,
        headers=headers,
        content=content,
        extensions={"timeout": http_timeout(settings, seconds).as_dict()},
    )


def attempt_deadline(op: Operation, settings: Settings, started: float) -> float:
    """When one attempt must be over, body included: connect plus read timeout, and never
    past the call's own deadline."""
    seconds = op.timeout if op.timeout is not None else settings.timeout
    limit = started + settings.connect_timeout + seconds
    return limit if op.deadline is None else min(limit, max(op.deadline, started + 1.0))
