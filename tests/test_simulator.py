"""Tests of the offline HostUp API simulator, spoken to over real HTTP with httpx."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hostup_pulumi.testing import DEMO_SEED, Fault, HostupSimulator, RecordedRequest

WEB = "vps_01jdemo0web000000000000001"
DB = "vps_01jdemo00db000000000000002"
OLD = "vps_01jdemo0old000000000000003"
ID_RE = re.compile(r"vps_[0-9a-z]{26}")
REQ_RE = re.compile(r"req_[0-9a-z]{26}")
ISO_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def sim() -> Iterator[HostupSimulator]:
    with HostupSimulator(seed="demo") as simulator:
        yield simulator


def client_for(sim: HostupSimulator, key: str | None = None, **kwargs: Any) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key or sim.api_key}"}
    # verify=False only skips loading CA certificates (~40 ms per client); this is plain HTTP.
    return httpx.Client(base_url=sim.base_url, headers=headers, verify=False, **kwargs)


@pytest.fixture
def client(sim: HostupSimulator) -> Iterator[httpx.Client]:
    with client_for(sim) as c:
        yield c


def exec_path(vps_id: str) -> str:
    return f"/api/v2/vps/{vps_id}/agent/exec"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://developer.hostup.se/errors/{code}"
    assert body["code"] == code
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["instance"] == response.request.url.path
    assert REQ_RE.fullmatch(body["requestId"])
    assert body["requestId"] == response.headers["x-request-id"]
    assert ISO_RE.fullmatch(body["timestamp"])
    return body


def swallow_http_errors(func: Any, *args: Any) -> None:
    """Call ``func``; a stopping simulator may answer or cut the connection."""
    with contextlib.suppress(httpx.HTTPError):
        func(*args)


def run(client: httpx.Client, vps_id: str, command: str) -> dict[str, Any]:
    """Start ``command`` and poll until it exits."""
    started = client.post(exec_path(vps_id), json={"command": command})
    assert started.status_code == 200, started.text
    for _ in range(200):
        output: dict[str, Any] = client.get(started.json()["pollUrl"]).json()
        if output["exited"]:
            return output
        time.sleep(0.01)
    raise AssertionError("command never exited")


# -- inventory ---------------------------------------------------------------------------


def test_demo_seed_lists_three_vps_with_fixed_ids(client: httpx.Client) -> None:
    response = client.get("/api/v2/vps")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert REQ_RE.fullmatch(response.headers["x-request-id"])
    body = response.json()
    assert [v["id"] for v in body["data"]] == [WEB, DB, OLD]
    assert [v["name"] for v in body["data"]] == ["web-01", "db-01", "old-01"]
    assert body["hasMore"] is False
    assert body["nextCursor"] is None
    assert all(v["primaryIp"].startswith("192.0.2.") for v in body["data"])


def test_get_vps_returns_the_canonical_shape(client: httpx.Client) -> None:
    body = client.get(f"/api/v2/vps/{WEB}").json()
    assert body["id"] == WEB
    assert body["name"] == "web-01"
    assert body["primaryIp"] == "192.0.2.10"
    assert body["serviceStatus"] == "active"
    assert body["powerState"] == "running"
    assert set(body["operatingSystem"]) == {"displayName", "family", "version", "variant"}
    assert set(body["billing"]) == {
        "amount",
        "currencyCode",
        "billingCycle",
        "isPayg",
        "periodYears",
    }
    assert set(body["resources"]) == {"cpuCores", "memoryGb", "storageGb"}


@pytest.mark.parametrize("vps_id", ["vps_01jdemo0zzz000000000000009", "192.0.2.10", "web-01"])
def test_get_unknown_or_malformed_vps_is_vps_not_found(client: httpx.Client, vps_id: str) -> None:
    assert_problem(client.get(f"/api/v2/vps/{vps_id}"), 404, "vps_not_found")


def test_add_vps_generates_ids_and_serves_extra(sim: HostupSimulator, client: httpx.Client) -> None:
    vps_id = sim.add_vps(name="app-01", extra={"tags": ["x"], "billing": {"isPayg": True}})
    assert ID_RE.fullmatch(vps_id)
    body = client.get(f"/api/v2/vps/{vps_id}").json()
    assert body["tags"] == ["x"]
    assert body["billing"] == {"isPayg": True}
    assert body["primaryIp"] is None
    with pytest.raises(ValueError, match="duplicate"):
        sim.add_vps(name="again", vps_id=vps_id)
    with pytest.raises(ValueError, match="vps_"):
        sim.add_vps(name="bad", vps_id="vps_ABC")


def test_pagination_walks_every_page(client: httpx.Client) -> None:
    with HostupSimulator() as big, client_for(big) as c:
        ids = [big.add_vps(name=f"n-{i:02d}") for i in range(45)]
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 20}
            if cursor:
                params["cursor"] = cursor
            body = c.get("/api/v2/vps", params=params).json()
            pages += 1
            seen += [v["id"] for v in body["data"]]
            assert body["hasMore"] is (body["nextCursor"] is not None)
            cursor = body["nextCursor"]
            if not body["hasMore"]:
                break
        assert pages == 3
        assert seen == ids
        # the default page size is 20
        assert len(c.get("/api/v2/vps").json()["data"]) == 20


@pytest.mark.parametrize("limit", ["0", "101", "abc", "-1", "2.5"])
def test_invalid_limit_points_at_limit(client: httpx.Client, limit: str) -> None:
    body = assert_problem(
        client.get("/api/v2/vps", params={"limit": limit}), 400, "invalid_request"
    )
    assert body["errors"][0]["pointer"] == "/limit"


@pytest.mark.parametrize("cursor", ["garbage!", "bm9wZQ", "b2Zmc2V0Oi0x"])
def test_invalid_cursor(client: httpx.Client, cursor: str) -> None:
    assert_problem(client.get("/api/v2/vps", params={"cursor": cursor}), 400, "invalid_cursor")


def test_filters_by_name_case_insensitively_and_by_exact_ip(client: httpx.Client) -> None:
    by_name = client.get("/api/v2/vps", params={"name": "WEB-01"}).json()["data"]
    assert [v["id"] for v in by_name] == [WEB]
    by_ip = client.get("/api/v2/vps", params={"primaryIp": "192.0.2.20"}).json()["data"]
    assert [v["id"] for v in by_ip] == [DB]
    assert client.get("/api/v2/vps", params={"primaryIp": "192.0.2.2"}).json()["data"] == []
    assert client.get("/api/v2/vps", params={"name": "web"}).json()["data"] == []


# -- agent probe and exec ---------------------------------------------------------------


def test_probe_reports_each_agent_situation(client: httpx.Client) -> None:
    assert client.get(exec_path(WEB)).json() == {
        "available": True,
        "reason": None,
        "vmRunning": True,
    }
    assert client.get(exec_path(DB)).json() == {
        "available": False,
        "reason": "QEMU guest agent is not responding",
        "vmRunning": True,
    }
    assert client.get(exec_path(OLD)).json() == {
        "available": False,
        "reason": "VM is not running",
        "vmRunning": False,
    }
    assert_problem(client.get(exec_path("vps_01jdemo0zzz000000000000009")), 404, "vps_not_found")


def test_add_vps_and_set_agent_defaults(sim: HostupSimulator, client: httpx.Client) -> None:
    stopped = sim.add_vps(name="s", power_state="stopped")
    assert client.get(exec_path(stopped)).json()["reason"] == "VM is not running"
    sim.set_agent(stopped, available=True, vm_running=True)
    assert client.get(exec_path(stopped)).json() == {
        "available": True,
        "reason": None,
        "vmRunning": True,
    }
    sim.set_agent(stopped, available=False, reason="agent restarting")
    assert client.get(exec_path(stopped)).json()["reason"] == "agent restarting"
    with pytest.raises(KeyError):
        sim.set_agent("vps_01jdemo0zzz000000000000009", available=True)


def test_exec_runs_then_exits(sim: HostupSimulator, client: httpx.Client) -> None:
    sim.script_command("backup", stdout="done\n", stderr="warn\n", exit_code=0, duration=0.2)
    started = client.post(exec_path(WEB), json={"command": "backup"})
    assert started.status_code == 200
    pid = started.json()["pid"]
    assert started.json()["pollUrl"] == f"{exec_path(WEB)}?pid={pid}"
    running = client.get(exec_path(WEB), params={"pid": pid}).json()
    assert running == {"pid": pid, "exited": False, "stdout": "", "stderr": ""}
    time.sleep(0.25)
    done = client.get(exec_path(WEB), params={"pid": pid}).json()
    assert done == {
        "pid": pid,
        "exited": True,
        "exitCode": 0,
        "stdout": "done\n",
        "stderr": "warn\n",
    }


def test_pids_increase(client: httpx.Client) -> None:
    pids = [client.post(exec_path(WEB), json={"command": "true"}).json()["pid"] for _ in range(3)]
    assert pids == sorted(pids)
    assert len(set(pids)) == 3
    assert pids[0] >= 1000


def test_scripted_extra_fields(sim: HostupSimulator, client: httpx.Client) -> None:
    sim.script_command(
        "big", stdout="x" * 10, exit_code=137, extra={"truncated": True, "signal": None}
    )
    output = run(client, WEB, "big")
    assert output["exitCode"] == 137
    assert output["truncated"] is True
    assert output["signal"] is None
    assert "signal" in output


@pytest.mark.parametrize(
    ("command", "stdout", "stderr", "exit_code"),
    [
        ("echo hello world", "hello world\n", "", 0),
        ("echo 'a  b'", "a  b\n", "", 0),
        ("exit 3", "", "", 3),
        ("false", "", "", 1),
        ("uname -a", "Linux web-01 6.8.0-45-generic #45-Ubuntu SMP x86_64 GNU/Linux\n", "", 0),
        ("hostname", "web-01\n", "", 0),
        ("whoami", "root\n", "", 0),
        ("ls /nowhere", "", "ls: cannot access '/nowhere': No such file or directory\n", 2),
        ("echo a && echo b; echo c", "a\nb\nc\n", "", 0),
        ("false && echo skipped", "", "", 1),
        ("false || echo fallback", "fallback\n", "", 0),
        ("echo before; exit 4; echo after", "before\n", "", 4),
        # What a shell does, not what a stand-in that succeeds at everything would do.
        ("echo err >&2; exit 3", "", "err\n", 3),
        ("echo out; echo err 1>&2", "out\n", "err\n", 0),
        ("systemctl restart nginx", "", "systemctl: command not found\n", 127),
        ("frobnicate && echo never", "", "frobnicate: command not found\n", 127),
        ("cat /etc/shadow", "", "cat: /etc/shadow: No such file or directory\n", 1),
    ],
)
def test_default_interpreter(
    client: httpx.Client, command: str, stdout: str, stderr: str, exit_code: int
) -> None:
    output = run(client, WEB, command)
    assert (output["stdout"], output["stderr"], output["exitCode"]) == (stdout, stderr, exit_code)


@pytest.mark.parametrize(
    ("command", "first_line"),
    [
        ("uptime", " 12:00:00 up 3 days,  4:05,  0 users,  load average: 0.01, 0.03, 0.00"),
        ("cat /etc/os-release", 'PRETTY_NAME="Ubuntu 24.04.1 LTS"'),
        ("ls -la /", "bin"),
    ],
)
def test_first_commands_print_what_a_guest_prints(
    client: httpx.Client, command: str, first_line: str
) -> None:
    output = run(client, WEB, command)
    assert output["stdout"].splitlines()[0] == first_line
    assert (output["stderr"], output["exitCode"]) == ("", 0)


def test_sleep_sets_the_duration(client: httpx.Client) -> None:
    pid = client.post(exec_path(WEB), json={"command": "sleep 0.2 && echo up"}).json()["pid"]
    assert client.get(exec_path(WEB), params={"pid": pid}).json()["exited"] is False
    time.sleep(0.25)
    assert client.get(exec_path(WEB), params={"pid": pid}).json()["stdout"] == "up\n"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"{}", "missing_required"),
        (b'{"command": ""}', "missing_required"),
        (b'{"command": 5}', "invalid_type"),
        (json.dumps({"command": "x" * 4097}).encode(), "too_long"),
    ],
)
def test_exec_body_validation(client: httpx.Client, content: bytes, code: str) -> None:
    response = client.post(
        exec_path(WEB), content=content, headers={"Content-Type": "application/json"}
    )
    body = assert_problem(response, 400, "invalid_request")
    assert body["errors"] == [
        {"pointer": "/command", "detail": body["errors"][0]["detail"], "code": code}
    ]


def test_exec_accepts_exactly_4096_characters(client: httpx.Client) -> None:
    assert client.post(exec_path(WEB), json={"command": "x" * 4096}).status_code == 200


def test_exec_on_unready_vps_is_conflict(client: httpx.Client) -> None:
    body = assert_problem(
        client.post(exec_path(DB), json={"command": "true"}), 409, "vps_not_ready"
    )
    assert body["detail"] == "QEMU guest agent is not responding"
    assert_problem(client.post(exec_path(OLD), json={"command": "true"}), 409, "vps_not_ready")


def test_blocked_command(sim: HostupSimulator, client: httpx.Client) -> None:
    assert_problem(
        client.post(exec_path(WEB), json={"command": "rm -rf / --x"}), 400, "command_blocked"
    )
    sim.block_command("shutdown")
    assert_problem(
        client.post(exec_path(WEB), json={"command": "shutdown -h"}), 400, "command_blocked"
    )


@pytest.mark.parametrize("pid", ["abc", "0", "-1", "1.5", ""])
def test_bad_pid_points_at_pid(client: httpx.Client, pid: str) -> None:
    response = client.get(exec_path(WEB), params={"pid": pid})
    body = assert_problem(response, 400, "invalid_request")
    assert body["errors"][0]["pointer"] == "/pid"


def test_unknown_pid_or_other_vps_is_process_not_found(
    sim: HostupSimulator, client: httpx.Client
) -> None:
    other = sim.add_vps(name="other")
    pid = client.post(exec_path(WEB), json={"command": "true"}).json()["pid"]
    body = assert_problem(client.get(exec_path(WEB), params={"pid": 999999}), 404, "not_found")
    assert body["title"] == "Process not found"
    assert_problem(client.get(exec_path(other), params={"pid": pid}), 404, "not_found")


def test_pid_expires_after_retention() -> None:
    with HostupSimulator(seed="demo", pid_retention=0.1) as sim, client_for(sim) as c:
        sim.script_command("slow", duration=0.1)
        pid = c.post(exec_path(WEB), json={"command": "slow"}).json()["pid"]
        time.sleep(0.12)  # exited, but still inside the retention window
        assert c.get(exec_path(WEB), params={"pid": pid}).json()["exited"] is True
        time.sleep(0.15)
        assert_problem(c.get(exec_path(WEB), params={"pid": pid}), 404, "not_found")


# -- auth and scopes ----------------------------------------------------------------------


def test_missing_or_unknown_credentials_are_unauthorized(sim: HostupSimulator) -> None:
    with httpx.Client(base_url=sim.base_url, verify=False) as anon:
        assert_problem(anon.get("/api/v2/vps"), 401, "unauthorized")
        bad = anon.get("/api/v2/vps", headers={"Authorization": "Bearer hsk_wrong"})
        assert_problem(bad, 401, "unauthorized")
        basic = anon.get("/api/v2/vps", headers={"Authorization": f"Basic {sim.api_key}"})
        assert_problem(basic, 401, "unauthorized")
        x_api_key = anon.get("/api/v2/vps", headers={"X-API-Key": sim.api_key})
        assert_problem(x_api_key, 401, "unauthorized")


def test_session_cookie_has_every_scope(sim: HostupSimulator) -> None:
    cookies = {"hostup_session": sim.session_cookie}
    with httpx.Client(base_url=sim.base_url, verify=False, cookies=cookies) as browser:
        assert browser.get("/api/v2/vps").status_code == 200
        assert browser.post(exec_path(WEB), json={"command": "true"}).status_code == 200
    with httpx.Client(
        base_url=sim.base_url, verify=False, cookies={"hostup_session": "forged"}
    ) as forged:
        assert_problem(forged.get("/api/v2/vps"), 401, "unauthorized")


def test_read_only_key_can_probe_but_not_exec_or_poll(sim: HostupSimulator) -> None:
    sim.add_api_key("hsk_read", ["read:vm"])
    with client_for(sim, "hsk_read") as reader:
        assert reader.get(exec_path(WEB)).json()["available"] is True
        assert reader.get(f"/api/v2/vps/{WEB}").status_code == 200
        for response in (
            reader.get(exec_path(WEB), params={"pid": 1000}),
            reader.post(exec_path(WEB), json={"command": "true"}),
        ):
            body = assert_problem(response, 403, "forbidden")
            assert body["requiredScope"] == "write:vm"
            assert "write:vm" in body["detail"]


def test_write_only_key_cannot_read(sim: HostupSimulator) -> None:
    sim.add_api_key("hsk_write", ["write:vm"])
    with client_for(sim, "hsk_write") as writer:
        body = assert_problem(writer.get("/api/v2/vps"), 403, "forbidden")
        assert body["requiredScope"] == "read:vm"
        assert writer.post(exec_path(WEB), json={"command": "true"}).status_code == 200


def test_unknown_route_and_wrong_method(client: httpx.Client) -> None:
    assert_problem(client.get("/api/v2/nothing"), 404, "not_found")
    response = client.delete(f"/api/v2/vps/{WEB}")
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"
    assert client.put(exec_path(WEB)).headers["allow"] == "GET, POST"
    head = client.head("/api/v2/vps")  # no body, and the connection stays usable
    assert (head.status_code, head.content) == (405, b"")
    assert client.get("/api/v2/vps").status_code == 200


# -- faults ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (500, "internal_error"),
        (502, "upstream_failed"),
        (503, "upstream_unavailable"),
        (504, "upstream_failed"),
        (409, "vps_not_ready"),
        (429, "rate_limited"),
    ],
)
def test_status_fault_default_codes(
    sim: HostupSimulator, client: httpx.Client, status: int, code: str
) -> None:
    sim.inject("probe", Fault.status(status))
    assert_problem(client.get(exec_path(WEB)), status, code)
    assert client.get(exec_path(WEB)).status_code == 200  # count=1 by default


def test_status_fault_custom_code_headers_and_count(
    sim: HostupSimulator, client: httpx.Client
) -> None:
    sim.inject(
        "get_vps", Fault.status(503, "upstream_failed", headers={"Retry-After": "2"}), count=2
    )
    for _ in range(2):
        response = client.get(f"/api/v2/vps/{WEB}")
        assert_problem(response, 503, "upstream_failed")
        assert response.headers["retry-after"] == "2"
    assert client.get(exec_path(WEB)).status_code == 200  # other routes untouched
    assert client.get(f"/api/v2/vps/{WEB}").status_code == 200


def test_faults_queue_in_order_and_star_matches_any(
    sim: HostupSimulator, client: httpx.Client
) -> None:
    sim.inject("*", Fault.status(502))
    sim.inject("list_vps", Fault.status(503))
    assert client.get(exec_path(WEB)).status_code == 502
    assert client.get("/api/v2/vps").status_code == 503
    assert client.get("/api/v2/vps").status_code == 200
    with pytest.raises(ValueError, match="unknown route"):
        sim.inject("probes", Fault.drop())
    sim.inject("probe", Fault.drop())
    sim.clear_faults()
    assert client.get(exec_path(WEB)).status_code == 200


def test_status_429_fault_carries_rate_limit_headers(
    sim: HostupSimulator, client: httpx.Client
) -> None:
    sim.inject("probe", Fault.status(429))
    response = client.get(exec_path(WEB))
    assert response.headers["x-ratelimit-limit"] == "10"
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert "retry-after" not in response.headers


def test_html_fault(sim: HostupSimulator, client: httpx.Client) -> None:
    sim.inject("probe", Fault.html(502))
    response = client.get(exec_path(WEB))
    assert response.status_code == 502
    assert response.headers["content-type"] == "text/html"
    assert "502 Bad Gateway" in response.text
    assert "x-request-id" in response.headers


def test_delay_fault_trips_a_read_timeout(sim: HostupSimulator) -> None:
    sim.inject("probe", Fault.delay(0.5))
    with client_for(sim, timeout=0.1) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            impatient.get(exec_path(WEB))
        assert impatient.get(exec_path(WEB)).status_code == 200
    with client_for(sim, timeout=2) as patient:
        sim.inject("probe", Fault.delay(0.1))
        started = time.monotonic()
        assert patient.get(exec_path(WEB)).status_code == 200
        assert time.monotonic() - started >= 0.1


def test_drop_fault_closes_without_response(sim: HostupSimulator, client: httpx.Client) -> None:
    sim.inject("exec_start", Fault.drop())
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(exec_path(WEB), json={"command": "true"})
    assert sim.requests[-1].status is None
    assert client.post(exec_path(WEB), json={"command": "true"}).json()["pid"] == 1000


def test_malformed_json_fault(sim: HostupSimulator, client: httpx.Client) -> None:
    sim.inject("probe", Fault.malformed_json())
    response = client.get(exec_path(WEB))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.text == '{"available": tru'
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_truncated_fault(sim: HostupSimulator, client: httpx.Client) -> None:
    sim.inject("probe", Fault.truncated())
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get(exec_path(WEB))
    assert client.get(exec_path(WEB)).status_code == 200


def test_wrong_content_type_fault(sim: HostupSimulator, client: httpx.Client) -> None:
    sim.inject("probe", Fault.wrong_content_type())
    response = client.get(exec_path(WEB))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain"
    assert response.json()["available"] is True


@pytest.mark.parametrize(
    ("retry_after", "reset"),
    [("1", None), ("Wed, 21 Oct 2026 07:28:00 GMT", None), (None, "2026-11-28T12:00:00.000Z")],
)
def test_rate_limited_fault_headers_exactly_as_given(
    sim: HostupSimulator, client: httpx.Client, retry_after: str | None, reset: str | None
) -> None:
    sim.inject("list_vps", Fault.rate_limited(retry_after=retry_after, reset=reset))
    response = client.get("/api/v2/vps")
    assert_problem(response, 429, "rate_limited")
    assert response.headers.get("retry-after") == retry_after
    assert response.headers.get("x-ratelimit-reset") == reset
    assert response.headers["x-ratelimit-limit"]
    assert response.headers["x-ratelimit-remaining"] == "0"


# -- rate limiting and latency ------------------------------------------------------------


def test_rate_limit_per_key() -> None:
    with HostupSimulator(seed="demo", rate_limit=1.0, burst=2) as sim, client_for(sim) as c:
        ok = [c.get("/api/v2/vps") for _ in range(2)]
        assert [r.status_code for r in ok] == [200, 200]
        assert ok[0].headers["x-ratelimit-limit"] == "2"
        assert ok[1].headers["x-ratelimit-remaining"] == "0"
        limited = c.get("/api/v2/vps")
        assert_problem(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["x-ratelimit-limit"] == "2"
        assert limited.headers["x-ratelimit-remaining"] == "0"
        assert ISO_RE.fullmatch(limited.headers["x-ratelimit-reset"])
        assert sim.requests[-1].status == 429
        sim.add_api_key("hsk_other", ["read:vm"])
        with client_for(sim, "hsk_other") as other:
            assert other.get("/api/v2/vps").status_code == 200
        sim.set_rate_limit(None)
        assert c.get("/api/v2/vps").status_code == 200


def test_latency_applies_concurrently() -> None:
    with HostupSimulator(seed="demo", latency=0.2) as sim:
        results: list[int] = []

        def probe() -> None:
            with client_for(sim) as c:
                results.append(c.get(exec_path(WEB)).status_code)

        started = time.monotonic()
        threads = [threading.Thread(target=probe) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        assert results == [200] * 10
        assert 0.2 <= elapsed < 1.0
        sim.set_latency(0)
        with client_for(sim) as c:
            started = time.monotonic()
            c.get(exec_path(WEB))
            assert time.monotonic() - started < 0.15


# -- request log and connections -----------------------------------------------------------


def test_request_log_has_no_secrets(sim: HostupSimulator, client: httpx.Client) -> None:
    client.get("/api/v2/vps", params={"name": "web-01", "limit": "5"})
    with httpx.Client(base_url=sim.base_url, verify=False) as anon:
        anon.get(exec_path(WEB), params={"api_key": "hsk_secret"})
    with httpx.Client(
        base_url=sim.base_url, verify=False, cookies={"hostup_session": sim.session_cookie}
    ) as b:
        b.get(exec_path(WEB), params={"pid": "1000"})
    log = sim.requests
    assert log[0] == RecordedRequest(
        method="GET",
        path="/api/v2/vps",
        query={"name": "web-01", "limit": "5"},
        status=200,
        route="list_vps",
        time=log[0].time,
        has_auth=True,
        account="default",
        key_label=HostupSimulator.key_label(sim.api_key),
        vps_id=None,
        vps_account=None,
    )
    assert abs(log[0].time - time.time()) < 5
    assert (log[1].route, log[1].status, log[1].has_auth) == ("probe", 401, False)
    assert (log[1].account, log[1].key_label, log[1].vps_id) == (None, None, WEB)
    assert log[1].query == {"api_key": "[redacted]"}
    assert (log[2].route, log[2].status, log[2].has_auth) == ("exec_output", 404, True)
    assert (log[2].account, log[2].vps_account) == ("default", "default")
    assert log[2].key_label == HostupSimulator.key_label(sim.session_cookie)
    dumped = repr(log)
    for secret in (sim.api_key, sim.session_cookie, "hsk_secret"):
        assert secret not in dumped
    assert sim.count() == 3
    assert sim.count("probe") == 1
    assert sim.count("*", "GET") == 3
    assert sim.count(method="POST") == 0
    sim.clear_requests()
    assert sim.requests == []


def test_keep_alive_reuses_one_connection(sim: HostupSimulator, client: httpx.Client) -> None:
    for _ in range(50):
        assert client.get(exec_path(WEB)).status_code == 200
    assert sim.connections_opened == 1
    assert sim.count("probe") == 50


def test_sixty_four_concurrent_keep_alive_clients() -> None:
    with HostupSimulator(seed="demo", latency=0.05) as sim:
        clients = [client_for(sim) for _ in range(64)]
        barrier = threading.Barrier(64)
        failures: list[BaseException] = []

        def work(c: httpx.Client) -> None:
            try:
                barrier.wait()
                for _ in range(3):
                    assert c.get(exec_path(WEB)).status_code == 200
            except BaseException as exc:  # surfaced below
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(c,)) for c in clients]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures
        assert time.monotonic() - started < 3
        assert sim.connections_opened == 64
        assert sim.count("probe") == 192
        for c in clients:
            c.close()


# -- lifecycle, seeds, fixture, CLI --------------------------------------------------------


def test_lifecycle() -> None:
    sim = HostupSimulator()
    with pytest.raises(RuntimeError):
        _ = sim.base_url
    sim.start()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sim.base_url)
    assert sim.api_key.startswith("hsk_test_")
    assert sim.api_key not in repr(sim)
    c = client_for(sim)
    assert c.get("/api/v2/vps").status_code == 200
    sim.inject("probe", Fault.delay(30))
    hung = threading.Thread(target=swallow_http_errors, args=(c.get, exec_path(WEB)))
    hung.start()
    time.sleep(0.05)
    started = time.monotonic()
    sim.stop()
    sim.stop()  # idempotent
    assert time.monotonic() - started < 2  # stop wakes sleeping handlers
    hung.join(2)
    with pytest.raises(httpx.ConnectError):
        httpx.get(sim.base_url + "/api/v2/vps")
    with pytest.raises(RuntimeError):
        sim.start()
    c.close()


def test_seed_from_dict_and_file(tmp_path: Path) -> None:
    seed = {
        "apiKeys": [{"key": "hsk_seeded", "scopes": ["read:vm", "write:vm"]}],
        "vps": [
            {
                "name": "s-01",
                "primaryIp": "198.51.100.7",
                "powerState": "running",
                "serviceStatus": "active",
                "tags": ["seeded"],
            }
        ],
        "commands": [
            {"match": "whoami", "stdout": "root\n", "stderr": "", "exitCode": 0, "duration": 0}
        ],
        "blocked": ["reboot"],
    }
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    for source in (seed, path, str(path)):
        with HostupSimulator(seed=source) as sim, client_for(sim, "hsk_seeded") as c:
            vps = c.get("/api/v2/vps", params={"primaryIp": "198.51.100.7"}).json()["data"][0]
            assert vps["tags"] == ["seeded"]
            assert run(c, vps["id"], "whoami")["stdout"] == "root\n"
            assert c.post(exec_path(vps["id"]), json={"command": "reboot"}).status_code == 400
    with pytest.raises(ValueError, match="unknown seed members"):
        HostupSimulator(seed={"vpses": []})
    assert json.loads(DEMO_SEED.read_text())["vps"][0]["id"] == WEB


def test_pytest_fixture(hostup_simulator: HostupSimulator) -> None:
    response = httpx.get(
        hostup_simulator.base_url + "/api/v2/vps",
        headers={"Authorization": f"Bearer {hostup_simulator.api_key}"},
    )
    assert response.json() == {"data": [], "hasMore": False, "nextCursor": None}


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    argv = [sys.executable, "-m", "hostup_pulumi.testing", "--seed", "demo", "--vps-count", "2"]
    argv += ["--api-key", "hsk_cli_test", "--ready-file", str(ready)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            assert info["api_key"] == "hsk_cli_test"
            assert info["pid"] == proc.pid
            assert json.loads(ready.read_text()) == info
            response = httpx.get(
                info["base_url"] + "/api/v2/vps",
                headers={"Authorization": "Bearer hsk_cli_test"},
            )
            names = [v["name"] for v in response.json()["data"]]
            assert names == ["web-01", "db-01", "old-01", "vps-0001", "vps-0002"]
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=5)
            assert proc.returncode == 0
            # What to paste for a person (stderr), and nothing after it: a clean shutdown.
            lines = stderr.splitlines()
            assert lines[0] == f"HostUp simulator on {info['base_url']} (Ctrl-C stops it)"
            assert lines[-1] == (
                f"  export HOSTUP_BASE_URL={info['base_url']} HOSTUP_API_KEY=hsk_cli_test"
            )
        finally:
            if proc.poll() is None:
                proc.kill()


def test_stats_route_counts_requests_and_connections_for_other_processes(
    sim: HostupSimulator, client: httpx.Client
) -> None:
    client.get(exec_path(WEB))
    client.get("/api/v2/vps/vps_01jdemo0zzz000000000000009")
    sim.set_rate_limit(1.0, burst=1)
    client.get(exec_path(WEB))
    client.get(exec_path(WEB))
    with httpx.Client(base_url=sim.base_url, verify=False) as anonymous:  # no credentials
        stats = anonymous.get("/_simulator/stats").json()
        assert anonymous.get("/_simulator/stats").json()["requests"] == 4  # not counted
    assert stats == {
        "requests": 4,
        "byRoute": {"probe": 3, "get_vps": 1},
        "byStatus": {"200": 2, "404": 1, "429": 1},
        "connectionsOpened": 2,  # the client's, and this one's
    }
    assert sim.stats()["requests"] == 4
    assert sim.count() == 4


def test_stats_since_says_when_the_requests_from_then_on_arrived(
    sim: HostupSimulator, client: httpx.Client
) -> None:
    client.get(exec_path(WEB))
    mark = time.time()
    client.get(exec_path(WEB))
    client.get(exec_path(WEB))
    times = [r.time for r in sim.requests]
    with httpx.Client(base_url=sim.base_url, verify=False) as anonymous:
        window = anonymous.get("/_simulator/stats", params={"since": mark}).json()["since"]
        later = anonymous.get("/_simulator/stats", params={"since": time.time() + 60}).json()
        bad = anonymous.get("/_simulator/stats", params={"since": "yesterday"})
    assert window == {"requests": 2, "firstAt": times[1], "lastAt": times[2]}
    assert later["since"] == {"requests": 0, "firstAt": None, "lastAt": None}
    assert later["requests"] == 3
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_request"
    assert "since must be epoch seconds" in bad.json()["detail"]
    assert sim.stats(mark)["since"] == window


# -- stable ids for generated VPSes --------------------------------------------------------


def _listed(sim: HostupSimulator, key: str | None = None) -> list[tuple[str, str, str]]:
    with client_for(sim, key) as c:
        body = c.get("/api/v2/vps", params={"limit": "100"}).json()
    return [(v["id"], v["name"], v["primaryIp"]) for v in body["data"]]


def test_generated_vps_ids_are_the_same_on_every_start() -> None:
    starts = []
    for _ in range(2):
        with HostupSimulator() as sim:
            returned = sim.add_generated_vps(3, id_seed="fleet")
            listed = _listed(sim)
        assert [vps_id for vps_id, _, _ in listed] == returned
        starts.append(listed)
    assert starts[0] == starts[1]
    assert [name for _, name, _ in starts[0]] == ["vps-0001", "vps-0002", "vps-0003"]
    assert [ip for _, _, ip in starts[0]] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    ids = [vps_id for vps_id, _, _ in starts[0]]
    assert all(ID_RE.fullmatch(vps_id) for vps_id in ids)
    assert len(set(ids)) == 3


def test_generated_ids_depend_on_the_seed_and_continue_across_calls() -> None:
    with HostupSimulator() as sim:
        first = sim.add_generated_vps(2, id_seed="fleet")
        more = sim.add_generated_vps(1, id_seed="fleet")
        other = sim.add_generated_vps(2, id_seed="other-fleet")
        names = [name for _, name, _ in _listed(sim)]
    with HostupSimulator() as again:
        assert again.add_generated_vps(3, id_seed="fleet") == first + more
        assert again.add_generated_vps(2) != other  # the default id seed is another seed
    assert names == ["vps-0001", "vps-0002", "vps-0003", "vps-0001", "vps-0002"]
    assert not set(other) & set(first + more)
    with pytest.raises(ValueError, match="count"):
        HostupSimulator().add_generated_vps(-1)


def test_seed_vps_without_an_id_get_the_same_ids_on_every_start() -> None:
    seed = {
        "vps": [{"name": "app"}, {"name": "app"}, {"name": "db", "account": "acme"}],
        "generate": {"count": 2, "idSeed": "seeded"},
    }
    runs = []
    for _ in range(2):
        with HostupSimulator(seed=seed) as sim:
            runs.append(_listed(sim))
    assert runs[0] == runs[1]
    assert [name for _, name, _ in runs[0]] == ["app", "app", "vps-0001", "vps-0002"]
    assert len({vps_id for vps_id, _, _ in runs[0]}) == 4  # a repeated name, another id


def _start_simulator_process(*args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    argv = [sys.executable, "-m", "hostup_pulumi.testing", *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def _stop_simulator_process(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_cli_vps_count_serves_the_same_ids_after_a_restart() -> None:
    listings = []
    for id_seed in ("fleet", "fleet", "elsewhere"):
        proc, info = _start_simulator_process("--vps-count", "3", "--id-seed", id_seed)
        try:
            response = httpx.get(
                info["base_url"] + "/api/v2/vps",
                headers={"Authorization": f"Bearer {info['api_key']}"},
            )
            listings.append([v["id"] for v in response.json()["data"]])
        finally:
            _stop_simulator_process(proc)
    assert listings[0] == listings[1]
    assert len(listings[0]) == 3
    assert all(ID_RE.fullmatch(vps_id) for vps_id in listings[0])
    with HostupSimulator() as sim:  # the command line and the Python API agree
        assert sim.add_generated_vps(3, id_seed="fleet") == listings[0]
    assert not set(listings[2]) & set(listings[0])


# -- accounts ------------------------------------------------------------------------------

ACME_KEY = "hsk_acme_0123456789abcdef"


@pytest.fixture
def acme(sim: HostupSimulator) -> str:
    """An account "acme" with a key and one VPS (``sim`` keeps the demo's default account)."""
    sim.add_api_key(ACME_KEY, ["read:vm", "write:vm"], account="acme")
    return sim.add_vps(name="acme-web", primary_ip="192.0.2.10", account="acme")


def test_each_account_lists_only_its_own_vps(sim: HostupSimulator, acme: str) -> None:
    assert [vps_id for vps_id, _, _ in _listed(sim, ACME_KEY)] == [acme]
    assert [vps_id for vps_id, _, _ in _listed(sim)] == [WEB, DB, OLD]
    with client_for(sim, ACME_KEY) as c:
        by_ip = c.get("/api/v2/vps", params={"primaryIp": "192.0.2.10"}).json()["data"]
        assert [v["id"] for v in by_ip] == [acme]  # web-01 has this IP too, in another account
        assert c.get("/api/v2/vps", params={"name": "web-01"}).json()["data"] == []
        assert "account" not in c.get(f"/api/v2/vps/{acme}").json()


def test_another_accounts_vps_is_not_found_on_every_route(sim: HostupSimulator, acme: str) -> None:
    with client_for(sim) as mine, client_for(sim, ACME_KEY) as theirs:
        pid = theirs.post(exec_path(acme), json={"command": "true"}).json()["pid"]
        for response in (
            mine.get(f"/api/v2/vps/{acme}"),
            mine.get(exec_path(acme)),
            mine.post(exec_path(acme), json={"command": "uptime"}),
            mine.get(exec_path(acme), params={"pid": pid}),
            theirs.get(f"/api/v2/vps/{WEB}"),
            theirs.get(exec_path(WEB)),
        ):
            body = assert_problem(response, 404, "vps_not_found")
            unknown = mine.get("/api/v2/vps/vps_01jdemo0zzz000000000000009").json()
            assert (body["title"], body["detail"]) == (unknown["title"], unknown["detail"])
        assert theirs.get(exec_path(acme), params={"pid": pid}).status_code == 200
        # The refused start ran nothing: it took no pid.
        assert theirs.post(exec_path(acme), json={"command": "true"}).json()["pid"] == pid + 1


def test_the_session_cookie_belongs_to_the_default_account(sim: HostupSimulator, acme: str) -> None:
    cookies = {"hostup_session": sim.session_cookie}
    with httpx.Client(base_url=sim.base_url, verify=False, cookies=cookies) as browser:
        ids = [v["id"] for v in browser.get("/api/v2/vps").json()["data"]]
        assert ids == [WEB, DB, OLD]
        assert_problem(browser.get(exec_path(acme)), 404, "vps_not_found")


def test_request_log_says_which_account_and_key_without_the_key(
    sim: HostupSimulator, acme: str
) -> None:
    sim.add_api_key("hsk_acme_second_key_9876", ["read:vm"], account="acme")
    with client_for(sim) as mine, client_for(sim, ACME_KEY) as theirs:
        theirs.get(exec_path(acme))
        mine.get(exec_path(acme))  # the wrong account's key
        mine.get(exec_path(WEB))
    with client_for(sim, "hsk_acme_second_key_9876") as second:
        second.get(f"/api/v2/vps/{acme}")
    with client_for(sim, "hsk_not_a_key_at_all") as stranger:
        stranger.get(exec_path(acme))
    rows = [(r.vps_id, r.vps_account, r.account, r.key_label, r.status) for r in sim.requests]
    label = HostupSimulator.key_label
    assert rows == [
        (acme, "acme", "acme", label(ACME_KEY), 200),
        (acme, "acme", "default", label(sim.api_key), 404),
        (WEB, "default", "default", label(sim.api_key), 200),
        (acme, "acme", "acme", label("hsk_acme_second_key_9876"), 200),
        (acme, "acme", None, label("hsk_not_a_key_at_all"), 401),
    ]
    # What a two-account test asserts: no request for acme's VPS carried another account's key.
    crossed = [r for r in sim.requests if r.vps_account == "acme" and r.account != "acme"]
    assert [(r.account, r.status) for r in crossed] == [("default", 404), (None, 401)]
    assert re.fullmatch(r"sha256:[0-9a-f]{12}", label(ACME_KEY))
    assert len({label(ACME_KEY), label(sim.api_key), label("hsk_acme_second_key_9876")}) == 3
    dumped = repr(sim.requests)
    for secret in (ACME_KEY, sim.api_key, "hsk_acme_second_key_9876", "hsk_not_a_key_at_all"):
        assert secret not in dumped


def test_faulted_requests_still_record_who_sent_them(sim: HostupSimulator, acme: str) -> None:
    sim.inject("probe", Fault.status(503))
    with client_for(sim, ACME_KEY) as theirs:
        assert theirs.get(exec_path(acme)).status_code == 503
    (entry,) = sim.requests
    assert (entry.account, entry.key_label) == ("acme", HostupSimulator.key_label(ACME_KEY))


def test_accounts_must_be_named(sim: HostupSimulator) -> None:
    with pytest.raises(ValueError, match="account"):
        sim.add_api_key("hsk_x_0123456789", ["read:vm"], account="")
    with pytest.raises(ValueError, match="account"):
        sim.add_vps(name="x", account="")


def test_seed_accounts_from_the_command_line(tmp_path: Path) -> None:
    seed = {
        "apiKeys": [
            {"key": "hsk_seed_acme_key", "scopes": ["read:vm", "write:vm"], "account": "acme"},
            {"key": "hsk_seed_beta_key", "scopes": ["read:vm"], "account": "beta"},
        ],
        "vps": [
            {"name": "a-1", "account": "acme"},
            {"name": "b-1", "account": "beta", "primaryIp": "198.51.100.2"},
        ],
        "generate": [{"count": 2, "account": "beta", "idSeed": "beta"}],
    }
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps(seed))
    proc, info = _start_simulator_process("--seed", str(path))
    try:
        names = {}
        for key in ("hsk_seed_acme_key", "hsk_seed_beta_key", info["api_key"]):
            response = httpx.get(
                info["base_url"] + "/api/v2/vps", headers={"Authorization": f"Bearer {key}"}
            )
            names[key] = [v["name"] for v in response.json()["data"]]
    finally:
        _stop_simulator_process(proc)
    assert names == {
        "hsk_seed_acme_key": ["a-1"],
        "hsk_seed_beta_key": ["b-1", "vps-0001", "vps-0002"],
        info["api_key"]: [],  # the default account owns nothing here
    }


# -- pid reuse -----------------------------------------------------------------------------


def test_set_next_pid_makes_the_guest_reuse_a_pid(
    sim: HostupSimulator, client: httpx.Client
) -> None:
    sim.script_command("first", stdout="first\n", exit_code=0)
    sim.script_command("second", stdout="second\n", exit_code=7)
    old = run(client, WEB, "first")
    assert old["stdout"] == "first\n"
    sim.set_next_pid(old["pid"])
    started = client.post(exec_path(WEB), json={"command": "second"}).json()
    assert started["pid"] == old["pid"]
    again = client.get(exec_path(WEB), params={"pid": old["pid"]}).json()
    assert (again["stdout"], again["exitCode"]) == ("second\n", 7)  # the old record is gone
    after = client.post(exec_path(WEB), json={"command": "true"}).json()["pid"]
    assert after == old["pid"] + 1  # one-shot: counting goes on


def test_set_next_pid_for_one_vps_and_above_the_counter(
    sim: HostupSimulator, client: httpx.Client
) -> None:
    other = sim.add_vps(name="other")
    sim.script_command("on-web", stdout="web\n")
    sim.script_command("on-other", stdout="other\n")
    sim.set_next_pid(5000, vps_id=other)
    web_pid = run(client, WEB, "on-web")["pid"]
    assert web_pid == 1000  # the override waits for its own VPS
    assert run(client, other, "on-other")["pid"] == 5000
    assert client.post(exec_path(WEB), json={"command": "true"}).json()["pid"] == 5001
    sim.set_next_pid(web_pid)
    assert run(client, other, "on-other")["pid"] == web_pid
    # The same pid on another VPS leaves this VPS's record of it alone.
    assert client.get(exec_path(WEB), params={"pid": web_pid}).json()["stdout"] == "web\n"


@pytest.mark.parametrize("pid", [0, -1, 2**31, True, 1.5])
def test_set_next_pid_rejects_impossible_pids(sim: HostupSimulator, pid: Any) -> None:
    with pytest.raises(ValueError, match="pid"):
        sim.set_next_pid(pid)


def test_set_next_pid_rejects_an_unknown_vps(sim: HostupSimulator) -> None:
    with pytest.raises(KeyError):
        sim.set_next_pid(1000, vps_id="vps_01jdemo0zzz000000000000009")
