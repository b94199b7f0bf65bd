"""AgentCommand and AgentExecResult as Pulumi dynamic resources: the zero-install default.

The dynamic providers here are thin adapters: every rule (checks, diff and replace rules,
create, refresh, update, delete) is :mod:`hostup_pulumi.lifecycle`'s, which the native plugin
calls too. A dynamic provider is pickled (with dill) into the stack's state and unpickled in
a separate provider process, so the providers hold no client, no credentials and no state
when pickled: they build their client lazily in the provider process from the stack config
that ``configure()`` receives (or the environment).
"""

from __future__ import annotations

import asyncio
import functools
import pickle
import sys
import threading
import typing
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar, cast

import pulumi
import pulumi.dynamic as dyn
import pulumi_hostup
from pulumi.output import Unknown
from pulumi.runtime import rpc

from . import lifecycle
from .client import AsyncHostupClient
from .errors import HostupError, ValidationError
from .lifecycle import DEFAULT_RESULT_TIMEOUT, UNKNOWN
from .settings import CONFIG_KEYS, Settings

__all__ = ["DEFAULT_RESULT_TIMEOUT", "AgentCommand", "AgentExecResult"]

#: AgentExecResult's outputs that are secrets: the lifecycle's (Python attribute names).
SECRET_OUTPUTS = sorted(lifecycle.AGENT_EXEC_RESULT.secret_outputs)

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _from_engine(value: Any) -> Any:
    # During preview, inputs that depend on other resources arrive as an Unknown object
    # (or, on some paths, as the engine's sentinel string).
    if isinstance(value, Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN):
        return UNKNOWN
    if isinstance(value, list):
        return [_from_engine(item) for item in value]
    return value


def _props(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _from_engine(value) for key, value in values.items()}


class _Loop:
    """The provider process's event loop, on a thread of its own: the lifecycle is async,
    the dynamic provider server calls from worker threads. One loop, one client per
    settings, so that concurrent steps share connections and the rate-limit budget."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: dict[Settings, AsyncHostupClient] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, daemon=True).start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def client(self, settings: Settings) -> AsyncHostupClient:
        # Called on the loop only, so the client's locks belong to it.
        client = self._clients.get(settings)
        if client is None:
            client = self._clients[settings] = AsyncHostupClient(settings=settings)
        return client


# Module state of the provider process only: providers are pickled by class reference.
_LOOP = _Loop()


class _OneLineTracebacks:
    """The ``traceback`` module as the dynamic provider server sees it: that server reports a
    provider's exception as ``traceback.format_exc()``, frames and all; ours carry complete
    messages, so they are reported as one line, their class and message (as the CLI does).
    Every other exception (a user's own dynamic provider in the same process) keeps its
    traceback."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def format_exc(self, *args: Any, **kwargs: Any) -> str:
        exc = sys.exc_info()[1]
        if isinstance(exc, HostupError):
            return f"{type(exc).__name__}: {exc}"
        return str(self._real.format_exc(*args, **kwargs))


def _one_line_errors() -> None:
    # The server runs as `python -m pulumi.dynamic`: its module is __main__ (no-op elsewhere).
    server = sys.modules.get("__main__")
    spec = getattr(server, "__spec__", None)
    if spec is not None and spec.name == "pulumi.dynamic.__main__":
        current = getattr(server, "traceback", None)
        if current is not None and not isinstance(current, _OneLineTracebacks):
            server.traceback = _OneLineTracebacks(current)  # type: ignore[union-attr]


def _short_traceback(method: F) -> F:
    """Our errors carry complete messages: the engine shows them as one line, without the
    client's frames or the dynamic provider server's (see :class:`_OneLineTracebacks`)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except HostupError as exc:
            _one_line_errors()
            raise exc.with_traceback(None) from None

    return cast(F, wrapper)


def _to_stderr(message: str) -> None:
    # The dynamic provider process has no engine log connection: the engine shows its stderr.
    print(f"hostup: {message}", file=sys.stderr, flush=True)


class _StderrReport(lifecycle.Report):
    """A lifecycle step's report on the provider process's stderr."""

    def status(self, message: str) -> None:
        _to_stderr(message)

    def started(self, vps_id: str, pid: int) -> None:
        _to_stderr(f"started pid {pid} on {vps_id}")


class _Provider(dyn.ResourceProvider):
    """The dynamic host of one lifecycle resource."""

    # Nothing secret is captured, so the blob need not be a secret (which keeps it inspectable).
    serialize_as_secret_always = False
    rules: lifecycle.ResourceRules

    def __init__(self) -> None:
        super().__init__()
        self._config: dict[str, str] = {}

    # Pickle nothing: config and client exist only inside the provider process.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._config = {}

    def configure(self, req: dyn.ConfigureRequest) -> None:
        """Keep the ``hostup:*`` stack config; the client is built on first use, so a missing
        key fails the operation that needs it with a clear message, not the whole plugin."""
        values = {key: req.config.get(key) for key in CONFIG_KEYS}
        self._config = {key: str(value) for key, value in values.items() if value is not None}

    def _run(self, step: Callable[[AsyncHostupClient], Coroutine[Any, Any, T]]) -> T:
        settings = Settings.resolve(config=self._config)

        async def run() -> T:
            return await step(_LOOP.client(settings))

        return _LOOP.run(run())

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        """Validate known inputs locally (unknown ones pass through) and fill defaults."""
        checked, failures = self.rules.check(_props(news))
        inputs = dict(news)
        inputs.update({k: v for k, v in checked.items() if news.get(k) is None})
        return dyn.CheckResult(inputs, [dyn.CheckFailure(f.property, f.reason) for f in failures])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        """The lifecycle's replace rules."""
        diff = self.rules.diff(olds, _props(news))
        return dyn.DiffResult(
            changes=diff.changes, replaces=list(diff.replaces), delete_before_replace=False
        )

    @_short_traceback
    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        """The lifecycle's create; a long wait reports on stderr."""
        created = self._run(lambda c: self.rules.create(c, dict(props), _StderrReport()))
        return dyn.CreateResult(created.id, created.outputs)

    @_short_traceback
    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        """The lifecycle's refresh; its warnings go to stderr."""
        read = self._run(lambda c: self.rules.read(c, id_, dict(props)))
        for warning in read.warnings:
            _to_stderr(f"warning: {warning}")
        return dyn.ReadResult(read.id, read.outputs)

    @_short_traceback
    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        """The lifecycle's in-place update."""
        return dyn.UpdateResult(self._run(lambda c: self.rules.update(c, olds, news)))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Forget the resource: nothing on HostUp needs deleting."""


class _AgentCommandProvider(_Provider):
    rules = lifecycle.AGENT_COMMAND


class _AgentExecResultProvider(_Provider):
    rules = lifecycle.AGENT_EXEC_RESULT


# pulumi 3.260.0's serialize_provider wraps pickle's _batch_setitems once more on every call
# and never unwraps it: past about 985 dynamic resources in one program the nesting raises
# RecursionError. Each of our resources puts back the method as it was when this module was
# imported, so the wrapping stays one deep however many resources a program declares.
_BATCH_SETITEMS = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]


def _unwrap_pickler() -> None:
    pickle._Pickler._batch_setitems = _BATCH_SETITEMS  # type: ignore[attr-defined]


def _refuse_explicit_provider(opts: pulumi.ResourceOptions | None, name: str) -> None:
    # A dynamic resource cannot run in a hostup provider: say which class can.
    provider = opts.provider if opts is not None else None
    if provider is not None and getattr(provider, "package", None) == "hostup":
        raise ValidationError(
            f"{name} is a dynamic resource and cannot use an explicit hostup Provider; use "
            f"hostup_pulumi.native.{name} (the same arguments), served by the hostup plugin"
        )


def _outputs_of(generated: type) -> dict[str, Any]:
    """The output annotations of a class of the generated SDK (one per schema property): a
    dynamic class registers the same outputs, typed the same, without a list of its own.
    Real annotations, not strings: the SDK reads them at every registration."""
    return {
        name: typing.get_type_hints(attr.fget)["return"]
        for name, attr in vars(generated).items()
        if isinstance(attr, property) and attr.fget is not None
    }


def _registration(outputs: Mapping[str, Any], **inputs: Any) -> dict[str, Any]:
    """A resource's registration properties: its inputs, and every output still unset."""
    return {**dict.fromkeys(inputs), **dict.fromkeys(outputs), **inputs}


class AgentCommand(dyn.Resource, module="hostup", name="AgentCommand"):
    """Start a command in a VPS through the QEMU guest agent.

    Creating it probes availability first (failing with AgentUnavailableError when it is
    false), then starts the command once. A change of ``vps_id``, ``command`` or
    ``triggers`` replaces it, which runs the command again. Destroying it only forgets it:
    a started command cannot be undone. Refresh keeps it as recorded.

    Outputs: ``vps_id``, ``command``, ``triggers``, ``pid``, ``poll_url``, ``run_id`` (a new
    value for every start: pass it to :class:`AgentExecResult` so that a re-run which gets
    the same pid still replaces the result).
    """

    # Pulumi types a resource's outputs by the class's own annotations: the schema's.
    __annotations__ = _outputs_of(pulumi_hostup.AgentCommand)

    def __init__(
        self,
        resource_name: str,
        vps_id: pulumi.Input[str],
        command: pulumi.Input[str],
        triggers: pulumi.Input[Sequence[Any]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        _refuse_explicit_provider(opts, "AgentCommand")
        _unwrap_pickler()
        inputs = _registration(
            self.__annotations__, vps_id=vps_id, command=command, triggers=triggers
        )
        super().__init__(_AgentCommandProvider(), resource_name, inputs, opts)


class AgentExecResult(dyn.Resource, module="hostup", name="AgentExecResult"):
    """The output of a command, read by pid once it has exited.

    Creating it polls until the command exits, within ``timeout`` seconds (default 300;
    CommandTimeoutError carries the last output otherwise). ``stdout``, ``stderr`` and
    ``extra_fields`` are Pulumi secrets unless ``secret_output=False`` (or use
    ``pulumi.Output.unsecret``). With ``fail_on_nonzero_exit=True`` a non-zero exit fails
    with CommandFailedError naming the exit code (never the output). Refresh re-reads by pid
    while the command runs; a finished result is kept as recorded (a warning says so when
    HostUp now reports something else for the pid). A new ``vps_id``, ``pid`` or ``run_id``
    replaces it; ``timeout`` and ``fail_on_nonzero_exit`` changes update it in place.

    Outputs: ``exited``, ``exit_code``, ``stdout``, ``stderr``, ``signal``, ``truncated``,
    ``extra_fields`` (fields the API sent that are not documented).
    """

    # Pulumi types a resource's outputs by the class's own annotations: the schema's.
    __annotations__ = _outputs_of(pulumi_hostup.AgentExecResult)

    def __init__(
        self,
        resource_name: str,
        vps_id: pulumi.Input[str],
        pid: pulumi.Input[int],
        timeout: pulumi.Input[float] | None = None,
        fail_on_nonzero_exit: pulumi.Input[bool] = False,
        opts: pulumi.ResourceOptions | None = None,
        *,
        run_id: pulumi.Input[str] | None = None,
        secret_output: bool = True,
    ) -> None:
        _refuse_explicit_provider(opts, "AgentExecResult")
        _unwrap_pickler()
        inputs = _registration(self.__annotations__, vps_id=vps_id, pid=pid, run_id=run_id,
                       timeout=DEFAULT_RESULT_TIMEOUT if timeout is None else timeout,
                       fail_on_nonzero_exit=fail_on_nonzero_exit)  # fmt: skip
        if secret_output:
            opts = pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS)
            )
        super().__init__(_AgentExecResultProvider(), resource_name, inputs, opts)
