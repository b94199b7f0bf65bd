"""The rules of the resources and functions, written once for every host.

Both hosts, the dynamic providers (:mod:`hostup_pulumi.resources`) and the native ``hostup``
plugin (:mod:`hostup_pulumi.provider`), translate the engine's requests into calls of the
rules here and the answers back. What a property means, what is checked, what replaces a
resource, what create, refresh, update and delete do, and what the functions return is
decided here and nowhere else.

Values are plain Python (``str``, ``int``/``float``, ``bool``, ``list``, ``dict``, ``None``)
under snake_case names (``vps_id``, ``exit_code``); a value not known yet (preview) is
:data:`UNKNOWN`. Each host maps its own names and unknowns to these.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ._validation import validate_command, validate_pid, validate_seconds, validate_vps_id
from .client import AsyncHostupClient
from .errors import CommandFailedError, HostupError, NotFoundError, ValidationError
from .models import AgentAvailability, AgentExecOutput

__all__ = [
    "AGENT_COMMAND",
    "AGENT_EXEC_RESULT",
    "DEFAULT_RESULT_TIMEOUT",
    "FUNCTIONS",
    "RESOURCES",
    "SILENT",
    "UNKNOWN",
    "Created",
    "Diff",
    "Failure",
    "Function",
    "Refreshed",
    "Report",
    "ResourceRules",
    "parse_id",
]

#: Seconds AgentExecResult waits for a command to exit, unless told otherwise.
DEFAULT_RESULT_TIMEOUT = 300.0
MAX_RESULT_TIMEOUT = 24 * 3600.0
#: How often a wait in progress says how long it has waited.
PROGRESS_EVERY = 5.0


class _Unknown:
    """A value the engine does not know yet (during preview)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()

Props = dict[str, Any]


class Report:
    """Where a step tells the user how it is going; each host shows it its own way. This
    base class shows nothing."""

    def status(self, message: str) -> None:
        """A passing status line of a long step (replaced by the next)."""

    def started(self, vps_id: str, pid: int) -> None:
        """A command has started: said at once and kept, so that a run interrupted before
        the engine records the resource can still be recovered by its pid."""


SILENT = Report()


@dataclass(frozen=True)
class Failure:
    """An input that was refused, and why (shown next to the property's name)."""

    property: str
    reason: str


@dataclass(frozen=True)
class Diff:
    """What changed between the recorded state and the new inputs."""

    replaces: tuple[str, ...] = ()
    updates: tuple[str, ...] = ()

    @property
    def changes(self) -> bool:
        """Whether anything changed."""
        return bool(self.replaces or self.updates)

    @property
    def diffs(self) -> tuple[str, ...]:
        """Every changed property."""
        return self.replaces + self.updates


@dataclass(frozen=True)
class Created:
    """A created resource: its id and its outputs (inputs included)."""

    id: str
    outputs: Props


@dataclass(frozen=True)
class Refreshed:
    """A read resource. ``id`` is None when it no longer exists; ``warnings`` are for the user."""

    id: str | None
    outputs: Props
    inputs: Props
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Input:
    name: str
    validate: Callable[[Any], Any]
    required: bool = False
    replaces: bool = False
    default: Any = None


def _validate_triggers(value: Any) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ValidationError("triggers must be a list of values whose change re-runs the command")
    return list(value)


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


def parse_id(resource_id: str) -> tuple[str, int]:
    """Split a resource id ``<vpsId>/<pid>``; a ValidationError says what an id looks like."""
    vps_id, _, pid = resource_id.partition("/")
    if not pid.isascii() or not pid.isdigit():
        raise ValidationError(
            f"resource id {resource_id!r} is not <vpsId>/<pid>, "
            "e.g. vps_01hxa3b4c5d6e7f8g9h0j1k2m3/4242"
        )
    return validate_vps_id(vps_id), validate_pid(int(pid))


def _changed(olds: Mapping[str, Any], news: Mapping[str, Any], name: str) -> bool:
    new = news.get(name)
    return new is UNKNOWN or olds.get(name) != new


class ResourceRules:
    """One resource's rules. Subclasses say which inputs there are and what the steps do."""

    #: The schema token, e.g. ``hostup:index:AgentCommand``.
    token: str = ""
    inputs: tuple[_Input, ...] = ()
    #: Outputs that are Pulumi secrets whatever the inputs were.
    secret_outputs: frozenset[str] = frozenset()

    def check(self, news: Mapping[str, Any]) -> tuple[Props, list[Failure]]:
        """Validate the known inputs locally (unknown ones pass) and fill defaults."""
        failures: list[Failure] = []
        checked = dict(news)
        for spec in self.inputs:
            value = news.get(spec.name)
            if value is None:
                if spec.required:
                    failures.append(Failure(spec.name, f"{spec.name} is required"))
                elif spec.default is not None:
                    checked[spec.name] = spec.default
                continue
            if value is UNKNOWN:
                continue
            try:
                spec.validate(value)
            except HostupError as exc:
                failures.append(Failure(spec.name, str(exc)))
        return checked, failures

    def diff(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> Diff:
        """Replacing inputs replace; the others update in place."""
        replaces = [s.name for s in self.inputs if s.replaces and _changed(olds, news, s.name)]
        updates = [s.name for s in self.inputs if not s.replaces and _changed(olds, news, s.name)]
        return Diff(tuple(replaces), tuple(updates))

    async def create(self, client: AsyncHostupClient, inputs: Props, report: Report) -> Created:
        """Create the resource (called with checked, known inputs)."""
        raise NotImplementedError

    async def read(self, client: AsyncHostupClient, resource_id: str, state: Props) -> Refreshed:
        """Refresh from HostUp; an empty ``state`` is an import by id."""
        raise NotImplementedError

    async def update(self, client: AsyncHostupClient, olds: Props, news: Props) -> Props:
        """Apply an in-place change; return the new outputs."""
        raise NotImplementedError

    async def delete(self, client: AsyncHostupClient, resource_id: str, state: Props) -> None:
        """Forget the resource: nothing on HostUp can be undone or needs deleting."""
        return None


class _AgentCommand(ResourceRules):
    """Starts a command once; any input change replaces (runs it again)."""

    token = "hostup:index:AgentCommand"  # noqa: S105 - a schema token
    inputs = (
        _Input("vps_id", validate_vps_id, required=True, replaces=True),
        _Input("command", validate_command, required=True, replaces=True),
        _Input("triggers", _validate_triggers, replaces=True),
    )

    def diff(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> Diff:
        """An imported command (no run_id: what ran is not known) adopts the program's
        ``command`` and ``triggers`` without running again; otherwise any change replaces."""
        if olds.get("run_id") is None and olds.get("command") is None:
            adopted = tuple(n for n in ("command", "triggers") if _changed(olds, news, n))
            replaces = ("vps_id",) if _changed(olds, news, "vps_id") else ()
            return Diff(replaces, () if replaces else adopted)
        return super().diff(olds, news)

    async def create(self, client: AsyncHostupClient, inputs: Props, report: Report) -> Created:
        """Probe availability (the API asks for it), then start the command, once."""
        vps_id = validate_vps_id(inputs["vps_id"])
        command = validate_command(inputs["command"])
        await client.require_agent_available(vps_id)
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


_RESULT_FIELDS = ("exited", "exit_code", "stdout", "stderr", "signal", "truncated", "extra_fields")
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


def _same(recorded: Any, fresh: Any) -> bool:
    # Numbers come back from the engine as floats: 0.0 is the recorded 0.
    return bool(recorded == fresh) or (recorded in (None, "") and fresh in (None, ""))


class _AgentExecResult(ResourceRules):
    """Waits for a command's output; a finished result is history."""

    token = "hostup:index:AgentExecResult"  # noqa: S105 - a schema token
    inputs = (
        _Input("vps_id", validate_vps_id, required=True, replaces=True),
        _Input("pid", validate_pid, required=True, replaces=True),
        _Input("run_id", _validate_run_id, replaces=True),
        _Input("timeout", _validate_timeout, default=DEFAULT_RESULT_TIMEOUT),
        _Input("fail_on_nonzero_exit", _validate_flag, default=False),
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
        outputs = {
            "vps_id": vps_id,
            "pid": pid,
            "run_id": inputs.get("run_id"),
            "timeout": timeout,
            "fail_on_nonzero_exit": fail,
            **_result_outputs(output),
        }
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
            outputs = {"vps_id": vps_id, "pid": pid, "run_id": None,
                       "timeout": DEFAULT_RESULT_TIMEOUT, "fail_on_nonzero_exit": False,
                       **_result_outputs(output)}  # fmt: skip
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


AGENT_COMMAND = _AgentCommand()
AGENT_EXEC_RESULT = _AgentExecResult()
RESOURCES: Mapping[str, ResourceRules] = {r.token: r for r in (AGENT_COMMAND, AGENT_EXEC_RESULT)}


# -- functions --------------------------------------------------------------------------


def _availability(vps_id: str, availability: AgentAvailability) -> Props:
    return {
        "vps_id": vps_id,
        "available": availability.available,
        "reason": availability.reason,
        "vm_running": availability.vm_running,
    }


def _validate_wait(value: Any) -> float:
    return validate_seconds(value, "wait_timeout")


@dataclass(frozen=True)
class Function:
    """A provider function: its arguments' checks and what it returns."""

    token: str
    args: tuple[_Input, ...]
    run: Callable[[AsyncHostupClient, Props], Any] = field(repr=False)

    def check(self, args: Mapping[str, Any]) -> list[Failure]:
        """Refuse bad arguments before any request."""
        failures = []
        for spec in self.args:
            value = args.get(spec.name)
            if value is None:
                if spec.required:
                    failures.append(Failure(spec.name, f"{spec.name} is required"))
                continue
            try:
                spec.validate(value)
            except HostupError as exc:
                failures.append(Failure(spec.name, str(exc)))
        return failures

    async def invoke(self, client: AsyncHostupClient, args: Props) -> Props:
        """Run the function on checked arguments; HostUp's errors propagate."""
        result: Props = await self.run(client, args)
        return result


async def _get_availability(client: AsyncHostupClient, args: Props) -> Props:
    vps_id = validate_vps_id(args["vps_id"])
    return _availability(vps_id, await client.get_agent_availability(vps_id))


async def _require_available(client: AsyncHostupClient, args: Props) -> Props:
    vps_id = validate_vps_id(args["vps_id"])
    wait = args.get("wait_timeout")
    availability = await client.require_agent_available(
        vps_id, wait_timeout=None if wait is None else _validate_wait(wait)
    )
    return _availability(vps_id, availability)


_VPS_ARG = _Input("vps_id", validate_vps_id, required=True)
GET_VPS_AGENT_AVAILABILITY = Function(
    "hostup:index:getVpsAgentAvailability", (_VPS_ARG,), _get_availability
)
REQUIRE_AGENT_AVAILABLE = Function(
    "hostup:index:requireAgentAvailable",
    (_VPS_ARG, _Input("wait_timeout", _validate_wait)),
    _require_available,
)
FUNCTIONS: Mapping[str, Function] = {
    f.token: f for f in (GET_VPS_AGENT_AVAILABILITY, REQUIRE_AGENT_AVAILABLE)
}
