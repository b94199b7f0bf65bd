"""``hostup:index:AgentExecResult``: wait for a command's output; a finished result is
history."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from .._validation import validate_pid, validate_seconds, validate_vps_id
from ..client import AsyncHostupClient
from ..errors import CommandFailedError, NotFoundError, ValidationError
from ..models import AgentExecOutput
from ._rules import (
    SILENT,
    UNKNOWN,
    Created,
    Diff,
    Input,
    Props,
    Refreshed,
    Report,
    ResourceRules,
    parse_id,
)  # fmt: skip

__all__ = ["AGENT_EXEC_RESULT", "DEFAULT_RESULT_TIMEOUT", "MAX_RESULT_TIMEOUT"]

DEFAULT_RESULT_TIMEOUT = 300.0
MAX_RESULT_TIMEOUT = 24 * 3600.0
#: How often a wait in progress says how long it has waited.
PROGRESS_EVERY = 5.0


def _validate_timeout(value: Any) -> float:
    return validate_seconds(value, "timeout", maximum=MAX_RESULT_TIMEOUT)


def _validate_flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"fail_on_nonzero_exit must be true or false, got {value!r}")
    return value


def _validate_run_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError("run_id must be the run_id output of an AgentCommand")
    return value


# What identifies a finished command's result: a change in any of these is another command.
_COMPARED = ("exited", "exit_code", "stdout", "stderr", "signal")


def _result_outputs(output: AgentExecOutput) -> Props:
    return {
        "exited": output.exited,
        "exit_code": output.exit_code,
        "stdout": output.stdout,
        "stderr": output.stderr,
        "signal": output.signal,
        "truncated": output.truncated,
        # Fields the API documents nowhere: kept, and secret, since we cannot know what they hold.
        "extra_fields": output.extras,
    }


def _state(
    vps_id: str, pid: int, run_id: str | None, timeout: float, fail: bool, output: AgentExecOutput
) -> Props:
    """A result's recorded state: its inputs and what HostUp reported."""
    return {"vps_id": vps_id, "pid": pid, "run_id": run_id, "timeout": timeout,
            "fail_on_nonzero_exit": fail, **_result_outputs(output)}  # fmt: skip


def _same(recorded: Any, fresh: Any) -> bool:
    # Numbers come back from the engine as floats: 0.0 is the recorded 0.
    return bool(recorded == fresh) or (recorded in (None, "") and fresh in (None, ""))


class _AgentExecResult(ResourceRules):
    """Waits for a command's output; a finished result is history."""

    token = "hostup:index:AgentExecResult"  # noqa: S105 - a schema token
    inputs = (
        Input("vps_id", validate_vps_id, required=True, replaces=True),
        Input("pid", validate_pid, required=True, replaces=True),
        Input("run_id", _validate_run_id, replaces=True),
        Input("timeout", _validate_timeout, default=DEFAULT_RESULT_TIMEOUT),
        Input("fail_on_nonzero_exit", _validate_flag, default=False),
    )
    secret_outputs = frozenset({"stdout", "stderr", "extra_fields"})

    def diff(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> Diff:
        """A new vps_id, pid or run_id replaces (another command); option changes update in
        place. A result recorded without a run_id (imported) adopts one without replacing."""
        diff = super().diff(olds, news)
        if olds.get("run_id") is None and news.get("run_id") is not UNKNOWN:
            replaces = tuple(name for name in diff.replaces if name != "run_id")
            adopted = ("run_id",) if "run_id" in diff.replaces else ()
            return Diff(replaces, diff.updates + adopted)
        return diff

    @staticmethod
    def _enforce_exit(vps_id: str, pid: int, output: AgentExecOutput, fail: bool) -> None:
        # A missing exit code with a signal is a killed command: a failure too.
        killed = output.exit_code is None and output.signal not in (None, "", 0)
        if fail and (output.exit_code not in (0, None) or killed):
            raise CommandFailedError(
                vps_id=vps_id, pid=pid, exit_code=output.exit_code, output=output
            )

    async def create(self, client: AsyncHostupClient, inputs: Props, report: Report) -> Created:
        """Wait until the command exits (within ``timeout``), saying how long it has waited."""
        vps_id = validate_vps_id(inputs["vps_id"])
        pid = validate_pid(inputs["pid"])
        timeout = _validate_timeout(inputs.get("timeout") or DEFAULT_RESULT_TIMEOUT)
        fail = bool(inputs.get("fail_on_nonzero_exit"))
        wait = client.wait_for_agent_exec(vps_id, pid, timeout=timeout)
        output = await _with_progress(
            wait,
            lambda s: f"waiting for pid {pid} on {vps_id}: {s:.0f} s of {timeout:g} s",
            report,
        )
        self._enforce_exit(vps_id, pid, output, fail)
        outputs = _state(vps_id, pid, inputs.get("run_id"), timeout, fail, output)
        return Created(f"{vps_id}/{pid}", outputs)

    async def read(self, client: AsyncHostupClient, resource_id: str, state: Props) -> Refreshed:
        """Re-read by pid. A finished command keeps its recorded output: when HostUp now says
        something else for the pid (reused by another command), the record stays and a
        warning says so. A pid HostUp no longer knows keeps the record too. An import (empty
        state) adopts the output HostUp has for the id's pid."""
        if state.get("vps_id") is None:
            vps_id, pid = parse_id(resource_id)
            try:
                output = await client.get_agent_exec_output(vps_id, pid)
            except NotFoundError:
                return Refreshed(None, {}, {})
            outputs = _state(vps_id, pid, None, DEFAULT_RESULT_TIMEOUT, False, output)
            return Refreshed(resource_id, outputs, {"vps_id": vps_id, "pid": pid})
        vps_id, pid = validate_vps_id(state["vps_id"]), validate_pid(state["pid"])
        inputs = {k.name: state.get(k.name) for k in self.inputs if state.get(k.name) is not None}
        try:
            output = await client.get_agent_exec_output(vps_id, pid)
        except NotFoundError:
            return Refreshed(resource_id, dict(state), inputs)
        fresh = _result_outputs(output)
        if not state.get("exited"):
            return Refreshed(resource_id, {**state, **fresh}, inputs)
        if all(_same(state.get(name), fresh[name]) for name in _COMPARED):
            return Refreshed(resource_id, dict(state), inputs)
        warning = (
            f"HostUp now reports other output for pid {pid} on {vps_id} than the finished "
            "command recorded in the state (the pid may have been reused by another command); "
            "keeping the recorded result"
        )
        return Refreshed(resource_id, dict(state), inputs, (warning,))

    async def update(self, client: AsyncHostupClient, olds: Props, news: Props) -> Props:
        """Option changes (and an adopted run_id) only: no API call; the result is kept, and
        ``fail_on_nonzero_exit`` is applied to the recorded exit."""
        vps_id, pid = validate_vps_id(olds["vps_id"]), validate_pid(olds["pid"])
        recorded = AgentExecOutput.model_validate(
            {"exited": olds.get("exited"), "exitCode": olds.get("exit_code"),
             "signal": olds.get("signal")}
        )  # fmt: skip
        fail = bool(news.get("fail_on_nonzero_exit"))
        self._enforce_exit(vps_id, pid, recorded, fail)
        timeout = news.get("timeout") or DEFAULT_RESULT_TIMEOUT
        return {**olds, "timeout": timeout, "fail_on_nonzero_exit": fail,
                "run_id": news.get("run_id", olds.get("run_id"))}  # fmt: skip


async def _with_progress(work: Any, describe: Callable[[float], str], report: Report) -> Any:
    """Await ``work``, reporting ``describe(elapsed seconds)`` every PROGRESS_EVERY seconds."""
    if report is SILENT:
        return await work
    every = PROGRESS_EVERY
    task = asyncio.ensure_future(work)
    began = time.monotonic()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            report.status(describe(time.monotonic() - began))
    finally:
        task.cancel()


AGENT_EXEC_RESULT = _AgentExecResult()
