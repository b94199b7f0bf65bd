"""The native ``hostup`` plugin's Python classes: the generated SDK, plus one thin layer.

The classes and functions are those of ``pulumi_hostup``, the Python SDK that Pulumi's own
codegen writes from ``schema.json`` (``make sdk``; never edited by hand), re-exported under
the names programs already use::

    import pulumi
    from hostup_pulumi import native as hostup

    acme = hostup.Provider("acme", api_key=config.require_secret("acmeKey"))
    cmd = hostup.AgentCommand("uname", vps_id=VPS, command="uname -a",
                              opts=pulumi.ResourceOptions(provider=acme))
    out = hostup.AgentExecResult("uname-out", vps_id=cmd.vps_id, pid=cmd.pid,
                                 run_id=cmd.run_id, opts=pulumi.ResourceOptions(provider=acme))

Pass their arguments by keyword (the generated signatures put ``opts`` second). They need
the plugin installed (``hostup-pulumi install-plugin``). Two functions here add behaviour to
the generated ones, and say so:

- :func:`get_vps_agent_availability_output` coalesces calls made together (a fleet checked
  in a loop) into one ``getVpsAgentAvailabilities`` invoke: every engine invoke costs the
  program several milliseconds of its one thread.
- :func:`get_vps_agent_availabilities` and its ``_output`` form return a list of
  :class:`GetVpsAgentAvailabilityResult` (the generated forms wrap their items, which are
  dicts, in ``.availabilities``; a later ``apply`` would see those as plain dicts).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Protocol, TypeVar

import pulumi
import pulumi_hostup as _sdk
from pulumi_hostup import (
    AgentCommand,
    AgentExecResult,
    GetVpsAgentAvailabilitiesResult,
    GetVpsAgentAvailabilityResult,
    Provider,
    RequireAgentAvailableResult,
    get_vps_agent_availability,
    require_agent_available,
    require_agent_available_output,
)

from ._batch import Coalescer

__all__ = [
    "AgentCommand",
    "AgentExecResult",
    "GetVpsAgentAvailabilityResult",
    "Provider",
    "RequireAgentAvailableResult",
    "get_vps_agent_availabilities",
    "get_vps_agent_availabilities_output",
    "get_vps_agent_availability",
    "get_vps_agent_availability_output",
    "require_agent_available",
    "require_agent_available_output",
]


def get_vps_agent_availability_output(
    vps_id: pulumi.Input[str], opts: pulumi.InvokeOptions | None = None
) -> pulumi.Output[GetVpsAgentAvailabilityResult]:
    """``hostup:index:getVpsAgentAvailability`` through the plugin, as an ``Output``.

    Calls made within a few milliseconds of each other through the same provider (a fleet
    checked in a loop) share one ``getVpsAgentAvailabilities`` invoke of up to 100 VPSes; each
    result and each error is still its own call's. With ``opts`` other than a provider
    (``parent``, ``depends_on``, ...) the call is the generated function's own invoke.
    """
    if not _coalescible(opts):
        return _sdk.get_vps_agent_availability_output(vps_id=vps_id, opts=opts)
    provider = opts.provider if opts is not None else None

    async def lookup(vps_id: str) -> GetVpsAgentAvailabilityResult:
        return await _availability_coalescer(provider).get(vps_id)

    return pulumi.Output.from_input(vps_id).apply(lookup)


def get_vps_agent_availabilities(
    vps_ids: list[str], opts: pulumi.InvokeOptions | None = None
) -> list[GetVpsAgentAvailabilityResult]:
    """``hostup:index:getVpsAgentAvailabilities`` through the plugin: the availability of
    each of ``vps_ids``, in their order (the plugin probes them concurrently)."""
    return _results(_sdk.get_vps_agent_availabilities(vps_ids=vps_ids, opts=opts))


def get_vps_agent_availabilities_output(
    vps_ids: pulumi.Input[list[str]], opts: pulumi.InvokeOptions | None = None
) -> pulumi.Output[list[GetVpsAgentAvailabilityResult]]:
    """The ``Output`` form of :func:`get_vps_agent_availabilities`."""
    result = _sdk.get_vps_agent_availabilities_output(vps_ids=vps_ids, opts=opts)
    return result.apply(_results)


def _coalescible(opts: pulumi.InvokeOptions | None) -> bool:
    # Only the provider may be set: the other options belong to one call.
    others = ("parent", "version", "plugin_download_url", "depends_on")
    return opts is None or all(getattr(opts, name, None) in (None, []) for name in others)


# The schema's tokens of the two functions the coalescer invokes.
_GET_AVAILABILITY = "hostup:index:getVpsAgentAvailability"
_GET_AVAILABILITIES = "hostup:index:getVpsAgentAvailabilities"

# One coalescer per event loop (Pulumi runs one per program) and provider (None: the
# default provider); a later program in the same process (tests under mocks) gets its own.
_coalescers: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop,
    dict[pulumi.ProviderResource | None, Coalescer[str, GetVpsAgentAvailabilityResult]],
] = weakref.WeakKeyDictionary()


def _availability_coalescer(
    provider: pulumi.ProviderResource | None,
) -> Coalescer[str, GetVpsAgentAvailabilityResult]:
    by_provider = _coalescers.setdefault(asyncio.get_running_loop(), {})
    coalescer = by_provider.get(provider)
    if coalescer is None:
        opts = pulumi.InvokeOptions(provider=provider)

        # invoke_async, not the generated _output forms: a failure stays the caller's own
        # (an invoke Output that fails inside an apply would fail the whole program at once).
        async def many(vps_ids: list[str]) -> list[GetVpsAgentAvailabilityResult]:
            found = await pulumi.runtime.invoke_async(
                _GET_AVAILABILITIES, {"vpsIds": vps_ids}, opts, GetVpsAgentAvailabilitiesResult
            )
            return _results(found)

        async def one(vps_id: str) -> GetVpsAgentAvailabilityResult:
            found = await pulumi.runtime.invoke_async(
                _GET_AVAILABILITY, {"vpsId": vps_id}, opts, GetVpsAgentAvailabilityResult
            )
            return found  # type: ignore[no-any-return]

        coalescer = by_provider[provider] = Coalescer(many, one)
    return coalescer


class _Availability(Protocol):
    @property
    def available(self) -> bool: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def vm_running(self) -> bool | None: ...


R = TypeVar("R", GetVpsAgentAvailabilityResult, RequireAgentAvailableResult)


def availability_result(cls: type[R], vps_id: str, found: _Availability) -> R:
    """One of the schema's availability results (generated) for ``vps_id``, from the client's
    :class:`~hostup_pulumi.AgentAvailability` (the zero-install functions) or a fleet's item."""
    return cls(
        available=found.available, reason=found.reason, vm_running=found.vm_running,
        vps_id=vps_id,
    )  # fmt: skip


def _results(found: GetVpsAgentAvailabilitiesResult) -> list[GetVpsAgentAvailabilityResult]:
    # A fleet's items as the single function's results: the schema gives both the same fields.
    return [
        availability_result(GetVpsAgentAvailabilityResult, item.vps_id, item)
        for item in found.availabilities
    ]
