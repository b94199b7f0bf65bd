"""The ``hostup-pulumi`` command line, run against the offline simulator.

Most scenarios run twice: as a real subprocess of the installed console script (what a CI
pipeline does) and in-process through ``cli.main`` (fast, and measured by coverage). Every
run also checks that the API key appears nowhere in the output.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hostup_pulumi import HostupClient, cli
from hostup_pulumi.cli import _common
from hostup_pulumi.models import AgentExecOutput
from hostup_pulumi.testing import HostupSimulator

SCRIPT = Path(sys.executable).with_name("hostup-pulumi")
SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "schema.json").read_text())
AVAILABILITY_KEYS = set(
    SCHEMA["functions"]["hostup:index:getVpsAgentAvailability"]["outputs"]["properties"]
)
UNSET = object()


@dataclass
class Result:
    code: int
    out: str
    err: str
    seconds: float


class Cli:
    """Runs ``hostup-pulumi`` against a simulator, as a subprocess or in-process."""

    def __init__(
        self,
        mode: str,
        sim: HostupSimulator,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self.mode = mode
        self.sim = sim
        self._capsys = capsys
        self._monkeypatch = monkeypatch

    def __call__(self, *args: str, api_key: Any = UNSET, base_url: Any = UNSET) -> Result:
        key = self.sim.api_key if api_key is UNSET else api_key
        env = {"HOSTUP_API_KEY": key, "HOSTUP_BASE_URL": base_url}
        if base_url is UNSET:
            env["HOSTUP_BASE_URL"] = self.sim.base_url
        started = time.monotonic()
        if self.mode == "subprocess":
            result = self._subprocess(list(args), env)
        else:
            result = self._in_process(list(args), env)
        result.seconds = time.monotonic() - started
        for secret in {key, self.sim.api_key} - {None, ""}:
            assert secret not in result.out
            assert secret not in result.err
        return result

    def _subprocess(self, args: list[str], env: dict[str, Any]) -> Result:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTUP_")}
        full_env.update({k: v for k, v in env.items() if v is not None})
        done = subprocess.run(
            [str(SCRIPT), *args], env=full_env, capture_output=True, text=True, timeout=60
        )
        return Result(done.returncode, done.stdout, done.stderr, 0.0)

    def _in_process(self, args: list[str], env: dict[str, Any]) -> Result:
        for name, value in env.items():
            if value is None:
                self._monkeypatch.delenv(name, raising=False)
            else:
                self._monkeypatch.setenv(name, value)
        self._capsys.readouterr()
        try:
            code = cli.main(args)
        except SystemExit as exc:  # argparse: usage errors and --help
            code = exc.code if isinstance(exc.code, int) else 2
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err, 0.0)


@pytest.fixture
def sim(hostup_simulator: HostupSimulator) -> HostupSimulator:
    """The package's simulator fixture (started, empty)."""
    return hostup_simulator


@pytest.fixture(params=["subprocess", "in-process"])
def run(
    request: pytest.FixtureRequest,
    sim: HostupSimulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    return Cli(request.param, sim, capsys, monkeypatch)


@pytest.fixture
def local(
    sim: HostupSimulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    """In-process only: for the cases whose subprocess twin would add nothing but time."""
    return Cli("in-process", sim, capsys, monkeypatch)


@pytest.fixture
def run_subprocess(
    sim: HostupSimulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    return Cli("subprocess", sim, capsys, monkeypatch)


def _one_line_error(result: Result) -> str:
    lines = [line for line in result.err.splitlines() if line.startswith("hostup-pulumi: error")]
    assert len(lines) == 1, result.err
    return lines[0]


# -- agent-status ------------------------------------------------------------------------


def test_agent_status_available_exits_0(run: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    result = run("agent-status", vps)
    assert (result.code, result.out) == (0, f"{vps}: available\n")


def test_agent_status_unavailable_exits_1_with_the_reason(run: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1", agent_available=False, agent_reason="agent is not installed")
    result = run("agent-status", vps)
    assert result.code == 1
    assert "agent is not installed" in result.out
    assert "VM running: true" in result.out


def test_agent_status_json_has_the_stack_output_shape(run: Cli, sim: HostupSimulator) -> None:
    down = sim.add_vps(name="down", power_state="stopped")
    result = run("agent-status", down, "--json")
    assert result.code == 1
    assert json.loads(result.out) == {
        "vpsId": down,
        "available": False,
        "reason": "VM is not running",
        "vmRunning": False,
    }
    assert set(json.loads(result.out)) == AVAILABILITY_KEYS  # getVpsAgentAvailability's outputs


def test_agent_status_json_when_available(local: Cli, sim: HostupSimulator) -> None:
    up = sim.add_vps(name="up")
    result = local("agent-status", up, "--json")
    assert result.code == 0
    assert json.loads(result.out) == {"vpsId": up, "available": True, "reason": None,
                                      "vmRunning": True}  # fmt: skip


def _flip_after_first_probe(sim: HostupSimulator, vps: str, delay: float) -> threading.Thread:
    """Make the agent available ``delay`` s after the CLI's first probe (not after a fixed
    time, which a slow interpreter start could overtake)."""

    def flip() -> None:
        deadline = time.monotonic() + 30
        while sim.count("probe") == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        sim.set_agent(vps, available=True, vm_running=True)

    thread = threading.Thread(target=flip, daemon=True)
    thread.start()
    return thread


def test_agent_status_wait_succeeds_when_the_agent_comes_up(
    run_subprocess: Cli, sim: HostupSimulator
) -> None:
    vps = sim.add_vps(name="booting", power_state="stopped")
    flipper = _flip_after_first_probe(sim, vps, delay=0.3)
    result = run_subprocess("agent-status", vps, "--wait", "10")
    flipper.join(timeout=5)
    assert result.code == 0, result.err
    assert result.out == f"{vps}: available\n"
    assert sim.count("probe") >= 3  # the first probe, then the wait's polls until it flipped
    # Not a terminal, and a wait shorter than the first progress line: a quiet log.
    assert "waiting for the guest agent" not in result.err
    assert "\x1b" not in result.err


def test_agent_status_wait_times_out_with_exit_1(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="down", power_state="stopped")
    result = local("agent-status", vps, "--wait", "0.5", "--json")
    assert result.code == 1
    assert json.loads(result.out)["available"] is False
    assert result.seconds < 5


def test_agent_status_wait_timeout_says_how_long_it_waited(
    run_subprocess: Cli, sim: HostupSimulator
) -> None:
    vps = sim.add_vps(name="down", agent_available=False, agent_reason="agent not responding")
    result = run_subprocess("agent-status", vps, "--wait", "0.5")
    assert result.code == 1
    assert "agent not responding" in result.out
    assert "after waiting 0.5s" in result.out


# -- list-vps ------------------------------------------------------------------------------


def test_list_vps_prints_a_table(run: Cli, sim: HostupSimulator) -> None:
    web = sim.add_vps(name="web-1", primary_ip="192.0.2.10")
    db = sim.add_vps(name="db-1", primary_ip="192.0.2.11", power_state="stopped")
    result = run("list-vps")
    assert result.code == 0
    header, *rows = result.out.splitlines()
    assert header.split() == ["ID", "NAME", "PRIMARY", "IP", "POWER", "STATE"]
    assert [row.split() for row in rows] == [
        [web, "web-1", "192.0.2.10", "running"],
        [db, "db-1", "192.0.2.11", "stopped"],
    ]


def test_list_vps_filters_and_json(run: Cli, sim: HostupSimulator) -> None:
    sim.add_vps(name="web-1", primary_ip="192.0.2.10")
    db = sim.add_vps(name="db-1", primary_ip="192.0.2.11")
    by_ip = run("list-vps", "--primary-ip", "192.0.2.11", "--json")
    assert by_ip.code == 0
    records = json.loads(by_ip.out)
    assert [(r["id"], r["name"], r["primaryIp"]) for r in records] == [(db, "db-1", "192.0.2.11")]


def test_list_vps_name_filter(local: Cli, sim: HostupSimulator) -> None:
    sim.add_vps(name="web-1")
    db = sim.add_vps(name="db-1")
    result = local("list-vps", "--name", "DB-1")  # case-insensitive, as the API documents
    assert result.code == 0
    assert [row.split()[0] for row in result.out.splitlines()[1:]] == [db]


def test_list_vps_without_a_match_exits_1(local: Cli, sim: HostupSimulator) -> None:
    sim.add_vps(name="web-1")
    result = local("list-vps", "--name", "nope", "--json")
    assert result.code == 1
    assert json.loads(result.out) == []
    assert "no VPS matched" in result.err


# -- exec ----------------------------------------------------------------------------------


def test_exec_prints_output_and_passes_the_exit_code_through(
    run: Cli, sim: HostupSimulator
) -> None:
    vps = sim.add_vps(name="web-1")
    sim.script_command("./migrate --check", stdout="2 pending\nnaïve ✓\n", stderr="warn\n",
                       exit_code=3)  # fmt: skip
    result = run("exec", vps, "--", "./migrate", "--check")
    assert result.code == 3
    assert result.out == "2 pending\nnaïve ✓\n"  # the command's own output, verbatim
    assert result.err.endswith("warn\n")
    assert sim.count("exec_start") == 1


def test_exec_against_the_simulators_shell_keeps_stderr_and_the_exit_code(
    local: Cli, sim: HostupSimulator
) -> None:
    vps = sim.add_vps(name="web-01")
    failed = local("exec", "web-01", "--", "echo err >&2; exit 3")
    assert (failed.code, failed.out) == (3, "")
    assert failed.err.endswith("err\n")
    missing = local("exec", vps, "--", "frobnicate")
    assert (missing.code, missing.out) == (127, "")
    assert missing.err.endswith("frobnicate: command not found\n")


def test_exec_success_and_timeout_option(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    result = local("exec", vps, "--timeout", "30", "--", "echo", "hi", "--", "there")
    assert (result.code, result.out) == (0, "hi -- there\n")  # a later -- is the command's


def test_exec_timeout_exits_124(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    sim.script_command("long-job", stdout="", exit_code=0, duration=30)
    result = local("exec", vps, "--timeout", "0.5", "--", "long-job")
    assert result.code == 124
    assert "did not exit within 0.5s" in result.err
    assert result.seconds < 5


def test_exec_on_an_unavailable_agent_exits_1_without_starting(
    run: Cli, sim: HostupSimulator
) -> None:
    vps = sim.add_vps(name="web-1", agent_available=False, agent_reason="agent is not installed")
    result = run("exec", vps, "--", "uptime")
    assert result.code == 1
    assert "agent is not installed" in result.err
    assert result.out == ""
    assert sim.count("probe") == 1
    assert sim.count("exec_start") == 0


def test_exec_needs_the_command_after_double_dash(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    result = local("exec", vps, "uname", "-a")
    assert result.code == 2
    assert "put the command after --" in result.err
    empty = local("exec", vps)
    assert empty.code == 2
    assert "command is empty" in _one_line_error(empty)
    assert sim.requests == []


def test_exec_missing_write_scope_names_it(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    sim.add_api_key("hsk_test_readonly_0123456789", ["read:vm"])
    result = local("exec", vps, "--", "uptime", api_key="hsk_test_readonly_0123456789")
    assert result.code == 2
    line = _one_line_error(result)
    assert "PermissionDeniedError: HTTP 403" in line
    assert "'write:vm' scope" in line
    assert "request id req_" in line


def test_exec_notes_truncated_output(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    sim.script_command("dmesg", stdout="[0.0] boot\n", extra={"truncated": True})
    result = local("exec", vps, "--", "dmesg")
    assert (result.code, result.out) == (0, "[0.0] boot\n")
    assert "output was truncated" in result.err


def test_exec_interrupted_says_the_command_may_still_run(
    local: Cli, sim: HostupSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    vps = sim.add_vps(name="web-1")

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(HostupClient, "wait_for_agent_exec", interrupted)
    result = local("exec", vps, "--", "uptime")
    assert result.code == 130
    assert "may still be running" in result.err
    assert "interrupted" in result.err


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("-1", "must be a positive number of seconds, got '-1'"),
        ("0", "must be a positive number of seconds, got '0'"),
        ("nan", "must be a positive number of seconds, got 'nan'"),
        ("soon", "must be a number of seconds, got 'soon'"),
    ],
)
def test_seconds_must_be_positive_numbers(
    local: Cli, sim: HostupSimulator, value: str, problem: str
) -> None:
    vps = sim.add_vps(name="web-1")
    status = local("agent-status", vps, "--wait", value)
    assert status.code == 2
    assert f"hostup-pulumi agent-status: error: argument --wait: SECONDS {problem}" in status.err
    run = local("exec", vps, "--timeout", value, "--", "true")
    assert run.code == 2
    assert f"argument --timeout: SECONDS {problem}" in run.err
    assert local("output", vps, "1000", "--wait", "--timeout", value).code == 2
    assert sim.requests == []


# -- exec --no-wait ------------------------------------------------------------------------


def test_exec_no_wait_prints_the_pid_and_poll_url_and_exits_0(
    run: Cli, sim: HostupSimulator
) -> None:
    vps = sim.add_vps(name="web-1")
    sim.script_command("long-job", stdout="done\n", duration=30)
    sim.set_next_pid(4242)
    result = run("exec", vps, "--no-wait", "--", "long-job")
    assert result.code == 0, result.err
    assert result.out == (
        f"started pid 4242 on {vps}\n"
        f"poll URL: {sim.base_url}/api/v2/vps/{vps}/agent/exec?pid=4242\n"
    )
    assert f"hostup-pulumi: read its output with: hostup-pulumi output {vps} 4242 --wait" in (
        result.err
    )
    assert [r.route for r in sim.requests] == ["probe", "exec_start"]  # no polling
    assert result.seconds < 10


def test_exec_no_wait_json(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    sim.set_next_pid(77)
    result = local("exec", vps, "--no-wait", "--json", "--", "uptime")
    assert result.code == 0
    assert json.loads(result.out) == {
        "vpsId": vps,
        "pid": 77,
        "pollUrl": f"{sim.base_url}/api/v2/vps/{vps}/agent/exec?pid=77",
    }


def test_exec_no_wait_takes_no_timeout(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    result = local("exec", vps, "--no-wait", "--timeout", "5", "--", "uptime")
    assert result.code == 2
    assert "hostup-pulumi exec: error: --timeout does not apply with --no-wait" in result.err
    assert sim.requests == []


def test_exec_json_waits_and_passes_the_exit_code_through(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    sim.script_command("check", stdout="bad\n", stderr="oops\n", exit_code=5,
                       extra={"truncated": True})  # fmt: skip
    sim.set_next_pid(9)
    result = local("--json", "exec", vps, "--", "check")
    assert result.code == 5
    assert json.loads(result.out) == {
        "vpsId": vps,
        "pid": 9,
        "exited": True,
        "exitCode": 5,
        "stdout": "bad\n",
        "stderr": "oops\n",
        "truncated": True,
    }


# -- output --------------------------------------------------------------------------------


def _start(sim: HostupSimulator, vps: str, command: str) -> int:
    """Start ``command`` through the public client, as another process would have."""
    with HostupClient(api_key=sim.api_key, base_url=sim.base_url) as client:
        return client.start_agent_exec(vps, command).pid


def test_output_of_a_finished_command(run: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    sim.script_command("migrate", stdout="3 applied\n", stderr="warn: slow\n", exit_code=5)
    pid = _start(sim, vps, "migrate")
    sim.clear_requests()
    result = run("output", vps, str(pid))
    assert result.code == 5
    assert result.out == "3 applied\n"
    assert result.err == "warn: slow\n"
    assert [r.route for r in sim.requests] == ["exec_output"]


def test_output_of_a_running_command_exits_3(run: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    sim.script_command("long-job", stdout="done\n", duration=30)
    pid = _start(sim, vps, "long-job")
    result = run("output", vps, str(pid))
    assert result.code == 3
    assert result.out == ""
    assert result.err == (
        f"hostup-pulumi: command pid {pid} on {vps} is still running; "
        f"`hostup-pulumi output {vps} {pid} --wait` waits for it to exit\n"
    )


def test_output_json_of_a_running_command(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    sim.script_command("long-job", duration=30)
    pid = _start(sim, vps, "long-job")
    result = local("output", vps, str(pid), "--json")
    assert result.code == 3
    assert json.loads(result.out) == {"vpsId": vps, "pid": pid, "exited": False,
                                      "exitCode": None, "stdout": "", "stderr": ""}  # fmt: skip


def test_output_wait_waits_for_the_exit(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    sim.script_command("build", stdout="built\n", exit_code=0, duration=1.0)
    pid = _start(sim, vps, "build")
    result = local("output", vps, str(pid), "--wait", "--timeout", "30")
    assert (result.code, result.out) == (0, "built\n")
    assert "running" not in result.err  # a 1 s wait leaves no progress line in a log
    assert sim.count("exec_output") >= 2


def test_output_wait_timeout_exits_124(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    sim.script_command("long-job", duration=30)
    pid = _start(sim, vps, "long-job")
    result = local("output", vps, str(pid), "--wait", "--timeout", "0.5")
    assert result.code == 124
    assert (
        f"hostup-pulumi: command pid {pid} on {vps} did not exit within 0.5s; it may still "
        f"be running: `hostup-pulumi output {vps} {pid} --wait` waits again\n"
    ) in result.err
    assert result.seconds < 5


def test_output_timeout_needs_wait(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    result = local("output", vps, "1000", "--timeout", "5")
    assert result.code == 2
    assert "hostup-pulumi output: error: --timeout applies only with --wait" in result.err
    assert sim.requests == []


@pytest.mark.parametrize("pid", ["abc", "0", "-1", "1.5", "2147483648"])
def test_output_pid_must_be_a_pid(local: Cli, sim: HostupSimulator, pid: str) -> None:
    vps = sim.add_vps(name="web-1")
    result = local("output", vps, pid)
    assert result.code == 2
    assert f"argument PID: {pid!r} is not a pid" in result.err
    assert sim.requests == []


def test_output_of_an_unknown_pid_is_an_error(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    result = local("output", vps, "999999")
    assert result.code == 2
    assert "NotFoundError: HTTP 404 not_found" in _one_line_error(result)


def test_output_after_pid_reuse_shows_the_new_command(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    sim.script_command("first", stdout="first\n")
    sim.script_command("second", stdout="second\n", exit_code=4)
    pid = _start(sim, vps, "first")
    sim.set_next_pid(pid)
    assert _start(sim, vps, "second") == pid
    result = local("output", vps, str(pid))
    assert (result.code, result.out) == (4, "second\n")


def test_output_wait_interrupted_says_the_command_may_still_run(
    local: Cli, sim: HostupSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    vps = sim.add_vps(name="web-1")

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(HostupClient, "wait_for_agent_exec", interrupted)
    result = local("output", vps, "1000", "--wait")
    assert result.code == 130
    assert f"stopped waiting; command pid 1000 on {vps} may still be running" in result.err


# -- a VPS by id, name or IP ---------------------------------------------------------------

LIST_HINT = "`hostup-pulumi list-vps` lists the VPSes with their ids, names and primary IPs"


def _args_for(subcommand: str, pid: int = 1000) -> list[str]:
    return {"agent-status": [], "exec": ["--", "uptime"], "output": [str(pid)]}[subcommand]


@pytest.mark.parametrize("subcommand", ["agent-status", "exec", "output"])
def test_a_name_or_ip_is_resolved_to_the_id(
    local: Cli, sim: HostupSimulator, subcommand: str
) -> None:
    sim.add_vps(name="db-1", primary_ip="192.0.2.11")
    vps = sim.add_vps(name="Web-1", primary_ip="192.0.2.10")
    pid = _start(sim, vps, "true")
    for given, wanted in (("web-1", ("web-1", None)), ("192.0.2.10", (None, "192.0.2.10"))):
        sim.clear_requests()
        result = local(subcommand, given, *_args_for(subcommand, pid))
        assert result.code == 0, result.err
        listing, *rest = sim.requests
        assert listing.route == "list_vps"
        assert (listing.query.get("name"), listing.query.get("primaryIp")) == wanted
        assert rest
        assert all(r.vps_id == vps for r in rest)


def test_a_resolved_vps_is_named_with_its_id(run: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1", primary_ip="192.0.2.10")
    by_name = run("agent-status", "web-1")
    assert (by_name.code, by_name.out) == (0, f"web-1 ({vps}): available\n")
    by_ip = run("agent-status", "192.0.2.10", "--json")
    assert json.loads(by_ip.out)["vpsId"] == vps


@pytest.mark.parametrize("subcommand", ["agent-status", "exec", "output"])
def test_an_unknown_name_says_how_to_list_vpses(
    run: Cli, sim: HostupSimulator, subcommand: str
) -> None:
    sim.add_vps(name="web-1")
    result = run(subcommand, "web-9", *_args_for(subcommand))
    assert result.code == 2
    assert result.err == (
        "hostup-pulumi: error: no VPS is named 'web-9' (names match exactly, ignoring case); "
        f"{LIST_HINT}\n"
    )
    assert [r.route for r in sim.requests] == ["list_vps"]


def test_an_unknown_ip_says_how_to_list_vpses(local: Cli, sim: HostupSimulator) -> None:
    sim.add_vps(name="web-1", primary_ip="192.0.2.10")
    result = local("agent-status", "192.0.2.99")
    assert result.code == 2
    assert (
        result.err == f"hostup-pulumi: error: no VPS has the primary IP 192.0.2.99; {LIST_HINT}\n"
    )


def test_an_ambiguous_name_lists_the_candidates(run: Cli, sim: HostupSimulator) -> None:
    first = sim.add_vps(name="web", primary_ip="192.0.2.10")
    second = sim.add_vps(name="WEB")
    sim.add_vps(name="db")
    result = run("exec", "Web", "--", "uptime")
    assert result.code == 2
    assert result.err.splitlines() == [
        "hostup-pulumi: error: 2 VPSes are named 'Web'; give the id of the one you mean:",
        f"  {'ID':30}  NAME  PRIMARY IP",
        f"  {first}  web   192.0.2.10",
        f"  {second}  WEB   -",
    ]
    assert sim.count("exec_start") == 0


def test_names_and_ips_resolve_right_when_the_server_ignores_list_filters(
    run: Cli, sim: HostupSimulator
) -> None:
    # A HostUp-shaped server that answers every list in full: the client filters itself.
    bravo = sim.add_vps(name="bravo-01", primary_ip="192.0.2.20")
    sim.add_vps(name="charlie-01", primary_ip="192.0.2.30")
    first = sim.add_vps(name="twin")
    second = sim.add_vps(name="TWIN")
    sim.set_list_quirks(ignore_filters=True)
    sim.set_next_pid(5150)

    started = run("exec", "bravo-01", "--no-wait", "--", "echo", "hi")
    assert started.code == 0, started.err
    assert started.out.splitlines()[0] == f"started pid 5150 on bravo-01 ({bravo})"
    assert run("agent-status", "192.0.2.20").code == 0
    assert [r.vps_id for r in sim.requests if r.route == "probe"] == [bravo, bravo]

    twins = run("exec", "twin", "--no-wait", "--", "echo", "hi")
    assert twins.code == 2
    assert twins.err.splitlines()[0] == (
        "hostup-pulumi: error: 2 VPSes are named 'twin'; give the id of the one you mean:"
    )
    assert [line.split()[0] for line in twins.err.splitlines()[2:]] == [first, second]
    missing = run("agent-status", "192.0.2.99")
    assert (
        missing.err == f"hostup-pulumi: error: no VPS has the primary IP 192.0.2.99; {LIST_HINT}\n"
    )
    listed = run("list-vps", "--name", "charlie-01", "--json")
    assert [vps["name"] for vps in json.loads(listed.out)] == ["charlie-01"]
    assert sim.count("exec_start") == 1


def test_a_list_that_repeats_its_cursor_fails_instead_of_looping(
    local: Cli, sim: HostupSimulator
) -> None:
    for i in range(150):
        sim.add_vps(name=f"node-{i:03d}")
    sim.set_list_quirks(repeat_cursor=True)

    result = local("list-vps")

    assert result.code != 0
    assert "GET /api/v2/vps returned the cursor" in result.err
    assert "twice; stopping instead of looping" in result.err
    assert "Traceback" not in result.err
    assert sim.count("list_vps") == 2


def test_an_ambiguous_ip_lists_the_candidates(local: Cli, sim: HostupSimulator) -> None:
    first = sim.add_vps(name="old", primary_ip="192.0.2.10", power_state="stopped")
    second = sim.add_vps(name="new", primary_ip="192.0.2.10")
    result = local("agent-status", "192.0.2.10")
    assert result.code == 2
    lines = result.err.splitlines()
    assert lines[0] == (
        "hostup-pulumi: error: 2 VPSes have the primary IP 192.0.2.10; "
        "give the id of the one you mean:"
    )
    assert [line.split() for line in lines[2:]] == [
        [first, "old", "192.0.2.10"],
        [second, "new", "192.0.2.10"],
    ]


def test_an_ipv6_address_is_looked_up_in_canonical_form(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="v6", primary_ip="2001:db8::10")
    result = local("agent-status", "2001:DB8:0:0::10")
    assert (result.code, result.out) == (0, f"2001:db8::10 ({vps}): available\n")


def test_names_resolve_within_the_keys_account(local: Cli, sim: HostupSimulator) -> None:
    sim.add_vps(name="web-1")  # the default account's
    sim.add_api_key("hsk_acme_cli_key_0123456789", ["read:vm", "write:vm"], account="acme")
    theirs = sim.add_vps(name="web-1", account="acme")
    result = local("agent-status", "web-1", api_key="hsk_acme_cli_key_0123456789")
    assert (result.code, result.out) == (0, f"web-1 ({theirs}): available\n")
    assert {r.account for r in sim.requests} == {"acme"}


def test_a_vps_prefix_is_always_an_id(local: Cli, sim: HostupSimulator) -> None:
    sim.add_vps(name="vps_web")
    result = local("agent-status", "vps_web")
    assert result.code == 2
    assert "ValidationError: vps_id 'vps_web'" in _one_line_error(result)
    assert sim.requests == []


def test_an_empty_vps_is_an_error(local: Cli, sim: HostupSimulator) -> None:
    result = local("agent-status", " ")
    assert result.code == 2
    assert result.err == (
        f"hostup-pulumi: error: the VPS is empty: give its vps_... id, name or primary IP "
        f"({LIST_HINT})\n"
    )
    assert sim.requests == []


def test_verbose_says_what_a_name_resolved_to(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    result = local("agent-status", "web-1", "-v")
    assert f"hostup-pulumi: web-1 is {vps}\n" in result.err


# -- options before or after the command ---------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_json_and_verbose_before_or_after_the_command(
    run: Cli, sim: HostupSimulator, where: str
) -> None:
    vps = sim.add_vps(name="web-1")
    flags = ["--json", "-v"]
    args = [*flags, "agent-status", vps] if where == "before" else ["agent-status", vps, *flags]
    result = run(*args)
    assert result.code == 0
    assert json.loads(result.out)["vpsId"] == vps
    assert f"hostup-pulumi: GET /api/v2/vps/{vps}/agent/exec -> 200" in result.err


def test_base_url_before_the_command(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    result = local("--base-url", sim.base_url, "agent-status", vps, base_url="http://127.0.0.1:9")
    assert result.code == 0


def test_global_options_do_not_apply_to_the_simulator(local: Cli) -> None:
    result = local("--json", "simulator", "--port", "0")
    assert result.code == 2
    assert "-v, --json and --base-url do not apply to the simulator" in result.err


# -- errors and configuration --------------------------------------------------------------


def test_missing_key_exits_2_naming_the_variable(run: Cli, sim: HostupSimulator) -> None:
    result = run("list-vps", api_key=None)
    assert result.code == 2
    assert "HOSTUP_API_KEY" in _one_line_error(result)
    assert sim.requests == []


def test_api_errors_are_one_line_with_code_and_request_id(local: Cli, sim: HostupSimulator) -> None:
    result = local("agent-status", "vps_01hxa3b4c5d6e7f8g9h0j1k2m3")
    assert result.code == 2
    line = _one_line_error(result)
    assert "NotFoundError: HTTP 404 vps_not_found" in line
    assert "request id req_" in line


def test_a_wrong_key_is_never_echoed(run: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    result = run("agent-status", vps, api_key="hsk_wrong_key_do_not_print_me")
    assert result.code == 2
    assert "AuthenticationError: HTTP 401 unauthorized" in _one_line_error(result)
    assert "hsk_wrong_key_do_not_print_me" not in result.err


def test_a_401_advises_what_the_command_line_reads(local: Cli, sim: HostupSimulator) -> None:
    # The CLI takes its key from HOSTUP_API_KEY only: Pulumi config would do nothing here.
    vps = sim.add_vps(name="web-1")
    line = _one_line_error(local("agent-status", vps, api_key="hsk_wrong_key_000000000000"))
    assert re.search(
        r": Missing or invalid authentication\. HostUp refused the credentials\. "
        r"Set the HOSTUP_API_KEY environment variable to a valid key \(keys are created at "
        r"https://cloud\.hostup\.se/api-management\)\. request id req_\w+$",
        line,
    ), line
    assert "pulumi config" not in line
    bearer = _one_line_error(local("agent-status", vps, api_key=f"Bearer {sim.api_key}"))
    assert (
        ". HostUp refused the credentials. The key given starts with 'Bearer ': give the key "
        "alone (the client adds 'Bearer ' itself). request id req_"
    ) in bearer


def test_list_vps_with_an_invalid_ip_says_so_before_any_request(
    local: Cli, sim: HostupSimulator
) -> None:
    result = local("list-vps", "--primary-ip", "999.1.1.1")
    assert result.code == 2
    assert _one_line_error(result) == (
        "hostup-pulumi: error: ValidationError: '999.1.1.1' is not a valid IP address "
        "(IPv4 like 192.0.2.10, or IPv6)"
    )
    assert sim.requests == []


def test_a_404_for_a_vps_says_how_to_find_the_id(local: Cli, sim: HostupSimulator) -> None:
    line = _one_line_error(local("agent-status", "vps_01hxa3b4c5d6e7f8g9h0j1k2m3"))
    assert (
        ". No VPS with this id is visible to this key: `hostup-pulumi list-vps` lists the VPSes "
        "with their ids, names and primary IPs. request id req_"
    ) in line


def test_base_url_flag_wins_over_the_environment(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    result = local("agent-status", "--base-url", sim.base_url, vps, base_url="http://127.0.0.1:9")
    assert result.code == 0
    insecure = local("list-vps", "--base-url", "http://api.example.com")
    assert insecure.code == 2
    assert "plain http" in _one_line_error(insecure)


EXIT_CODE_LINES = [
    "  0    success: the agent is available; VPSes were listed; exec and output: the",
    "  1    the answer is no: the agent is not available (the reason is printed; exec",
    "  2    error: bad arguments (usage), no credentials, a VPS name or IP that matches",
    "  3    output without --wait: the command is still running",
    "  124  exec, output --wait: the command did not exit within --timeout (it may still",
    "  130  interrupted (Ctrl-C); a started command may still be running",
    "  exec and output otherwise exit with the command's own exit code (128+N when",
]


def test_help_documents_exit_codes_and_environment(run: Cli) -> None:
    result = run("--help")
    assert result.code == 0
    lines = result.out.splitlines()
    for line in EXIT_CODE_LINES:
        assert line in lines
    for text in ("HOSTUP_API_KEY", "HOSTUP_BASE_URL", "agent-status", "output", "list-vps"):
        assert text in result.out
    assert "-v/--verbose, --json and --base-url work before or after the command name" in (
        result.out
    )


@pytest.mark.parametrize("subcommand", ["agent-status", "list-vps", "exec", "output"])
def test_each_command_help_points_to_the_exit_codes_once_documented(
    local: Cli, subcommand: str
) -> None:
    # The long environment / exit-code section is in the top-level help, once.
    result = local(subcommand, "--help")
    assert result.code == 0
    assert result.out.startswith(f"usage: hostup-pulumi {subcommand} ")
    assert result.out.rstrip().splitlines()[-1] == "environment, exit codes: hostup-pulumi --help"
    assert "exit codes:" not in result.out.replace("environment, exit codes:", "")
    assert local("--help").out.count("exit codes:") == 1


@pytest.mark.parametrize(
    "subcommand", ["", "agent-status", "list-vps", "exec", "output", "install-plugin", "simulator"]
)
def test_help_shows_no_markup(local: Cli, subcommand: str) -> None:
    result = local(*([subcommand] if subcommand else []), "--help")
    assert result.code == 0
    for markup in ("``", ":func:", ":class:", ":mod:"):
        assert markup not in result.out, (subcommand, markup)


def test_exit_code_constants_match_the_help() -> None:
    assert (cli.EXIT_OK, cli.EXIT_NO, cli.EXIT_ERROR, cli.EXIT_RUNNING) == (0, 1, 2, 3)
    assert (cli.EXIT_TIMEOUT, cli.EXIT_INTERRUPTED) == (124, 130)


def test_python_dash_m_runs_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hostup_pulumi.cli", "--version"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout.split()[0]) == (0, "hostup-pulumi")


def test_the_command_line_never_loads_the_simulator(sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    code = (
        "import sys\n"
        "from hostup_pulumi.cli import main\n"
        f"assert main(['agent-status', 'web-1']) == 0\n"
        f"assert main(['exec', '{vps}', '--', 'true']) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('hostup_pulumi.testing')))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTUP_")}
    env.update(HOSTUP_API_KEY=sim.api_key, HOSTUP_BASE_URL=sim.base_url)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


def test_version(local: Cli) -> None:
    result = local("--version")
    assert result.code == 0
    assert result.out.startswith("hostup-pulumi ")


def test_no_subcommand_is_a_usage_error(local: Cli) -> None:
    assert local().code == 2
    assert local("list-vps", "--", "x").code == 2


def test_console_script_is_installed() -> None:
    assert SCRIPT.is_file(), "run `pip install -e .` to create the hostup-pulumi script"


# -- simulator -----------------------------------------------------------------------------


def test_simulator_subcommand_serves_until_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTUP_")}
    proc = subprocess.Popen(
        [str(SCRIPT), "simulator", "--port", "0", "--seed", "demo", "--ready-file", str(ready)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert json.loads(ready.read_text()) == info
        env.update(HOSTUP_API_KEY=info["api_key"], HOSTUP_BASE_URL=info["base_url"])
        listed = subprocess.run(
            [str(SCRIPT), "list-vps", "--json"], env=env, capture_output=True, text=True, timeout=30
        )
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)  # the demo seed has VPSes
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_simulator_prints_what_to_paste() -> None:
    # The quick start's first step: the address, the key, the VPSes, and the lines to paste.
    key = "hsk_test_quickstart_0000000000000000"
    with subprocess.Popen(
        [str(SCRIPT), "simulator", "--seed", "demo", "--api-key", key],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            assert proc.stderr is not None
            url = json.loads(proc.stdout.readline())["base_url"]
            shown = [proc.stderr.readline().rstrip("\n") for _ in range(11)]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    assert shown == [
        f"HostUp simulator on {url} (Ctrl-C stops it)",
        f"API key: {key}",
        "VPSes (id, name, power state, guest agent):",
        "  vps_01jdemo0web000000000000001  web-01  running  available",
        "  vps_01jdemo00db000000000000002  db-01   running  not available: QEMU guest agent "
        "is not responding",
        "  vps_01jdemo0old000000000000003  old-01  stopped  not available: VM is not running",
        "Point a Pulumi stack at it:",
        f"  pulumi config set hostup:baseUrl {url}",
        f"  pulumi config set --secret hostup:apiKey {key}",
        "Or the command line:",
        f"  export HOSTUP_BASE_URL={url} HOSTUP_API_KEY={key}",
    ]


def test_simulator_help_is_the_simulators(local: Cli) -> None:
    result = local("simulator", "--help")
    assert result.code == 0
    assert result.out.startswith("usage: hostup-pulumi simulator [-h] ")
    assert "python -m hostup_pulumi.testing" not in result.out
    assert "--pid-retention" in result.out


# -- pieces ----------------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_in_place_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(_common, "TTY_PROGRESS_EVERY", 0.01)
    stream = _Tty()
    with _common.Progress(stream, "vps_x pid 7", "running", limit=90):
        time.sleep(0.1)
    text = stream.getvalue()
    assert text.count("\r\x1b[K") >= 3
    assert "hostup-pulumi: [0s of 1m30s] vps_x pid 7: running" in text
    assert text.endswith("\r\x1b[K")  # the line is erased at the end


def test_progress_prints_plain_lines_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "PLAIN_PROGRESS_EVERY", 0.02)
    monkeypatch.setattr(_common, "PLAIN_PROGRESS_FIRST", 0.02)
    clock = iter(float(n) for n in range(1000))
    stream = io.StringIO()
    with _common.Progress(stream, "label", "state", limit=5, clock=lambda: next(clock)):
        time.sleep(0.15)
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 3
    assert lines[0] == "hostup-pulumi: [1s of 5s] label: state"
    assert "\r" not in stream.getvalue()


def test_progress_says_nothing_in_a_log_for_a_wait_that_ends_at_once() -> None:
    stream = io.StringIO()
    with _common.Progress(stream, "label", "state", limit=5):
        pass
    assert stream.getvalue() == ""


def test_exec_of_a_quick_command_prints_no_progress_outside_a_terminal(
    local: Cli, sim: HostupSimulator
) -> None:
    vps = sim.add_vps(name="web-1")
    result = local("exec", vps, "--", "echo hi")
    assert (result.code, result.out, result.err) == (0, "hi\n", "")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"exited": True, "exitCode": 0}, 0),
        ({"exited": True, "exitCode": 255}, 255),
        ({"exited": True, "exitCode": 256}, 255),  # never wraps to 0
        ({"exited": True, "exitCode": -1}, 255),
        ({"exited": True, "signal": 9}, 137),
        ({"exited": True}, 2),
    ],
)
def test_exit_status(body: dict[str, Any], status: int) -> None:
    assert _common.exit_status(AgentExecOutput.model_validate(body)) == status


def test_main_leaves_the_library_logger_as_it_was(local: Cli, sim: HostupSimulator) -> None:
    logger = logging.getLogger("hostup_pulumi")
    before = (list(logger.handlers), logger.level, logger.propagate)
    vps = sim.add_vps(name="web-1")
    assert local("agent-status", vps, "-v").code == 0
    assert (list(logger.handlers), logger.level, logger.propagate) == before


def test_verbose_logs_requests_without_the_key(local: Cli, sim: HostupSimulator) -> None:
    vps = sim.add_vps(name="web-1")
    result = local("agent-status", "-v", vps)
    assert f"hostup-pulumi: GET /api/v2/vps/{vps}/agent/exec -> 200" in result.err


def test_output_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTUP_API_KEY", "hsk_secret_value")
    assert _common.redact("echoed hsk_secret_value back") == "echoed <redacted> back"


# -- install-plugin ------------------------------------------------------------------------


FAKE_PULUMI = """#!/bin/sh
# Records its arguments; `plugin install resource NAME VERSION --file DIR` copies DIR as
# pulumi does (into $PULUMI_HOME/plugins/resource-NAME-vVERSION).
echo "$@" >> "$PULUMI_HOME/calls"
mkdir -p "$PULUMI_HOME/plugins/resource-$4-v$5"
cp "$7"/* "$PULUMI_HOME/plugins/resource-$4-v$5/"
"""


def test_install_plugin_installs_a_launcher_on_this_python_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hostup_pulumi import __version__
    from hostup_pulumi.cli import main

    fake = tmp_path / "pulumi"
    fake.write_text(FAKE_PULUMI)
    fake.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PULUMI_HOME", str(home))

    assert main(["install-plugin", "--pulumi", str(fake)]) == 0
    assert main(["install-plugin", "--pulumi", str(fake)]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"hostup plugin v{__version__} installed in {home} (python: {sys.executable})"
    assert out[1] == (
        f"hostup plugin v{__version__} is installed in {home} (python: {sys.executable})"
    )
    calls = (home / "calls").read_text().splitlines()
    assert len(calls) == 1  # the second run found it installed
    assert calls[0].startswith(f"plugin install resource hostup {__version__} --file ")
    launcher = home / "plugins" / f"resource-hostup-v{__version__}" / "pulumi-resource-hostup"
    assert f"exec {sys.executable} -m hostup_pulumi.provider" in launcher.read_text()


def test_install_plugin_without_pulumi_says_what_to_pass(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hostup_pulumi.cli import main

    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["install-plugin"]) == 2
    assert capsys.readouterr().err.strip() == (
        "hostup-pulumi: error: no pulumi CLI found: pass --pulumi PATH"
    )
