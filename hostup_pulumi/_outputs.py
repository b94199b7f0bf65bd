"""The typed outputs of the resources, shared by the dynamic classes (:mod:`.resources`) and
the plugin-backed ones (:mod:`.native`): one declaration of what each resource outputs.

No ``from __future__ import annotations`` here: the SDK reads a resource class's annotations
with ``typing.get_type_hints`` at every registration, and string annotations were evaluated
anew each time (about 1 ms per resource in a program of 800).
"""

from typing import Any

import pulumi

from .lifecycle import AGENT_EXEC_RESULT

__all__ = ["SECRET_OUTPUTS", "AgentCommandOutputs", "AgentExecResultOutputs", "props"]


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


#: AgentExecResult's outputs that are secrets: the lifecycle's (Python attribute names).
SECRET_OUTPUTS = sorted(AGENT_EXEC_RESULT.secret_outputs)


def props(outputs: type, **inputs: Any) -> dict[str, Any]:
    """A resource's registration properties: its inputs, and every output still unset."""
    return {**dict.fromkeys(inputs), **dict.fromkeys(outputs.__annotations__), **inputs}
