"""``hostup:index:AgentCommand``: start a command once; any change runs it again."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from .. import _advice as advisor
from .._validation import validate_command, validate_vps_id
from ..client import AsyncHostupClient
from ..errors import AgentUnavailableError, NotFoundError, ValidationError
from ._rules import Created, Diff, Input, Props, Refreshed, Report, ResourceRules, changed, parse_id

__all__ = ["AGENT_COMMAND", "PROBE_REUSE_SECONDS"]

#: How old an ``available: true`` answer may be and still stand for the probe before a start.
#: The native plugin serves a deploy's availability calls and its creates with one client, so a
#: program that exports or gates on availability (probing every VPS once, up front) is not
#: asked again per command; the start's own problem document still reports a change since.
#: The dynamic providers' creates run in another process than the program's probes and
#: always probe.
PROBE_REUSE_SECONDS = 60.0


def _validate_triggers(value: Any) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ValidationError("triggers must be a list of values whose change re-runs the command")
    return list(value)


class _AgentCommand(ResourceRules):
    """Starts a command once; any input change replaces (runs it again)."""

    token = "hostup:index:AgentCommand"  # noqa: S105 - a schema token
    inputs = (
        Input("vps_id", validate_vps_id, required=True, replaces=True),
        Input("command", validate_command, required=True, replaces=True),
        Input("triggers", _validate_triggers, replaces=True),
    )

    def diff(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> Diff:
        """An imported command (no run_id: what ran is not known) adopts the program's
        ``command`` and ``triggers`` without running again; otherwise any change replaces."""
        if olds.get("run_id") is None and olds.get("command") is None:
            adopted = tuple(n for n in ("command", "triggers") if changed(olds, news, n))
            replaces = ("vps_id",) if changed(olds, news, "vps_id") else ()
            return Diff(replaces, () if replaces else adopted)
        return super().diff(olds, news)

    async def create(self, client: AsyncHostupClient, inputs: Props, report: Report) -> Created:
        """Probe availability (the API asks for it), then start the command, once. A probe
        this client made in the last PROBE_REUSE_SECONDS that said available stands for it."""
        vps_id = validate_vps_id(inputs["vps_id"])
        command = validate_command(inputs["command"])
        try:
            await client.require_agent_available(vps_id, reuse_within=PROBE_REUSE_SECONDS)
        except AgentUnavailableError as exc:
            # Here the way to wait is a gate on the precondition, not an argument of this call.
            hint = advisor.agent_wait(client.settings.where, starting=True)
            raise AgentUnavailableError(exc.vps_id, exc.reason, exc.vm_running,
                                        wait_hint=hint) from None  # fmt: skip
        started = await client.start_agent_exec(vps_id, command)
        report.started(vps_id, started.pid)
        outputs = {
            "vps_id": vps_id,
            "command": command,
            "triggers": inputs.get("triggers"),
            "pid": started.pid,
            "poll_url": started.poll_url,
            # Each start its own identity: a re-run that gets the same pid is still another run.
            "run_id": secrets.token_hex(8),
        }
        return Created(f"{vps_id}/{started.pid}", outputs)

    async def read(self, client: AsyncHostupClient, resource_id: str, state: Props) -> Refreshed:
        """Refresh keeps the record (a started command has nothing live to drift). An import
        records the command by id after checking that HostUp knows the pid; it runs nothing."""
        if state.get("vps_id") is not None:
            inputs = {k: state.get(k) for k in ("vps_id", "command", "triggers")}
            return Refreshed(resource_id, dict(state), inputs)
        vps_id, pid = parse_id(resource_id)
        try:
            await client.get_agent_exec_output(vps_id, pid)
        except NotFoundError:
            return Refreshed(None, {}, {})
        outputs = {"vps_id": vps_id, "command": None, "triggers": None, "pid": pid,
                   "poll_url": None, "run_id": None}  # fmt: skip
        # What ran is not known: the generated code gets a harmless placeholder to replace,
        # and the next `up` adopts the program's command without running it.
        placeholder = f"# imported as pid {pid}: put the command that ran here"
        return Refreshed(resource_id, outputs, {"vps_id": vps_id, "command": placeholder})

    async def update(self, client: AsyncHostupClient, olds: Props, news: Props) -> Props:
        """Only an imported command updates: it records the program's inputs, runs nothing."""
        return {**olds, "command": news.get("command"), "triggers": news.get("triggers")}


AGENT_COMMAND = _AgentCommand()
