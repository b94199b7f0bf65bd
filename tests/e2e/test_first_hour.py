"""Everyday mistakes in a Python program end `pulumi up` / `preview` with one line: the
message, and no Python traceback (no key, a key without write:vm, a command on a VPS whose
agent is not available, a wrong vpsId given to a resource or to a function), and a program
that fails does not wait for its other probes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from e2e_helpers import DB, WEB, Stack

from hostup_pulumi.testing import Fault, HostupSimulator

pytestmark = pytest.mark.e2e

READ_ONLY_KEY = "hsk_test_e2e_READ_ONLY_0123456789abcdef"


def diagnostics(run_output: str) -> str:
    """The Diagnostics section, whitespace folded (the CLI wraps long lines)."""
    return " ".join(run_output[run_output.index("Diagnostics:") :].split())


def assert_no_frames(output: str) -> None:
    assert "Traceback" not in output
    assert 'File "' not in output
    assert "pulumi/dynamic/__main__.py" not in output


def test_no_key_in_a_program_is_one_line(make_stack: Any) -> None:
    for example in ("quickstart", "run-command"):
        stack: Stack = make_stack(example, name=f"nokey-{example}", vpsId=WEB)
        stack.run("config", "rm", "hostup:apiKey")
        failed = stack.run("up", "--yes", ok=False)
        assert (
            "No HostUp credentials. In a Pulumi program (the hostup functions and resources, and "
            "hostup.program_client()): `pulumi config set --secret hostup:apiKey <key>`."
        ) in diagnostics(failed.output), example
        assert_no_frames(failed.output)


def test_a_key_without_write_scope_is_one_line(make_stack: Any, sim: HostupSimulator) -> None:
    sim.add_api_key(READ_ONLY_KEY, ["read:vm"])
    stack: Stack = make_stack("run-command", vpsId=WEB)
    stack.stack.set_config("hostup:apiKey", READ_ONLY_KEY, secret=True)
    failed = stack.run("up", "--yes", ok=False)
    assert (
        "error: PermissionDeniedError: HTTP 403 forbidden on POST /api/v2/vps/"
        f"{WEB}/agent/exec: Forbidden: This API key lacks the required scope: write:vm. This call "
        "needs an API key with the 'write:vm' scope"
    ) in diagnostics(failed.output)
    assert_no_frames(failed.output)
    assert sim.count("exec_start") == 1  # refused by HostUp: nothing ran


def test_a_command_on_an_unavailable_agent_is_one_line(
    make_stack: Any, sim: HostupSimulator
) -> None:
    stack: Stack = make_stack("run-command", vpsId=DB)
    failed = stack.run("up", "--yes", ok=False)
    assert (
        "error: AgentUnavailableError: QEMU guest agent command execution is not available on "
        f"{DB}: QEMU guest agent "
        "is not responding (VM running: true). Make sure qemu-guest-agent is installed and "
        "running in the guest (Debian or Ubuntu: `apt install qemu-guest-agent && systemctl "
        "enable --now qemu-guest-agent`). To wait for it, gate the command on "
        "require_agent_available_output(vps_id, wait_timeout=SECONDS)"
    ) in diagnostics(failed.output)
    assert_no_frames(failed.output)
    assert sim.count("exec_start") == 0


@pytest.mark.parametrize("example", ["run-command", "precondition"])
def test_a_wrong_vps_id_is_one_line(make_stack: Any, sim: HostupSimulator, example: str) -> None:
    # run-command gives it to a resource, precondition to a function.
    stack: Stack = make_stack(example, vpsId="10.0.0.7")
    failed = stack.run("preview", ok=False)
    assert (
        "vps_id '10.0.0.7' is an IP address, not a VPS id. A VPS id is `vps_` followed by "
        "letters and digits"
    ) in diagnostics(failed.output)
    assert "hostup-pulumi list-vps --primary-ip 10.0.0.7" in diagnostics(failed.output)
    assert_no_frames(failed.output)
    assert sim.requests == []


def test_a_failed_probe_ends_the_program_without_waiting_for_the_others(
    make_stack: Any, sim: HostupSimulator
) -> None:
    # 48 VPSes, 16 probed at a time: the first answer is a 403, every other one would take a
    # minute. The program fails at the 403; the probes still in flight or queued go with it
    # (they do not hold the process open until they have all been answered).
    for i in range(45):
        sim.add_vps(name=f"fleet-{i:02d}")
    stack: Stack = make_stack("fleet")
    sim.inject("probe", Fault.status(403))
    sim.inject("probe", Fault.delay(60), count=47)
    started = time.monotonic()
    failed = stack.run("preview", ok=False)
    elapsed = time.monotonic() - started
    assert "error: HTTP 403 forbidden on GET /api/v2/vps/vps_" in diagnostics(failed.output)
    assert_no_frames(failed.output)
    assert elapsed < 45, f"the failed preview took {elapsed:.0f} s"
