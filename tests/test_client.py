"""HostupClient and AsyncHostupClient (client.py).

Most tests talk HTTP over loopback to the bundled simulator, once with each client. A few use
httpx.MockTransport, where a response no real server would send is needed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from helpers import FlowDriver, eventually, simulator

from hostup_pulumi import (
    AgentAvailability,
    AgentExecOutput,
    AgentExecStarted,
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncHostupClient,
    AuthenticationError,
    BadRequestError,
    CommandTimeoutError,
    ConfigurationError,
    ConflictError,
    HostupClient,
    HostupError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    PollSchedule,
    RateLimitError,
    RetryPolicy,
    Settings,
    ValidationError,
    Vps,
)
from hostup_pulumi._core import Core
from hostup_pulumi._endpoints import Operation
from hostup_pulumi.testing import Fault, HostupSimulator

KINDS = ["sync", "async"]
Call = tuple[str, tuple[Any, ...], dict[str, Any]]
#: Polls every few hundredths of a second instead of the production schedule.
FAST_POLL = PollSchedule(first=0.02, growth=0.1, cap=0.1)


class Api:
    """Makes the same calls through HostupClient or AsyncHostupClient (one client, kept for
    the test; the async one on its own event loop), with retry delays and poll intervals of
    hundredths of a second."""

    def __init__(self, kind: str, sim: HostupSimulator | None = None, **client_kw: Any) -> None:
        self.kind = kind
        self.kw: dict[str, Any] = (
            {} if sim is None else {"api_key": sim.api_key, "base_url": sim.base_url}
        )
        self.kw.update(client_kw)
        retries = self.kw.get("max_retries")
        self.kw.setdefault("poll", FAST_POLL)
        self.kw.setdefault(
            "retry",
            RetryPolicy(
                max_retries=2 if retries is None else retries, initial_delay=0.01, max_delay=0.05
            ),
        )
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _get(self) -> Any:
        if self._client is None:
            if self.kind == "sync":
                self._client = HostupClient(**self.kw)
            else:
                self._loop = asyncio.new_event_loop()
                self._client = AsyncHostupClient(**self.kw)
        return self._client

    def close(self) -> None:
        if self._client is None:
            return
        if self._loop is None:
            self._client.close()
        else:
            self._loop.run_until_complete(self._client.close())
            self._loop.close()

    def many(self, calls: list[Call]) -> list[tuple[Any, float]]:
        """Run ``calls`` in turn; each gives (result or HostupError, seconds taken)."""
        client = self._get()
        if self._loop is None:
            outcomes = []
            for method, args, kwargs in calls:
                began = time.monotonic()
                try:
                    result = getattr(client, method)(*args, **kwargs)
                    if method == "list_vps":
                        result = list(result)
                except HostupError as exc:
                    result = exc
                outcomes.append((result, time.monotonic() - began))
            return outcomes

        async def run() -> list[tuple[Any, float]]:
            outcomes = []
            for method, args, kwargs in calls:
                began = time.monotonic()
                try:
                    if method == "list_vps":
                        result = [v async for v in client.list_vps(*args, **kwargs)]
                    else:
                        result = await getattr(client, method)(*args, **kwargs)
                except HostupError as exc:
                    result = exc
                outcomes.append((result, time.monotonic() - began))
            return outcomes

        return self._loop.run_until_complete(run())

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        [(result, _)] = self.many([(method, args, kwargs)])
        if isinstance(result, BaseException):
            raise result
        return result


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_api(kind: str, sim: HostupSimulator) -> Iterator[Callable[..., Api]]:
    """Api factory: the simulator's key and URL unless overridden; clients closed after."""
    made: list[Api] = []

    def make(**client_kw: Any) -> Api:
        made.append(Api(kind, sim, **client_kw))
        return made[-1]

    yield make
    for api in made:
        api.close()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


@pytest.fixture
def vid(sim: HostupSimulator) -> str:
    return sim.add_vps(name="web-01", primary_ip="192.0.2.10")


# -- every method over loopback -------------------------------------------------------------


def test_get_agent_availability(api: Api, sim: HostupSimulator, vid: str) -> None:
    stopped = sim.add_vps(name="db-01", power_state="stopped")
    probe = api("get_agent_availability", vid)
    assert isinstance(probe, AgentAvailability)
    assert (probe.available, probe.reason, probe.vm_running) == (True, None, True)
    down = api("get_agent_availability", stopped)
    assert down.available is False
    assert down.vm_running is False
    assert down.reason
    assert [r.route for r in sim.requests] == ["probe", "probe"]
    assert all(r.has_auth for r in sim.requests)


def test_start_then_read_output(api: Api, sim: HostupSimulator, vid: str) -> None:
    sim.script_command(
        "uname -a",
        stdout="Linux web-01\n",
        stderr="warn\n",
        exit_code=3,
        duration=0.05,
        extra={"truncated": True, "signalName": None},
    )
    started = api("start_agent_exec", vid, "uname -a")
    assert isinstance(started, AgentExecStarted)
    assert started.pid > 0
    assert started.poll_url == f"{sim.base_url}/api/v2/vps/{vid}/agent/exec?pid={started.pid}"
    output = api("wait_for_agent_exec", vid, started.pid, timeout=5)
    assert isinstance(output, AgentExecOutput)
    assert output.exited is True
    assert output.exit_code == 3
    assert output.stdout == "Linux web-01\n"
    assert output.stderr == "warn\n"
    assert output.truncated is True
    assert "signalName" in output.extras
    again = api("get_agent_exec_output", vid, float(started.pid))  # Pulumi passes floats
    assert again.stdout == output.stdout
    assert sim.count("exec_start") == 1


def test_get_agent_exec_output_while_running(api: Api, sim: HostupSimulator, vid: str) -> None:
    started = api("start_agent_exec", vid, "echo early && sleep 5")
    output = api("get_agent_exec_output", vid, started.pid)
    assert output.exited is False
    assert output.exit_code is None


def test_default_interpreter_exit_code(api: Api, vid: str) -> None:
    started = api("start_agent_exec", vid, "echo hi; exit 7")
    output = api("wait_for_agent_exec", vid, started.pid, timeout=5)
    assert (output.stdout, output.exit_code) == ("hi\n", 7)


def test_wait_for_agent_exec_deadline(api: Api, vid: str) -> None:
    started = api("start_agent_exec", vid, "echo partial && sleep 30")
    began = time.monotonic()
    with pytest.raises(CommandTimeoutError) as info:
        api("wait_for_agent_exec", vid, started.pid, timeout=0.3)
    assert time.monotonic() - began < 2.0
    assert info.value.pid == started.pid
    assert info.value.last_output is not None
    assert info.value.last_output.exited is False


def test_wait_for_agent_available(api: Api, sim: HostupSimulator, vid: str) -> None:
    sim.set_agent(vid, available=False, reason="QEMU guest agent is not responding")

    def boot() -> None:  # the agent comes up once the wait has seen it down
        if eventually(lambda: sim.count("probe") >= 1):
            sim.set_agent(vid, available=True)

    booting = threading.Thread(target=boot)
    booting.start()
    try:
        probe = api("wait_for_agent_available", vid, timeout=5)
    finally:
        booting.join()
    assert probe.available is True
    assert sim.count("probe") >= 2


def test_wait_for_agent_available_deadline(api: Api, sim: HostupSimulator, vid: str) -> None:
    sim.set_agent(vid, available=False, reason="agent is not responding")
    with pytest.raises(CommandTimeoutError) as info:
        api("wait_for_agent_available", vid, timeout=0.3)
    assert info.value.last_availability is not None
    assert info.value.last_availability.reason == "agent is not responding"
    assert "agent is not responding" in str(info.value)


def test_get_vps(api: Api, vid: str) -> None:
    vps = api("get_vps", vid)
    assert isinstance(vps, Vps)
    assert (vps.id, vps.name, vps.primary_ip, vps.power_state) == (
        vid,
        "web-01",
        "192.0.2.10",
        "running",
    )


def test_list_vps_follows_cursors_across_pages(api: Api, sim: HostupSimulator) -> None:
    ids = [sim.add_vps(name=f"node-{i:03d}") for i in range(230)]
    listed = api("list_vps")
    assert [v.id for v in listed] == ids
    pages = [r for r in sim.requests if r.route == "list_vps"]
    assert len(pages) == 3
    assert all(r.query["limit"] == "100" for r in pages)
    assert "cursor" not in pages[0].query
    assert pages[1].query["cursor"]
    assert pages[2].query["cursor"] != pages[1].query["cursor"]


def test_list_vps_filters(api: Api, sim: HostupSimulator, vid: str) -> None:
    other = sim.add_vps(name="web-02", primary_ip="192.0.2.11")
    for i in range(5):
        sim.add_vps(name=f"x-{i}")
    assert [v.id for v in api("list_vps", name="WEB-01")] == [vid]  # case-insensitive
    assert [v.id for v in api("list_vps", primary_ip="192.0.2.11")] == [other]
    assert api("list_vps", name="web-01", primary_ip="192.0.2.11") == []
    assert api("list_vps", primary_ip="192.0.2.99") == []
    filtered = [r for r in sim.requests if r.route == "list_vps"]
    assert filtered[0].query["name"] == "WEB-01"
    assert filtered[1].query["primaryIp"] == "192.0.2.11"


def test_list_vps_of_an_empty_account(api: Api) -> None:
    assert api("list_vps") == []


def test_list_vps_filters_hold_when_the_server_ignores_them(api: Api, sim: HostupSimulator) -> None:
    # Over three pages, so that the client filters every page, not just the first.
    for i in range(120):
        sim.add_vps(name=f"node-{i:03d}", primary_ip=f"198.51.100.{i}")
    bravo = sim.add_vps(name="bravo-01", primary_ip="192.0.2.20")
    sim.add_vps(name="charlie-01", primary_ip="192.0.2.30")
    twins = [sim.add_vps(name="twin", primary_ip="192.0.2.40") for _ in range(2)]
    for i in range(90):
        sim.add_vps(name=f"late-{i:03d}")
    sim.set_list_quirks(ignore_filters=True)

    assert [v.id for v in api("list_vps", name="BRAVO-01")] == [bravo]
    assert [v.id for v in api("list_vps", name="twin")] == twins
    assert api("list_vps", name="nobody") == []
    assert [v.id for v in api("list_vps", primary_ip="192.0.2.20")] == [bravo]
    assert [v.id for v in api("list_vps", primary_ip="192.0.2.40")] == twins
    assert api("list_vps", primary_ip="192.0.2.99") == []
    assert api("list_vps", name="bravo-01", primary_ip="192.0.2.30") == []
    # The filters are still sent (they save traffic where honoured), and every page was read.
    pages = [r for r in sim.requests if r.route == "list_vps"]
    assert len(pages) == 7 * 3
    assert pages[0].query["name"] == "BRAVO-01"


def test_list_vps_on_a_simulator_that_repeats_its_cursor_stops(
    api: Api, sim: HostupSimulator
) -> None:
    for i in range(150):
        sim.add_vps(name=f"node-{i:03d}")
    sim.set_list_quirks(repeat_cursor=True)

    with pytest.raises(APIResponseValidationError) as caught:
        api("list_vps", name="node-149")

    assert "GET /api/v2/vps returned the cursor" in str(caught.value)
    assert "twice; stopping instead of looping" in str(caught.value)
    # The first page's cursor came back on the second page: two requests, no loop.
    assert len([r for r in sim.requests if r.route == "list_vps"]) == 2


def test_session_cookie_auth(make_api: Callable[..., Api], sim: HostupSimulator, vid: str) -> None:
    cookie = make_api(api_key=None, session_cookie=sim.session_cookie)
    assert cookie("get_agent_availability", vid).available is True
    assert sim.requests[-1].has_auth
    with pytest.raises(AuthenticationError):
        make_api(api_key=None, session_cookie="hss_not_a_session")("get_vps", vid)


# -- documented errors over loopback --------------------------------------------------------


def test_401_with_a_bad_key_does_not_echo_the_key(
    make_api: Callable[..., Api], sim: HostupSimulator, vid: str
) -> None:
    bad_key = "hsk_test_WRONG_KEY_abcdef0123456789"
    with pytest.raises(AuthenticationError) as info:
        make_api(api_key=bad_key)("get_agent_availability", vid)
    assert info.value.status_code == 401
    assert info.value.code == "unauthorized"
    assert info.value.request_id
    assert (
        "Set the key with `pulumi config set --secret hostup:apiKey <key>` or the "
        "HOSTUP_API_KEY environment variable"
    ) in str(info.value)
    for text in (str(info.value), repr(info.value), repr(info.value.headers)):
        assert bad_key not in text
    assert sim.count("probe") == 1  # not retried


def test_403_for_a_read_only_key_names_write_vm(
    make_api: Callable[..., Api], sim: HostupSimulator, vid: str
) -> None:
    sim.add_api_key("hsk_test_readonly_0123456789abcdef", scopes=["read:vm"])
    read_only = make_api(api_key="hsk_test_readonly_0123456789abcdef")
    assert read_only("get_agent_availability", vid).available is True
    assert [v.id for v in read_only("list_vps")] == [vid]
    with pytest.raises(PermissionDeniedError) as info:
        read_only("start_agent_exec", vid, "uname -a")
    assert info.value.code == "forbidden"
    assert info.value.required_scope == "write:vm"
    assert "'write:vm' scope" in str(info.value)
    with pytest.raises(PermissionDeniedError, match="write:vm"):
        read_only("get_agent_exec_output", vid, 1000)
    assert sim.count("exec_start") == 1


def test_403_for_a_write_only_key_names_read_vm(
    make_api: Callable[..., Api], sim: HostupSimulator, vid: str
) -> None:
    sim.add_api_key("hsk_test_writeonly_0123456789abcdef", scopes=["write:vm"])
    write_only = make_api(api_key="hsk_test_writeonly_0123456789abcdef")
    for method, args in (("get_agent_availability", (vid,)), ("get_vps", (vid,)), ("list_vps", ())):
        with pytest.raises(PermissionDeniedError, match="'read:vm' scope"):
            write_only(method, *args)


def test_404_vps_not_found(api: Api, sim: HostupSimulator) -> None:
    ghost = "vps_01aaaaaaaaaaaaaaaaaaaaaaaa"
    for method, args in (
        ("get_vps", (ghost,)),
        ("get_agent_availability", (ghost,)),
        ("start_agent_exec", (ghost, "ls")),
    ):
        with pytest.raises(NotFoundError) as info:
            api(method, *args)
        assert info.value.code == "vps_not_found"
        assert ghost in str(info.value)


def test_404_for_an_unknown_pid(api: Api, vid: str) -> None:
    with pytest.raises(NotFoundError) as info:
        api("get_agent_exec_output", vid, 987654)
    assert "pid=987654" in str(info.value)


def test_409_vps_not_ready_when_the_agent_is_unavailable(
    api: Api, sim: HostupSimulator, vid: str
) -> None:
    sim.set_agent(vid, available=False, reason="QEMU guest agent is not responding")
    with pytest.raises(ConflictError) as info:
        api("start_agent_exec", vid, "uname -a")
    assert info.value.code == "vps_not_ready"
    assert info.value.command_may_have_started is False
    assert sim.count("exec_start") == 1


def test_400_blocked_command(api: Api, sim: HostupSimulator, vid: str) -> None:
    sim.block_command("rm -rf")
    with pytest.raises(BadRequestError) as info:
        api("start_agent_exec", vid, "rm -rf /")
    assert info.value.status_code == 400
    assert info.value.code
    assert "may have started" not in str(info.value)


def test_400_invalid_request_with_field_errors_from_the_server(
    sim: HostupSimulator, vid: str
) -> None:
    # The clients refuse bad commands themselves: drive the core's flow with a body they would
    # never build, sending its requests to the simulator.
    core = Core(Settings.resolve(api_key=sim.api_key, base_url=sim.base_url, env={}))
    op = Operation(
        "start_agent_exec",
        "POST",
        f"/api/v2/vps/{vid}/agent/exec",
        "write:vm",
        body={"command": 42},
        starts_command=True,
    )
    with httpx.Client() as http, pytest.raises(BadRequestError) as info:
        FlowDriver(http.send).run(core.call(op, AgentExecStarted))
    error = info.value
    assert error.code == "invalid_request"
    assert len(error.errors) == 1
    assert error.errors[0].pointer == "/command"
    assert error.errors[0].code
    assert "/command" in str(error)


def test_429_rate_limited_is_retried_after_the_server_wait(
    api: Api, sim: HostupSimulator, vid: str
) -> None:
    sim.inject("probe", Fault.rate_limited(retry_after="0.2"))
    [(probe, took)] = api.many([("get_agent_availability", (vid,), {})])
    assert isinstance(probe, AgentAvailability)
    assert took >= 0.2
    assert [r.status for r in sim.requests] == [429, 200]


def test_429_when_retries_are_used_up(
    make_api: Callable[..., Api], sim: HostupSimulator, vid: str
) -> None:
    sim.inject("probe", Fault.rate_limited(retry_after="7"))
    with pytest.raises(RateLimitError) as info:
        make_api(max_retries=0)("get_agent_availability", vid)
    assert info.value.code == "rate_limited"
    assert info.value.retry_after == 7.0
    assert sim.count("probe") == 1


def test_429_from_the_simulators_limiter_is_survived() -> None:
    # The limiter answers whole seconds in Retry-After (at least 1 s): one client kind only.
    # The client paces itself by the X-RateLimit-* headers (tests/test_pacing.py), so the
    # budget is emptied by another consumer of the key, which no client can foresee.
    with simulator(rate_limit=1.0, burst=2) as limited:
        target = limited.add_vps(name="web-01")
        auth = {"Authorization": f"Bearer {limited.api_key}"}
        with httpx.Client(base_url=limited.base_url, headers=auth) as other:
            for _ in range(5):
                if other.get(f"/api/v2/vps/{target}/agent/exec").status_code == 429:
                    break
        api = Api("sync", limited)
        try:
            [(result, took)] = api.many([("get_agent_availability", (target,), {})])
        finally:
            api.close()
        statuses = [r.status for r in limited.requests]
    assert isinstance(result, AgentAvailability)
    assert statuses == [200, 200, 429, 429, 200]
    assert took >= 1.0


def test_after_a_429_the_next_call_on_the_same_client_waits(
    make_api: Callable[..., Api], sim: HostupSimulator, vid: str
) -> None:
    sim.inject("probe", Fault.rate_limited(retry_after="0.3"))
    api = make_api(max_retries=0)
    (first, _), (second, took) = api.many(
        [("get_agent_availability", (vid,), {}), ("get_vps", (vid,), {})]
    )
    assert isinstance(first, RateLimitError)
    assert isinstance(second, Vps)
    assert took >= 0.25
    times = [r.time for r in sim.requests]
    assert times[1] - times[0] >= 0.25


# -- faults ---------------------------------------------------------------------------------


def short_timeout_for(fault: Fault) -> dict[str, float]:
    """A client timeout shorter than a delay fault (and only then: a loaded machine may
    take more than a tenth of a second to answer a normal request)."""
    return {"timeout": 0.25} if fault.kind == "delay" else {}


GET_RECOVERABLE = {
    "status-503": Fault.status(503),
    "status-500-html": Fault.html(500),
    "html-502": Fault.html(502),
    "delay": Fault.delay(0.6),
    "drop": Fault.drop(),
    "truncated": Fault.truncated(),
    "rate-limited": Fault.rate_limited(retry_after="0"),
}


@pytest.mark.parametrize("fault", GET_RECOVERABLE.values(), ids=GET_RECOVERABLE.keys())
def test_get_retried_and_succeeds_after_a_transient_fault(
    make_api: Callable[..., Api], sim: HostupSimulator, vid: str, fault: Fault
) -> None:
    sim.inject("probe", fault)
    api = make_api(**short_timeout_for(fault))
    assert api("get_agent_availability", vid).available is True
    # The simulator logs a delayed request only once it has answered it.
    assert eventually(lambda: sim.count("probe") >= 2)
    assert sim.count("probe") == 2


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.status(503), InternalServerError),
        (Fault.html(502), InternalServerError),
        (Fault.delay(0.6), APITimeoutError),
        (Fault.drop(), APIConnectionError),
        (Fault.truncated(), APIConnectionError),
        (Fault.status(504), InternalServerError),
    ],
    ids=["503", "html-502", "delay", "drop", "truncated", "504"],
)
def test_get_fault_without_retries_gives_the_right_error(
    make_api: Callable[..., Api], sim: HostupSimulator, vid: str, fault: Fault, error: type
) -> None:
    sim.inject("get_vps", fault)
    with pytest.raises(error) as info:
        make_api(max_retries=0, **short_timeout_for(fault))("get_vps", vid)
    assert eventually(lambda: sim.count("get_vps") >= 1)  # a delayed request is logged late
    assert sim.count("get_vps") == 1
    assert info.value.command_may_have_started is False


def test_html_error_page_gives_a_short_excerpt(api: Api, sim: HostupSimulator, vid: str) -> None:
    sim.inject("get_vps", Fault.html(502), count=3)
    with pytest.raises(InternalServerError) as info:
        api("get_vps", vid)
    assert info.value.status_code == 502
    assert info.value.code is None
    assert info.value.body_excerpt is not None
    assert "502 Bad Gateway" in info.value.body_excerpt
    assert "<" not in str(info.value)
    assert sim.count("get_vps") == 3  # first try plus two retries


def test_get_malformed_json_is_not_retried(api: Api, sim: HostupSimulator, vid: str) -> None:
    sim.inject("probe", Fault.malformed_json())
    with pytest.raises(APIResponseValidationError) as info:
        api("get_agent_availability", vid)
    assert info.value.status_code == 200
    assert sim.count("probe") == 1


def test_wrong_content_type_is_tolerated(api: Api, sim: HostupSimulator, vid: str) -> None:
    sim.inject("probe", Fault.wrong_content_type())
    sim.inject("exec_start", Fault.wrong_content_type())
    assert api("get_agent_availability", vid).available is True
    assert api("start_agent_exec", vid, "echo hi").pid > 0
    assert sim.count("probe") == sim.count("exec_start") == 1


POST_NOT_RETRIED = {
    "status-503": (Fault.status(503), InternalServerError),
    "status-500": (Fault.status(500), InternalServerError),
    "html-502": (Fault.html(502), InternalServerError),
    "delay": (Fault.delay(0.6), APITimeoutError),
    "drop": (Fault.drop(), APIConnectionError),
    "truncated": (Fault.truncated(), APIConnectionError),
    "malformed-json": (Fault.malformed_json(), APIResponseValidationError),
}


@pytest.mark.parametrize(("fault", "error"), POST_NOT_RETRIED.values(), ids=POST_NOT_RETRIED.keys())
def test_post_start_is_never_sent_twice(
    make_api: Callable[..., Api], sim: HostupSimulator, vid: str, fault: Fault, error: type
) -> None:
    sim.inject("exec_start", fault)
    with pytest.raises(error) as info:
        make_api(max_retries=5, **short_timeout_for(fault))("start_agent_exec", vid, "uname -a")
    # A delayed request is logged once answered; a retry would have been logged before it.
    assert eventually(lambda: sim.count("exec_start") >= 1)
    assert sim.count("exec_start") == 1
    assert "may have started" in str(info.value)
    if not isinstance(info.value, APIResponseValidationError):
        assert info.value.command_may_have_started is True


def test_post_start_is_retried_after_a_429(api: Api, sim: HostupSimulator, vid: str) -> None:
    sim.inject("exec_start", Fault.rate_limited(retry_after="0"))
    assert api("start_agent_exec", vid, "uname -a").pid > 0
    assert [r.status for r in sim.requests if r.route == "exec_start"] == [429, 200]


def test_post_start_is_retried_when_the_server_cannot_be_reached(
    make_api: Callable[..., Api], caplog: pytest.LogCaptureFixture
) -> None:
    with simulator() as gone:
        url, key = gone.base_url, gone.api_key
    api = make_api(api_key=key, base_url=url, max_retries=2)
    with pytest.raises(APIConnectionError) as info:
        api("start_agent_exec", "vps_01hxa3b4c5d6e7f8g9h0j1k2m3", "uname -a")
    assert info.value.command_may_have_started is False
    assert "may have started" not in str(info.value)
    retries = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "retrying POST" in r.getMessage()
    ]
    assert len(retries) == 2  # a refused connection never reached the server: safe to retry


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_connection_names_the_host_and_port(make_api: Callable[..., Api]) -> None:
    port = closed_port()
    api = make_api(api_key="hk_any", base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(APIConnectionError) as info:
        api("get_vps", GOOD)
    assert str(info.value) == (
        f"GET /api/v2/vps/{GOOD} failed after 3 attempts: could not connect to "
        f"127.0.0.1:{port}: connection refused"
    )
    assert type(info.value) is APIConnectionError


def test_a_refused_connection_ends_a_wait_as_a_connection_error(
    make_api: Callable[..., Api],
) -> None:
    port = closed_port()
    api = make_api(api_key="hk_any", base_url=f"http://127.0.0.1:{port}", max_retries=0)
    with pytest.raises(APIConnectionError) as info:
        api("wait_for_agent_exec", GOOD, 4242, timeout=0.5)
    assert str(info.value) == (
        f"GET /api/v2/vps/{GOOD}/agent/exec?pid=4242 failed: could not connect to "
        f"127.0.0.1:{port}: connection refused"
    )


def test_a_read_timeout_names_the_read_timeout(
    make_api: Callable[..., Api], sim: HostupSimulator, vid: str
) -> None:
    sim.inject("get_vps", Fault.delay(1.0))
    with pytest.raises(APITimeoutError) as info:
        make_api(max_retries=0, timeout=0.25)("get_vps", vid)
    assert str(info.value) == (
        f"GET /api/v2/vps/{vid} failed: no answer from 127.0.0.1:{sim.port} within 0.25s "
        "(read timeout)"
    )


def test_timeout_per_call(api: Api, sim: HostupSimulator, vid: str) -> None:
    sim.inject("get_vps", Fault.delay(2.0), count=3)
    began = time.monotonic()
    with pytest.raises(APITimeoutError):
        api("get_vps", vid, timeout=0.1)
    assert time.monotonic() - began < 1.5  # three short tries, not one 2 s wait


def test_wait_keeps_polling_through_faults(
    make_api: Callable[..., Api], sim: HostupSimulator, vid: str
) -> None:
    api = make_api(max_retries=0)
    started = api("start_agent_exec", vid, "echo ok && sleep 0.2")
    sim.inject("exec_output", Fault.rate_limited(retry_after="0.05"))
    sim.inject("exec_output", Fault.status(503))
    sim.inject("exec_output", Fault.drop())
    output = api("wait_for_agent_exec", vid, started.pid, timeout=10)
    assert output.exited is True
    assert output.stdout == "ok\n"
    assert sim.count("exec_output") >= 4


# -- logging and redaction ------------------------------------------------------------------


def test_logging_one_line_per_attempt_and_a_warning_per_retry_never_the_key(
    api: Api, sim: HostupSimulator, vid: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim.inject("probe", Fault.status(503), count=2)
    api("get_agent_availability", vid)
    ours = [r for r in caplog.records if r.name == "hostup_pulumi"]
    debug = [r for r in ours if r.levelno == logging.DEBUG]
    warnings = [r for r in ours if r.levelno == logging.WARNING]
    assert len(debug) == 3
    assert len(warnings) == 2
    assert all(f"/api/v2/vps/{vid}/agent/exec" in r.getMessage() for r in ours)
    assert sim.api_key not in caplog.text
    assert all(sim.api_key not in r.getMessage() for r in caplog.records)  # httpx's too


def test_repr_of_clients_never_shows_credentials(sim: HostupSimulator) -> None:
    sync_client = HostupClient(sim.api_key, base_url=sim.base_url)
    async_client = AsyncHostupClient(session_cookie=sim.session_cookie, base_url=sim.base_url)
    try:
        for client in (sync_client, async_client):
            for text in (repr(client), str(client), repr(client.settings), repr(client._core)):
                assert sim.api_key not in text
                assert sim.session_cookie not in text
            assert sim.base_url in repr(client)
    finally:
        sync_client.close()
        asyncio.run(async_client.close())


def test_context_managers_close(sim: HostupSimulator, vid: str) -> None:
    with HostupClient(sim.api_key, base_url=sim.base_url) as client:
        client.get_vps(vid)
    with pytest.raises(RuntimeError, match="closed"):
        client.get_vps(vid)

    async def run() -> None:
        async with AsyncHostupClient(sim.api_key, base_url=sim.base_url) as client:
            await client.get_vps(vid)
        with pytest.raises(RuntimeError, match="closed"):
            await client.get_vps(vid)

    asyncio.run(run())
    assert sim.count("get_vps") == 2  # nothing was sent once closed


def test_async_client_bounds_concurrency(sim: HostupSimulator) -> None:
    ids = [sim.add_vps(name=f"n{i}") for i in range(8)]
    sim.set_latency(0.05)

    async def run() -> list[AgentAvailability]:
        async with AsyncHostupClient(sim.api_key, base_url=sim.base_url, max_concurrency=2) as c:
            return await asyncio.gather(*(c.get_agent_availability(i) for i in ids))

    results = asyncio.run(run())
    assert all(r.available for r in results)
    assert sim.count("probe") == 8
    assert sim.connections_opened <= 2


def test_async_client_uses_all_its_connections_and_no_more(sim: HostupSimulator) -> None:
    # max_concurrency=10 is carried by pools of 4, 4 and 2 connections (httpcore's pool
    # costs CPU with the square of its size): under load every one is used, never an 11th.
    ids = [sim.add_vps(name=f"n{i}") for i in range(40)]
    sim.set_latency(0.05)

    async def run() -> list[AgentAvailability]:
        async with AsyncHostupClient(sim.api_key, base_url=sim.base_url, max_concurrency=10) as c:
            return await asyncio.gather(*(c.get_agent_availability(i) for i in ids))

    assert all(r.available for r in asyncio.run(run()))
    assert sim.count("probe") == 40
    assert sim.connections_opened == 10


def test_async_client_sending_one_at_a_time_keeps_one_connection(sim: HostupSimulator) -> None:
    ids = [sim.add_vps(name=f"n{i}") for i in range(5)]

    async def run() -> None:
        async with AsyncHostupClient(sim.api_key, base_url=sim.base_url) as client:
            for vps_id in ids:
                await client.get_agent_availability(vps_id)

    asyncio.run(run())
    assert sim.count("probe") == 5
    assert sim.connections_opened == 1


def test_threads_sharing_a_sync_client_keep_to_its_max_concurrency(sim: HostupSimulator) -> None:
    ids = [sim.add_vps(name=f"n{i}") for i in range(12)]
    sim.set_latency(0.05)

    with (
        HostupClient(sim.api_key, base_url=sim.base_url, max_concurrency=3) as client,
        ThreadPoolExecutor(12) as threads,
    ):
        results = list(threads.map(client.get_agent_availability, ids))

    assert [r.available for r in results] == [True] * 12
    assert sim.count("probe") == 12
    assert 1 < sim.connections_opened <= 3


@pytest.mark.parametrize("cls", [HostupClient, AsyncHostupClient])
@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
def test_clients_refuse_a_bad_max_concurrency(cls: type[Any], bad: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        cls("k", max_concurrency=bad)
    assert str(caught.value) == f"max_concurrency must be a positive integer, got {bad!r}"


def test_client_without_credentials_says_how_to_set_them() -> None:
    for cls in (HostupClient, AsyncHostupClient):
        with pytest.raises(ConfigurationError, match="HOSTUP_API_KEY"):
            cls()


def test_client_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, sim: HostupSimulator, vid: str
) -> None:
    monkeypatch.setenv("HOSTUP_API_KEY", sim.api_key)
    monkeypatch.setenv("HOSTUP_BASE_URL", sim.base_url)
    with HostupClient() as client:
        assert client.base_url == sim.base_url
        assert client.get_vps(vid).id == vid


# -- refused before any request (MockTransport) ---------------------------------------------

GOOD = "vps_01hxa3b4c5d6e7f8g9h0j1k2m3"
REFUSED: dict[str, Call] = {
    "probe-ip": ("get_agent_availability", ("192.0.2.10",), {}),
    "probe-hostname": ("get_agent_availability", ("web-01.example.com",), {}),
    "get-vps-traversal": ("get_vps", ("vps_../../admin",), {}),
    "get-vps-number": ("get_vps", ("12345",), {}),
    "start-ip": ("start_agent_exec", ("192.0.2.10", "ls"), {}),
    "start-empty": ("start_agent_exec", (GOOD, ""), {}),
    "start-blank": ("start_agent_exec", (GOOD, "   "), {}),
    "start-too-long": ("start_agent_exec", (GOOD, "x" * 4097), {}),
    "start-nul": ("start_agent_exec", (GOOD, "echo \x00"), {}),
    "output-pid-0": ("get_agent_exec_output", (GOOD, 0), {}),
    "output-pid-negative": ("get_agent_exec_output", (GOOD, -5), {}),
    "output-pid-huge": ("get_agent_exec_output", (GOOD, 2**40), {}),
    "output-pid-str": ("get_agent_exec_output", (GOOD, "4242"), {}),
    "output-pid-bool": ("get_agent_exec_output", (GOOD, True), {}),
    "wait-exec-pid": ("wait_for_agent_exec", (GOOD, 0), {"timeout": 5}),
    "wait-exec-timeout": ("wait_for_agent_exec", (GOOD, 1), {"timeout": -1}),
    "wait-available-id": ("wait_for_agent_available", ("10.0.0.1",), {"timeout": 5}),
    "list-empty-name": ("list_vps", (), {"name": ""}),
    "list-blank-ip": ("list_vps", (), {"primary_ip": " "}),
    "timeout-zero": ("get_vps", (GOOD,), {"timeout": 0}),
    "timeout-negative": ("get_agent_availability", (GOOD,), {"timeout": -1}),
    "timeout-nan": ("get_agent_exec_output", (GOOD, 1), {"timeout": float("nan")}),
    "timeout-inf": ("start_agent_exec", (GOOD, "ls"), {"timeout": float("inf")}),
    "timeout-str": ("list_vps", (), {"timeout": "5"}),
}


class Recorder:
    """A MockTransport handler that records every request it gets."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return httpx.Response(500)


@pytest.fixture(scope="module")
def recorded_api() -> Iterator[dict[str, tuple[Api, Recorder]]]:
    """One client of each kind on a recording MockTransport, shared by the module."""
    made = {}
    for client_kind in KINDS:
        recorder = Recorder()
        made[client_kind] = (
            Api(client_kind, api_key="k", transport=httpx.MockTransport(recorder)),
            recorder,
        )
    yield made
    for api, _ in made.values():
        api.close()


@pytest.mark.parametrize("call", REFUSED.values(), ids=REFUSED.keys())
@pytest.mark.parametrize("client_kind", KINDS)
def test_bad_arguments_are_refused_before_any_request(
    recorded_api: dict[str, tuple[Api, Recorder]], client_kind: str, call: Call
) -> None:
    api, recorder = recorded_api[client_kind]
    recorder.seen.clear()
    method, args, kwargs = call
    with pytest.raises(ValidationError):
        api(method, *args, **kwargs)
    assert recorder.seen == []


def test_the_recording_client_does_send_valid_calls(
    recorded_api: dict[str, tuple[Api, Recorder]],
) -> None:
    # Guards the test above: the same clients do reach the transport with good arguments.
    for api, recorder in recorded_api.values():
        recorder.seen.clear()
        with pytest.raises(InternalServerError):
            api("get_vps", GOOD)
        assert len(recorder.seen) == 3  # 500 is retried twice


# -- responses no real server should send (MockTransport) -----------------------------------


def mock_client(
    make_api: Callable[..., Api], handler: Callable[[httpx.Request], httpx.Response]
) -> Api:
    # One MockTransport serves both client kinds.
    return make_api(api_key="hk_mock_key", max_retries=0, transport=httpx.MockTransport(handler))


def test_undecodable_body_is_a_hostup_error(make_api: Callable[..., Api]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-encoding": "gzip"}, content=b"not gzip")

    with pytest.raises(APIConnectionError, match="DecodingError"):
        mock_client(make_api, handler)("get_vps", GOOD)
    with pytest.raises(APIConnectionError) as info:
        mock_client(make_api, handler)("start_agent_exec", GOOD, "ls")
    assert info.value.command_may_have_started is True


def test_list_vps_stops_when_the_server_repeats_a_cursor(make_api: Callable[..., Api]) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        vps = {"id": f"vps_page{calls:04d}"}
        return httpx.Response(200, json={"data": [vps], "hasMore": True, "nextCursor": "same"})

    with pytest.raises(APIResponseValidationError, match="twice"):
        mock_client(make_api, handler)("list_vps")
    assert calls == 2


def test_list_vps_page_of_the_wrong_shape(make_api: Callable[..., Api]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [{"name": "no id"}]})

    with pytest.raises(APIResponseValidationError):
        mock_client(make_api, handler)("list_vps")


def test_list_vps_is_lazy(sim: HostupSimulator) -> None:
    for i in range(150):
        sim.add_vps(name=f"n{i}")
    with HostupClient(sim.api_key, base_url=sim.base_url) as client:
        first = next(iter(client.list_vps()))
        assert first.name == "n0"
        assert sim.count("list_vps") == 1


def test_unknown_status_is_an_api_status_error(make_api: Callable[..., Api]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(418, json={"code": "teapot", "title": "I'm a teapot"})

    with pytest.raises(APIStatusError) as info:
        mock_client(make_api, handler)("get_vps", GOOD)
    assert type(info.value) is APIStatusError
    assert info.value.code == "teapot"


# -- lists that break their own claims (MockTransport) ----------------------------------------

ODD_LISTS: dict[str, tuple[dict[str, Any], str]] = {
    # Not a quietly shorter list: a name looked up in it would be "not found" by mistake.
    "has-more-without-cursor": (
        {"data": [{"id": GOOD, "name": "web"}], "hasMore": True, "nextCursor": None},
        "GET /api/v2/vps said there are more VPSes (hasMore) but gave no nextCursor; "
        "stopping instead of returning an incomplete list",
    ),
    "id-not-a-vps-id": (
        {"data": [{"id": "12345", "name": "web"}], "hasMore": False},
        "GET /api/v2/vps returned an item whose id '12345' is not a VPS id (vps_...); "
        "stopping rather than guessing which VPS it is",
    ),
}


@pytest.mark.parametrize("case", ODD_LISTS)
def test_a_list_that_breaks_its_claims_fails_saying_which(
    make_api: Callable[..., Api], case: str
) -> None:
    body, message = ODD_LISTS[case]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=body)

    with pytest.raises(APIResponseValidationError) as caught:
        mock_client(make_api, handler)("list_vps", name="web")
    assert message in str(caught.value)
    assert len(seen) == 1  # one page read, no loop and no retry
