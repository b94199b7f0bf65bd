"""The harness itself: a CLI run that outlives its timeout is killed with every process it
started (language host, program, dynamic provider), so a hang cannot stall the suite."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from e2e_helpers import WEB

from hostup_pulumi.testing import HostupSimulator

pytestmark = pytest.mark.e2e


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (Linux /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def test_hung_run_is_killed_with_its_plugins(make_stack, sim: HostupSimulator) -> None:
    sim.script_command("sleep 60", duration=60)
    stack = make_stack("run-command", vpsId=WEB, command="sleep 60", timeout="120")

    # Wait until the provider is polling the running command, then let the run time out.
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        stack.stack.run("up", "--yes", timeout=10)
    assert time.monotonic() - started < 20
    assert sim.count("exec_start") == 1
    assert "AgentExecResult result creating" in str(caught.value.stdout)

    if not Path("/proc/self").exists():
        return
    deadline = time.monotonic() + 5
    while (left := processes_mentioning(str(stack.root))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == []
