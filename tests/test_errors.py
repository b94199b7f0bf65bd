"""The error tree (errors.py) and error_from_response (_outcomes.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest

import hostup_pulumi as hostup
from hostup_pulumi._outcomes import error_from_response
from hostup_pulumi.errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    FieldError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    Problem,
    RateLimitError,
    UnprocessableEntityError,
)

PATH = "/api/v2/vps/vps_01hxa3b4c5d6e7f8g9h0j1k2m3/agent/exec"


def problem(status: int, code: str, **extra: object) -> bytes:
    body: dict[str, object] = {
        "type": f"https://developer.hostup.se/errors/{code}",
        "title": "Something went wrong",
        "status": status,
        "detail": "A human explanation",
        "code": code,
        "instance": PATH,
        "requestId": "req_01hxa3b4c5d6e7f8g9h0j1k2m3",
        "timestamp": "2026-04-27T12:34:56.000Z",
    }
    body.update(extra)
    return json.dumps(body).encode()


def build(status: int, body: bytes = b"", headers: dict[str, str] | None = None, **kw: object):
    return error_from_response(
        status_code=status, headers=headers or {}, body=body, method="GET", path=PATH, **kw
    )


# -- the tree -------------------------------------------------------------------------------


def test_every_public_error_is_a_hostup_error() -> None:
    for name in (
        "APIConnectionError",
        "APITimeoutError",
        "APIStatusError",
        "BadRequestError",
        "AuthenticationError",
        "PermissionDeniedError",
        "NotFoundError",
        "ConflictError",
        "UnprocessableEntityError",
        "RateLimitError",
        "InternalServerError",
        "APIResponseValidationError",
        "ConfigurationError",
        "AgentUnavailableError",
        "CommandTimeoutError",
        "CommandFailedError",
        "ValidationError",
    ):
        assert issubclass(getattr(hostup, name), hostup.HostupError), name
    assert issubclass(APITimeoutError, APIConnectionError)
    assert not issubclass(APIResponseValidationError, APIStatusError)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "invalid_request", BadRequestError),
        (401, "unauthorized", AuthenticationError),
        (403, "forbidden", PermissionDeniedError),
        (404, "vps_not_found", NotFoundError),
        (409, "vps_not_ready", ConflictError),
        (422, "unprocessable", UnprocessableEntityError),
        (429, "rate_limited", RateLimitError),
        (500, "internal_error", InternalServerError),
        (502, "upstream_failed", InternalServerError),
        (503, "upstream_unavailable", InternalServerError),
        (504, "gateway_timeout", InternalServerError),
        (599, "whatever", InternalServerError),
    ],
)
def test_status_picks_the_class_and_code_is_kept(
    status: int, code: str, cls: type[APIStatusError]
) -> None:
    error = build(status, problem(status, code))
    assert type(error) is cls
    assert error.status_code == status
    assert error.code == code


@pytest.mark.parametrize("status", [402, 405, 410, 418, 451])
def test_unknown_4xx_is_a_plain_api_status_error(status: int) -> None:
    error = build(status, problem(status, "odd"))
    assert type(error) is APIStatusError
    assert error.status_code == status


def test_same_code_with_several_statuses_keeps_both() -> None:
    # upstream_failed comes as 409, 502 or 503: status picks the class, code stays the same.
    conflict = build(409, problem(409, "upstream_failed"))
    bad_gateway = build(502, problem(502, "upstream_failed"))
    assert isinstance(conflict, ConflictError)
    assert isinstance(bad_gateway, InternalServerError)
    assert conflict.code == bad_gateway.code == "upstream_failed"


# -- problem parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["application/problem+json", "application/json", "text/plain", "text/html"]
)
def test_problem_is_parsed_whatever_the_content_type(content_type: str) -> None:
    error = build(404, problem(404, "vps_not_found"), headers={"content-type": content_type})
    assert isinstance(error, NotFoundError)
    assert error.code == "vps_not_found"
    assert error.title == "Something went wrong"
    assert error.detail == "A human explanation"
    assert error.type == "https://developer.hostup.se/errors/vps_not_found"
    assert error.instance == PATH
    assert error.request_id == "req_01hxa3b4c5d6e7f8g9h0j1k2m3"
    assert error.timestamp == "2026-04-27T12:34:56.000Z"
    assert error.body_excerpt is None


def test_the_problem_fields_are_one_frozen_value() -> None:
    error = build(404, problem(404, "vps_not_found", blockerReasons=["x"]))
    assert error.problem == Problem(
        type="https://developer.hostup.se/errors/vps_not_found",
        title="Something went wrong",
        status=404,
        detail="A human explanation",
        code="vps_not_found",
        instance=PATH,
        request_id="req_01hxa3b4c5d6e7f8g9h0j1k2m3",
        timestamp="2026-04-27T12:34:56.000Z",
        errors=(),
        extensions={"blockerReasons": ["x"]},
    )
    assert hostup.Problem is Problem
    with pytest.raises(dataclasses.FrozenInstanceError):
        error.problem.code = "other"  # type: ignore[misc]
    # The error's attributes read the same value.
    assert (error.code, error.title, error.detail, error.type) == (
        "vps_not_found",
        "Something went wrong",
        "A human explanation",
        "https://developer.hostup.se/errors/vps_not_found",
    )
    assert (error.instance, error.request_id, error.timestamp) == (
        PATH,
        "req_01hxa3b4c5d6e7f8g9h0j1k2m3",
        "2026-04-27T12:34:56.000Z",
    )
    assert error.extensions == {"blockerReasons": ["x"]}


def test_a_status_error_can_be_built_from_a_problem() -> None:
    error = NotFoundError(
        status_code=404,
        method="GET",
        path="/api/v2/vps/vps_abcdef",
        problem=Problem(code="vps_not_found", title="No such VPS", request_id="req_1"),
    )
    assert str(error) == (
        "HTTP 404 vps_not_found on GET /api/v2/vps/vps_abcdef: No such VPS. request id req_1"
    )
    assert error.problem.status is None  # the body's own status member; none was given
    bare = APIStatusError(status_code=418, method="GET", path="/x")
    assert bare.problem == Problem()
    assert str(bare) == "HTTP 418 on GET /x"


def test_field_errors_are_parsed_and_named_in_the_message() -> None:
    body = problem(
        400,
        "invalid_request",
        errors=[
            {"pointer": "/command", "detail": "must not be empty", "code": "missing_required"},
            {"pointer": "/pid", "detail": "must be an integer"},
            "not an object",
        ],
    )
    error = build(400, body)
    assert error.errors == (
        FieldError("/command", "must not be empty", "missing_required"),
        FieldError("/pid", "must be an integer", None),
    )
    message = str(error)
    assert "/command: must not be empty (missing_required)" in message
    assert "/pid: must be an integer" in message


def test_field_error_without_pointer_or_detail_still_reads() -> None:
    assert str(FieldError(None, None, None)) == "(body): invalid"


def test_extensions_nested_and_top_level_are_both_kept() -> None:
    body = problem(
        409, "vps_not_ready", extensions={"retryable": True}, blockerReasons=["not_verified"]
    )
    error = build(409, body)
    assert error.extensions == {"retryable": True, "blockerReasons": ["not_verified"]}


def test_request_id_falls_back_to_the_response_header() -> None:
    error = build(500, b"", headers={"x-request-id": "req_from_header"})
    assert error.request_id == "req_from_header"
    assert "req_from_header" in str(error)


def test_non_string_problem_members_are_ignored() -> None:
    body = json.dumps({"code": 7, "title": None, "detail": ["x"], "errors": "nope"}).encode()
    error = build(400, body)
    assert isinstance(error, BadRequestError)
    assert error.code is None
    assert error.title is None
    assert error.detail is None
    assert error.errors == ()


@pytest.mark.parametrize("body", [b"[1, 2, 3]", b'"just a string"', b"42", b"null"])
def test_json_that_is_not_an_object_is_shown_as_an_excerpt(body: bytes) -> None:
    error = build(503, body)
    assert isinstance(error, InternalServerError)
    assert error.code is None
    assert error.body_excerpt == body.decode()


def test_html_body_gives_the_status_class_and_a_short_tag_free_excerpt() -> None:
    page = (
        b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
        b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
        + b"<p>"
        + b"padding " * 500
        + b"</p></body>\r\n</html>\r\n"
    )
    error = build(502, page, headers={"content-type": "text/html"})
    assert isinstance(error, InternalServerError)
    assert error.code is None
    assert error.body_excerpt is not None
    assert error.body_excerpt.startswith("502 Bad Gateway 502 Bad Gateway nginx")
    assert "<" not in error.body_excerpt
    assert "\n" not in error.body_excerpt
    assert len(error.body_excerpt) <= 160
    message = str(error)
    assert "HTTP 502" in message
    assert "502 Bad Gateway" in message
    assert len(message) < 400


def test_empty_body_gives_a_bare_message() -> None:
    error = build(503, b"")
    assert isinstance(error, InternalServerError)
    assert error.body_excerpt is None
    assert str(error) == f"HTTP 503 on GET {PATH}"


def test_invalid_utf8_body_does_not_break_the_error() -> None:
    error = build(500, b"\xff\xfe\xfa garbage \x80")
    assert isinstance(error, InternalServerError)
    assert "garbage" in str(error)


# -- the message ----------------------------------------------------------------------------


def test_message_names_status_code_title_detail_request_id_and_path() -> None:
    error = build(404, problem(404, "vps_not_found"))
    message = str(error)
    for part in (
        "HTTP 404",
        "vps_not_found",
        "Something went wrong",
        "A human explanation",
        "req_01hxa3b4c5d6e7f8g9h0j1k2m3",
        f"GET {PATH}",
    ):
        assert part in message, part


def test_401_says_how_to_set_the_key() -> None:
    body = problem(401, "unauthorized", title="Unauthorized", detail="Invalid API key")
    error = build(401, body)
    assert isinstance(error, AuthenticationError)
    assert str(error) == (
        f"HTTP 401 unauthorized on GET {PATH}: Unauthorized: Invalid API key. HostUp refused "
        "the credentials. Set the key with `pulumi config set --secret hostup:apiKey <key>` or "
        "the HOSTUP_API_KEY environment variable (keys are created at "
        "https://cloud.hostup.se/api-management). request id req_01hxa3b4c5d6e7f8g9h0j1k2m3"
    )


def test_403_for_a_missing_scope_says_which() -> None:
    error = build(403, problem(403, "forbidden", title="Forbidden", detail="Missing scope"),
                  required_scope="write:vm")  # fmt: skip
    assert str(error) == (
        f"HTTP 403 forbidden on GET {PATH}: Forbidden: Missing scope. This call needs an API "
        "key with the 'write:vm' scope (create one at https://cloud.hostup.se/api-management); "
        "if the key has it, the VPS may belong to another account. request id "
        "req_01hxa3b4c5d6e7f8g9h0j1k2m3"
    )


@pytest.mark.parametrize("scope", ["read:vm", "write:vm"])
def test_403_names_the_scope_needed(scope: str) -> None:
    error = build(403, problem(403, "forbidden"), required_scope=scope)
    assert isinstance(error, PermissionDeniedError)
    assert error.required_scope == scope
    assert f"'{scope}' scope" in str(error)


def test_scope_is_only_mentioned_on_403() -> None:
    error = build(404, problem(404, "vps_not_found"), required_scope="write:vm")
    assert "write:vm" not in str(error)


def test_rate_limit_error_carries_retry_after() -> None:
    error = build(429, problem(429, "rate_limited"), retry_after=2.5)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 2.5


def test_status_error_that_may_have_started_a_command_says_so() -> None:
    error = build(502, b"<html>bad gateway</html>", command_may_have_started=True)
    assert error.command_may_have_started is True
    assert "may have started" in str(error)
    assert "may have started" not in str(build(502, b"<html>bad gateway</html>"))


def test_connection_error_that_may_have_started_a_command_says_so() -> None:
    started = APIConnectionError(
        "POST x failed", method="POST", path="x", command_may_have_started=True
    )
    plain = APITimeoutError("GET x timed out", method="GET", path="x")
    assert "may have started" in str(started)
    assert started.command_may_have_started is True
    assert "may have started" not in str(plain)
    assert plain.command_may_have_started is False


def test_headers_are_kept_as_a_plain_dict() -> None:
    error = build(429, problem(429, "rate_limited"), headers={"retry-after": "3"})
    assert error.headers == {"retry-after": "3"}


# -- the other errors -----------------------------------------------------------------------


def test_agent_unavailable_error_explains_what_to_do() -> None:
    error = hostup.AgentUnavailableError("vps_abcdef123", "VM is not running", False)
    # A stopped VM is told to start; a running VM whose agent is silent, to fix the agent.
    assert str(error) == (
        "QEMU guest agent command execution is not available on vps_abcdef123: VM is not "
        "running (VM running: false). Start the VM"
    )
    silent = hostup.AgentUnavailableError(
        "vps_abcdef123", "QEMU guest agent is not responding", True, wait_hint="Wait a bit"
    )
    assert str(silent) == (
        "QEMU guest agent command execution is not available on vps_abcdef123: QEMU guest agent "
        "is not responding (VM running: true). Make sure qemu-guest-agent is installed and "
        "running in the guest (Debian or Ubuntu: `apt install qemu-guest-agent && systemctl "
        "enable --now qemu-guest-agent`). Wait a bit"
    )
    assert (error.vps_id, error.reason, error.vm_running) == (
        "vps_abcdef123",
        "VM is not running",
        False,
    )


def test_agent_unavailable_error_without_a_reason() -> None:
    message = str(hostup.AgentUnavailableError("vps_abcdef123", None, None))
    assert "no reason" in message
    assert "VM running" not in message


def test_command_failed_error_names_exit_code_but_not_output() -> None:
    output = hostup.AgentExecOutput(
        exited=True, exit_code=3, stdout="s3cret-out", stderr="s3cret-err"
    )
    error = hostup.CommandFailedError(vps_id="vps_abcdef123", pid=4242, exit_code=3, output=output)
    message = str(error)
    assert "4242" in message
    assert "code 3" in message
    assert "s3cret" not in message
    assert "s3cret" not in repr(error)
    assert error.output.stdout == "s3cret-out"


def test_command_failed_error_says_how_to_see_the_output() -> None:
    output = hostup.AgentExecOutput(exited=True, exit_code=3, stdout="s3cret", stderr="")
    error = hostup.CommandFailedError(vps_id="vps_abcdef123", pid=4242, exit_code=3, output=output)
    assert str(error) == (
        "command pid 4242 on vps_abcdef123 exited with code 3; its output is kept out of this "
        "message (it may be secret): to see it, set fail_on_nonzero_exit=False and export "
        "stdout/stderr, or run `hostup-pulumi output vps_abcdef123 4242`"
    )


def test_command_failed_error_of_a_killed_command_names_the_signal() -> None:
    output = hostup.AgentExecOutput.model_validate({"exited": True, "signal": 9})
    error = hostup.CommandFailedError(
        vps_id="vps_abcdef123", pid=4242, exit_code=None, output=output
    )
    assert str(error).startswith(
        "command pid 4242 on vps_abcdef123 ended without an exit code (signal 9); its output "
    )


def test_command_timeout_error_that_stopped_early_says_why_from_its_fields() -> None:
    asked = hostup.CommandTimeoutError(
        "command pid 7 on vps_abcdef123 did not exit within 10s (still running)",
        vps_id="vps_abcdef123", timeout=10.0, pid=7,
        stopped_early=True, server_wait=50.0, failed_status=429,
    )  # fmt: skip
    assert str(asked) == (
        "command pid 7 on vps_abcdef123 did not exit within 10s (still running); stopped "
        "early: the API answered HTTP 429 and asked to wait 50s, past the deadline"
    )
    assert (asked.stopped_early, asked.server_wait, asked.failed_status) == (True, 50.0, 429)
    failing = hostup.CommandTimeoutError(
        "late", vps_id="vps_abcdef123", timeout=10.0, stopped_early=True, failed_status=503
    )
    assert str(failing) == (
        "late; stopped early: the last poll failed (HTTP 503) and another try would pass the "
        "deadline"
    )
    dropped = hostup.CommandTimeoutError(
        "late", vps_id="vps_abcdef123", timeout=10.0, stopped_early=True
    )
    assert str(dropped) == (
        "late; stopped early: the last poll failed (no usable answer) and another try would "
        "pass the deadline"
    )
    plain = hostup.CommandTimeoutError("late", vps_id="vps_abcdef123", timeout=10.0)
    assert (str(plain), plain.stopped_early, plain.server_wait) == ("late", False, None)


def test_command_timeout_error_keeps_last_output() -> None:
    output = hostup.AgentExecOutput(exited=False, stdout="partial")
    error = hostup.CommandTimeoutError(
        "did not exit", vps_id="vps_abcdef123", timeout=5.0, pid=7, last_output=output
    )
    assert error.last_output is output
    assert (error.vps_id, error.pid, error.timeout) == ("vps_abcdef123", 7, 5.0)
    assert error.last_availability is None


def test_every_error_survives_pickling() -> None:
    import pickle

    from hostup_pulumi import (
        AgentUnavailableError,
        CommandFailedError,
        CommandTimeoutError,
        ValidationError,
    )
    from hostup_pulumi.functions import AgentPreconditionError
    from hostup_pulumi.models import AgentExecOutput

    output = AgentExecOutput.model_validate({"exited": True, "exitCode": 3})
    errors = [
        AgentUnavailableError("vps_0123456789", "VM is not running", False, waited=2.0),
        AgentPreconditionError("vps_0123456789", "agent not responding", True),
        CommandTimeoutError(
            "late", vps_id="vps_0123456789", timeout=1.0, pid=7, last_output=output
        ),
        CommandTimeoutError(
            "late", vps_id="vps_0123456789", timeout=1.0, stopped_early=True, server_wait=9.0
        ),
        CommandFailedError(vps_id="vps_0123456789", pid=7, exit_code=3, output=output),
        ValidationError("bad id"),
        build(404, problem(404, "vps_not_found", errors=[{"pointer": "/x"}], extra={"a": 1})),
        build(429, problem(429, "rate_limited"), retry_after=2.5),
        build(502, b"<html>bad gateway</html>", command_may_have_started=True),
        APITimeoutError("GET x timed out", method="GET", path="x"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert copy.__dict__ == error.__dict__


def test_a_403_that_is_not_about_scopes_does_not_blame_the_scope() -> None:
    from hostup_pulumi._outcomes import error_from_response

    inactive = error_from_response(
        status_code=403, headers={}, method="GET", path="/api/v2/vps", required_scope="read:vm",
        body=b'{"status": 403, "code": "account_inactive", "title": "Account inactive"}',
    )  # fmt: skip
    forbidden = error_from_response(
        status_code=403, headers={}, method="GET", path="/api/v2/vps", required_scope="read:vm",
        body=b'{"status": 403, "code": "forbidden", "title": "Forbidden"}',
    )  # fmt: skip
    assert "account_inactive" in str(inactive)
    assert "read:vm" not in str(inactive)
    assert "read:vm" in str(forbidden)
