"""Hostile input: refused locally, with a clear message, before any request is sent.

Every bad ``vps_id``, ``pid`` and ``command`` goes through every client method that takes it
(sync and async) against a live simulator whose request log must stay empty; then the
settings (API key, session cookie, base URL) and the dynamic providers' ``check``. The last
part feeds arbitrary bytes to the response and problem parsers (what test_properties.py does
not cover already: truncations of real bodies, hostile nesting, header values).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from helpers import call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostup_pulumi import (
    AgentAvailability,
    AgentExecOutput,
    APIResponseValidationError,
    APIStatusError,
    ConfigurationError,
    HostupClient,
    HostupError,
    Settings,
    ValidationError,
    Vps,
)
from hostup_pulumi import _endpoints as endpoints
from hostup_pulumi._core import Core
from hostup_pulumi._outcomes import error_from_response
from hostup_pulumi._retry import RetryPolicy
from hostup_pulumi.resources import _AgentCommandProvider, _AgentExecResultProvider
from hostup_pulumi.testing import HostupSimulator

GOOD_ID = "vps_01hxa3b4c5d6e7f8g9h0j1k2m3"


def run(kind: str, sim: HostupSimulator, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``method`` on a fresh client of ``kind``; return the result or the HostupError."""
    return call(kind, method, *args, client={"api_key": sim.api_key, "base_url": sim.base_url},
                **kwargs)  # fmt: skip


def refused(outcome: Any, sim: HostupSimulator, *needles: str, cls: type = ValidationError) -> str:
    """``outcome`` is a ``cls`` whose message holds every needle, and nothing was sent."""
    assert isinstance(outcome, cls), f"expected {cls.__name__}, got {outcome!r}"
    message = str(outcome)
    for needle in needles:
        assert needle in message, message
    assert len(message) < 500, message  # short, whatever the input's size
    assert sim.requests == []
    return message


# -- vps_id -----------------------------------------------------------------------------------

#: (bad id, words the message must hold). Every message also says how to find the id.
BAD_VPS_IDS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "slash": ("vps_01hxa3/../admin", ("path or URL characters",)),
    "traversal": ("../../api/v2/admin", ("path or URL characters",)),
    "dot-dot": ("..", ("path or URL characters",)),
    "backslash": ("vps_01hxa3\\b4c5d6", ("path or URL characters",)),
    "query": ("vps_01hxa3b4c5d6?pid=1", ("path or URL characters",)),
    "fragment": ("vps_01hxa3b4c5d6#top", ("path or URL characters",)),
    "percent-encoded": ("vps_01hxa3%2F..%2Fx", ("path or URL characters",)),
    "space": ("vps_01hxa3 b4c5d6", ("characters other than letters and digits",)),
    "crlf": ("vps_01hxa3b4c5d6\r\nHost: evil", ("characters other than letters",)),
    "nul": ("vps_01hxa3b4c5d6\x00", ("characters other than letters",)),
    "non-ascii": ("vps_01hxa3b4c5d6é", ("characters other than letters",)),
    "fullwidth-digits": (
        "vps_\uff10\uff11\uff12\uff13\uff14\uff15\uff16",
        ("characters other than letters",),
    ),
    "thousands-of-chars": ("vps_" + "a" * 5000, ("5004 characters long",)),
    "bare-number": ("12345", ("bare number", "legacy numeric")),
    "hostname": ("web-01.example.com", ("looks like a hostname", "name='web-01'")),
    "ipv4": ("192.0.2.10", ("IP address", "primary_ip='192.0.2.10'")),
    "ipv6": ("2001:db8::1", ("IP address", "primary_ip='2001:db8::1'")),
    "empty": ("", ("empty",)),
    "no-prefix": ("01hxa3b4c5d6e7f8g9h0j1k2m3", ("does not start with `vps_`",)),
    "not-a-string": (12345, ("must be a string", "int")),
}
VPS_ID_METHODS: dict[str, Callable[[Any], tuple[tuple[Any, ...], dict[str, Any]]]] = {
    "get_agent_availability": lambda v: ((v,), {}),
    "get_vps": lambda v: ((v,), {}),
    "start_agent_exec": lambda v: ((v, "uname -a"), {}),
    "get_agent_exec_output": lambda v: ((v, 1000), {}),
    "wait_for_agent_exec": lambda v: ((v, 1000), {"timeout": 5}),
    "wait_for_agent_available": lambda v: ((v,), {"timeout": 5}),
    "require_agent_available": lambda v: ((v,), {"wait_timeout": 5}),
}


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("method", VPS_ID_METHODS)
@pytest.mark.parametrize("bad", BAD_VPS_IDS, ids=list(BAD_VPS_IDS))
def test_bad_vps_id_is_refused_before_any_request(
    sim: HostupSimulator, kind: str, method: str, bad: str
) -> None:
    value, needles = BAD_VPS_IDS[bad]
    args, kwargs = VPS_ID_METHODS[method](value)
    message = refused(run(kind, sim, method, *args, **kwargs), sim, *needles)
    if isinstance(value, str) and value.strip():
        assert "list_vps(" in message  # how to find the right id
        assert "hostup-pulumi list-vps" in message
    if bad == "thousands-of-chars":
        assert "a" * 100 not in message  # the input is shortened, not echoed whole
    if bad == "crlf":
        assert "\r" not in message.split("'")[0]  # the message itself has no line break


# -- pid ----------------------------------------------------------------------------------------

BAD_PIDS: dict[str, tuple[Any, str]] = {
    "zero": (0, "between 1 and 2147483647, got 0"),
    "negative": (-1, "between 1 and 2147483647, got -1"),
    "huge": (2**31, "between 1 and 2147483647, got 2147483648"),
    "enormous": (10**100, "between 1 and 2147483647"),
    "string": ("1000", "not str '1000'"),
    "bool-true": (True, "not bool True"),
    "bool-false": (False, "not bool False"),
    "none": (None, "not NoneType"),
    "fraction": (1000.5, "whole number, got 1000.5"),
    "nan": (float("nan"), "whole number, got nan"),
    "infinity": (float("inf"), "whole number, got inf"),
}


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("method", ["get_agent_exec_output", "wait_for_agent_exec"])
@pytest.mark.parametrize("bad", BAD_PIDS)
def test_bad_pid_is_refused_before_any_request(
    sim: HostupSimulator, kind: str, method: str, bad: str
) -> None:
    value, needle = BAD_PIDS[bad]
    refused(run(kind, sim, method, GOOD_ID, value), sim, "pid", needle)


# -- command ------------------------------------------------------------------------------------

BAD_COMMANDS: dict[str, tuple[Any, str]] = {
    "empty": ("", "command is empty"),
    "blank": (" \t\n ", "command is empty"),
    "over-4096": ("x" * 4097, "4097 characters long; the API accepts at most 4096"),
    "huge": ("x" * 1_000_000, "1000000 characters long"),
    "nul": ("echo hi\x00rm -rf /", "NUL character"),
    "bytes": (b"uname -a", "must be a string, not bytes"),
    "none": (None, "must be a string, not NoneType"),
}


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("bad", BAD_COMMANDS)
def test_bad_command_is_refused_before_any_request(
    sim: HostupSimulator, kind: str, bad: str
) -> None:
    value, needle = BAD_COMMANDS[bad]
    message = refused(run(kind, sim, "start_agent_exec", GOOD_ID, value), sim, needle)
    assert "x" * 100 not in message


def test_a_command_of_exactly_4096_characters_is_sent(sim: HostupSimulator) -> None:
    vid = sim.add_vps(name="web-01")
    started = run("sync", sim, "start_agent_exec", vid, "x" * 4096)
    assert started.pid > 0
    assert sim.count("exec_start") == 1


@pytest.mark.parametrize("bad", ["", "  ", 5])
def test_bad_list_vps_filters_are_refused(sim: HostupSimulator, bad: Any) -> None:
    refused(run("sync", sim, "list_vps", name=bad), sim, "name must be a non-empty string")


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), True, "10"])
@pytest.mark.parametrize("method", ["wait_for_agent_exec", "wait_for_agent_available"])
def test_bad_wait_timeout_is_refused(sim: HostupSimulator, method: str, timeout: Any) -> None:
    args = (GOOD_ID, 1000) if method == "wait_for_agent_exec" else (GOOD_ID,)
    refused(run("sync", sim, method, *args, timeout=timeout), sim, "timeout must be a")


# -- settings: key, cookie, base URL ------------------------------------------------------------

KEY = "hsk_HOSTILE_key_5e8f"


BAD_KEYS = {
    "crlf-header": f"{KEY}\r\nX-Injected: 1",
    "lf-header": f"{KEY}\nX-Injected: 1",
    "cr": f"{KEY}\rX-Injected: 1",
    "nul": f"hsk\x00{KEY}",
    "del": f"{KEY}\x7fX",
}


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        pytest.param(source, bad, id=f"{source}-{name}")
        for source in ("argument", "environment", "pulumi-config")
        for name, bad in BAD_KEYS.items()
        if not (source == "environment" and "\x00" in bad)  # no NUL in an environment
    ],
)
def test_api_key_with_control_characters_is_refused_without_echoing_it(
    sim: HostupSimulator, monkeypatch: pytest.MonkeyPatch, bad: str, source: str
) -> None:
    def build() -> object:
        if source == "argument":
            return HostupClient(bad, base_url=sim.base_url)
        if source == "environment":
            monkeypatch.setenv("HOSTUP_API_KEY", bad)
            return HostupClient(base_url=sim.base_url)
        return Settings.resolve(config={"hostup:apiKey": bad, "hostup:baseUrl": sim.base_url})

    with pytest.raises(ConfigurationError) as info:
        build()
    message = str(info.value)
    assert "control character" in message
    assert "HOSTILE" not in message
    assert "Injected" not in message
    assert sim.requests == []


def test_api_key_with_non_ascii_is_refused(sim: HostupSimulator) -> None:
    with pytest.raises(ConfigurationError, match="non-ASCII") as info:
        HostupClient(f"{KEY}ä", base_url=sim.base_url)
    assert "HOSTILE" not in str(info.value)
    assert sim.requests == []


def test_api_key_pasted_with_a_trailing_newline_is_used_without_it(sim: HostupSimulator) -> None:
    vid = sim.add_vps(name="web-01")
    with HostupClient(sim.api_key + "\n", base_url=sim.base_url) as client:
        assert client.get_agent_availability(vid).available is True


@pytest.mark.parametrize(
    "bad",
    ["abc\r\nSet-Cookie: x=1", "abc; admin=1", "abc, other=1", 'abc"', "abc def", "abc\\"],
    ids=["crlf", "semicolon", "comma", "quote", "space", "backslash"],
)
def test_session_cookie_that_would_add_cookies_or_headers_is_refused(
    sim: HostupSimulator, bad: str
) -> None:
    with pytest.raises(ConfigurationError, match="session cookie") as info:
        HostupClient(session_cookie=bad, base_url=sim.base_url)
    assert "admin" not in str(info.value)
    assert "Set-Cookie" not in str(info.value)
    assert sim.requests == []


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("ftp://cloud.hostup.se", "scheme 'ftp'"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("javascript:alert(1)", "not an http(s) URL"),
        ("gopher://127.0.0.1:70", "scheme 'gopher'"),
        ("cloud.hostup.se", "no scheme"),
        ("//cloud.hostup.se", "no scheme"),
        ("https://", "no host"),
        ("http://example.com", "plain http"),
        ("http://cloud.hostup.se", "plain http"),
        ("http://192.0.2.10", "plain http"),
        ("http://127.0.0.1.nip.io", "plain http"),
        ("http://localhost.evil.example", "plain http"),
        ("http://127.0.0.1@evil.example", "plain http"),
        ("http://2130706433", "plain http"),  # 127.0.0.1 as a number: refused, not guessed
        ("https://user:pw@cloud.hostup.se", "must not carry credentials"),
        ("https://cloud.hostup.se/?key=hsk_x", "must not carry credentials, a query"),
        ("https://cloud.hostup.se#frag", "a fragment"),
        ("https://cloud.hostup.se:99999", "invalid port"),
        ("https://cloud.hostup.se:abc", "invalid port"),
        ("https://cloud.hostup.se:0", "invalid port"),
        ("https://[::1", "not a valid URL"),
        ("https://cloud.hostup.se/\r\nX-Injected: 1", "control character"),
        ("https://cloud.hostup.se\x00.evil", "control character"),
        ("https://clo ud.hostup.se", "whitespace"),
        ("https://cloud.hostup.se/a b", "whitespace"),
    ],
)
def test_bad_base_url_is_refused(url: str, needle: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        HostupClient(KEY, base_url=url)
    message = str(info.value)
    assert needle in message, message
    assert "pw" not in message
    assert "hsk_x" not in message
    assert "\n" not in message


def test_plain_http_to_a_non_loopback_host_sends_nothing(sim: HostupSimulator) -> None:
    # The simulator listens on 127.0.0.1; the same port under a name that is not loopback
    # must be refused before any connection is made.
    with pytest.raises(ConfigurationError, match="plain http"):
        HostupClient(sim.api_key, base_url=f"http://127.0.0.1.nip.io:{sim.port}")
    with pytest.raises(ConfigurationError, match="control character"):
        HostupClient(sim.api_key, base_url=f"{sim.base_url}/\r\nX-Injected: 1")
    assert sim.requests == []
    assert sim.connections_opened == 0


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://127.0.0.2", "http://[::1]:8080", "http://localhost:8080",
     "HTTPS://cloud.hostup.se", "https://cloud.hostup.se/", "  https://cloud.hostup.se\n"],
)  # fmt: skip
def test_loopback_http_and_any_https_are_accepted(url: str) -> None:
    assert HostupClient(KEY, base_url=url).base_url == url.strip().rstrip("/")


def test_plain_http_on_loopback_reaches_the_simulator(sim: HostupSimulator) -> None:
    vid = sim.add_vps(name="web-01")
    assert run("sync", sim, "get_agent_availability", vid).available is True
    assert sim.count("probe") == 1


# -- the dynamic providers' check: the engine shows these before anything runs -----------------


def test_provider_check_refuses_hostile_inputs_without_a_client() -> None:
    command = _AgentCommandProvider()
    result = command.check({}, {"vps_id": "../x", "command": "ls\x00", "triggers": "x"})
    failures = {f.property: f.reason for f in result.failures}
    assert "path or URL characters" in failures["vps_id"]
    assert "NUL character" in failures["command"]
    assert "triggers must be a list" in failures["triggers"]
    output = _AgentExecResultProvider()
    result = output.check({}, {"vps_id": "192.0.2.10", "pid": -5, "timeout": float("inf")})
    failures = {f.property: f.reason for f in result.failures}
    assert "IP address" in failures["vps_id"]
    assert "between 1 and" in failures["pid"]
    assert "timeout must be" in failures["timeout"]
    # No credentials are configured here (conftest.py clears HOSTUP_*): had check built a
    # client, it would have raised ConfigurationError instead of returning the failures.


# -- parsers on arbitrary bytes -----------------------------------------------------------------

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CORE = Core(
    Settings.resolve(api_key=KEY, base_url="https://api.example.test", env={}),
    retry=RetryPolicy(max_retries=0),
)
REAL_BODIES = [
    json.dumps({"available": True, "reason": None, "vmRunning": True}).encode(),
    json.dumps({"pid": 7, "exited": True, "exitCode": 0, "stdout": "x", "stderr": ""}).encode(),
    json.dumps({"id": GOOD_ID, "name": "web-01", "powerState": "running"}).encode(),
]
MODELS = [AgentAvailability, AgentExecOutput, Vps]


@PROPS
@given(body=st.sampled_from(REAL_BODIES), cut=st.integers(0, 200), junk=st.binary(max_size=8))
def test_a_truncated_or_spliced_real_body_parses_or_is_a_validation_error(
    body: bytes, cut: int, junk: bytes
) -> None:
    spoiled = body[: cut % (len(body) + 1)] + junk
    for model in MODELS:
        response = httpx.Response(200, content=spoiled)
        try:
            CORE.parse(endpoints.get_agent_availability(GOOD_ID), response, model)
        except APIResponseValidationError as exc:
            assert KEY not in str(exc)  # noqa: PT017 - either outcome is allowed


@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_hostile_nesting_is_a_typed_error_not_a_crash(depth: int, opener: str) -> None:
    body = (opener * depth).encode()
    with pytest.raises(APIResponseValidationError):
        CORE.parse(
            endpoints.get_agent_availability(GOOD_ID),
            httpx.Response(200, content=body),
            AgentAvailability,
        )
    error = error_from_response(
        status_code=502, headers={}, body=body, method="GET", path="/api/v2/vps"
    )
    assert isinstance(error, APIStatusError)
    assert len(str(error)) < 400


@PROPS
@given(
    body=st.binary(max_size=400),
    retry_after=st.text(max_size=40),
    request_id=st.text(max_size=40),
    status=st.sampled_from([400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504]),
)
def test_problem_parser_on_arbitrary_bytes_keeps_the_message_one_short_line(
    body: bytes, retry_after: str, request_id: str, status: int
) -> None:
    error = error_from_response(
        status_code=status,
        headers={"retry-after": retry_after, "x-request-id": request_id},
        body=body,
        method="GET",
        path="/api/v2/vps",
    )
    assert isinstance(error, HostupError)
    if error.body_excerpt is not None:  # a non-JSON body becomes one short line of text
        assert "\n" not in error.body_excerpt
        assert len(error.body_excerpt) <= 160
    assert str(error).startswith(f"HTTP {status}")
