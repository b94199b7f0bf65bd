"""The fault matrix: every fault the simulator can inject x every client method, sync and async.

Each cell injects one fault (or three in a row) on the route a method uses, calls the method
through real HTTP on loopback, and checks the outcome design.md prescribes: a GET is retried
(honouring ``Retry-After`` / ``X-RateLimit-Reset``) and succeeds while the faults fit in
``max_retries``, else gives the typed error; a 429 spends no retry (retried while the server's
waits add up to 60 s at most); the POST that starts a command is retried only after a 429
and otherwise fails once, saying the command may have started; the waits poll
again after a failed poll, within their deadline. The simulator's request log proves how many
requests were sent.

Waits are virtual: the clients run on a fake clock (``clock=``/``sleep=``) that follows real
time and jumps by every sleep, so the real backoff and the servers' requested waits are used
(and recorded) without costing test time. Only the read-timeout cells take real time (a
0.15 s client timeout).

docs/faults.md's fault table is rendered from ``EXPECTED`` by :func:`render_table`;
``test_readme_table_is_the_matrix`` keeps the two equal. After changing an expectation, run
``python tests/test_fault_matrix.py`` and paste its output between the markers in docs/faults.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import FakeClock, call

from hostup_pulumi import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    CommandTimeoutError,
    HostupError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
)
from hostup_pulumi.testing import Fault, HostupSimulator

README = Path(__file__).resolve().parents[1] / "docs" / "faults.md"
TABLE_START = "<!-- fault-matrix:start -->"
TABLE_END = "<!-- fault-matrix:end -->"

#: The read-timeout cells: the client gives up after CLIENT_TIMEOUT, the server answers later.
CLIENT_TIMEOUT = 0.15
SERVER_DELAY = 0.4
#: Deadline of the waits in the matrix (seconds of virtual time).
WAIT_TIMEOUT = 30.0
COMMAND = "uname -a"
FIRST_PID = 1000  # the simulator's first pid


# -- the faults -------------------------------------------------------------------------------


def _http_date(seconds: float) -> str:
    return format_datetime(datetime.now(timezone.utc) + timedelta(seconds=seconds), usegmt=True)


def _iso(seconds: float) -> str:
    when = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Case:
    """One kind of fault, and what design.md says it means."""

    label: str  # the README row
    make: Callable[[], Fault]
    #: "retryable" (408, 5xx, transport), "rate_limited" (a 429 with a sane wait),
    #: "too_long" (a 429 asking for more than 60 s), "bad_body" (2xx, not JSON), "benign".
    kind: str
    #: The error once the retries are used up, or when it is not retried.
    error: type[HostupError] | None = None
    #: Whether the POST may have reached the server and started the command.
    post_may_start: bool = False
    #: The wait the server asks for, (min, max) seconds: the client must sleep that long.
    hint: tuple[float, float] | None = None


CASES: dict[str, Case] = {
    "429-retry-after-seconds": Case(
        "429, `Retry-After: 1` (seconds)",
        lambda: Fault.rate_limited(retry_after="1"),
        "rate_limited", RateLimitError, hint=(1.0, 1.0),
    ),
    "429-retry-after-date": Case(
        "429, `Retry-After: <HTTP date 2 s ahead>`",
        lambda: Fault.rate_limited(retry_after=_http_date(2.0)),
        "rate_limited", RateLimitError, hint=(0.9, 2.0),
    ),
    "429-ratelimit-reset-only": Case(
        "429, only `X-RateLimit-Reset: <ISO time 1.5 s ahead>`",
        lambda: Fault.rate_limited(retry_after=None, reset=_iso(1.5)),
        "rate_limited", RateLimitError, hint=(0.9, 1.5),
    ),
    "429-too-long": Case(
        "429, `Retry-After: 120` (over the 60 s cap)",
        lambda: Fault.rate_limited(retry_after="120"),
        "too_long", RateLimitError,
    ),
    "408-problem": Case(
        "408 problem+json", lambda: Fault.status(408), "retryable", APIStatusError
    ),
    **{
        f"{status}-problem": Case(
            f"{status} problem+json", lambda s=status: Fault.status(s), "retryable",
            InternalServerError, post_may_start=True,
        )
        for status in (500, 502, 503, 504)
    },
    **{
        f"{status}-html": Case(
            f"{status} HTML page (a proxy)", lambda s=status: Fault.html(s), "retryable",
            InternalServerError, post_may_start=True,
        )
        for status in (500, 502, 503, 504)
    },
    "drop": Case(
        "connection dropped before any response", Fault.drop, "retryable",
        APIConnectionError, post_may_start=True,
    ),
    "read-timeout": Case(
        "read timeout (no answer in time)", lambda: Fault.delay(SERVER_DELAY), "retryable",
        APITimeoutError, post_may_start=True,
    ),
    "truncated": Case(
        "200 with a truncated body", Fault.truncated, "retryable", APIConnectionError,
        post_may_start=True,
    ),
    "malformed-json": Case(
        "200 with malformed JSON", Fault.malformed_json, "bad_body",
        APIResponseValidationError, post_may_start=True,
    ),
    "wrong-content-type": Case(
        "200, valid JSON labelled `text/plain`", Fault.wrong_content_type, "benign"
    ),
}  # fmt: skip


# -- the methods ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    route: str
    group: str  # "get", "start" or "wait": the column of the README table
    needs_pid: bool = False


METHODS: dict[str, Method] = {
    "get_agent_availability": Method("probe", "get"),
    "get_agent_exec_output": Method("exec_output", "get", needs_pid=True),
    "list_vps": Method("list_vps", "get"),
    "get_vps": Method("get_vps", "get"),
    "start_agent_exec": Method("exec_start", "start"),
    "wait_for_agent_exec": Method("exec_output", "wait", needs_pid=True),
    "wait_for_agent_available": Method("probe", "wait"),
}
#: The README table's column groups (the README lists each group's methods).
GROUPS = {"get": "GET", "start": "POST start", "wait": "wait"}
IN_A_ROW = (1, 3)  # faults in a row on the route; max_retries is 2


# -- the expectations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    error: type[HostupError] | None  # None: the call succeeds
    requests: int  # requests the simulator receives on the route
    may_have_started: bool = False

    def text(self) -> str:
        sent = f"{self.requests} request{'s' if self.requests > 1 else ''}"
        if self.error is None:
            return f"ok ({sent})"
        started = ", *may have started*" if self.may_have_started else ""
        return f"`{self.error.__name__}`{started} ({sent})"


def expected(case: Case, group: str, in_a_row: int) -> Outcome:
    """The rules of design.md section 5, per kind of fault and kind of call."""
    if case.kind == "benign":
        return Outcome(None, 1)
    if case.kind == "bad_body":  # not retried: a 200 is an answer, just not a usable one
        return Outcome(case.error, 1, may_have_started=group == "start")
    if case.kind == "too_long":  # never a silent long sleep
        return Outcome(CommandTimeoutError if group == "wait" else case.error, 1)
    if case.kind == "rate_limited":  # a 429 means "not run": retried, spending no retry,
        return Outcome(None, 1 + in_a_row)  # while the waits add up to 60 s at most
    if group == "start":
        return Outcome(case.error, 1, may_have_started=case.post_may_start)
    if group == "get":
        return Outcome(None, 2) if in_a_row == 1 else Outcome(case.error, 3)
    # A wait's poll that fails after its retries is polled again, within the deadline.
    return Outcome(None, 1 + in_a_row)


EXPECTED: dict[tuple[str, str, int], Outcome] = {
    (name, group, n): expected(case, group, n)
    for name, case in CASES.items()
    for group in GROUPS
    for n in IN_A_ROW
}

#: Cells where the code does not (yet) do what design.md says: (actual outcome, why). Their
#: tests are strict xfails, so fixing the code makes them fail until this entry is removed.
KNOWN_BUGS: dict[tuple[str, str, int], tuple[Outcome, str]] = {}


def shown(key: tuple[str, str, int]) -> str:
    """The README text of a cell: what the code does today (a known bug is marked)."""
    if key in KNOWN_BUGS:
        return KNOWN_BUGS[key][0].text() + " †"
    return EXPECTED[key].text()


def render_table() -> str:
    """docs/faults.md's fault table, from ``EXPECTED`` (and ``KNOWN_BUGS``)."""
    header = ["fault on the route"]
    for title in GROUPS.values():
        header += [f"{title}, 1 fault", f"{title}, 3 in a row"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, case in CASES.items():
        cells = [case.label] + [shown((name, g, n)) for g in GROUPS for n in IN_A_ROW]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- running a call ---------------------------------------------------------------------------


def client_kwargs(sim: HostupSimulator, **extra: Any) -> dict[str, Any]:
    return {"api_key": sim.api_key, "base_url": sim.base_url, "max_retries": 2, **extra}


@pytest.fixture
def vtime() -> FakeClock:
    """Virtual time for the clients: real time plus every sleep, each returning at once."""
    return FakeClock(real=True)


def arguments(
    method: str, sim: HostupSimulator, vid: str
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments of ``method``; starts a (finished) command first when it needs a pid."""
    spec = METHODS[method]
    args: tuple[Any, ...] = () if method == "list_vps" else (vid,)
    if method == "start_agent_exec":
        args = (vid, COMMAND)
    if spec.needs_pid:
        started = call("sync", "start_agent_exec", vid, COMMAND, client=client_kwargs(sim))
        args = (vid, started.pid)
    return args, ({"timeout": WAIT_TIMEOUT} if spec.group == "wait" else {})


def cells() -> Iterator[Any]:
    for name in CASES:
        for method, spec in METHODS.items():
            for n in IN_A_ROW:
                for kind in ("sync", "async"):
                    key = (name, spec.group, n)
                    marks = []
                    if key in KNOWN_BUGS:
                        marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[key][1]))
                    yield pytest.param(name, method, n, kind, marks=marks,
                                       id=f"{name}-{method}-x{n}-{kind}")  # fmt: skip


@pytest.fixture
def sim(hostup_simulator: HostupSimulator) -> HostupSimulator:
    """The package's simulator, knowing COMMAND."""
    hostup_simulator.script_command(COMMAND, stdout="Linux web-01\n")
    return hostup_simulator


@pytest.fixture
def vid(sim: HostupSimulator) -> str:
    return sim.add_vps(name="web-01", primary_ip="192.0.2.10")


@pytest.mark.parametrize(("fault", "method", "in_a_row", "kind"), list(cells()))
def test_cell(
    sim: HostupSimulator,
    vid: str,
    vtime: FakeClock,
    fault: str,
    method: str,
    in_a_row: int,
    kind: str,
) -> None:
    case, spec = CASES[fault], METHODS[method]
    want = EXPECTED[(fault, spec.group, in_a_row)]
    args, method_kw = arguments(method, sim, vid)
    client_kw = client_kwargs(sim)
    if fault == "read-timeout":
        client_kw["timeout"] = CLIENT_TIMEOUT
    sim.clear_requests()
    connections_before = sim.connections_opened
    sim.inject(spec.route, case.make(), count=in_a_row)

    outcome = call(kind, method, *args, client=client_kw, clock=vtime, **method_kw)

    # Requests sent: a delayed request is logged only once answered, after the client gave
    # up on it; but each timed-out request took a fresh connection, so count those.
    if fault == "read-timeout":
        sent = sim.connections_opened - connections_before
        assert sim.count(spec.route) <= sent
    else:
        sent = sim.count(spec.route)
    assert sim.count("*") == sim.count(spec.route)  # no request went anywhere else

    if want.error is None:
        assert not isinstance(outcome, BaseException), f"{type(outcome).__name__}: {outcome}"
    else:
        assert type(outcome) is want.error, f"{type(outcome).__name__}: {outcome}"
        check_error(outcome, case, spec, want)
    assert sent == want.requests, [r.status for r in sim.requests]
    if case.hint is not None and want.error is None:
        low, high = case.hint  # the client slept as long as the server asked
        assert any(low <= slept <= high for slept in vtime.sleeps), vtime.sleeps


def check_error(error: HostupError, case: Case, spec: Method, want: Outcome) -> None:
    """What the message and attributes of an expected error must say."""
    message = str(error)
    assert ("may have started" in message) is want.may_have_started, message
    if isinstance(error, APIConnectionError | APIStatusError):
        assert error.command_may_have_started is want.may_have_started
    if isinstance(error, CommandTimeoutError):
        assert isinstance(error.__cause__, RateLimitError)  # why the wait gave up early
        return
    verb = "POST" if spec.group == "start" else "GET"
    assert f"{verb} /api/v2/vps" in message, message
    if isinstance(error, RateLimitError) and case.kind == "too_long":
        assert error.retry_after == 120
    if isinstance(error, APIStatusError) and case.make().kind == "html":
        assert error.code is None
        assert error.body_excerpt is not None
        assert str(error.status_code) in error.body_excerpt
        assert "<" not in message  # the page's text, not its markup


# -- the POST: what reached the server --------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "ran"),
    [
        ("truncated", True),  # handled, then the answer was cut off
        ("read-timeout", True),  # handled after the client stopped waiting
        ("drop", False),  # read, then the connection was closed: nothing ran
        ("503-problem", False),
        ("502-html", False),
        ("malformed-json", False),
    ],
)
def test_the_client_cannot_tell_whether_a_failed_post_ran_so_it_never_retries(
    sim: HostupSimulator, vid: str, vtime: FakeClock, fault: str, ran: bool
) -> None:
    """A truncated or timed-out POST did start the command on the server; a dropped or 5xx
    one did not. The client sees the same kind of failure either way, which is why it says
    "may have started" and never sends the POST again."""
    kw = client_kwargs(sim, timeout=CLIENT_TIMEOUT, max_retries=5)
    sim.inject("exec_start", CASES[fault].make(), count=5)
    error = call("sync", "start_agent_exec", vid, COMMAND, client=kw, clock=vtime)
    assert isinstance(error, HostupError)
    assert "may have started" in str(error)
    assert "check" in str(error).lower()  # ...and what to do about it

    def server_has_the_command() -> bool:
        sim.clear_faults()
        found = call("sync", "get_agent_exec_output", vid, FIRST_PID, client=client_kwargs(sim))
        assert not isinstance(found, HostupError) or isinstance(found, NotFoundError), found
        return not isinstance(found, NotFoundError)

    if ran:
        deadline = time.monotonic() + 5
        while not server_has_the_command():
            assert time.monotonic() < deadline, "the command never appeared on the server"
            time.sleep(0.02)
    else:
        assert not server_has_the_command()
    deadline = time.monotonic() + 5  # a delayed POST is logged once it has been answered
    while sim.count("exec_start") < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sim.count("exec_start", "POST") == 1


def test_a_post_with_an_unusable_body_flags_command_may_have_started(
    sim: HostupSimulator, vid: str
) -> None:
    sim.inject("exec_start", Fault.malformed_json())
    error = call("sync", "start_agent_exec", vid, COMMAND, client=client_kwargs(sim))
    assert isinstance(error, APIResponseValidationError)
    assert getattr(error, "command_may_have_started", None) is True


# -- the table in docs/faults.md --------------------------------------------------------------


def readme_table(text: str) -> str:
    match = re.search(re.escape(TABLE_START) + r"\n(.*?)\n" + re.escape(TABLE_END), text, re.S)
    assert match, f"docs/faults.md has no {TABLE_START} ... {TABLE_END} block"
    return match.group(1).strip()


def test_readme_table_is_the_matrix() -> None:
    assert readme_table(README.read_text(encoding="utf-8")) == render_table(), (
        "docs/faults.md's fault table differs from the matrix: "
        "run `python tests/test_fault_matrix.py` and paste its output"
    )


def test_every_cell_is_tested_both_ways() -> None:
    ids = {(p.values[0], METHODS[p.values[1]].group, p.values[2]) for p in cells()}
    assert ids == set(EXPECTED)
    assert len(list(cells())) == len(CASES) * len(METHODS) * len(IN_A_ROW) * 2


if __name__ == "__main__":
    print(TABLE_START)
    print(render_table())
    print(TABLE_END)
