"""The sans-I/O core (_core.py): retry decisions, waits, parsing, polling, the 429 gate.

Flows are driven here the way the clients drive them, but on a fake clock and with scripted
answers, so every decision is checked exactly and nothing really sleeps.
"""

from __future__ import annotations

import json
import logging
import math
import random
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from helpers import Answer, FakeClock, FlowDriver

from hostup_pulumi import (
    AgentUnavailableError,
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CommandTimeoutError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    Settings,
    ValidationError,
    Vps,
)
from hostup_pulumi import _endpoints as endpoints
from hostup_pulumi._core import Core
from hostup_pulumi._endpoints import USER_AGENT, Operation
from hostup_pulumi._pacing import EXEC_POLL, PollSchedule
from hostup_pulumi._retry import RetryPolicy, parse_rate_limit_reset, parse_retry_after, server_wait

KEY = "hk_test_SUPERSECRETKEY_0123456789"
BASE = "https://api.example.test"
VID = "vps_01hxa3b4c5d6e7f8g9h0j1k2m3"
NOW = datetime(2026, 4, 27, 12, 0, 0, tzinfo=timezone.utc)

#: Each core's fake clock, for the flow driver (a test sees the core, not its clock).
_CLOCKS: weakref.WeakKeyDictionary[Core, FakeClock] = weakref.WeakKeyDictionary()


def make_core(
    *,
    max_retries: int = 2,
    clock: FakeClock | None = None,
    session_cookie: str | None = None,
    api_key: str | None = KEY,
    base_url: str = BASE,
    poll: PollSchedule | None = None,
    **retry: Any,
) -> Core:
    settings = Settings.resolve(
        api_key=api_key, session_cookie=session_cookie, base_url=base_url, env={}
    )
    clock = clock if clock is not None else FakeClock(1000.0)
    core = Core(
        settings,
        retry=RetryPolicy(max_retries=max_retries, **retry),
        rng=random.Random(7),
        clock=clock,
        now=lambda: NOW,
        poll=poll,
    )
    _CLOCKS[core] = clock
    return core


def driver_for(
    core: Core, answers: list[Answer] | Callable[[httpx.Request], Answer], latency: float = 0.0
) -> FlowDriver:
    """A FlowDriver on ``core``'s clock."""
    return FlowDriver(answers, _CLOCKS[core], latency)


def resp(
    status: int = 200,
    body: Any = None,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    if content is None:
        content = b"" if body is None else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers)


def problem(status: int, code: str, **headers: str) -> httpx.Response:
    body = {
        "type": f"https://developer.hostup.se/errors/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "detail": f"detail of {code}",
        "code": code,
        "requestId": "req_0123",
    }
    return resp(status, body, headers={"content-type": "application/problem+json", **headers})


OK_PROBE = {"available": True, "reason": None, "vmRunning": True}
STARTED = {"pid": 4242, "pollUrl": f"/api/v2/vps/{VID}/agent/exec?pid=4242"}


def running(stdout: str = "") -> httpx.Response:
    return resp(200, {"exited": False, "stdout": stdout})


def exited(code: int = 0, stdout: str = "done\n") -> httpx.Response:
    return resp(200, {"exited": True, "exitCode": code, "stdout": stdout, "stderr": ""})


def get_ops(core: Core) -> list[Operation]:
    return [
        endpoints.get_agent_availability(VID),
        endpoints.get_agent_exec_output(VID, 4242),
        endpoints.get_vps(VID),
        endpoints.list_vps(),
    ]


# -- retry classification -------------------------------------------------------------------

REQ = httpx.Request("GET", BASE)
GET_RETRYABLE_ERRORS = [
    httpx.ConnectError("refused", request=REQ),
    httpx.ConnectTimeout("connect timed out", request=REQ),
    httpx.PoolTimeout("pool timed out", request=REQ),
    httpx.ReadTimeout("read timed out", request=REQ),
    httpx.WriteTimeout("write timed out", request=REQ),
    httpx.ReadError("connection reset", request=REQ),
    httpx.WriteError("broken pipe", request=REQ),
    httpx.RemoteProtocolError("server disconnected", request=REQ),
]
NEVER_SENT_ERRORS = GET_RETRYABLE_ERRORS[:3]
MAYBE_SENT_ERRORS = GET_RETRYABLE_ERRORS[3:]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_get_retries_on_transient_statuses(status: int) -> None:
    core = make_core()
    for op in get_ops(core):
        assert core.retry_delay(op, 0, resp(status)) is not None, op.name


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_get_does_not_retry_client_errors(status: int) -> None:
    core = make_core()
    for op in get_ops(core):
        assert core.retry_delay(op, 0, resp(status)) is None, op.name


@pytest.mark.parametrize("exc", GET_RETRYABLE_ERRORS, ids=lambda e: type(e).__name__)
def test_get_retries_on_connection_errors_and_timeouts(exc: Exception) -> None:
    core = make_core()
    for op in get_ops(core):
        assert core.retry_delay(op, 0, exc) is not None, op.name


def test_get_does_not_retry_errors_in_its_own_request() -> None:
    core = make_core()
    op = endpoints.get_agent_availability(VID)
    assert core.retry_delay(op, 0, httpx.UnsupportedProtocol("no", request=REQ)) is None
    assert core.retry_delay(op, 0, httpx.LocalProtocolError("no", request=REQ)) is None
    assert core.retry_delay(op, 0, RuntimeError("not a transport error")) is None


@pytest.mark.parametrize("exc", NEVER_SENT_ERRORS, ids=lambda e: type(e).__name__)
def test_post_exec_retries_when_the_request_never_left(exc: Exception) -> None:
    core = make_core()
    assert core.retry_delay(endpoints.start_agent_exec(VID, "uname -a"), 0, exc) is not None


def test_post_exec_retries_on_429() -> None:
    core = make_core()
    assert core.retry_delay(endpoints.start_agent_exec(VID, "uname -a"), 0, resp(429)) is not None


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504, 400, 409])
def test_post_exec_never_retries_other_statuses(status: int) -> None:
    core = make_core()
    assert core.retry_delay(endpoints.start_agent_exec(VID, "uname -a"), 0, resp(status)) is None


@pytest.mark.parametrize("exc", MAYBE_SENT_ERRORS, ids=lambda e: type(e).__name__)
def test_post_exec_never_retries_once_the_request_may_have_arrived(exc: Exception) -> None:
    core = make_core()
    assert core.retry_delay(endpoints.start_agent_exec(VID, "uname -a"), 0, exc) is None


def test_no_retry_beyond_max_retries() -> None:
    core = make_core(max_retries=2)
    op = endpoints.get_agent_availability(VID)
    assert core.retry_delay(op, 1, resp(503)) is not None
    assert core.retry_delay(op, 2, resp(503)) is None
    assert make_core(max_retries=0).retry_delay(op, 0, resp(503)) is None


def test_no_retry_that_would_pass_the_deadline() -> None:
    clock = FakeClock(1000.0)
    core = make_core(clock=clock)
    op = endpoints.get_agent_availability(VID, deadline=clock.t + 1.0)
    assert core.retry_delay(op, 0, resp(503, headers={"retry-after": "0.5"})) == 0.5
    assert core.retry_delay(op, 0, resp(503, headers={"retry-after": "2"})) is None


# -- retries, end to end through a flow -----------------------------------------------------


def test_get_retried_then_succeeds() -> None:
    core = make_core()
    driver = driver_for(
        core,
        [problem(503, "upstream_unavailable"), resp(502, content=b"<html/>"), resp(200, OK_PROBE)],
    )
    probe = driver.run(core.get_agent_availability(VID))
    assert probe.available is True
    assert len(driver.requests) == 3
    assert len(driver.sleeps) == 2


def test_get_gives_up_after_max_retries_with_the_last_error() -> None:
    core = make_core(max_retries=2)
    driver = driver_for(core, [problem(503, "upstream_unavailable")] * 3)
    with pytest.raises(InternalServerError) as info:
        driver.run(core.get_vps(VID))
    assert info.value.status_code == 503
    assert info.value.code == "upstream_unavailable"
    assert len(driver.requests) == 3


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "invalid_request", BadRequestError),
        (401, "unauthorized", AuthenticationError),
        (403, "forbidden", PermissionDeniedError),
        (404, "vps_not_found", NotFoundError),
        (409, "vps_not_ready", ConflictError),
    ],
)
def test_get_client_error_raised_after_one_request(status: int, code: str, cls: type) -> None:
    core = make_core()
    driver = driver_for(core, [problem(status, code)])
    with pytest.raises(cls) as info:
        driver.run(core.get_agent_availability(VID))
    assert info.value.code == code
    assert len(driver.requests) == 1
    assert driver.sleeps == []


LOCAL = "http://127.0.0.1:9"
REFUSED = httpx.ConnectError("[Errno 111] Connection refused")


def test_a_refused_connection_is_named_with_host_and_port_after_its_retries() -> None:
    core = make_core(base_url=LOCAL)
    driver = driver_for(core, [REFUSED, REFUSED, REFUSED])
    with pytest.raises(APIConnectionError) as info:
        driver.run(core.get_agent_availability(VID))
    assert str(info.value) == (
        f"GET /api/v2/vps/{VID}/agent/exec failed after 3 attempts: could not connect to "
        "127.0.0.1:9: connection refused"
    )
    assert type(info.value) is APIConnectionError
    assert (info.value.host, info.value.port, info.value.connected) == ("127.0.0.1", 9, False)
    assert info.value.command_may_have_started is False
    assert len(driver.requests) == 3


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (httpx.ConnectError("[Errno -2] Name or service not known"), "host name not found"),
        (httpx.ConnectError("[Errno 101] Network is unreachable"), "network is unreachable"),
        (httpx.ConnectError(""), "connection failed"),
    ],
)
def test_other_connect_failures_say_what_happened(failure: Exception, said: str) -> None:
    core = make_core(base_url="https://api.example.test", max_retries=0)
    with pytest.raises(APIConnectionError) as info:
        driver_for(core, [failure]).run(core.get_vps(VID))
    assert str(info.value) == (
        f"GET /api/v2/vps/{VID} failed: could not connect to api.example.test:443: {said}"
    )


def test_a_connect_timeout_names_the_connect_timeout() -> None:
    core = make_core(base_url=LOCAL, max_retries=1)
    timeouts = [httpx.ConnectTimeout("timed out"), httpx.ConnectTimeout("timed out")]
    with pytest.raises(APITimeoutError) as info:
        driver_for(core, timeouts).run(core.get_vps(VID))
    assert str(info.value) == (
        f"GET /api/v2/vps/{VID} failed after 2 attempts: could not connect to 127.0.0.1:9 within 5s"
    )
    assert info.value.connected is False


def test_a_read_timeout_names_the_read_timeout() -> None:
    core = make_core(base_url=LOCAL, max_retries=0)
    with pytest.raises(APITimeoutError) as info:
        driver_for(core, [httpx.ReadTimeout("timed out")]).run(core.get_vps(VID, timeout=7.5))
    assert str(info.value) == (
        f"GET /api/v2/vps/{VID} failed: no answer from 127.0.0.1:9 within 7.5s (read timeout)"
    )
    assert info.value.connected is True


def test_a_refused_connection_during_a_wait_is_a_connection_error_not_a_timeout() -> None:
    core = make_core(base_url=LOCAL, max_retries=0)
    driver = driver_for(core, lambda request: REFUSED, latency=0.5)
    with pytest.raises(APIConnectionError) as info:
        driver.run(core.wait_for_agent_exec(VID, 4242, timeout=5))
    assert str(info.value) == (
        f"GET /api/v2/vps/{VID}/agent/exec?pid=4242 failed: could not connect to "
        "127.0.0.1:9: connection refused"
    )
    assert "asked to wait" not in str(info.value)
    assert len(driver.requests) > 1  # polled again within the deadline: it may come back


def test_get_connection_errors_exhausted_give_api_connection_error() -> None:
    core = make_core(max_retries=1)
    driver = driver_for(core, [httpx.ConnectError("refused"), httpx.ConnectError("refused")])
    with pytest.raises(APIConnectionError) as info:
        driver.run(core.get_agent_availability(VID))
    assert not isinstance(info.value, APITimeoutError)
    assert "could not connect to api.example.test:443" in str(info.value)
    assert info.value.command_may_have_started is False
    assert len(driver.requests) == 2


def test_get_read_timeouts_exhausted_give_api_timeout_error() -> None:
    core = make_core(max_retries=1)
    driver = driver_for(core, [httpx.ReadTimeout("timed out")] * 2)
    with pytest.raises(APITimeoutError) as info:
        driver.run(core.get_agent_exec_output(VID, 4242))
    assert info.value.method == "GET"
    assert info.value.path == f"/api/v2/vps/{VID}/agent/exec?pid=4242"
    assert len(driver.requests) == 2


@pytest.mark.parametrize("exc", NEVER_SENT_ERRORS, ids=lambda e: type(e).__name__)
def test_post_exec_retried_after_connect_failure_then_starts_once(exc: Exception) -> None:
    core = make_core()
    driver = driver_for(core, [exc, resp(200, STARTED)])
    started = driver.run(core.start_agent_exec(VID, "uname -a"))
    assert started.pid == 4242
    assert len(driver.requests) == 2


def test_post_exec_retried_after_429() -> None:
    core = make_core()
    driver = driver_for(
        core, [problem(429, "rate_limited", **{"retry-after": "1"}), resp(200, STARTED)]
    )
    assert driver.run(core.start_agent_exec(VID, "uname -a")).pid == 4242
    assert len(driver.requests) == 2
    assert driver.sleeps == [1.0]


def test_post_exec_connect_failures_exhausted_did_not_start_the_command() -> None:
    core = make_core(max_retries=1)
    driver = driver_for(core, [httpx.ConnectError("refused")] * 2)
    with pytest.raises(APIConnectionError) as info:
        driver.run(core.start_agent_exec(VID, "uname -a"))
    assert info.value.command_may_have_started is False
    assert "may have started" not in str(info.value)


@pytest.mark.parametrize("exc", MAYBE_SENT_ERRORS, ids=lambda e: type(e).__name__)
def test_post_exec_sent_once_after_a_dropped_connection_or_timeout(exc: Exception) -> None:
    core = make_core(max_retries=5)
    driver = driver_for(core, [exc])
    with pytest.raises(APIConnectionError) as info:
        driver.run(core.start_agent_exec(VID, "uname -a"))
    assert len(driver.requests) == 1
    assert info.value.command_may_have_started is True
    assert "may have started" in str(info.value)
    assert isinstance(info.value, APITimeoutError) == isinstance(exc, httpx.TimeoutException)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_post_exec_sent_once_after_a_5xx(status: int) -> None:
    core = make_core(max_retries=5)
    driver = driver_for(core, [resp(status, content=b"<html><h1>Bad gateway</h1></html>")])
    with pytest.raises(InternalServerError) as info:
        driver.run(core.start_agent_exec(VID, "uname -a"))
    assert len(driver.requests) == 1
    assert info.value.command_may_have_started is True
    assert "may have started" in str(info.value)


def test_post_exec_4xx_does_not_claim_the_command_may_have_started() -> None:
    core = make_core()
    driver = driver_for(core, [problem(400, "invalid_request")])
    with pytest.raises(BadRequestError) as info:
        driver.run(core.start_agent_exec(VID, "rm -rf /"))
    assert info.value.command_may_have_started is False
    assert "may have started" not in str(info.value)


# -- server waits: Retry-After and X-RateLimit-Reset ----------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (" 7 ", 7.0),
        ("-4", 0.0),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_http_date() -> None:
    later = format_datetime(NOW + timedelta(seconds=5), usegmt=True)
    earlier = format_datetime(NOW - timedelta(seconds=30), usegmt=True)
    assert later.endswith("GMT")
    assert parse_retry_after(later, NOW) == 5.0
    assert parse_retry_after(earlier, NOW) == 0.0
    assert parse_retry_after("Mon, 99 Foo 2026 99:99:99 GMT", NOW) is None
    # "-0000" means "zone unknown": read as UTC.
    assert parse_retry_after(later.replace("GMT", "-0000"), NOW) == 5.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ((NOW + timedelta(seconds=7)).isoformat().replace("+00:00", "Z"), 7.0),
        ("2026-04-27T12:00:07.000Z", 7.0),
        ("2026-04-27T14:00:07+02:00", 7.0),
        ("2026-04-27T12:00:07", 7.0),  # no zone: read as UTC
        ("2026-04-27T11:00:00Z", 0.0),  # already past
        (str(int(NOW.timestamp()) + 9), 9.0),  # epoch seconds, tolerated
        ("4", 4.0),  # a small number: a delay
        ("tomorrow", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_parse_rate_limit_reset(value: str | None, expected: float | None) -> None:
    assert parse_rate_limit_reset(value, NOW) == expected


def test_server_wait_prefers_retry_after_and_falls_back_to_reset() -> None:
    reset = "2026-04-27T12:00:09Z"
    assert server_wait(httpx.Headers({"Retry-After": "2", "X-RateLimit-Reset": reset}), NOW) == 2
    assert server_wait(httpx.Headers({"X-RateLimit-Reset": reset}), NOW) == 9
    assert (
        server_wait(httpx.Headers({"Retry-After": "bogus", "X-RateLimit-Reset": reset}), NOW) == 9
    )
    assert server_wait(httpx.Headers({}), NOW) is None


def test_retry_waits_what_the_server_asked() -> None:
    core = make_core()
    date = format_datetime(NOW + timedelta(seconds=5), usegmt=True)
    core = make_core(max_retries=3)
    driver = driver_for(
        core,
        [
            problem(429, "rate_limited", **{"retry-after": "2"}),
            problem(429, "rate_limited", **{"x-ratelimit-reset": "2026-04-27T12:00:03.000Z"}),
            problem(503, "upstream_unavailable", **{"retry-after": date}),
            resp(200, OK_PROBE),
        ],
    )
    driver.run(core.get_agent_availability(VID))
    assert driver.sleeps == [2.0, 3.0, 5.0]


def test_server_wait_beyond_the_cap_is_not_retried() -> None:
    core = make_core(max_retries=5, max_server_wait=60.0)
    driver = driver_for(core, [problem(429, "rate_limited", **{"retry-after": "3600"})])
    with pytest.raises(RateLimitError) as info:
        driver.run(core.get_agent_availability(VID))
    assert info.value.retry_after == 3600
    assert len(driver.requests) == 1
    assert driver.sleeps == []
    driver = driver_for(core, [problem(503, "upstream_unavailable", **{"retry-after": "120"})])
    with pytest.raises(InternalServerError):
        driver.run(core.get_vps(VID))
    assert len(driver.requests) == 1


def test_rate_limit_error_carries_the_server_wait() -> None:
    core = make_core(max_retries=0)
    driver = driver_for(
        core, [problem(429, "rate_limited", **{"x-ratelimit-reset": "2026-04-27T12:00:04Z"})]
    )
    with pytest.raises(RateLimitError) as info:
        driver.run(core.get_agent_availability(VID))
    assert info.value.retry_after == 4.0
    assert info.value.code == "rate_limited"


# -- backoff --------------------------------------------------------------------------------


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(
    "policy", [RetryPolicy(), RetryPolicy(initial_delay=0.1, max_delay=1.0, jitter=0.5)]
)
def test_backoff_is_exponential_capped_and_jittered_within_bounds(policy: RetryPolicy) -> None:
    rng = random.Random(1234)
    for retry_number in range(12):
        ceiling = min(policy.max_delay, policy.initial_delay * 2**retry_number)
        floor = ceiling * (1 - policy.jitter)
        samples = [policy.backoff(retry_number, rng) for _ in range(200)]
        assert all(floor <= s <= ceiling for s in samples)
        assert max(samples) - min(samples) > (ceiling - floor) * 0.5  # jitter really spreads
        # The extremes of the jitter are reached exactly.
        assert policy.backoff(retry_number, FixedRandom(0.0)) == ceiling
        assert policy.backoff(retry_number, FixedRandom(1.0)) == pytest.approx(floor)
    assert policy.backoff(50, rng) <= policy.max_delay


def test_backoff_doubles_until_the_cap() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=8.0, jitter=0.25)
    top = [policy.backoff(n, FixedRandom(0.0)) for n in range(7)]
    assert top == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_flow_sleeps_follow_the_backoff_when_the_server_gives_no_hint() -> None:
    core = make_core(max_retries=3)
    driver = driver_for(core, [resp(503), httpx.ReadError("reset"), resp(500), resp(200, OK_PROBE)])
    driver.run(core.get_agent_availability(VID))
    policy = core.retry
    assert len(driver.sleeps) == 3
    for n, slept in enumerate(driver.sleeps):
        ceiling = min(policy.max_delay, policy.initial_delay * 2**n)
        assert ceiling * (1 - policy.jitter) <= slept <= ceiling


# -- the shared 429 gate --------------------------------------------------------------------


def test_after_a_429_the_next_call_on_the_same_core_waits() -> None:
    core = make_core(max_retries=0)
    first = driver_for(core, [problem(429, "rate_limited", **{"retry-after": "2"})])
    with pytest.raises(RateLimitError):
        first.run(core.get_agent_availability(VID))
    assert core.gate_wait() == 2.0

    second = driver_for(core, [resp(200, {"id": VID})])
    # The gate applies to any call on this core, not just the one that was limited.
    assert second.run(core.get_vps(VID)).id == VID
    assert second.sleeps == [2.0]
    assert len(second.requests) == 1
    assert core.gate_wait() == 0.0

    third = driver_for(core, [resp(200, {"id": VID})])
    third.run(core.get_vps(VID))
    assert third.sleeps == []


def test_gate_is_per_core() -> None:
    clock = FakeClock(1000.0)
    limited = make_core(max_retries=0, clock=clock)
    other = make_core(max_retries=0, clock=clock)
    with pytest.raises(RateLimitError):
        driver_for(limited, [problem(429, "rate_limited", **{"retry-after": "5"})]).run(
            limited.get_agent_availability(VID)
        )
    driver = driver_for(other, [resp(200, OK_PROBE)])
    driver.run(other.get_agent_availability(VID))
    assert driver.sleeps == []


def test_gate_without_server_hint_uses_the_backoff() -> None:
    core = make_core(max_retries=0)
    with pytest.raises(RateLimitError):
        driver_for(core, [problem(429, "rate_limited")]).run(core.get_agent_availability(VID))
    policy = core.retry
    assert policy.initial_delay * (1 - policy.jitter) <= core.gate_wait() <= policy.initial_delay


def test_a_retried_429_waits_once_not_twice() -> None:
    core = make_core()
    driver = driver_for(
        core, [problem(429, "rate_limited", **{"retry-after": "1.5"}), resp(200, OK_PROBE)]
    )
    driver.run(core.get_agent_availability(VID))
    assert driver.sleeps == [1.5]


def test_a_run_of_429s_spends_no_retry() -> None:
    # Two clients on one key come back in step and collide again: five 429s in a row are
    # waited out with max_retries 2, and the read succeeds.
    core = make_core(max_retries=2)
    limited = problem(429, "rate_limited", **{"retry-after": "1"})
    driver = driver_for(core, [limited] * 5 + [resp(200, OK_PROBE)])
    assert driver.run(core.get_agent_availability(VID)).available is True
    assert len(driver.requests) == 6
    assert driver.sleeps == [1.0] * 5


def test_429s_stop_when_their_waits_would_pass_60_seconds() -> None:
    # 20 + 20 + 20 = 60 s is waited; a fourth wait would make 80 s: the RateLimitError.
    core = make_core(max_retries=2)
    limited = problem(429, "rate_limited", **{"retry-after": "20"})
    driver = driver_for(core, [limited] * 4 + [resp(200, OK_PROBE)])
    with pytest.raises(RateLimitError) as info:
        driver.run(core.get_agent_availability(VID))
    assert len(driver.requests) == 4
    assert driver.sleeps == [20.0] * 3
    assert info.value.retry_after == 20.0


def test_a_server_answering_429_with_no_wait_forever_is_given_up_on() -> None:
    # Each 429 costs at least initial_delay (0.5 s) of the 60 s: 120 are waited out, the
    # 121st is the RateLimitError; no endless loop of requests.
    core = make_core(max_retries=2)
    limited = problem(429, "rate_limited", **{"retry-after": "0"})
    driver = driver_for(core, [limited] * 200)
    with pytest.raises(RateLimitError):
        driver.run(core.get_agent_availability(VID))
    assert len(driver.requests) == 121


def test_429s_between_503s_leave_the_503s_their_retries() -> None:
    # max_retries 2 allows two retries after 503s, whatever 429s come between them.
    core = make_core(max_retries=2)
    limited = problem(429, "rate_limited", **{"retry-after": "1"})
    down = problem(503, "upstream_unavailable")
    ok = driver_for(core, [down, limited, down, limited, resp(200, OK_PROBE)])
    assert ok.run(core.get_agent_availability(VID)).available is True
    assert len(ok.requests) == 5
    failing = driver_for(core, [down, limited, down, limited, down, resp(200, OK_PROBE)])
    with pytest.raises(InternalServerError) as info:
        failing.run(core.get_agent_availability(VID))
    assert len(failing.requests) == 5
    assert info.value.status_code == 503


def test_429s_without_a_wait_back_off_more_each_time() -> None:
    core = make_core(max_retries=1)
    bare = problem(429, "rate_limited")
    driver = driver_for(core, [bare] * 4 + [resp(200, OK_PROBE)])
    driver.run(core.get_agent_availability(VID))
    policy = core.retry
    assert len(driver.sleeps) == 4
    for n, slept in enumerate(driver.sleeps):
        top = policy.initial_delay * 2**n
        assert top * (1 - policy.jitter) <= slept <= top


def test_a_429_retry_logs_the_rate_limit_wait_not_a_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    core = make_core(max_retries=2)
    limited = problem(429, "rate_limited", **{"retry-after": "1.5"})
    driver_for(core, [limited, limited, resp(200, OK_PROBE)]).run(core.get_agent_availability(VID))
    assert [r.getMessage() for r in caplog.records if r.name == "hostup_pulumi"] == [
        f"retrying GET /api/v2/vps/{VID}/agent/exec in 1.50s after 429 (rate limited: "
        f"{waited}s of 60s)"
        for waited in ("1.5", "3.0")
    ]


# -- building requests ----------------------------------------------------------------------


def test_request_headers_with_api_key() -> None:
    core = make_core()
    request = core.build_request(endpoints.get_agent_availability(VID))
    assert request.method == "GET"
    assert str(request.url) == f"{BASE}/api/v2/vps/{VID}/agent/exec"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert USER_AGENT.startswith("hostup-pulumi/")
    assert "cookie" not in request.headers


def test_request_with_session_cookie() -> None:
    core = make_core(api_key=None, session_cookie="sess-value")
    request = core.build_request(endpoints.get_vps(VID))
    assert request.headers["cookie"] == "hostup_session=sess-value"
    assert "authorization" not in request.headers


def test_start_request_carries_the_command_as_json() -> None:
    core = make_core()
    request = core.build_request(endpoints.start_agent_exec(VID, 'echo "hi" && uname -a'))
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"command": 'echo "hi" && uname -a'}


def test_output_and_list_requests_carry_their_query() -> None:
    core = make_core()
    output = core.build_request(endpoints.get_agent_exec_output(VID, 4242.0))
    assert output.url.params["pid"] == "4242"
    listing = core.build_request(
        endpoints.list_vps(name="Web 01", primary_ip="192.0.2.10", cursor="c/2")
    )
    assert dict(listing.url.params) == {
        "limit": "100",
        "name": "Web 01",
        "primaryIp": "192.0.2.10",
        "cursor": "c/2",
    }


@pytest.mark.parametrize("kwargs", [{"name": ""}, {"primary_ip": "  "}, {"name": 5}])
def test_list_filters_must_be_non_empty_strings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="list_vps"):
        endpoints.list_vps(**kwargs)


def test_request_timeouts() -> None:
    clock = FakeClock(1000.0)
    core = make_core(clock=clock)
    default = core.build_request(endpoints.get_agent_availability(VID)).extensions["timeout"]
    assert default["read"] == core.settings.timeout
    assert default["connect"] <= core.settings.connect_timeout
    explicit = core.build_request(endpoints.get_agent_availability(VID, timeout=2.0)).extensions[
        "timeout"
    ]
    assert explicit["read"] == 2.0
    # A wait's deadline bounds each request (but leaves at least a second to answer).
    near = core.build_request(
        endpoints.get_agent_availability(VID, deadline=clock.t + 3.0)
    ).extensions["timeout"]
    assert near["read"] == 3.0
    past = core.build_request(
        endpoints.get_agent_availability(VID, deadline=clock.t - 5.0)
    ).extensions["timeout"]
    assert past["read"] == 1.0


def test_validation_happens_before_any_request() -> None:
    with pytest.raises(ValidationError, match="primary_ip="):
        endpoints.get_agent_availability("192.0.2.10")
    with pytest.raises(ValidationError):
        endpoints.get_agent_exec_output(VID, 0)
    with pytest.raises(ValidationError):
        endpoints.start_agent_exec(VID, "")
    with pytest.raises(ValidationError):
        endpoints.get_vps("web-01.example.com")


def test_each_endpoint_has_one_name_in_every_layer() -> None:
    from hostup_pulumi import AsyncHostupClient, HostupClient

    built = [
        endpoints.get_agent_availability(VID),
        endpoints.get_agent_exec_output(VID, 1),
        endpoints.start_agent_exec(VID, "ls"),
        endpoints.get_vps(VID),
        endpoints.list_vps(),
    ]
    for op in built:
        assert getattr(endpoints, op.name).__name__ == op.name
        for layer in (Core, HostupClient, AsyncHostupClient):
            assert callable(getattr(layer, op.name)), (layer, op.name)


def test_operation_target_shows_path_and_query_only() -> None:
    core = make_core()
    assert endpoints.get_agent_exec_output(VID, 7).target == f"/api/v2/vps/{VID}/agent/exec?pid=7"
    assert endpoints.get_agent_availability(VID).target == f"/api/v2/vps/{VID}/agent/exec"
    assert KEY not in repr(core)
    assert BASE in repr(core)


# -- 403 names the scope --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_flow", "scope"),
    [
        (lambda c: c.get_agent_availability(VID), "read:vm"),
        (lambda c: c.call(endpoints.list_vps(), Vps), "read:vm"),
        (lambda c: c.get_vps(VID), "read:vm"),
        (lambda c: c.start_agent_exec(VID, "uname -a"), "write:vm"),
        (lambda c: c.get_agent_exec_output(VID, 4242), "write:vm"),
    ],
    ids=["probe", "list_vps", "get_vps", "exec_start", "exec_output"],
)
def test_403_names_the_scope_each_call_needs(make_flow: Callable[[Core], Any], scope: str) -> None:
    core = make_core()
    with pytest.raises(PermissionDeniedError) as info:
        driver_for(core, [problem(403, "forbidden")]).run(make_flow(core))
    assert info.value.required_scope == scope
    assert scope in str(info.value)


# -- parsing 2xx bodies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content", [b'{"available": tru', b"<html>ok</html>", b"", b"\xff\xfe", b"[" * 100_000]
)
def test_2xx_with_bad_json_is_a_response_validation_error(content: bytes) -> None:
    core = make_core()
    with pytest.raises(APIResponseValidationError) as info:
        driver_for(core, [resp(200, content=content)]).run(core.get_agent_availability(VID))
    assert type(info.value) is APIResponseValidationError
    assert info.value.status_code == 200
    assert "not valid JSON" in str(info.value)


@pytest.mark.parametrize(
    "body", [[], "ok", None, {"reason": "x"}, {"available": "perhaps"}, {"available": [1]}]
)
def test_2xx_with_the_wrong_shape_is_a_response_validation_error(body: Any) -> None:
    core = make_core()
    with pytest.raises(APIResponseValidationError) as info:
        driver_for(core, [resp(200, body)]).run(core.get_agent_availability(VID))
    assert type(info.value) is APIResponseValidationError
    assert "GET" in str(info.value)


def test_shape_error_message_does_not_echo_the_body() -> None:
    core = make_core()
    body = {"exited": "TOP-SECRET-VALUE", "stdout": ["TOP-SECRET-OUTPUT"]}
    with pytest.raises(APIResponseValidationError) as info:
        driver_for(core, [resp(200, body)]).run(core.get_agent_exec_output(VID, 1))
    assert "TOP-SECRET" not in str(info.value)
    assert "stdout" in str(info.value)


def test_non_2xx_is_never_parsed_as_a_model() -> None:
    core = make_core()
    with pytest.raises(APIStatusError):
        driver_for(core, [resp(418, OK_PROBE)]).run(core.get_agent_availability(VID))


# -- starting a command ---------------------------------------------------------------------


def test_start_example_gives_an_absolute_poll_url() -> None:
    core = make_core()
    started = driver_for(core, [resp(200, STARTED)]).run(core.start_agent_exec(VID, "uname -a"))
    assert started.pid == 4242
    assert started.poll_url == f"{BASE}/api/v2/vps/{VID}/agent/exec?pid=4242"


def test_poll_url_keeps_a_base_url_path_prefix() -> None:
    # The client sends every request to base_url + path; the poll URL must point there too.
    core = make_core(base_url="https://proxy.example.test/hostup")
    started = driver_for(core, [resp(200, STARTED)]).run(core.start_agent_exec(VID, "uname -a"))
    assert (
        started.poll_url
        == f"https://proxy.example.test/hostup/api/v2/vps/{VID}/agent/exec?pid=4242"
    )
    assert (
        str(core.build_request(endpoints.get_agent_exec_output(VID, 4242)).url) == started.poll_url
    )


@pytest.mark.parametrize(
    ("poll_url", "expected"),
    [
        ("agent/exec?pid=4242", f"{BASE}/agent/exec?pid=4242"),
        ("https://elsewhere.test/poll?pid=4242", "https://elsewhere.test/poll?pid=4242"),
    ],
)
def test_poll_url_not_rooted_at_the_api_is_resolved_like_a_link(
    poll_url: str, expected: str
) -> None:
    core = make_core()
    started = driver_for(core, [resp(200, {"pid": 4242, "pollUrl": poll_url})]).run(
        core.start_agent_exec(VID, "uname -a")
    )
    assert started.poll_url == expected


def test_start_keeps_unknown_fields() -> None:
    core = make_core()
    started = driver_for(core, [resp(200, {**STARTED, "queuedAt": "2026-04-27T12:00:00Z"})]).run(
        core.start_agent_exec(VID, "uname -a")
    )
    assert started.extras == {"queuedAt": "2026-04-27T12:00:00Z"}


def test_start_without_pid_takes_it_from_the_poll_url() -> None:
    core = make_core()
    started = driver_for(core, [resp(200, {"pollUrl": STARTED["pollUrl"]})]).run(
        core.start_agent_exec(VID, "uname -a")
    )
    assert started.pid == 4242


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"pollUrl": f"/api/v2/vps/{VID}/agent/exec"},
        {"pid": 0},
        {"pid": -3},
        {"pollUrl": "/x?pid=abc"},
        {"pollUrl": "/x?pid=\u00b2"},
        {"pid": None, "pollUrl": None},
    ],
)
def test_200_start_without_a_usable_pid_says_the_command_may_have_started(body: Any) -> None:
    core = make_core(max_retries=5)
    driver = driver_for(core, [resp(200, body)])
    with pytest.raises(APIResponseValidationError) as info:
        driver.run(core.start_agent_exec(VID, "uname -a"))
    assert "may have started" in str(info.value)
    assert len(driver.requests) == 1


def test_200_start_with_a_body_of_the_wrong_shape_says_the_command_may_have_started() -> None:
    core = make_core()
    with pytest.raises(APIResponseValidationError, match="may have started"):
        driver_for(core, [resp(200, {"pid": "four"})]).run(core.start_agent_exec(VID, "ls"))
    with pytest.raises(APIResponseValidationError, match="may have started"):
        driver_for(core, [resp(200, content=b"{")]).run(core.start_agent_exec(VID, "ls"))


# -- polling --------------------------------------------------------------------------------


def test_poll_schedule_grows_with_elapsed_time_and_is_capped() -> None:
    schedule = PollSchedule(first=0.5, growth=0.1, cap=5.0)
    assert schedule.interval(0) == 0.5
    assert schedule.interval(-10) == 0.5
    assert schedule.interval(10) == pytest.approx(1.5)
    assert schedule.interval(45) == pytest.approx(5.0)
    assert schedule.interval(10_000) == 5.0
    values = [schedule.interval(t) for t in range(0, 100)]
    assert values == sorted(values)


def fewest_polls(exit_at: float) -> int:
    """P_min: polls at t0 = 0 and t(k+1) = 1.1 t(k) + 0.5 until one is at or past the exit."""
    sent, polls = 0.0, 1
    while sent < exit_at:
        sent, polls = 1.1 * sent + 0.5, polls + 1
    return polls


def test_fewest_polls_for_the_lag_target() -> None:
    assert [fewest_polls(t) for t in (1, 5, 20, 120)] == [3, 9, 18, 35]


def test_the_exec_schedule_sends_each_poll_from_the_previous_send() -> None:
    assert EXEC_POLL.next_poll(0.0) == 0.5
    assert EXEC_POLL.next_poll(10.0) == pytest.approx(11.5)  # 1.1 * 10 + 0.5
    assert EXEC_POLL.next_poll(200.0) == pytest.approx(220.5)  # no 5 s cap any more
    assert EXEC_POLL.next_poll(10_000.0) == pytest.approx(10_060.0)  # a 60 s safety cap


def exec_wait(exit_at: float, latency: float) -> FlowDriver:
    """A wait for a command that exits ``exit_at`` s after the wait began; each request takes
    ``latency`` s, and the server answers as of the moment the request arrives."""
    core = make_core(poll=EXEC_POLL)
    began = _CLOCKS[core].t

    def answer(request: httpx.Request) -> httpx.Response:
        return exited() if _CLOCKS[core].t - began >= exit_at else running()

    driver = driver_for(core, answer, latency=latency)
    driver.run(core.wait_for_agent_exec(VID, 4242, timeout=exit_at * 2 + 60))
    driver.sent_at[:] = [t - began for t in driver.sent_at]
    return driver


@pytest.mark.parametrize("latency", [0.0, 0.05, 0.3])
def test_the_poll_that_sees_the_exit_is_sent_within_a_tenth_of_the_run_plus_half_a_second(
    latency: float,
) -> None:
    # Every 0.1 s up to 20 s, then every second up to 120 s.
    for exit_at in [0.1 * i for i in range(1, 201)] + [float(t) for t in range(21, 121)]:
        driver = exec_wait(exit_at, latency)
        lag = driver.sent_at[-1] - exit_at
        assert 0 <= lag <= 0.1 * exit_at + 0.5 + 1e-9, (exit_at, lag)
        polls = len(driver.requests)
        assert polls <= math.ceil(1.1 * fewest_polls(exit_at)) + 1, (exit_at, polls)


def test_the_round_trip_does_not_add_to_the_interval() -> None:
    driver = exec_wait(5.0, latency=0.2)
    assert driver.sent_at == pytest.approx([0, 0.5, 1.05, 1.655, 2.3205, 3.05255, 3.857805,
                                            4.7435855, 5.71794405])  # fmt: skip
    assert len(driver.requests) == fewest_polls(5.0) == 9
    # Each sleep is what is left of the interval once the answer is in.
    assert driver.sleeps[:3] == pytest.approx([0.3, 0.35, 0.405])


def test_wait_for_exec_polls_until_exited() -> None:
    core = make_core(poll=PollSchedule(first=0.2, growth=0.5, cap=10.0))
    driver = driver_for(core, [running(), running("partial"), exited(3, "all\n")])
    output = driver.run(core.wait_for_agent_exec(VID, 4242, timeout=60))
    assert output.exited is True
    assert output.exit_code == 3
    assert output.stdout == "all\n"
    assert len(driver.requests) == 3
    assert all(r.url.params["pid"] == "4242" for r in driver.requests)
    # Sleeps follow the schedule, measured from the start of the wait.
    assert driver.sleeps == [pytest.approx(0.2), pytest.approx(0.2 + 0.5 * 0.2)]


def test_wait_for_exec_returns_at_once_when_already_exited() -> None:
    core = make_core()
    driver = driver_for(core, [exited()])
    assert driver.run(core.wait_for_agent_exec(VID, 4242, timeout=5)).exited
    assert driver.sleeps == []


def test_wait_for_exec_deadline_raises_with_the_last_output() -> None:
    core = make_core()
    polls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal polls
        polls += 1
        return running(f"partial-{polls}")

    driver = driver_for(core, answer, latency=0.05)
    began = driver.clock.t
    with pytest.raises(CommandTimeoutError) as info:
        driver.run(core.wait_for_agent_exec(VID, 4242, timeout=3.0))
    error = info.value
    assert error.pid == 4242
    assert error.vps_id == VID
    assert error.timeout == 3.0
    assert error.last_output is not None
    assert error.last_output.stdout == f"partial-{polls}"
    assert error.last_output.exited is False
    assert "partial" not in str(error)  # output may be secret
    assert "3s" in str(error)
    assert driver.clock.t - began <= 3.0 + 0.05 * 2
    assert polls >= 3


def test_wait_for_exec_keeps_polling_through_a_429() -> None:
    core = make_core(max_retries=0)
    driver = driver_for(
        core, [running(), problem(429, "rate_limited", **{"retry-after": "1"}), exited()]
    )
    output = driver.run(core.wait_for_agent_exec(VID, 4242, timeout=30))
    assert output.exited is True
    assert len(driver.requests) == 3
    assert 1.0 in driver.sleeps


@pytest.mark.parametrize(
    "failure",
    [resp(503, content=b"<html>503</html>"), httpx.ConnectError("refused"), httpx.ReadTimeout("t")],
    ids=["503", "connect", "read-timeout"],
)
def test_wait_for_exec_keeps_polling_through_transient_failures(failure: Answer) -> None:
    core = make_core(max_retries=0)
    driver = driver_for(core, [failure, failure, exited()])
    assert driver.run(core.wait_for_agent_exec(VID, 4242, timeout=30)).exited
    assert len(driver.requests) == 3


def test_wait_for_exec_429_beyond_the_deadline_times_out() -> None:
    core = make_core(max_retries=0)
    driver = driver_for(core, [running(), problem(429, "rate_limited", **{"retry-after": "50"})])
    with pytest.raises(CommandTimeoutError) as info:
        driver.run(core.wait_for_agent_exec(VID, 4242, timeout=10))
    assert isinstance(info.value.__cause__, RateLimitError)
    assert info.value.last_output is not None
    assert len(driver.requests) == 2
    assert str(info.value) == (
        f"command pid 4242 on {VID} did not exit within 10s (still running); raise the "
        "timeout, or read the output later by pid; stopped early: the API answered HTTP 429 "
        "and asked to wait 50s, past the deadline"
    )
    assert (info.value.stopped_early, info.value.server_wait) == (True, 50.0)


def test_wait_for_exec_timeout_without_any_answer() -> None:
    # Every poll's read is cut by the wait's deadline: the wait's own timeout ends it.
    core = make_core(max_retries=0)
    driver = driver_for(core, lambda r: httpx.ReadTimeout("timed out"), latency=0.5)
    with pytest.raises(CommandTimeoutError) as info:
        driver.run(core.wait_for_agent_exec(VID, 4242, timeout=2))
    assert info.value.last_output is None
    assert isinstance(info.value.__cause__, APITimeoutError)
    assert str(info.value).startswith(
        f"command pid 4242 on {VID} did not exit within 2s (no answer yet); raise the timeout, "
        "or read the output later by pid"
    )


def test_a_wait_that_stops_early_after_lost_connections_says_so() -> None:
    core = make_core(max_retries=0)
    answers: list[Answer] = [running()] + [httpx.ReadError("connection reset")] * 10
    driver = driver_for(core, lambda r: answers.pop(0))
    with pytest.raises(CommandTimeoutError) as info:
        driver.run(core.wait_for_agent_exec(VID, 4242, timeout=3))
    assert str(info.value) == (
        f"command pid 4242 on {VID} did not exit within 3s (still running); raise the timeout, "
        "or read the output later by pid; stopped early: the last poll failed (no usable "
        "answer) and another try would pass the deadline"
    )
    assert isinstance(info.value.__cause__, APIConnectionError)
    assert (info.value.stopped_early, info.value.server_wait) == (True, None)


def test_wait_for_exec_deadline_message() -> None:
    core = make_core()
    driver = driver_for(core, lambda r: running(), latency=0.05)
    with pytest.raises(CommandTimeoutError) as info:
        driver.run(core.wait_for_agent_exec(VID, 4242, timeout=300))
    assert str(info.value) == (
        f"command pid 4242 on {VID} did not exit within 300s (still running); raise the "
        "timeout, or read the output later by pid"
    )
    assert info.value.stopped_early is False


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (404, "not_found", NotFoundError),
        (403, "forbidden", PermissionDeniedError),
        (400, "invalid_request", BadRequestError),
    ],
)
def test_wait_for_exec_stops_on_a_permanent_error(status: int, code: str, cls: type) -> None:
    core = make_core()
    driver = driver_for(core, [running(), problem(status, code)])
    with pytest.raises(cls):
        driver.run(core.wait_for_agent_exec(VID, 4242, timeout=30))
    assert len(driver.requests) == 2


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), True, "5", None])
def test_wait_timeout_must_be_a_positive_number(timeout: Any) -> None:
    core = make_core()
    driver = driver_for(core, [])
    with pytest.raises(ValidationError, match="timeout"):
        driver.run(core.wait_for_agent_exec(VID, 4242, timeout=timeout))
    with pytest.raises(ValidationError, match="timeout"):
        driver.run(core.wait_for_agent_available(VID, timeout=timeout))
    assert driver.requests == []


def test_wait_arguments_are_validated_before_any_request() -> None:
    core = make_core()
    driver = driver_for(core, [])
    with pytest.raises(ValidationError):
        driver.run(core.wait_for_agent_exec(VID, -1, timeout=5))
    with pytest.raises(ValidationError):
        driver.run(core.wait_for_agent_exec("10.0.0.1", 5, timeout=5))
    with pytest.raises(ValidationError):
        driver.run(core.wait_for_agent_available("10.0.0.1", timeout=5))
    assert driver.requests == []


def test_wait_for_available_polls_until_available() -> None:
    core = make_core()
    unavailable = resp(200, {"available": False, "reason": "VM is not running", "vmRunning": False})
    driver = driver_for(core, [unavailable, unavailable, resp(200, OK_PROBE)])
    probe = driver.run(core.wait_for_agent_available(VID, timeout=60))
    assert probe.available is True
    assert len(driver.requests) == 3
    assert all("pid" not in r.url.params for r in driver.requests)


def test_a_recent_available_answer_stands_for_the_probe_before_a_start() -> None:
    # The native plugin's creates pass reuse_within: a deploy that probed each VPS up front
    # (its availability calls) is not asked again per command, for as long as the window.
    clock = FakeClock(1000.0)
    core = make_core(clock=clock)
    unavailable = resp(200, {"available": False, "reason": "VM is not running", "vmRunning": False})
    driver = driver_for(core, [resp(200, OK_PROBE), resp(200, OK_PROBE), unavailable, unavailable])
    driver.run(core.get_agent_availability(VID))
    clock.t += 59.0
    assert driver.run(core.require_agent_available(VID, None, reuse_within=60)).available
    assert len(driver.requests) == 1  # reused
    assert driver.run(core.require_agent_available(VID, None)).available
    assert len(driver.requests) == 2  # not asked to reuse: probes
    clock.t += 61.0
    with pytest.raises(AgentUnavailableError):
        driver.run(core.require_agent_available(VID, None, reuse_within=60))
    assert len(driver.requests) == 3  # too old: probed, and the new answer counts
    # An unavailable answer is never reused, and it drops the older available one.
    with pytest.raises(AgentUnavailableError):
        driver.run(core.require_agent_available(VID, None, reuse_within=60))
    assert len(driver.requests) == 4


def test_wait_for_available_deadline_names_the_last_reason() -> None:
    core = make_core()
    driver = driver_for(
        core, lambda r: resp(200, {"available": False, "reason": "agent silent", "vmRunning": True})
    )
    with pytest.raises(CommandTimeoutError) as info:
        driver.run(core.wait_for_agent_available(VID, timeout=5))
    assert info.value.last_availability is not None
    assert info.value.last_availability.reason == "agent silent"
    assert "agent silent" in str(info.value)
    assert info.value.pid is None


def test_wait_for_available_keeps_polling_through_a_429() -> None:
    core = make_core(max_retries=0)
    driver = driver_for(
        core, [problem(429, "rate_limited", **{"retry-after": "2"}), resp(200, OK_PROBE)]
    )
    assert driver.run(core.wait_for_agent_available(VID, timeout=30)).available
    assert driver.sleeps == [2.0]


# -- logging --------------------------------------------------------------------------------


def test_logs_one_debug_line_per_attempt_and_a_warning_per_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    core = make_core()
    driver = driver_for(
        core,
        [
            problem(503, "upstream_unavailable", **{"x-request-id": "req_abc"}),
            httpx.ConnectError("refused"),
            resp(200, OK_PROBE),
        ],
    )
    driver.run(core.get_agent_availability(VID))
    ours = [r for r in caplog.records if r.name == "hostup_pulumi"]
    debug = [r.getMessage() for r in ours if r.levelno == logging.DEBUG]
    warnings = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    assert len(debug) == 3
    assert "503" in debug[0]
    assert "req_abc" in debug[0]
    assert "attempt 1," in debug[0]
    assert "ConnectError" in debug[1]
    assert "200" in debug[2]
    assert "attempt 3," in debug[2]
    assert len(warnings) == 2
    assert all("retrying GET" in w for w in warnings)
    assert all(KEY not in r.getMessage() for r in caplog.records)
    assert KEY not in caplog.text


def test_no_debug_work_when_debug_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hostup_pulumi")
    core = make_core()
    driver_for(core, [resp(200, OK_PROBE)]).run(core.get_agent_availability(VID))
    assert [r for r in caplog.records if r.name == "hostup_pulumi"] == []


def test_list_vps_stops_when_the_api_never_stops_paging(monkeypatch: pytest.MonkeyPatch) -> None:
    import itertools

    import httpx

    from hostup_pulumi import APIResponseValidationError, HostupClient

    counter = itertools.count()

    def endless(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"data": [], "hasMore": True, "nextCursor": f"c{next(counter)}"}
        )

    monkeypatch.setattr(Core, "MAX_PAGES", 5)
    with (
        HostupClient("k", transport=httpx.MockTransport(endless)) as client,
        pytest.raises(APIResponseValidationError, match="more than 5 pages"),
    ):
        list(client.list_vps())
    assert next(counter) == 5  # five pages were asked for, then it stopped
