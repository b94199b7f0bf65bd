"""Data functions and preconditions for Pulumi programs.

``get_vps_agent_availability`` (plain value) and ``get_vps_agent_availability_output``
(``Output``) follow the ``get_x`` / ``get_x_output`` convention of Pulumi's Python SDKs.
``require_agent_available`` fails ``pulumi preview`` and ``pulumi up`` before anything is
created when a VPS cannot run guest-agent commands.

These run in the program process, so settings come from the explicit arguments, then the
stack's config (``hostup:apiKey``, ...), then the environment. Given ``opts`` (a hostup
``Provider``, a parent, ...), a call goes through the native plugin instead
(:mod:`hostup_pulumi.native`), which honours every invoke option. Errors are Pulumi
``RunError`` s too: a failing program prints their one-line message, not a traceback.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

import pulumi
from pulumi.runtime.config import get_config
from pulumi_hostup import GetVpsAgentAvailabilityResult, RequireAgentAvailableResult

from . import native
from ._threads import DaemonThreads
from ._validation import validate_vps_ids
from .client import HostupClient
from .errors import AgentUnavailableError, HostupError, ValidationError
from .models import AgentAvailability
from .native import availability_result
from .settings import CONFIG_KEYS, Settings

__all__ = [
    "AgentPreconditionError",
    "GetVpsAgentAvailabilityResult",
    "RequireAgentAvailableResult",
    "get_vps_agent_availabilities",
    "get_vps_agent_availabilities_output",
    "get_vps_agent_availability",
    "get_vps_agent_availability_output",
    "program_client",
    "program_settings",
    "require_agent_available",
    "require_agent_available_output",
]


class AgentPreconditionError(AgentUnavailableError, pulumi.RunError):
    """The AgentUnavailableError that ``require_agent_available`` raises in a program.

    Also a ``pulumi.RunError``, so Pulumi reports the message without a Python traceback;
    ``except AgentUnavailableError`` still catches it.
    """


E = TypeVar("E", bound=HostupError)
T = TypeVar("T")
# For each error class, its twin that is also a pulumi.RunError (built on first use).
_RUN_ERRORS: dict[type[HostupError], type[HostupError]] = {
    AgentUnavailableError: AgentPreconditionError
}


def program_error(exc: E) -> E:
    """``exc`` as a ``pulumi.RunError`` too, so that a program failing with it prints its
    message without the client's stack frames; ``except`` on its own class still catches it."""
    if isinstance(exc, pulumi.RunError):
        return exc
    cls = type(exc)
    with _shared_lock:
        twin = _RUN_ERRORS.get(cls)
        if twin is None:
            twin = _RUN_ERRORS[cls] = type(cls.__name__, (cls, pulumi.RunError), {
                "__module__": cls.__module__, "__qualname__": cls.__qualname__,
                "__doc__": cls.__doc__,
            })  # fmt: skip
    error: E = twin.__new__(twin)  # type: ignore[assignment]
    Exception.__init__(error, *exc.args)
    error.__dict__.update(exc.__dict__)
    return error


# Every option of InvokeOptions: given any, the engine (through the plugin) applies them.
_INVOKE_OPTIONS = ("provider", "parent", "version", "plugin_download_url", "depends_on")


def _hostup_provider(opts: pulumi.InvokeOptions | None, function: str) -> bool:
    """Whether a call with ``opts`` goes through the plugin; any other provider is refused."""
    if opts is None:
        return False
    provider = opts.provider
    if provider is not None and getattr(provider, "package", None) != "hostup":
        raise program_error(
            ValidationError(
                f"{function}: opts.provider is a {getattr(provider, 'package', '?')!r} "
                "provider; pass a hostup_pulumi.Provider (or no provider)"
            )
        )
    return any(getattr(opts, name, None) is not None for name in _INVOKE_OPTIONS)


def program_settings() -> Settings:
    """Settings for calls made in the program process: the stack's ``hostup:*`` config, then
    the environment. Raises ConfigurationError when there are no credentials."""
    config = {key: value for key in CONFIG_KEYS if (value := get_config(key)) is not None}
    return Settings.resolve(config=config)


def program_client() -> HostupClient:
    """A :class:`HostupClient` configured like the functions here (stack config, then the
    environment), for plan-time lookups in a program such as ``list_vps()``. Close it after
    use (``with hostup.program_client() as client: ...``). Missing or bad settings fail the
    program with their one-line message (a ``pulumi.RunError``), not a traceback."""
    try:
        settings = program_settings()
    except HostupError as exc:
        raise program_error(exc) from None
    return HostupClient(settings=settings)


_shared_lock = threading.Lock()
# One client per settings, shared by every call in the program process: building one costs
# tens of milliseconds (TLS setup), and sharing keeps the calls to one connection pool, one
# concurrency limit and one rate-limit backoff, while a later program in the same process
# (unit tests under mocks) with other config gets its own.
_shared_sync_clients: dict[Settings, HostupClient] = {}
# The _output forms run that client on threads of their own, not on the event loop: the
# Pulumi SDK's loop also carries every resource registration, and a preview with 400 probes
# took less program CPU and time that way (docs/performance.md, "dynamic preview N=400").
# Not the SDK's default executor either, which carries the registrations' gRPC calls. Probes
# get max_concurrency threads (the client's own limit); waits, which mostly sleep, threads
# of their own so that they cannot hold up the probes.
_shared_threads: dict[tuple[Settings, bool], DaemonThreads] = {}  # (settings, waits)
_WAIT_THREADS = 64


def _shared_client() -> HostupClient:
    settings = program_settings()
    with _shared_lock:
        client = _shared_sync_clients.get(settings)
        if client is None:
            client = _shared_sync_clients[settings] = HostupClient(settings=settings)
        return client


def _threads(settings: Settings, *, waits: bool) -> DaemonThreads:
    with _shared_lock:
        pool = _shared_threads.get((settings, waits))
        if pool is None:
            pool = _shared_threads[settings, waits] = (
                DaemonThreads(_WAIT_THREADS, "hostup-wait")
                if waits
                else DaemonThreads(settings.max_concurrency, "hostup-probe")
            )
        return pool


def _probe(vps_id: str) -> Callable[[HostupClient], AgentAvailability]:
    return lambda client: client.get_agent_availability(vps_id)


async def _in_thread(call: Callable[[HostupClient], T], *, waits: bool = False) -> T:
    """``call(shared client)`` on a thread of the probe (or wait) pool; its HostupError
    raised as a ``program_error``."""
    client = _shared_client()
    pool = _threads(client.settings, waits=waits)
    try:
        return await pool.run(lambda: call(client))
    except HostupError as exc:
        raise program_error(exc) from None


def get_vps_agent_availability(
    vps_id: str, opts: pulumi.InvokeOptions | None = None
) -> GetVpsAgentAvailabilityResult:
    """Probe whether guest-agent command execution is available on ``vps_id`` (a
    ``vps_...`` id; scope ``read:vm``). Runs during preview too, so previews show the real
    state. One call at a time: for many VPSes use the ``_output`` form, whose calls overlap.
    With ``opts`` (e.g. ``InvokeOptions(provider=hostup.Provider(...))``) it runs in the
    hostup plugin."""
    if _hostup_provider(opts, "get_vps_agent_availability"):
        return native.get_vps_agent_availability(vps_id, opts)
    try:
        availability = _shared_client().get_agent_availability(vps_id)
    except HostupError as exc:
        raise program_error(exc) from None
    return availability_result(GetVpsAgentAvailabilityResult, vps_id, availability)


def get_vps_agent_availability_output(
    vps_id: pulumi.Input[str], opts: pulumi.InvokeOptions | None = None
) -> pulumi.Output[GetVpsAgentAvailabilityResult]:
    """The ``Output`` form of :func:`get_vps_agent_availability`: takes an ``Input`` id, is
    unknown during preview while the id is unknown, and overlaps with other calls (they share
    one client and its concurrency limit, on threads of their own)."""
    if _hostup_provider(opts, "get_vps_agent_availability_output"):
        return native.get_vps_agent_availability_output(vps_id, opts)

    async def probe(vps_id: str) -> GetVpsAgentAvailabilityResult:
        availability = await _in_thread(_probe(vps_id))
        return availability_result(GetVpsAgentAvailabilityResult, vps_id, availability)

    return pulumi.Output.from_input(vps_id).apply(probe)


def get_vps_agent_availabilities(
    vps_ids: list[str], opts: pulumi.InvokeOptions | None = None
) -> list[GetVpsAgentAvailabilityResult]:
    """:func:`get_vps_agent_availability` for each of ``vps_ids`` (at most 1,000, all checked
    before any request), in their order. One call at a time: for a fleet use the ``_output``
    form, whose probes overlap. With ``opts`` it runs in the hostup plugin
    (``hostup:index:getVpsAgentAvailabilities``)."""
    if _hostup_provider(opts, "get_vps_agent_availabilities"):
        return native.get_vps_agent_availabilities(vps_ids, opts)
    try:
        checked = validate_vps_ids(vps_ids)
        client = _shared_client()
        found = [client.get_agent_availability(vps_id) for vps_id in checked]
    except HostupError as exc:
        raise program_error(exc) from None
    return [
        availability_result(GetVpsAgentAvailabilityResult, v, a)
        for v, a in zip(checked, found, strict=True)
    ]


def get_vps_agent_availabilities_output(
    vps_ids: pulumi.Input[list[str]], opts: pulumi.InvokeOptions | None = None
) -> pulumi.Output[list[GetVpsAgentAvailabilityResult]]:
    """The ``Output`` form of :func:`get_vps_agent_availabilities`: the probes overlap (one
    shared client and its concurrency limit); the first failure fails the call."""
    if _hostup_provider(opts, "get_vps_agent_availabilities_output"):
        return native.get_vps_agent_availabilities_output(vps_ids, opts)

    async def probe_all(vps_ids: list[str]) -> list[GetVpsAgentAvailabilityResult]:
        try:
            checked = validate_vps_ids(vps_ids)
        except HostupError as exc:
            raise program_error(exc) from None
        found = await asyncio.gather(*(_in_thread(_probe(v)) for v in checked))
        return [
            availability_result(GetVpsAgentAvailabilityResult, v, a)
            for v, a in zip(checked, found, strict=True)
        ]

    return pulumi.Output.from_input(vps_ids).apply(probe_all)


def require_agent_available(
    vps_id: str,
    *,
    wait_timeout: float | None = None,
    opts: pulumi.InvokeOptions | None = None,
) -> RequireAgentAvailableResult:
    """Fail the deployment unless guest-agent command execution is available on ``vps_id``.

    Raises :class:`AgentUnavailableError` (naming the VPS and the API's reason), which stops
    ``pulumi preview`` and ``pulumi up`` before anything is created. With ``wait_timeout``
    (seconds), polls until available and fails only at the deadline (a VM still booting).
    With ``opts`` it runs in the hostup plugin (``hostup:index:requireAgentAvailable``).
    """
    if _hostup_provider(opts, "require_agent_available"):
        return native.require_agent_available(vps_id, wait_timeout=wait_timeout, opts=opts)
    try:
        availability = _shared_client().require_agent_available(vps_id, wait_timeout=wait_timeout)
    except HostupError as exc:
        raise program_error(exc) from None
    return availability_result(RequireAgentAvailableResult, vps_id, availability)


def require_agent_available_output(
    vps_id: pulumi.Input[str],
    *,
    wait_timeout: float | None = None,
    opts: pulumi.InvokeOptions | None = None,
) -> pulumi.Output[RequireAgentAvailableResult]:
    """The ``Input``-accepting twin of :func:`require_agent_available`.

    Use its result as an input of the resources it guards (for example
    ``vps_id=gate.vps_id``): they are then not created unless the check passed.
    """
    if _hostup_provider(opts, "require_agent_available_output"):
        return native.require_agent_available_output(vps_id, wait_timeout=wait_timeout, opts=opts)

    async def require(vps_id: str) -> RequireAgentAvailableResult:
        availability = await _in_thread(
            lambda client: client.require_agent_available(vps_id, wait_timeout=wait_timeout),
            waits=wait_timeout is not None,
        )
        return availability_result(RequireAgentAvailableResult, vps_id, availability)

    return pulumi.Output.from_input(vps_id).apply(require)
