"""The precondition example: a deploy gated on the guest agent being available."""

from __future__ import annotations

import pytest
from e2e_helpers import DB, DB_REASON, OLD, OLD_REASON, WEB

from hostup_pulumi.testing import HostupSimulator

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("vps_id", "reason", "extra"),
    [
        pytest.param(DB, DB_REASON, {}, id="agent-silent"),
        pytest.param(OLD, OLD_REASON, {"waitTimeout": "1"}, id="vm-stopped-after-wait"),
    ],
)
def test_unavailable_agent_fails_preview_and_up_creating_nothing(
    make_stack, sim: HostupSimulator, vps_id: str, reason: str, extra: dict[str, str]
) -> None:
    stack = make_stack("precondition", vpsId=vps_id, **extra)

    for args in (("preview",), ("up", "--yes")):
        run = stack.run(*args, ok=False)
        assert vps_id in run.output
        assert reason in run.output
        assert "QEMU guest agent command execution is not available" in run.output
        # A clean failure: the message, not a Python traceback.
        assert "Traceback" not in run.output

    assert stack.resources("AgentCommand") == []
    assert sim.count("exec_start") == 0
    assert stack.outputs() == {}


def test_available_agent_passes_the_gate(make_stack, sim: HostupSimulator) -> None:
    stack = make_stack("precondition", vpsId=WEB)

    up = stack.run("up", "--yes")
    assert up.summary() == {"created": 2}
    outputs = stack.outputs()
    assert outputs["gate"] == {"vpsId": WEB, "available": True, "vmRunning": True}
    assert isinstance(outputs["markerPid"], int)
    assert [r["outputs"]["command"] for r in stack.resources("AgentCommand")] == ["echo deployed"]
    assert sim.count("exec_start") == 1
