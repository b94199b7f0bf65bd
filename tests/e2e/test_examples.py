"""The read-only examples (quickstart, fleet): availability as stack outputs, nothing run."""

from __future__ import annotations

import pytest
from e2e_helpers import DB, DB_REASON, OLD, OLD_REASON, WEB

from hostup_pulumi.testing import HostupSimulator

pytestmark = pytest.mark.e2e


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
