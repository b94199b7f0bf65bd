"""A command on every VPS of two HostUp accounts, through one explicit provider per API key
(the native hostup plugin): a gate, an AgentCommand and an AgentExecResult per VPS.

Config (project keys): `acmeApiKey`, `betaApiKey` (secrets), `acmeVpsIds`, `betaVpsIds`
(JSON lists), `baseUrl`, `maxRetries`, `command` (default "uptime"). Used by
tests/e2e/test_reliability.py (two accounts under faults).
"""

import pulumi

from hostup_pulumi import native as hostup

config = pulumi.Config()
command = config.get("command") or "uptime"

exit_codes = {}
for account in ("acme", "beta"):
    provider = hostup.Provider(
        account,
        api_key=config.require_secret(f"{account}ApiKey"),
        base_url=config.get("baseUrl"),
        max_retries=config.get_int("maxRetries"),
    )
    invoke = pulumi.InvokeOptions(provider=provider)
    on = pulumi.ResourceOptions(provider=provider)
    for index, vps_id in enumerate(config.require_object(f"{account}VpsIds")):
        gate = hostup.require_agent_available_output(vps_id, opts=invoke)
        started = hostup.AgentCommand(
            f"{account}-command-{index:02d}", vps_id=gate.vps_id, command=command, opts=on
        )
        result = hostup.AgentExecResult(
            f"{account}-result-{index:02d}", vps_id=started.vps_id, pid=started.pid,
            run_id=started.run_id, timeout=120, opts=on,
        )  # fmt: skip
        exit_codes[vps_id] = result.exit_code

pulumi.export("exitCodes", exit_codes)
