"""The run-command example: AgentCommand + AgentExecResult on the real engine.

Re-runs only on change, and clear failures (timeout, non-zero exit) that keep the command's
output out of the CLI.
"""

from __future__ import annotations

import time

import pytest
from e2e_helpers import WEB, assert_refresh_keeps_a_finished_result

from hostup_pulumi.testing import HostupSimulator

pytestmark = pytest.mark.e2e


def test_change_reruns_and_no_change_runs_nothing(make_stack, sim: HostupSimulator) -> None:
    sim.script_command("echo one", stdout="ONE_OUT\n")
    sim.script_command("echo two", stdout="TWO_OUT\n")
    stack = make_stack("run-command", vpsId=WEB, command="echo one")

    assert stack.run("up", "--yes").summary() == {"created": 3}
    assert sim.count("exec_start") == 1
    first = stack.outputs(show_secrets=True)
    assert first["exitCode"] == 0
    assert first["stdout"] == "ONE_OUT\n"

    # Changing nothing runs nothing.
    stack.run("up", "--yes", "--expect-no-changes")
    assert sim.count("exec_start") == 1

    # A new command replaces both resources (the result follows the new pid)...
    stack.set("command", "echo two")
    preview = stack.run("preview", "--diff")
    assert preview.summary() == {"to replace": 2, "unchanged": 1}
    assert "hostup:AgentCommand: (replace)" in preview.stdout
    assert sim.count("exec_start") == 1  # a preview runs nothing

    # ...and up runs it once.
    assert stack.run("up", "--yes").summary() == {"replaced": 2, "unchanged": 1}
    assert sim.count("exec_start") == 2
    second = stack.outputs(show_secrets=True)
    assert second["stdout"] == "TWO_OUT\n"
    assert second["pid"] == first["pid"] + 1

    # A new trigger runs the same command again.
    stack.set("trigger", "deploy-2")
    assert stack.run("up", "--yes").summary() == {"replaced": 2, "unchanged": 1}
    assert sim.count("exec_start") == 3
    stack.run("up", "--yes", "--expect-no-changes")
    assert sim.count("exec_start") == 3


def test_timeout_fails_clearly(make_stack, sim: HostupSimulator) -> None:
    sim.script_command("sleep 30", stdout="SLOW_STDOUT_MARKER\n", duration=30)
    stack = make_stack("run-command", vpsId=WEB, command="sleep 30", timeout="1")

    started = time.monotonic()
    up = stack.run("up", "--yes", ok=False)
    assert time.monotonic() - started < 25  # gave up at the timeout, not at the command's end
    assert "did not exit within" in up.output
    assert "_core.py" not in up.output  # the message, not the client's internals
    assert WEB in up.output
    assert "SLOW_STDOUT_MARKER" not in stack.transcript()
    # The command was started once and is on record; its result is not.
    assert sim.count("exec_start") == 1
    assert len(stack.resources("AgentCommand")) == 1
    assert stack.resources("AgentExecResult") == []


def test_nonzero_exit_fails_clearly(make_stack, sim: HostupSimulator) -> None:
    sim.script_command(
        "check-disk", stdout="NONZERO_STDOUT_MARKER", stderr="NONZERO_STDERR_MARKER", exit_code=3
    )
    stack = make_stack("run-command", vpsId=WEB, command="check-disk", failOnNonzeroExit="true")

    up = stack.run("up", "--yes", ok=False)
    assert "exited with code 3" in up.output
    assert "_core.py" not in up.output
    assert stack.resources("AgentExecResult") == []
    assert sim.count("exec_start") == 1

    # Tolerating the exit code records the result of the same run: the command is not re-run.
    stack.set("failOnNonzeroExit", "false")
    stack.run("up", "--yes")
    assert sim.count("exec_start") == 1
    assert stack.outputs()["exitCode"] == 3

    # Asking for failure again fails the update in place, from the recorded exit code.
    stack.set("failOnNonzeroExit", "true")
    again = stack.run("up", "--yes", ok=False)
    assert "exited with code 3" in again.output
    assert sim.count("exec_start") == 1

    transcript = stack.transcript()
    assert "NONZERO_STDOUT_MARKER" not in transcript
    assert "NONZERO_STDERR_MARKER" not in transcript


def test_refresh_keeps_a_finished_result_when_hostup_reuses_its_pid(
    make_stack, sim: HostupSimulator
) -> None:
    sim.script_command("echo one", stdout="ONE_OUT\n")
    sim.script_command("echo other", stdout="OTHER_OUT\n", exit_code=4)
    stack = make_stack("run-command", vpsId=WEB, command="echo one")
    stack.run("up", "--yes")
    assert_refresh_keeps_a_finished_result(stack, sim, sim.api_key)
