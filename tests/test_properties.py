"""Property-based tests: whatever the server sends, only HostupErrors come out."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timezone
from typing import Any

import httpx
from helpers import FakeClock, FlowDriver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostup_pulumi import (
    AgentAvailability,
    AgentExecOutput,
    AgentExecStarted,
    APIResponseValidationError,
    APIStatusError,
    ConfigurationError,
    InternalServerError,
    Settings,
    ValidationError,
    Vps,
)
from hostup_pulumi import _endpoints as endpoints
from hostup_pulumi._core import Core
from hostup_pulumi._outcomes import error_from_response
from hostup_pulumi._retry import RetryPolicy, parse_rate_limit_reset, parse_retry_after
from hostup_pulumi._validation import validate_pid, validate_vps_id
from hostup_pulumi.models import VpsPage

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VID = "vps_01hxa3b4c5d6e7f8g9h0j1k2m3"
NOW = datetime(2026, 4, 27, 12, 0, 0, tzinfo=timezone.utc)
CLOCK = FakeClock()
CORE = Core(
    Settings.resolve(api_key="hk_prop_key", base_url="https://api.example.test", env={}),
    retry=RetryPolicy(max_retries=0),
    rng=random.Random(0),
    clock=CLOCK,
    now=lambda: NOW,
)

# Keys the models know, mixed with arbitrary ones, so that values reach the validators.
KNOWN_KEYS = [
    "available",
    "reason",
    "vmRunning",
    "pid",
    "pollUrl",
    "exited",
    "exitCode",
    "exitcode",
    "stdout",
    "stderr",
    "signal",
    "truncated",
    "id",
    "name",
    "primaryIp",
    "powerState",
    "serviceStatus",
    "operatingSystem",
    "billing",
    "resources",
    "data",
    "hasMore",
    "nextCursor",
]
scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=25,
)
json_objects = st.dictionaries(
    st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), json_values, max_size=8
)
MODELS = [AgentAvailability, AgentExecOutput, Vps, VpsPage]


def run_flow(flow: Any, response: httpx.Response) -> Any:
    """Drive a flow whose every request gets ``response``; no retries are configured."""
    return FlowDriver(lambda request: response, CLOCK).run(flow)


def check_parse(body: bytes) -> None:
    for model in MODELS:
        op = endpoints.get_agent_availability(VID)
        try:
            result = CORE.parse(op, httpx.Response(200, content=body), model)
        except APIResponseValidationError as exc:
            assert exc.status_code == 200  # noqa: PT017 - either outcome is allowed
        else:
            assert isinstance(result, model)


@FAST
@given(json_values | json_objects)
def test_any_json_as_a_2xx_body_is_a_model_or_a_validation_error(value: Any) -> None:
    check_parse(json.dumps(value).encode())


@FAST
@given(st.binary(max_size=300))
def test_any_bytes_as_a_2xx_body_is_a_model_or_a_validation_error(body: bytes) -> None:
    check_parse(body)


@FAST
@given(json_values | json_objects | st.binary(max_size=100))
def test_any_2xx_start_body_gives_a_pid_or_says_the_command_may_have_started(value: Any) -> None:
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    flow = CORE.start_agent_exec(VID, "uname -a")
    try:
        started = run_flow(flow, httpx.Response(200, content=body))
    except APIResponseValidationError as exc:
        assert "may have started" in str(exc)  # noqa: PT017 - either outcome is allowed
    else:
        assert isinstance(started, AgentExecStarted)
        assert started.pid > 0


@FAST
@given(
    status=st.integers(400, 599),
    body=st.binary(max_size=300) | json_objects.map(lambda o: json.dumps(o).encode()),
    headers=st.dictionaries(
        st.sampled_from(["retry-after", "x-request-id", "x-ratelimit-reset", "content-type"]),
        st.text(max_size=30),
        max_size=4,
    ),
)
def test_error_from_response_never_raises(
    status: int, body: bytes, headers: dict[str, str]
) -> None:
    error = error_from_response(
        status_code=status, headers=headers, body=body, method="GET", path="/api/v2/vps"
    )
    assert isinstance(error, APIStatusError)
    assert error.status_code == status
    assert (status >= 500) == isinstance(error, InternalServerError)
    message = str(error)
    assert f"HTTP {status}" in message
    if error.body_excerpt is not None:
        assert len(error.body_excerpt) <= 160


@FAST
@given(
    status=st.integers(300, 599),
    body=st.binary(max_size=200),
    headers=st.dictionaries(
        st.sampled_from(["retry-after", "x-ratelimit-reset", "x-request-id"]),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
        max_size=3,
    ),
)
def test_any_error_response_through_a_flow_is_an_api_status_error(
    status: int, body: bytes, headers: dict[str, str]
) -> None:
    response = httpx.Response(status, content=body, headers=headers)
    for flow in (
        CORE.get_vps(VID),
        CORE.start_agent_exec(VID, "uname -a"),
    ):
        try:
            run_flow(flow, response)
        except APIStatusError as exc:
            assert exc.status_code == status  # noqa: PT017 - either outcome is allowed
        else:  # pragma: no cover - a non-2xx status must never parse
            raise AssertionError("a non-2xx response was accepted")


@FAST
@given(st.text(max_size=60) | st.none())
def test_server_wait_parsers_never_raise(value: str | None) -> None:
    for parse in (parse_retry_after, parse_rate_limit_reset):
        wait = parse(value, NOW)
        assert wait is None or (math.isfinite(wait) and wait >= 0)


@FAST
@given(st.text(max_size=100))
def test_validate_vps_id_accepts_ids_or_raises_validation_error(value: str) -> None:
    try:
        assert validate_vps_id(value) == value
    except ValidationError as exc:
        assert "vps_" in str(exc)  # noqa: PT017 - either outcome is allowed
    else:
        assert value.startswith("vps_")
        assert value[4:].isalnum()
        assert value.isascii()


@FAST
@given(st.integers() | st.floats() | st.text(max_size=10) | st.booleans() | st.none())
def test_validate_pid_returns_a_positive_int_or_raises_validation_error(value: Any) -> None:
    try:
        pid = validate_pid(value)
    except ValidationError:
        return
    assert type(pid) is int
    assert pid >= 1
    assert pid == value


@FAST
@given(st.text(min_size=10, max_size=40))
def test_a_key_is_accepted_or_refused_but_never_echoed(tail: str) -> None:
    key = "zqxk" + tail
    try:
        resolved = Settings.resolve(api_key=key, env={})
    except ConfigurationError as exc:
        assert "zqxk" not in str(exc)  # noqa: PT017 - either outcome is allowed
    else:
        assert resolved.api_key == key.strip()
        assert "zqxk" not in repr(resolved)
        request = Core(resolved).build_request(endpoints.get_agent_availability(VID))
        assert request.headers["authorization"] == f"Bearer {key.strip()}"
