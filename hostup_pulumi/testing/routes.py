"""Routing and the five endpoint handlers, free of any socket code."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from .interpreter import run_default
from .problems import Response, json_response, problem_response
from .records import DEFAULT_ACCOUNT, CommandResult
from .state import SimState

#: Route names usable with ``inject``/``count``; "unknown" is any path or method not served.
ROUTES: tuple[str, ...] = ("probe", "exec_output", "exec_start", "list_vps", "get_vps", "unknown")

#: Scope each route needs.
REQUIRED_SCOPE: dict[str, str] = {
    "probe": "read:vm",
    "list_vps": "read:vm",
    "get_vps": "read:vm",
    "exec_start": "write:vm",
    "exec_output": "write:vm",
}

MAX_COMMAND_LENGTH = 4096
DEFAULT_LIMIT = 20
MAX_LIMIT = 100

_VPS_PATH = re.compile(r"/api/v2/vps/([^/]+)")
_EXEC_PATH = re.compile(r"/api/v2/vps/([^/]+)/agent/exec")
_POSITIVE_INT = re.compile(r"[1-9][0-9]{0,17}")
_CURSOR = re.compile(r"offset:(0|[1-9][0-9]{0,8})")


@dataclass(frozen=True)
class ListQuirks:
    """Ways a HostUp-shaped server could answer ``GET /api/v2/vps`` that the documentation
    does not rule out, for testing what the client checks itself."""

    #: Answer as if no ``name`` / ``primaryIp`` filter had been sent.
    ignore_filters: bool = False
    #: Give every page the same ``nextCursor`` (and ``hasMore: true``): a loop.
    repeat_cursor: bool = False


@dataclass(frozen=True)
class RouteMatch:
    """Which endpoint a request addresses."""

    route: str
    vps_id: str | None = None
    #: Methods the path supports; empty when the path is unknown.
    allowed: tuple[str, ...] = ()


def resolve(method: str, path: str, query: Mapping[str, str]) -> RouteMatch:
    """Map a method and path to a route name (``"unknown"`` if not served)."""
    if path.rstrip("/") == "/api/v2/vps":
        return RouteMatch("list_vps" if method == "GET" else "unknown", None, ("GET",))
    if found := _EXEC_PATH.fullmatch(path):
        vps_id = unquote(found.group(1))
        if method == "GET":
            return RouteMatch("exec_output" if "pid" in query else "probe", vps_id, ("GET", "POST"))
        if method == "POST":
            return RouteMatch("exec_start", vps_id, ("GET", "POST"))
        return RouteMatch("unknown", vps_id, ("GET", "POST"))
    if found := _VPS_PATH.fullmatch(path):
        vps_id = unquote(found.group(1))
        return RouteMatch("get_vps" if method == "GET" else "unknown", vps_id, ("GET",))
    return RouteMatch("unknown")


@dataclass(frozen=True)
class Call:
    """The parts of a request a handler may look at."""

    path: str
    query: Mapping[str, str]
    body: bytes
    request_id: str
    #: The caller's account: only its VPSes exist for this request.
    account: str = DEFAULT_ACCOUNT

    def problem(
        self,
        status: int,
        code: str,
        detail: str | None = None,
        *,
        title: str | None = None,
        errors: Sequence[Mapping[str, str]] | None = None,
        extensions: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Build a problem response for this request."""
        return problem_response(
            status,
            code,
            instance=self.path,
            request_id=self.request_id,
            title=title,
            detail=detail,
            errors=errors,
            extensions=extensions,
            headers=headers,
        )

    def invalid(self, pointer: str, code: str, detail: str) -> Response:
        """A 400 ``invalid_request`` with a single ``errors[]`` entry."""
        error = {"pointer": pointer, "detail": detail, "code": code}
        return self.problem(400, "invalid_request", detail, errors=[error])


def encode_cursor(offset: int) -> str:
    """Return the opaque cursor for a list offset."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """Return the offset inside ``cursor``, or ``None`` when it is not one of ours."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        found = _CURSOR.fullmatch(raw.decode("ascii"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return int(found.group(1)) if found else None


Handler = Callable[[Call, SimState, str], Response]


def handle(
    match: RouteMatch, call: Call, state: SimState, quirks: ListQuirks = ListQuirks()
) -> Response:
    """Run the handler of an authorised request to a known route."""
    if match.route == "list_vps":
        return _list_vps(call, state, quirks)
    return _HANDLERS[match.route](call, state, match.vps_id or "")


def _list_vps(call: Call, state: SimState, quirks: ListQuirks) -> Response:
    limit = DEFAULT_LIMIT
    if (raw_limit := call.query.get("limit")) is not None:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            code = "out_of_range" if raw_limit.isdigit() else "invalid_type"
            return call.invalid("/limit", code, f"limit must be an integer from 1 to {MAX_LIMIT}.")
        limit = int(raw_limit)
    offset = 0
    if cursor := call.query.get("cursor"):  # an empty cursor means "first page"
        decoded = decode_cursor(cursor)
        if decoded is None:
            return call.problem(400, "invalid_cursor")
        offset = decoded
    filters = {} if quirks.ignore_filters else {
        "name": call.query.get("name"), "primary_ip": call.query.get("primaryIp")
    }  # fmt: skip
    items = state.list_vps_json(account=call.account, **filters)
    has_more = offset + limit < len(items)
    next_cursor = encode_cursor(offset + limit) if has_more else None
    if quirks.repeat_cursor:
        has_more, next_cursor = True, encode_cursor(limit)
    return json_response(
        {"data": items[offset : offset + limit], "hasMore": has_more, "nextCursor": next_cursor}
    )


def _vps_not_found(call: Call) -> Response:
    return call.problem(404, "vps_not_found")


def _get_vps(call: Call, state: SimState, vps_id: str) -> Response:
    vps = state.get_vps(vps_id, call.account)
    return _vps_not_found(call) if vps is None else json_response(vps.to_json())


def _probe(call: Call, state: SimState, vps_id: str) -> Response:
    vps = state.get_vps(vps_id, call.account)
    return _vps_not_found(call) if vps is None else json_response(vps.agent_json())


def _parse_command(call: Call) -> str | Response:
    try:
        payload = json.loads(call.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return call.invalid("/command", "invalid_json", "Request body must be a JSON object.")
    command = payload.get("command") if isinstance(payload, dict) else None
    if command is None or command == "":
        return call.invalid("/command", "missing_required", "command is required.")
    if not isinstance(command, str):
        return call.invalid("/command", "invalid_type", "command must be a string.")
    if len(command) > MAX_COMMAND_LENGTH:
        detail = f"command must be at most {MAX_COMMAND_LENGTH} characters."
        return call.invalid("/command", "too_long", detail)
    return command


def _exec_start(call: Call, state: SimState, vps_id: str) -> Response:
    vps = state.get_vps(vps_id, call.account)
    if vps is None:
        return _vps_not_found(call)
    command = _parse_command(call)
    if isinstance(command, Response):
        return command
    if not vps.running:
        detail = f"VPS is not running (powerState: {vps.power_state})."
        return call.problem(409, "vps_not_ready", detail)
    if not vps.agent_available:
        detail = vps.agent_reason or "Guest agent is not available."
        return call.problem(409, "vps_not_ready", detail)
    if state.is_blocked(command):
        detail = "This command has been blocked for safety reasons."
        return call.problem(400, "command_blocked", detail)
    result: CommandResult = state.scripted(command) or run_default(command, hostname=vps.name)
    pid = state.start_process(vps_id, result)
    return json_response({"pid": pid, "pollUrl": f"/api/v2/vps/{vps_id}/agent/exec?pid={pid}"})


def _exec_output(call: Call, state: SimState, vps_id: str) -> Response:
    if state.get_vps(vps_id, call.account) is None:
        return _vps_not_found(call)
    raw_pid = call.query.get("pid", "")
    if not _POSITIVE_INT.fullmatch(raw_pid):
        return call.invalid("/pid", "invalid_type", "pid must be a positive integer.")
    output = state.process_json(vps_id, int(raw_pid))
    if output is None:
        detail = f"No process with pid {raw_pid} is known for this VPS (it may have expired)."
        return call.problem(404, "not_found", detail, title="Process not found")
    return json_response(output)


_HANDLERS: dict[str, Handler] = {
    "get_vps": _get_vps,
    "probe": _probe,
    "exec_start": _exec_start,
    "exec_output": _exec_output,
}
