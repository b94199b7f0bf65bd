import pulumi

import hostup_pulumi as hostup

WEB = "vps_01jdemo0web000000000000001"  # the simulator's web-01: put your VPS ids here
DB = "vps_01jdemo00db000000000000002"  # db-01, whose guest agent does not answer

# Availability as stack outputs. The _output form takes Inputs and runs concurrently.
pulumi.export("web", hostup.get_vps_agent_availability_output(WEB))
pulumi.export("db", hostup.get_vps_agent_availability_output(DB))

# Gate: fails preview and up, naming the VPS and HostUp's reason, unless commands can run.
gate = hostup.require_agent_available_output(WEB)

# Run a command once; read its exit code and (secret) output.
cmd = hostup.AgentCommand("uname", vps_id=gate.vps_id, command="uname -a")
out = hostup.AgentExecResult("uname-out", vps_id=cmd.vps_id, pid=cmd.pid, run_id=cmd.run_id)
pulumi.export("exitCode", out.exit_code)
pulumi.export("stdout", out.stdout)  # a secret: pulumi stack output --show-secrets
