"""Fleet: the availability of many VPSes in one program.

The `_output` calls share one client, so they run concurrently (up to
`hostup:maxConcurrency`, default 16) and slow down together if the API rate-limits.
"""

import pulumi

import hostup_pulumi as hostup

with hostup.program_client() as client:
    ids = [vps.id for vps in client.list_vps()]

results = [hostup.get_vps_agent_availability_output(vps_id) for vps_id in ids]
summary = pulumi.Output.all(*results).apply(
    lambda rs: {
        "total": len(rs),
        "available": sum(1 for r in rs if r.available),
        "unavailable": {r.vps_id: r.reason for r in rs if not r.available},
    }
)
pulumi.export("fleet", summary)
