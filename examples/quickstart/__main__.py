"""Quickstart: list the account's VPSes and export each one's guest-agent availability."""

import pulumi

import hostup_pulumi as hostup

with hostup.program_client() as client:
    for vps in client.list_vps():
        # One stack output per VPS: {vpsId, available, reason, vmRunning}.
        pulumi.export(vps.name or vps.id, hostup.get_vps_agent_availability_output(vps.id))
