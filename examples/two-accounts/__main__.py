"""Two HostUp accounts in one program: one explicit provider per API key.

Config (project keys): `acmeVpsId`, `acmeApiKey` (secret), `betaVpsId`, `betaApiKey` (secret),
`baseUrl` (optional; HostUp's by default), `command` (default "uname -a"). Uses the native
hostup plugin (`make engine` or tools/install-plugin): explicit providers are the plugin's.
"""

import pulumi

import hostup_pulumi as hostup
from hostup_pulumi import native

config = pulumi.Config()
command = config.get("command") or "uname -a"

for account in ("acme", "beta"):
    provider = hostup.Provider(
        account,
        api_key=config.require_secret(f"{account}ApiKey"),
        base_url=config.get("baseUrl"),
    )
    vps_id = config.require(f"{account}VpsId")
    # The plain function honours opts: with a hostup provider it runs in the plugin.
    availability = hostup.get_vps_agent_availability_output(
        vps_id, opts=pulumi.InvokeOptions(provider=provider)
    )
    on = pulumi.ResourceOptions(provider=provider)
    started = native.AgentCommand(f"{account}-command", vps_id=vps_id, command=command, opts=on)
    result = native.AgentExecResult(
        f"{account}-result", vps_id=vps_id, pid=started.pid, run_id=started.run_id, opts=on
    )
    pulumi.export(f"{account}Available", availability.available)
    pulumi.export(f"{account}ExitCode", result.exit_code)
    pulumi.export(f"{account}Stdout", result.stdout)  # secret
