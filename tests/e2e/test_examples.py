"""The read-only examples (quickstart, fleet): availability as stack outputs, nothing run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from e2e_helpers import DB, DB_REASON, OLD, OLD_REASON, REPO, WEB

from hostup_pulumi.testing import HostupSimulator

pytestmark = pytest.mark.e2e


def _readme_block(after: str, language: str) -> str:
    """The first ``language`` code block of the README after the line ``after``."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index(after) :]
    start = section.index(f"```{language}\n") + len(language) + 4
    return section[start : section.index("```", start)]


def test_the_readmes_python_quick_start_runs_as_written(
    make_stack: Any, sim: HostupSimulator
) -> None:
    program = (REPO / "examples" / "hello" / "__main__.py").read_text(encoding="utf-8")
    assert _readme_block("## Python quick start", "python") == program
    stack = make_stack("hello")

    stack.run("up", "--yes")

    shown = json.loads(_readme_block("`pulumi up`, then `pulumi stack output --json`", "json"))
    assert stack.outputs() == shown
    assert sim.count("exec_start") == 1

    # The failed gate the README shows, word for word, and no traceback.
    sim.set_agent(WEB, available=False)
    failed = stack.run("up", "--yes", ok=False)
    error = _readme_block("A failed gate", "").strip()
    assert error in " ".join(failed.output.split())  # the CLI wraps long lines
    assert "Traceback" not in failed.output


def test_quickstart_exports_each_vps(make_stack, sim: HostupSimulator) -> None:
    stack = make_stack("quickstart")

    # The _output function's id is known at preview, so the preview shows real values.
    preview = stack.run("preview")
    assert f'"{DB_REASON}"' in preview.stdout
    assert f'"{OLD_REASON}"' in preview.stdout

    stack.run("up", "--yes")
    assert stack.outputs() == {
        "web-01": {"vpsId": WEB, "available": True, "vmRunning": True},
        "db-01": {"vpsId": DB, "available": False, "reason": DB_REASON, "vmRunning": True},
        "old-01": {"vpsId": OLD, "available": False, "reason": OLD_REASON, "vmRunning": False},
    }
    stack.run("up", "--yes", "--expect-no-changes")
    assert sim.count("exec_start") == 0


def test_fleet_summarises_availability(make_stack, sim: HostupSimulator) -> None:
    stack = make_stack("fleet")

    stack.run("up", "--yes")
    assert stack.outputs()["fleet"] == {
        "total": 3,
        "available": 1,
        "unavailable": {DB: DB_REASON, OLD: OLD_REASON},
    }
    assert sim.count("probe") >= 3
    assert sim.count("exec_start") == 0
