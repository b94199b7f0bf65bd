"""The advice an error gives, chosen by where the client runs, so that it names what exists
there: a Python program's arguments and config, the plugin's schema names (what YAML,
TypeScript and Go users write), an explicit provider's inputs, or the command line's options.

Every piece of advice that depends on the place is written here, once; the errors carry the
facts and append the advice they are given.
"""

from __future__ import annotations

import enum

__all__ = ["Where", "agent_fix", "agent_wait", "credentials", "vps_not_found"]

_KEYS_PAGE = "keys are created at https://cloud.hostup.se/api-management"


class Where(str, enum.Enum):
    """Where a client runs."""

    #: A Python program: the functions and the dynamic resources (``hostup:*`` config).
    PROGRAM = "program"
    #: The ``hostup`` plugin with the default provider (the stack's ``hostup:*`` config).
    PLUGIN = "plugin"
    #: The ``hostup`` plugin serving an explicit provider (its own inputs, not the config).
    PROVIDER = "provider"
    #: The ``hostup-pulumi`` command line (the environment only).
    CLI = "cli"


def credentials(where: Where, *, bearer_prefix: bool = False) -> str:
    """What to do about a 401: where this place takes its key from."""
    if bearer_prefix:
        return (
            "HostUp refused the credentials. The key given starts with 'Bearer ': give the key "
            "alone (the client adds 'Bearer ' itself)"
        )
    fix = {
        Where.PROGRAM: "Set the key with `pulumi config set --secret hostup:apiKey <key>` or "
        "the HOSTUP_API_KEY environment variable",
        Where.PLUGIN: "Set the key with `pulumi config set --secret hostup:apiKey <key>` or "
        "the HOSTUP_API_KEY environment variable of `pulumi`",
        Where.PROVIDER: "Check the apiKey input of this explicit hostup provider (it does not "
        "read the stack's hostup:apiKey)",
        Where.CLI: "Set the HOSTUP_API_KEY environment variable to a valid key",
    }[where]
    return f"HostUp refused the credentials. {fix} ({_KEYS_PAGE})"


def vps_not_found(where: Where) -> str:
    """How to find the right VPS id after a 404 ``vps_not_found``."""
    if where is Where.CLI:
        how = "`hostup-pulumi list-vps` lists the VPSes with their ids, names and primary IPs"
    elif where is Where.PROGRAM:
        how = (
            "find the id with `hostup-pulumi list-vps` (or `--name NAME`, `--primary-ip IP`) "
            "or client.list_vps(name=...)"
        )
    else:
        how = "find the id with `hostup-pulumi list-vps` (or `--name NAME`, `--primary-ip IP`)"
    return f"No VPS with this id is visible to this key: {how}"


def agent_fix(vm_running: bool | None) -> str:
    """What makes command execution available, by what HostUp said of the VM."""
    guest = (
        "make sure qemu-guest-agent is installed and running in the guest (Debian or Ubuntu: "
        "`apt install qemu-guest-agent && systemctl enable --now qemu-guest-agent`)"
    )
    if vm_running is False:
        return "Start the VM"
    if vm_running is True:
        return guest[0].upper() + guest[1:]
    return f"Start the VM if it is stopped, and {guest}"


def agent_wait(where: Where, *, starting: bool) -> str:
    """How to wait for the agent instead of failing: on the call that probes (``starting``
    False), or on a command that was about to start (gate it on the waiting precondition)."""
    if where is Where.CLI:
        return "`hostup-pulumi agent-status VPS --wait SECONDS` waits for it"
    if where is Where.PROGRAM:
        if starting:
            return (
                "To wait for it, gate the command on "
                "require_agent_available_output(vps_id, wait_timeout=SECONDS)"
            )
        return "Pass wait_timeout=SECONDS to wait for it instead of failing"
    if starting:
        return "To wait for it, gate the command on requireAgentAvailable with waitTimeout"
    return "Set waitTimeout (seconds) to wait for it instead of failing"
