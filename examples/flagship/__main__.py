"""Flagship: every VPS's guest-agent availability, and a command run where it is available.

Stack outputs:
  availability   {name: {vpsId, available, reason, vmRunning}} for every VPS on the account
  unavailable    {name: reason} for the VPSes that cannot run commands now
  commands       {name: {pid, exitCode}} for each VPS where `command` ran
  stdout         {name: stdout} of those commands (a secret)
"""

import pulumi

import hostup_pulumi as hostup

config = pulumi.Config()
command = config.get("command") or "uname -a"

# Plan-time lookups: which VPSes exist, and which can run commands now. They run during
# preview too, so the preview already shows the real availability.
with hostup.program_client() as client:
    servers = sorted(client.list_vps(), key=lambda vps: vps.name or vps.id)
availability = {(vps.name or vps.id): hostup.get_vps_agent_availability(vps.id) for vps in servers}
pulumi.export("availability", availability)
pulumi.export(
    "unavailable", {name: r.reason for name, r in availability.items() if not r.available}
)

commands, stdout = {}, {}
for name, status in availability.items():
    if not status.available:
        continue
    started = hostup.AgentCommand(f"{name}-command", vps_id=status.vps_id, command=command)
    result = hostup.AgentExecResult(
        f"{name}-result", vps_id=status.vps_id, pid=started.pid, run_id=started.run_id, timeout=120
    )
    commands[name] = {"pid": started.pid, "exitCode": result.exit_code}
    stdout[name] = result.stdout

pulumi.export("commands", commands)
pulumi.export("stdout", stdout)
