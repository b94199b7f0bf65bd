"""The typed outputs of the resources, shared by the dynamic classes (:mod:`.resources`) and
the plugin-backed ones (:mod:`.native`): one declaration of what each resource outputs."""

from __future__ import annotations

from typing import Any

import pulumi

__all__ = ["AgentCommandOutputs", "AgentExecResultOutputs"]


class AgentCommandOutputs:
    """Outputs of ``AgentCommand``."""

    vps_id: pulumi.Output[str]
    command: pulumi.Output[str]
    triggers: pulumi.Output[list[Any] | None]
    pid: pulumi.Output[int]
    poll_url: pulumi.Output[str | None]
    #: A new value for every start (unset when imported).
    run_id: pulumi.Output[str | None]


class AgentExecResultOutputs:
    """Outputs of ``AgentExecResult``."""

    vps_id: pulumi.Output[str]
    pid: pulumi.Output[int]
    run_id: pulumi.Output[str | None]
    timeout: pulumi.Output[float]
    fail_on_nonzero_exit: pulumi.Output[bool]
    exited: pulumi.Output[bool]
    exit_code: pulumi.Output[int | None]
    stdout: pulumi.Output[str]
    stderr: pulumi.Output[str]
    signal: pulumi.Output[Any]
    truncated: pulumi.Output[bool | None]
    extra_fields: pulumi.Output[dict[str, Any]]
