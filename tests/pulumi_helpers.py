"""Helpers for tests of the Pulumi surface: mocks that behave like the engine, a way to run a
program and look at its result, stack config, and the dynamic-provider gRPC server.

Test modules load the fixtures with ``pytest_plugins = ("pulumi_helpers",)`` after importing
helpers from here, hence PYTEST_DONT_REWRITE (the module is imported before pytest could
rewrite it); it raises its own errors instead of using assert.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import dill
import grpc
import pulumi
import pulumi.dynamic as dyn
import pytest
from pulumi.runtime import mocks, rpc
from pulumi.runtime.config import CONFIG
from pulumi.runtime.proto import provider_pb2_grpc, resource_pb2
from pulumi.runtime.settings import reset_options
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from hostup_pulumi import functions
from hostup_pulumi.testing import HostupSimulator

PROVIDER_KEY = "__provider"
DYNAMIC_PREFIX = "pulumi-python:dynamic/"


def stack_config(sim: HostupSimulator, api_key: str | None = None) -> dict[str, str]:
    """The ``hostup:*`` stack config that points at ``sim``."""
    return {"hostup:apiKey": api_key or sim.api_key, "hostup:baseUrl": sim.base_url}


def decode_provider(blob: str) -> bytes:
    """The pickled bytes of a serialized dynamic provider (``__provider``)."""
    return base64.b64decode(blob)


def load_provider(blob: str) -> dyn.ResourceProvider:
    """Unpickle a serialized provider the way the provider process does."""
    return dill.loads(decode_provider(blob))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Registration:
    """What the program asked the engine to register (as the engine receives it)."""

    type: str
    name: str
    inputs: dict[str, Any]
    additional_secret_outputs: list[str]


class EngineMocks(pulumi.runtime.Mocks):
    """Mocks that record every resource. Given ``provider_config``, they deploy dynamic
    resources as the engine would: unpickle ``__provider``, configure it with that stack
    config, then check and create (in preview: check only). Without it, and for other
    resource types, they echo the inputs (plus ``outputs[type]``).
    """

    def __init__(
        self,
        *,
        provider_config: Mapping[str, str] | None = None,
        preview: bool = False,
        outputs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.provider_config = None if provider_config is None else dict(provider_config)
        self.preview = preview
        self.outputs = {k: dict(v) for k, v in (outputs or {}).items()}
        self.seen: list[mocks.MockResourceArgs] = []
        self.calls: list[mocks.MockCallArgs] = []
        self.invoke_results: dict[str, dict[str, Any]] = {}
        self.check_failures: list[dyn.CheckFailure] = []

    def call(self, args: mocks.MockCallArgs) -> dict[str, Any]:
        # Invokes that reach the engine (the plugin's functions): recorded, answered by
        # ``invoke_results[token]``.
        self.calls.append(args)
        return dict(self.invoke_results.get(args.token, {}))

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.seen.append(args)
        if self.provider_config is None or not args.typ.startswith(DYNAMIC_PREFIX):
            return f"{args.name}-id", {**args.inputs, **self.outputs.get(args.typ, {})}
        provider = load_provider(args.inputs[PROVIDER_KEY])
        provider.configure(dyn.ConfigureRequest(dyn.Config(self.provider_config, "project")))
        checked = provider.check({}, dict(args.inputs))
        if checked.failures:
            self.check_failures.extend(checked.failures)
            raise ValueError("; ".join(f"{f.property}: {f.reason}" for f in checked.failures))
        if self.preview:
            return "", dict(checked.inputs)
        try:
            created = provider.create(dict(checked.inputs))
        finally:
            client = getattr(provider, "_client", None)
            if client is not None:
                client.close()
        return created.id, dict(created.outs or {})


class EngineLikeMonitor(mocks.MockMonitor):
    """A mock monitor that records each registration, including its options, and marks the
    ``additional_secret_outputs`` of a resource secret in its outputs, as the engine does."""

    def __init__(self, engine_mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(engine_mocks)
        self.registrations: list[Registration] = []
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        _ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object)
        secret_names = list(request.additionalSecretOutputs)
        with self._lock:
            self.registrations.append(
                Registration(request.type, request.name, dict(inputs), secret_names)
            )
        args = mocks.MockResourceArgs(
            typ=request.type,
            name=request.name,
            inputs=inputs,
            provider=request.provider,
            resource_id=request.importId,
            custom=request.custom or False,
        )
        id_, state = self.mocks.new_resource(args)
        wire = {
            key: rpc.wrap_rpc_secret(value) if key in secret_names and value is not None else value
            for key, value in state.items()
        }
        obj_proto = _sync_await(rpc.serialize_properties(wire, {}))
        urn = self.make_urn(request.parent, request.type, request.name)
        self.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, id_, state)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj_proto)

    def registration(self, name: str) -> Registration:
        found = [r for r in self.registrations if r.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one registration named {name!r}, got {found}")
        return found[0]


@dataclass
class Observed:
    """What a program's returned value resolved to."""

    value: Any = None
    known: bool | None = None
    secret: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class PulumiProgram:
    """Runs program functions under ``pulumi.runtime.set_mocks``."""

    def __init__(self) -> None:
        self.mocks: EngineMocks | None = None
        self.monitor: EngineLikeMonitor | None = None

    def start(self, engine_mocks: EngineMocks | None = None, *, preview: bool = False) -> None:
        self.mocks = engine_mocks or EngineMocks(preview=preview)
        self.monitor = EngineLikeMonitor(self.mocks)
        pulumi.runtime.set_mocks(self.mocks, preview=preview, monitor=self.monitor)

    def run(self, program: Callable[[], Any]) -> Observed:
        """Run ``program`` like ``pulumi.runtime.test`` does (waiting for every registration
        and raising the first error) and observe the Output it returns."""
        if self.monitor is None:
            self.start()
        observed = Observed()

        def body() -> None:
            output = pulumi.Output.from_input(program())

            async def inspect() -> None:
                observed.known = await output.is_known()
                observed.secret = await output.is_secret()
                observed.value = await output.future()

            _sync_await(inspect())

        _sync_await(run_pulumi_func(body))
        return observed

    def _started(self) -> EngineLikeMonitor:
        if self.monitor is None:
            raise RuntimeError("no program ran yet")
        return self.monitor

    @property
    def registrations(self) -> list[Registration]:
        return list(self._started().registrations)

    def registration(self, name: str) -> Registration:
        return self._started().registration(name)


def _close_shared_clients() -> None:
    """Close and forget the clients (and their threads) that the functions share."""
    for sync_client in functions._shared_sync_clients.values():
        sync_client.close()
    functions._shared_sync_clients.clear()
    for pool in functions._shared_threads.values():
        pool.close()
    functions._shared_threads.clear()


def _quiet_unretrieved(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # A program that fails leaves Output futures whose exception nobody awaited (the program's
    # error is raised once, from the first). Say nothing of those; report anything else.
    if context.get("message") != "Future exception was never retrieved":
        loop.default_exception_handler(context)


@pytest.fixture
def pulumi_program() -> Iterator[PulumiProgram]:
    """A mocked Pulumi runtime; global Pulumi state and shared clients are reset after."""
    saved_config = CONFIG.get()
    CONFIG.set({})
    loop = _ensure_event_loop()
    saved_handler = loop.get_exception_handler()
    loop.set_exception_handler(_quiet_unretrieved)
    try:
        yield PulumiProgram()
    finally:
        reset_options()
        _close_shared_clients()
        CONFIG.set(saved_config)
        # Finalize this program's futures now: a finalizer that logs a traceback while Python
        # is building an AST elsewhere trips a CPython 3.11 bug ("AST constructor recursion
        # depth mismatch").
        gc.collect()
        loop.set_exception_handler(saved_handler)


@pytest.fixture
def set_stack_config(monkeypatch: pytest.MonkeyPatch) -> Callable[[Mapping[str, str]], None]:
    """Set the stack config as the Pulumi CLI hands it to a program (``PULUMI_CONFIG``)."""

    def apply(values: Mapping[str, str]) -> None:
        monkeypatch.setenv("PULUMI_CONFIG", json.dumps(dict(values)))

    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    return apply


# -- the dynamic-provider process ---------------------------------------------------------


@dataclass
class ProviderProcess:
    """A running ``python -m pulumi.dynamic`` and a gRPC stub connected to it."""

    process: subprocess.Popen[bytes]
    stub: provider_pb2_grpc.ResourceProviderStub
    channel: grpc.Channel


def start_provider_process(env: Mapping[str, str], startup_timeout: float = 20.0) -> Any:
    """Start the dynamic-provider server; return (process, port). The caller stops it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pulumi.dynamic"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
    )
    line: list[bytes] = []
    reader = threading.Thread(
        target=lambda: line.append(process.stdout.readline() if process.stdout else b""),
        daemon=True,
    )
    reader.start()
    reader.join(startup_timeout)
    if not line or not line[0].strip().isdigit():
        stop_process(process)
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        raise RuntimeError(f"dynamic provider did not print its port: {line!r} {stderr}")
    return process, int(line[0])


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process`` (kill it if it does not exit) and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def provider_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a provider process: ours minus every HOSTUP_* and PULUMI_CONFIG."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("HOSTUP_") and k != "PULUMI_CONFIG"
    }
    env["PULUMI_PROJECT"] = "project"
    env.update(extra or {})
    return env


@pytest.fixture
def provider_process() -> Iterator[Callable[..., ProviderProcess]]:
    """Factory: start a dynamic-provider process with a given environment; always stopped."""
    started: list[ProviderProcess] = []

    def start(extra_env: Mapping[str, str] | None = None) -> ProviderProcess:
        process, port = start_provider_process(provider_env(extra_env))
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        handle = ProviderProcess(process, provider_pb2_grpc.ResourceProviderStub(channel), channel)
        started.append(handle)
        return handle

    try:
        yield start
    finally:
        for handle in started:
            handle.channel.close()
            stop_process(handle.process)


def to_struct(values: Mapping[str, Any]) -> Any:
    """Serialize a property map to a protobuf Struct as the engine sends it."""
    loop = _ensure_event_loop()
    return loop.run_until_complete(rpc.serialize_properties(dict(values), {}))


def from_struct(struct: Any) -> dict[str, Any]:
    """Deserialize a protobuf Struct (keeping unknowns) to a dict."""
    return dict(rpc.deserialize_properties(struct, True))
