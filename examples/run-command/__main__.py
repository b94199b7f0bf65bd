"""Run a command: AgentCommand starts it, AgentExecResult waits for and records its output.

Config (project keys): `vpsId` (required), `command` (default "uname -a"), `trigger`
(change it to run the command again). stdout and stderr are secrets:
`pulumi stack output --show-secrets`.
"""

import pulumi

import hostup_pulumi as hostup

config = pulumi.Config()
vps_id = config.require("vpsId")
command = config.get("command") or "uname -a"
triggers = [config.get("trigger")] if config.get("trigger") else None

started = hostup.AgentCommand("command", vps_id=vps_id, command=command, triggers=triggers)
result = hostup.AgentExecResult(
    "result",
    vps_id=vps_id,
    pid=started.pid,
    run_id=started.run_id,  # a re-run that gets the same pid still replaces the result
    timeout=config.get_float("timeout") or 120,
    fail_on_nonzero_exit=config.get_bool("failOnNonzeroExit") or False,
)

pulumi.export("pid", started.pid)
pulumi.export("exitCode", result.exit_code)
pulumi.export("stdout", result.stdout)  # secret
pulumi.export("stderr", result.stderr)  # secret
