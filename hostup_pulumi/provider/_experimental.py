"""The one module that touches ``pulumi.provider.experimental`` (pinned with pulumi==3.260.0).

That API is marked experimental, so everything that depends on its shape is here: the
``Provider`` subclass that translates the engine's requests (PropertyValues, camelCase
names) into :class:`~hostup_pulumi.provider.host.PluginHost` calls (plain values, snake_case
names), a servicer subclass that reports our errors as one line (the stock servicer appends
Python stack frames to every error), and the gRPC server start-up. Sharp edges this works
around (design.md §6): numbers are floats; unknowns arrive as the engine's sentinel string;
``Computed()`` cannot be sent back, so check passes inputs through and preview is off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from pulumi.provider.experimental import provider as exp
from pulumi.provider.experimental.property_value import Computed, PropertyValue
from pulumi.provider.experimental.server import ProviderServicer
from pulumi.runtime import rpc
from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc, provider_pb2_grpc

from .._names import to_camel, to_snake
from .._version import __version__
from ..lifecycle import UNKNOWN, Diff, Failure
from .host import Aborted, EngineLog, PluginHost

__all__ = ["SCHEMA_PATH", "HostupProvider", "serve"]

#: schema.json, the package's one description (a link to the repository's top-level file).
SCHEMA_PATH = Path(__file__).with_name("schema.json")


# -- values -------------------------------------------------------------------------------


def to_python(value: PropertyValue) -> Any:
    """A PropertyValue as a plain value (secrecy dropped; unknowns as UNKNOWN)."""
    inner = value.value
    if isinstance(inner, str) and inner == rpc.UNKNOWN:
        return UNKNOWN
    if isinstance(inner, Computed):
        return UNKNOWN
    if isinstance(inner, list | tuple):
        return [to_python(item) for item in inner]
    if isinstance(inner, Mapping):
        return {key: to_python(item) for key, item in inner.items()}
    return inner


def to_value(value: Any, secret: bool = False) -> PropertyValue:
    """A plain value as a PropertyValue (every number a float, as the engine wants)."""
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        inner: Any = value
    elif isinstance(value, int):
        inner = float(value)
    elif isinstance(value, list | tuple):
        inner = [to_value(item) for item in value]
    elif isinstance(value, Mapping):
        inner = {str(key): to_value(item) for key, item in value.items()}
    else:
        inner = str(value)
    return PropertyValue(inner, is_secret=secret) if inner is not None else _null(secret)


def _null(secret: bool) -> PropertyValue:
    return PropertyValue.null().with_secret(secret) if secret else PropertyValue.null()


def _snake(values: Mapping[str, PropertyValue]) -> dict[str, Any]:
    return {to_snake(key): to_python(value) for key, value in values.items()}


def _secret_names(values: Mapping[str, PropertyValue]) -> set[str]:
    return {to_snake(key) for key, value in values.items() if value.contains_secret()}


def _camel(
    values: Mapping[str, Any], secret: set[str] | frozenset[str]
) -> dict[str, PropertyValue]:
    return {to_camel(key): to_value(value, key in secret) for key, value in values.items()}


def _failures(failures: list[Failure]) -> list[exp.CheckFailure]:
    return [exp.CheckFailure(to_camel(f.property), f.reason) for f in failures]


def _diff_response(diff: Diff) -> exp.DiffResponse:
    # Said explicitly, no change included: otherwise the engine diffs by itself.
    kinds = {name: exp.PropertyDiffKind.UPDATE_REPLACE for name in diff.replaces}
    kinds.update({name: exp.PropertyDiffKind.UPDATE for name in diff.updates})
    return exp.DiffResponse(
        changes=diff.changes,
        replaces=[to_camel(name) for name in diff.replaces],
        diffs=[to_camel(name) for name in diff.diffs],
        detailed_diff={to_camel(k): exp.PropertyDiff(v, input_diff=True) for k, v in kinds.items()},
        delete_before_replace=False,
    )


# -- the provider -------------------------------------------------------------------------


class HostupProvider(exp.Provider):
    """The ``hostup`` provider: each request translated for :class:`PluginHost`."""

    def __init__(self, host: PluginHost | None = None) -> None:
        self.host = host or PluginHost()

    async def get_schema(self, request: exp.GetSchemaRequest) -> exp.GetSchemaResponse:
        """schema.json, as it is."""
        return exp.GetSchemaResponse(schema=SCHEMA_PATH.read_text(encoding="utf-8"))

    async def check_config(self, request: exp.CheckRequest) -> exp.CheckResponse:
        """Refuse a bad provider input by name; pass the inputs through."""
        self.host.note_provider(request.urn)
        failures = self.host.check_config(_plain(request.new_inputs))
        return exp.CheckResponse(inputs=request.new_inputs, failures=_failures(failures))

    async def configure(self, request: exp.ConfigureRequest) -> exp.ConfigureResponse:
        """The provider's inputs, else the stack's ``hostup:*`` config variables."""
        values: dict[str, Any] = {
            key.split(":", 1)[1]: text
            for key, text in request.variables.items()
            if key.startswith("hostup:")
        }
        values.update({k: v for k, v in _plain(request.args).items() if v not in (None, "")})
        self.host.configure(values)
        # No preview: create/update never run with unknowns, which cannot be sent back.
        return exp.ConfigureResponse(accept_secrets=True, supports_preview=False)

    async def check(self, request: exp.CheckRequest) -> exp.CheckResponse:
        """Local checks; inputs pass through as sent (unknowns included), defaults added."""
        checked, failures = self.host.check(request.type, _snake(request.new_inputs))
        inputs = dict(request.new_inputs)
        for name, value in checked.items():
            if to_camel(name) not in inputs and value is not None:
                inputs[to_camel(name)] = to_value(value)
        return exp.CheckResponse(inputs=inputs, failures=_failures(failures))

    async def diff(self, request: exp.DiffRequest) -> exp.DiffResponse:
        """The lifecycle's replace rules."""
        diff = self.host.diff(request.type, _snake(request.old_state), _snake(request.new_inputs))
        return _diff_response(diff)

    async def create(self, request: exp.CreateRequest) -> exp.CreateResponse:
        """Create; outputs are secret where the schema says so or the input was secret."""
        secret = _secret_names(request.properties) | self.host.rules(request.type).secret_outputs
        created = await self.host.create(request.type, request.urn, _snake(request.properties))
        return exp.CreateResponse(created.id, _camel(created.outputs, secret))

    async def read(self, request: exp.ReadRequest) -> exp.ReadResponse:
        """Refresh, or import by id (empty state)."""
        rules = self.host.rules(request.type)
        secret = _secret_names(request.properties) | rules.secret_outputs
        read = await self.host.read(
            request.type, request.urn, request.resource_id, _snake(request.properties)
        )
        return exp.ReadResponse(
            read.id,
            _camel(read.outputs, secret),
            _camel(read.inputs, _secret_names(request.inputs)),
        )

    async def update(self, request: exp.UpdateRequest) -> exp.UpdateResponse:
        """Update in place."""
        secret = _secret_names(request.olds) | _secret_names(request.news)
        secret |= self.host.rules(request.type).secret_outputs
        outputs = await self.host.update(
            request.type, request.urn, _snake(request.olds), _snake(request.news)
        )
        return exp.UpdateResponse(_camel(outputs, secret))

    async def delete(self, request: exp.DeleteRequest) -> None:
        """Forget the resource."""
        await self.host.delete(request.type, request.resource_id, _snake(request.properties))

    async def invoke(self, request: exp.InvokeRequest) -> exp.InvokeResponse:
        """A function; its failures are returned, not raised (no stack frames)."""
        result, failures = await self.host.invoke(request.tok, _snake(request.args))
        if failures:
            return exp.InvokeResponse(failures=_failures(failures))
        return exp.InvokeResponse(return_value=_camel(result or {}, frozenset()))

    async def cancel(self) -> None:
        """First Ctrl-C (and every shutdown): stop the waits in flight."""
        await self.host.cancel()


def _plain(values: Mapping[str, PropertyValue]) -> dict[str, Any]:
    return {key: to_python(value) for key, value in values.items()}


# -- the server ---------------------------------------------------------------------------


class _Servicer(ProviderServicer):
    """The stock servicer, but our errors reach the user as their one-line message."""


def _plain_errors(name: str) -> None:
    stock = getattr(ProviderServicer, name)

    async def method(self: _Servicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await stock(self, request, context)
        except Exception as exc:
            # The stock wrapper re-raises a new Exception with frames appended; ours is the
            # exception it was handling.
            cause = exc if isinstance(exc, Aborted) else exc.__context__
            if isinstance(cause, Aborted):
                await context.abort(grpc.StatusCode.UNKNOWN, str(cause))
            raise

    method.__name__ = name
    setattr(_Servicer, name, method)


for _name in ("CheckConfig", "Configure", "Check", "Diff", "Create", "Read", "Update", "Delete"):
    _plain_errors(_name)


class GrpcEngineLog(EngineLog):
    """The engine's log service (the plugin's own ``pulumi.log`` is not connected during
    create and read): status lines and warnings, sent without holding up the work."""

    def __init__(self, engine_address: str) -> None:
        self._address = engine_address
        self._stub: engine_pb2_grpc.EngineStub | None = None
        self._sending: set[asyncio.Future[Any]] = set()

    def _send(self, severity: Any, urn: str, message: str, ephemeral: bool) -> None:
        if self._stub is None:
            channel = grpc.aio.insecure_channel(self._address, options=_GRPC_CHANNEL_OPTIONS)
            self._stub = engine_pb2_grpc.EngineStub(channel)
        request = engine_pb2.LogRequest(
            severity=severity, message=message, urn=urn, ephemeral=ephemeral
        )
        future = asyncio.ensure_future(self._stub.Log(request))
        self._sending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[Any]) -> None:
        self._sending.discard(future)
        if not future.cancelled():
            future.exception()  # a lost status line is not an error of the operation

    def status(self, urn: str, message: str) -> None:
        """A status line next to the resource (replaced by the next)."""
        self._send(engine_pb2.INFO, urn, message, ephemeral=True)

    def info(self, urn: str, message: str) -> None:
        """An informational message of the resource."""
        self._send(engine_pb2.INFO, urn, message, ephemeral=False)

    def warning(self, urn: str, message: str) -> None:
        """A warning of the resource."""
        self._send(engine_pb2.WARNING, urn, message, ephemeral=False)


def serve(argv: list[str]) -> None:
    """Serve the provider over gRPC, as the engine starts plugins: ``ENGINE_ADDRESS [flags]``;
    prints the port, then serves until the engine stops it."""
    parser = argparse.ArgumentParser(prog="pulumi-resource-hostup")
    parser.add_argument("engine", help="the Pulumi engine's address")
    known, _ = parser.parse_known_args(argv)  # -v, --logtostderr, --tracing: not ours

    async def run() -> None:
        provider = HostupProvider(PluginHost(GrpcEngineLog(known.engine)))
        server = grpc.aio.server(options=_GRPC_CHANNEL_OPTIONS)
        servicer = _Servicer(argv, __version__, provider, engine_address=known.engine)
        provider_pb2_grpc.add_ResourceProviderServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        sys.stdout.write(f"{port}\n")
        sys.stdout.flush()
        try:
            await server.wait_for_termination()
        finally:
            await server.stop(None)  # else gRPC complains on stderr as the loop closes

    with contextlib.suppress(KeyboardInterrupt):  # the engine's stop, not an error
        asyncio.run(run())
