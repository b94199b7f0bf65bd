"""Precondition: gate a deploy on the guest agent being available.

Config `vpsId` (a project key: `pulumi config set vpsId vps_...`) names the VPS.
When its agent cannot run commands, `pulumi preview` and
`pulumi up` fail here, naming the VPS and the API's reason, and nothing is created.
"""

import pulumi

import hostup_pulumi as hostup

config = pulumi.Config()
vps_id = config.require("vpsId")
# Optional: wait this many seconds for a VM that is still booting before failing.
wait = config.get_float("waitTimeout")

gate = hostup.require_agent_available(vps_id, wait_timeout=wait)

# Only reached when the gate passed.
marker = hostup.AgentCommand("deploy-marker", vps_id=gate.vps_id, command="echo deployed")
pulumi.export("gate", gate)
pulumi.export("markerPid", marker.pid)
