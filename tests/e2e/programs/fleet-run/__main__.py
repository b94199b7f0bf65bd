"""One command on every VPS of a fleet: a gate, an AgentCommand and an AgentExecResult each.

Config (project keys): `command` (default "uptime"), `namePrefix` (only VPSes whose name
starts with it; default all), `native` (true: the hostup plugin's classes and functions;
default: the dynamic classes, the functions in the program). Used by
tests/e2e/test_reliability.py (faults at fleet scale).
"""

import pulumi

import hostup_pulumi as hostup
from hostup_pulumi import native

config = pulumi.Config()
command = config.get("command") or "uptime"
prefix = config.get("namePrefix") or ""
lib = native if config.get_bool("native") else hostup

with hostup.program_client() as client:
    ids = sorted(vps.id for vps in client.list_vps() if vps.name.startswith(prefix))

exit_codes = {}
for index, vps_id in enumerate(ids):
    gate = lib.require_agent_available_output(vps_id)
    started = lib.AgentCommand(f"command-{index:03d}", vps_id=gate.vps_id, command=command)
    result = lib.AgentExecResult(
        f"result-{index:03d}", vps_id=started.vps_id, pid=started.pid, run_id=started.run_id,
        timeout=120,
    )  # fmt: skip
    exit_codes[vps_id] = result.exit_code

pulumi.export("count", len(ids))
pulumi.export("exitCodes", exit_codes)
