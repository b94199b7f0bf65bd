"""The flagship project (top-level Pulumi.yaml) through its whole life, on the real engine.

One stack, ordered steps: preview, up, outputs, no-change up/preview/refresh (also once the
API has forgotten the pid), secrets, destroy.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from e2e_helpers import API_KEY, DB, DB_REASON, OLD, OLD_REASON, WEB, Stack, files_under

from hostup_pulumi.testing import HostupSimulator

pytestmark = pytest.mark.e2e

#: What web-01 prints for the flagship's default command: must never show unless asked.
STDOUT_MARKER = "Linux web-01 E2E_STDOUT_MARKER_5c1d 6.8.0 x86_64 GNU/Linux"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker of a secret value


def holds_secret(path: Path) -> bool:
    data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
    return API_KEY.encode() in data or STDOUT_MARKER.encode() in data


def assert_no_changes(stack: Stack, *args: str) -> None:
    """``--expect-no-changes`` passes, and the summary is only "3 unchanged" (nothing
    created, updated, replaced or deleted)."""
    run = stack.run(*args, "--expect-no-changes")
    assert run.summary() == {"unchanged": 3}, run.stdout


def assert_recorded_outputs(stack: Stack) -> None:
    outputs = stack.outputs()
    assert outputs["availability"] == {
        "web-01": {"vpsId": WEB, "available": True, "vmRunning": True},
        "db-01": {"vpsId": DB, "available": False, "reason": DB_REASON, "vmRunning": True},
        "old-01": {"vpsId": OLD, "available": False, "reason": OLD_REASON, "vmRunning": False},
    }
    assert outputs["unavailable"] == {"db-01": DB_REASON, "old-01": OLD_REASON}
    assert outputs["commands"] == {"web-01": {"pid": 1000, "exitCode": 0}}
    assert outputs["stdout"] == {"web-01": "[secret]"}
    revealed = stack.outputs(show_secrets=True)
    assert revealed["stdout"] == {"web-01": STDOUT_MARKER}


def test_flagship_lifecycle(make_stack, sim: HostupSimulator) -> None:
    sim.script_command("uname -a", stdout=STDOUT_MARKER)
    stack = make_stack("flagship")

    # Preview: availability comes from plain data-function results, so it is known already;
    # the command and its output are not (and nothing ran).
    preview = stack.run("preview")
    assert preview.summary() == {"to create": 3}
    assert f'"{DB_REASON}"' in preview.stdout
    assert f'"{OLD_REASON}"' in preview.stdout
    assert re.search(r"web-01: \{\s*available: true\b", preview.stdout), preview.stdout
    assert "exitCode: [unknown]" in preview.stdout
    assert sim.count("exec_start") == 0

    # Up: the command runs once, on web-01 only.
    up = stack.run("up", "--yes")
    assert up.summary() == {"created": 3}
    assert sim.count("exec_start") == 1
    assert [r.path for r in sim.requests if r.route == "exec_start"] == [
        f"/api/v2/vps/{WEB}/agent/exec"
    ]
    assert_recorded_outputs(stack)

    # Nothing changed: preview, up and refresh say so, and nothing runs again.
    assert_no_changes(stack, "preview")
    assert_no_changes(stack, "up", "--yes")
    assert_no_changes(stack, "refresh", "--yes")
    assert sim.count("exec_start") == 1
    assert sim.count("exec_output") >= 1  # refresh re-read the output by pid

    # Secrets: no API key anywhere; stdout only as ciphertext; --show-secrets reveals it.
    text, state = stack.export()
    assert API_KEY not in text
    assert STDOUT_MARKER not in text
    result = next(r for r in state["deployment"]["resources"] if r["type"].endswith("Result"))
    assert result["outputs"]["stdout"][SECRET_SIG]
    assert result["outputs"]["stdout"]["ciphertext"]
    assert result["outputs"]["exit_code"] == 0
    config = (stack.project_dir / "Pulumi.e2e.yaml").read_text()
    assert API_KEY not in config
    assert "secure:" in config

    # The API forgets the pid (a fresh simulator on the same address knows no pids): refresh
    # and up still change nothing and keep the recorded result.
    port = sim.port
    sim.stop()
    with HostupSimulator(seed="demo", api_key=API_KEY, port=port) as fresh:
        assert_no_changes(stack, "refresh", "--yes")
        # (refresh --yes reads twice: its preview, then the refresh itself)
        statuses = {r.status for r in fresh.requests if r.route == "exec_output"}
        assert statuses == {404}
        assert_no_changes(stack, "up", "--yes")
        assert_no_changes(stack, "preview")
        assert fresh.count("exec_start") == 0
        assert_recorded_outputs(stack)

        # Nothing printed so far held the key or the command's output, nor does any file of
        # the stack (config, state, its history and backups, PULUMI_HOME).
        transcript = stack.transcript()
        assert API_KEY not in transcript
        assert STDOUT_MARKER not in transcript
        files = files_under(stack.root)
        assert any(path.name == "e2e.json" for path in files)  # the checkpoint is among them
        assert [path for path in files if holds_secret(path)] == []

        # Destroy: forgets the records; a command cannot be undone, so no API call at all.
        fresh.clear_requests()
        destroy = stack.run("destroy", "--yes")
        assert destroy.summary() == {"deleted": 3}
        assert fresh.requests == []
        assert stack.resources() == []
        assert stack.outputs() == {}
