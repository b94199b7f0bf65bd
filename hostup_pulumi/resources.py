"""AgentCommand and AgentExecResult, and the dynamic providers behind them.

A dynamic provider is pickled (with dill) into the stack's state and unpickled in a separate
provider process. The providers here therefore hold no client, no credentials and no module
state when pickled: they are importable classes with no fields, and they build their client
lazily in the provider process from the stack config that ``configure()`` receives (or the
environment).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar, cast

import pulumi
import pulumi.dynamic as dyn
from pulumi.output import Unknown
from pulumi.runtime import rpc

from ._validation import validate_command, validate_pid, validate_seconds, validate_vps_id
from .client import HostupClient
from .errors import CommandFailedError, HostupError, NotFoundError, ValidationError
from .models import AgentExecOutput
from .settings import CONFIG_KEYS, Settings

__all__ = ["DEFAULT_RESULT_TIMEOUT", "AgentCommand", "AgentExecResult"]

#: Seconds AgentExecResult waits for a command to exit, unless told otherwise.
DEFAULT_RESULT_TIMEOUT = 300.0
_MAX_RESULT_TIMEOUT = 24 * 3600.0
SECRET_OUTPUTS = ["stdout", "stderr", "extra_fields"]


def _is_unknown(value: Any) -> bool:
    # During preview, inputs that depend on other resources arrive as an Unknown object
    # (or, on some paths, as the engine's sentinel string).
    return isinstance(value, Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN)


F = TypeVar("F", bound=Callable[..., Any])


def _short_traceback(method: F) -> F:
    """Our errors carry complete messages: drop the frames of the client's internals, so
    that the engine, which prints a provider error's whole traceback, shows the message
    rather than a page of stack."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except HostupError as exc:
            raise exc.with_traceback(None) from None

    return cast(F, wrapper)


class _Provider(dyn.ResourceProvider):
    """Shared plumbing: configuration, a lazy client, and check-time validation."""

    # Nothing secret is captured, so the blob need not be a secret (which keeps it inspectable).
    serialize_as_secret_always = False
    _validators: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    _required: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self._config: dict[str, str] = {}
        self._client: HostupClient | None = None

    # Pickle nothing: config and client exist only inside the provider process.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._config = {}
        self._client = None

    def configure(self, req: dyn.ConfigureRequest) -> None:
        """Keep the ``hostup:*`` stack config; the client is built on first use, so a missing
        key fails the operation that needs it with a clear message, not the whole plugin."""
        values = {key: req.config.get(key) for key in CONFIG_KEYS}
        self._config = {key: str(value) for key, value in values.items() if value is not None}

    def client(self) -> HostupClient:
        """The provider process's client (built once, on first use)."""
        if self._client is None:
            self._client = HostupClient(settings=Settings.resolve(config=self._config))
        return self._client

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        """Validate known inputs locally; unknown ones (preview) pass through."""
        failures = []
        for prop, validate in self._validators.items():
            value = news.get(prop)
            if value is None and prop in self._required:
                failures.append(dyn.CheckFailure(prop, f"{prop} is required"))
            if value is None or _is_unknown(value):
                continue
            try:
                validate(value)
            except HostupError as exc:
                failures.append(dyn.CheckFailure(prop, str(exc)))
        return dyn.CheckResult(news, failures)

    @staticmethod
    def _changed(
        olds: Mapping[str, Any], news: Mapping[str, Any], keys: Sequence[str]
    ) -> list[str]:
        return [key for key in keys if _is_unknown(news.get(key)) or olds.get(key) != news.get(key)]


def _validate_triggers(value: Any) -> None:
    if not isinstance(value, list | tuple):
        raise ValidationError("triggers must be a list of values whose change re-runs the command")


class _AgentCommandProvider(_Provider):
    """Starts a command on create. Inputs: vps_id, command, triggers."""

    _validators: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "vps_id": validate_vps_id,
        "command": validate_command,
        "triggers": _validate_triggers,
    }
    _required = ("vps_id", "command")
    _replace_on = ("vps_id", "command", "triggers")

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        """Any input change replaces: a started command cannot be changed, only run again."""
        replaces = self._changed(olds, news, self._replace_on)
        return dyn.DiffResult(
            changes=bool(replaces), replaces=replaces, delete_before_replace=False
        )

    @_short_traceback
    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        """Probe availability (as the API asks), then start the command."""
        vps_id = validate_vps_id(props["vps_id"])
        command = validate_command(props["command"])
        client = self.client()
        client.require_agent_available(vps_id)
        started = client.start_agent_exec(vps_id, command)
        outs = {
            "vps_id": vps_id,
            "command": command,
            "triggers": props.get("triggers"),
            "pid": started.pid,
            "poll_url": started.poll_url,
        }
        return dyn.CreateResult(f"{vps_id}/{started.pid}", outs)

    @_short_traceback
    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        """Refresh keeps the record: a started command has no live state to drift."""
        return dyn.ReadResult(id_, props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Forget the command: a command that ran cannot be undone."""


def _validate_timeout(value: Any) -> float:
    return validate_seconds(value, "timeout", maximum=_MAX_RESULT_TIMEOUT)


def _validate_flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"fail_on_nonzero_exit must be true or false, got {value!r}")
    return value


def _result_outputs(output: AgentExecOutput) -> dict[str, Any]:
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


class _AgentExecResultProvider(_Provider):
    """Waits for a command's output on create. Inputs: vps_id, pid, timeout,
    fail_on_nonzero_exit."""

    _validators: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "vps_id": validate_vps_id,
        "pid": validate_pid,
        "timeout": _validate_timeout,
        "fail_on_nonzero_exit": _validate_flag,
    }
    _required = ("vps_id", "pid")
    _replace_on = ("vps_id", "pid")
    _options = ("timeout", "fail_on_nonzero_exit")

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        """A new vps_id or pid replaces (another command); option changes update in place."""
        replaces = self._changed(olds, news, self._replace_on)
        changes = replaces + self._changed(olds, news, self._options)
        return dyn.DiffResult(changes=bool(changes), replaces=replaces, delete_before_replace=False)

    @staticmethod
    def _enforce_exit(vps_id: str, pid: int, output: AgentExecOutput, fail: bool) -> None:
        # A missing exit code with a signal is a killed command: a failure too.
        killed = output.exit_code is None and output.signal not in (None, "", 0)
        if fail and (output.exit_code not in (0, None) or killed):
            raise CommandFailedError(
                vps_id=vps_id, pid=pid, exit_code=output.exit_code, output=output
            )

    @_short_traceback
    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        """Wait until the command exits (within ``timeout``) and record its output."""
        vps_id = validate_vps_id(props["vps_id"])
        pid = validate_pid(props["pid"])
        timeout = _validate_timeout(props.get("timeout") or DEFAULT_RESULT_TIMEOUT)
        fail = bool(props.get("fail_on_nonzero_exit"))
        output = self.client().wait_for_agent_exec(vps_id, pid, timeout=timeout)
        self._enforce_exit(vps_id, pid, output, fail)
        outs = {**props, "vps_id": vps_id, "pid": pid, **_result_outputs(output)}
        return dyn.CreateResult(f"{vps_id}/{pid}", outs)

    @_short_traceback
    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        """Re-read by pid. A pid the API no longer knows (expired) keeps the recorded result:
        a finished command's output is history, not drift."""
        vps_id, pid = validate_vps_id(props["vps_id"]), validate_pid(props["pid"])
        try:
            output = self.client().get_agent_exec_output(vps_id, pid)
        except NotFoundError:
            return dyn.ReadResult(id_, props)
        if not output.exited and props.get("exited"):
            return dyn.ReadResult(id_, props)
        return dyn.ReadResult(id_, {**props, **_result_outputs(output)})

    @_short_traceback
    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        """Option changes only: no API call; the recorded result is kept."""
        outs = {**olds, **{key: news.get(key) for key in self._options}}
        recorded = AgentExecOutput.model_validate(
            {"exited": olds.get("exited"), "exitCode": olds.get("exit_code")}
        )
        self._enforce_exit(
            olds["vps_id"],
            validate_pid(olds["pid"]),
            recorded,
            bool(news.get("fail_on_nonzero_exit")),
        )
        return dyn.UpdateResult(outs)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Forget the recorded output (nothing to delete on HostUp)."""


class AgentCommand(dyn.Resource, module="hostup", name="AgentCommand"):
    """Start a command in a VPS through the QEMU guest agent.

    Creating it probes availability first (failing with AgentUnavailableError when it is
    false), then starts the command once. A change of ``vps_id``, ``command`` or
    ``triggers`` replaces it, which runs the command again. Destroying it only forgets it:
    a started command cannot be undone. Refresh keeps it as recorded.

    Outputs: ``vps_id``, ``command``, ``triggers``, ``pid``, ``poll_url``. Read the output
    with :class:`AgentExecResult`.
    """

    vps_id: pulumi.Output[str]
    command: pulumi.Output[str]
    triggers: pulumi.Output[list[Any] | None]
    pid: pulumi.Output[int]
    poll_url: pulumi.Output[str | None]

    def __init__(
        self,
        resource_name: str,
        vps_id: pulumi.Input[str],
        command: pulumi.Input[str],
        triggers: pulumi.Input[Sequence[Any]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "vps_id": vps_id,
            "command": command,
            "triggers": triggers,
            "pid": None,
            "poll_url": None,
        }
        super().__init__(_AgentCommandProvider(), resource_name, props, opts)


class AgentExecResult(dyn.Resource, module="hostup", name="AgentExecResult"):
    """The output of a command, read by pid once it has exited.

    Creating it polls until the command exits, within ``timeout`` seconds (default 300;
    CommandTimeoutError carries the last output otherwise). ``stdout``, ``stderr`` and
    ``extra_fields`` are Pulumi secrets unless ``secret_output=False`` (or use
    ``pulumi.Output.unsecret``). With ``fail_on_nonzero_exit=True`` a non-zero exit fails
    with CommandFailedError naming the exit code (never the output). Refresh re-reads by pid
    and keeps the recorded result once the pid has expired. A new ``vps_id`` or ``pid``
    replaces it; ``timeout`` and ``fail_on_nonzero_exit`` changes update it in place.

    Outputs: ``exited``, ``exit_code``, ``stdout``, ``stderr``, ``signal``, ``truncated``,
    ``extra_fields`` (fields the API sent that are not documented).
    """

    vps_id: pulumi.Output[str]
    pid: pulumi.Output[int]
    timeout: pulumi.Output[float]
    fail_on_nonzero_exit: pulumi.Output[bool]
    exited: pulumi.Output[bool]
    exit_code: pulumi.Output[int | None]
    stdout: pulumi.Output[str]
    stderr: pulumi.Output[str]
    signal: pulumi.Output[Any]
    truncated: pulumi.Output[bool | None]
    extra_fields: pulumi.Output[dict[str, Any]]

    def __init__(
        self,
        resource_name: str,
        vps_id: pulumi.Input[str],
        pid: pulumi.Input[int],
        timeout: pulumi.Input[float] | None = None,
        fail_on_nonzero_exit: pulumi.Input[bool] = False,
        opts: pulumi.ResourceOptions | None = None,
        *,
        secret_output: bool = True,
    ) -> None:
        props = {
            "vps_id": vps_id,
            "pid": pid,
            "timeout": DEFAULT_RESULT_TIMEOUT if timeout is None else timeout,
            "fail_on_nonzero_exit": fail_on_nonzero_exit,
            "exited": None,
            "exit_code": None,
            "stdout": None,
            "stderr": None,
            "signal": None,
            "truncated": None,
            "extra_fields": None,
        }
        if secret_output:
            opts = pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS)
            )
        super().__init__(_AgentExecResultProvider(), resource_name, props, opts)
