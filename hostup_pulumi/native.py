"""Python classes backed by the native ``hostup`` plugin, shaped like Pulumi's provider SDKs.

Use them for what dynamic resources cannot do: explicit providers (several HostUp accounts
in one program), ``pulumi import``, and state shared with programs in other languages::

    import pulumi
    from hostup_pulumi import native as hostup

    acme = hostup.Provider("acme", api_key=config.require_secret("acmeKey"))
    cmd = hostup.AgentCommand("uname", vps_id=VPS, command="uname -a",
                              opts=pulumi.ResourceOptions(provider=acme))
    out = hostup.AgentExecResult("uname-out", vps_id=cmd.vps_id, pid=cmd.pid,
                                 run_id=cmd.run_id, opts=pulumi.ResourceOptions(provider=acme))

They need the plugin installed (``tools/install-plugin``). The rules are the same code as the
dynamic classes' (:mod:`hostup_pulumi.lifecycle`); only the host differs.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any

import pulumi

from ._batch import Coalescer
from ._names import to_camel, to_snake
from ._outputs import SECRET_OUTPUTS, AgentCommandOutputs, AgentExecResultOutputs, props
from .functions import GetVpsAgentAvailabilityResult

__all__ = [
    "AgentCommand",
    "AgentExecResult",
    "Provider",
    "get_vps_agent_availabilities",
    "get_vps_agent_availabilities_output",
    "get_vps_agent_availability",
    "get_vps_agent_availability_output",
    "require_agent_available",
    "require_agent_available_output",
]

PACKAGE = "hostup"


def _secret(value: pulumi.Input[str] | None) -> pulumi.Input[str] | None:
    return None if value is None else pulumi.Output.secret(value)


class Provider(pulumi.ProviderResource):
    """A HostUp provider instance: one account (API key) and endpoint.

    Every argument defaults to the stack's ``hostup:*`` config, then the environment
    (``HOSTUP_API_KEY``, ...). ``api_key`` and ``session_cookie`` are kept as secrets.
    Changing any of them later (a rotated key) replaces nothing.
    """

    def __init__(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions | None = None,
        *,
        api_key: pulumi.Input[str] | None = None,
        base_url: pulumi.Input[str] | None = None,
        timeout: pulumi.Input[float] | None = None,
        max_retries: pulumi.Input[int] | None = None,
        max_concurrency: pulumi.Input[int] | None = None,
        session_cookie: pulumi.Input[str] | None = None,
    ) -> None:
        inputs = {
            "api_key": _secret(api_key),
            "base_url": base_url,
            "timeout": timeout,
            "max_retries": max_retries,
            "max_concurrency": max_concurrency,
            "session_cookie": _secret(session_cookie),
        }
        super().__init__(PACKAGE, resource_name, inputs, opts)

    def translate_output_property(self, prop: str) -> str:
        """``apiKey`` on the wire is ``api_key`` here."""
        return to_snake(prop)

    def translate_input_property(self, prop: str) -> str:
        """``api_key`` here is ``apiKey`` on the wire."""
        return to_camel(prop)


class _Resource(pulumi.CustomResource):
    # snake_case attributes here, the schema's camelCase names on the wire.
    def translate_output_property(self, prop: str) -> str:
        return to_snake(prop)

    def translate_input_property(self, prop: str) -> str:
        return to_camel(prop)


class AgentCommand(AgentCommandOutputs, _Resource):
    """``hostup:index:AgentCommand``: start a command once (see the dynamic
    :class:`hostup_pulumi.AgentCommand` for the rules, which are the same).

    Outputs: ``vps_id``, ``command``, ``triggers``, ``pid``, ``poll_url``, ``run_id``.
    """

    # Pulumi types a resource's outputs by the class's own annotations: share the mixin's.
    __annotations__ = AgentCommandOutputs.__annotations__

    def __init__(
        self,
        resource_name: str,
        vps_id: pulumi.Input[str],
        command: pulumi.Input[str],
        triggers: pulumi.Input[Sequence[Any]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        inputs = props(AgentCommandOutputs, vps_id=vps_id, command=command, triggers=triggers)
        super().__init__("hostup:index:AgentCommand", resource_name, inputs, opts)


class AgentExecResult(AgentExecResultOutputs, _Resource):
    """``hostup:index:AgentExecResult``: a command's output, read by pid once it has exited
    (the rules are those of the dynamic :class:`hostup_pulumi.AgentExecResult`).
    ``stdout``, ``stderr`` and ``extra_fields`` are always secrets here (use
    ``pulumi.Output.unsecret`` to show them).
    """

    # Pulumi types a resource's outputs by the class's own annotations: share the mixin's.
    __annotations__ = AgentExecResultOutputs.__annotations__

    def __init__(
        self,
        resource_name: str,
        vps_id: pulumi.Input[str],
        pid: pulumi.Input[int],
        timeout: pulumi.Input[float] | None = None,
        fail_on_nonzero_exit: pulumi.Input[bool] | None = None,
        opts: pulumi.ResourceOptions | None = None,
        *,
        run_id: pulumi.Input[str] | None = None,
    ) -> None:
        inputs = props(AgentExecResultOutputs, vps_id=vps_id, pid=pid, run_id=run_id,
                       timeout=timeout, fail_on_nonzero_exit=fail_on_nonzero_exit)  # fmt: skip
        secret = pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS)
        opts = pulumi.ResourceOptions.merge(opts, secret)
        super().__init__("hostup:index:AgentExecResult", resource_name, inputs, opts)


GET_AVAILABILITY = "hostup:index:getVpsAgentAvailability"
GET_AVAILABILITIES = "hostup:index:getVpsAgentAvailabilities"
REQUIRE_AVAILABLE = "hostup:index:requireAgentAvailable"


def _args(vps_id: pulumi.Input[str], wait_timeout: float | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"vpsId": vps_id}
    if wait_timeout is not None:
        args["waitTimeout"] = wait_timeout
    return args


def get_vps_agent_availability(
    vps_id: str, opts: pulumi.InvokeOptions | None = None
) -> GetVpsAgentAvailabilityResult:
    """``hostup:index:getVpsAgentAvailability`` through the plugin (``opts.provider`` picks
    the account)."""
    result = pulumi.runtime.invoke(
        GET_AVAILABILITY, _args(vps_id), opts, GetVpsAgentAvailabilityResult
    )
    return result.value  # type: ignore[no-any-return]


def get_vps_agent_availability_output(
    vps_id: pulumi.Input[str], opts: pulumi.InvokeOptions | None = None
) -> pulumi.Output[GetVpsAgentAvailabilityResult]:
    """The ``Output`` form of :func:`get_vps_agent_availability`.

    Calls made within a few milliseconds of each other through the same provider (a fleet
    checked in a loop) share one ``getVpsAgentAvailabilities`` invoke of up to 100 VPSes; each
    result and each error is still its own call's. With ``opts`` other than a provider
    (``parent``, ``depends_on``, ...) the call is an invoke of its own.
    """
    if not _coalescible(opts):
        return pulumi.runtime.invoke_output(
            GET_AVAILABILITY, _args(vps_id), opts, GetVpsAgentAvailabilityResult
        )
    provider = opts.provider if opts is not None else None

    async def lookup(vps_id: str) -> GetVpsAgentAvailabilityResult:
        return await _availability_coalescer(provider).get(vps_id)

    return pulumi.Output.from_input(vps_id).apply(lookup)


def get_vps_agent_availabilities(
    vps_ids: list[str], opts: pulumi.InvokeOptions | None = None
) -> list[GetVpsAgentAvailabilityResult]:
    """``hostup:index:getVpsAgentAvailabilities`` through the plugin: the availability of
    each of ``vps_ids``, in their order (the plugin probes them concurrently)."""
    result = pulumi.runtime.invoke(GET_AVAILABILITIES, {"vpsIds": vps_ids}, opts)
    return _results(result.value)


def get_vps_agent_availabilities_output(
    vps_ids: pulumi.Input[list[str]], opts: pulumi.InvokeOptions | None = None
) -> pulumi.Output[list[GetVpsAgentAvailabilityResult]]:
    """The ``Output`` form of :func:`get_vps_agent_availabilities`."""
    output = pulumi.runtime.invoke_output(GET_AVAILABILITIES, {"vpsIds": vps_ids}, opts)
    return output.apply(_results)


def _results(value: Any) -> list[GetVpsAgentAvailabilityResult]:
    return [
        GetVpsAgentAvailabilityResult(
            item["vpsId"], item["available"], item.get("reason"), item.get("vmRunning")
        )
        for item in value["availabilities"]
    ]


def _coalescible(opts: pulumi.InvokeOptions | None) -> bool:
    # Only the provider may be set: the other options belong to one call.
    others = ("parent", "version", "plugin_download_url", "depends_on")
    return opts is None or all(getattr(opts, name, None) in (None, []) for name in others)


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

        async def many(vps_ids: list[str]) -> list[GetVpsAgentAvailabilityResult]:
            value = await pulumi.runtime.invoke_async(GET_AVAILABILITIES, {"vpsIds": vps_ids}, opts)
            return _results(value)

        async def one(vps_id: str) -> GetVpsAgentAvailabilityResult:
            value = await pulumi.runtime.invoke_async(
                GET_AVAILABILITY, _args(vps_id), opts, GetVpsAgentAvailabilityResult
            )
            return value  # type: ignore[no-any-return]

        coalescer = by_provider[provider] = Coalescer(many, one)
    return coalescer


def require_agent_available(
    vps_id: str, *, wait_timeout: float | None = None, opts: pulumi.InvokeOptions | None = None
) -> GetVpsAgentAvailabilityResult:
    """``hostup:index:requireAgentAvailable``: fails preview and up unless the VPS can run
    commands (with ``wait_timeout``, after waiting that long for it)."""
    result = pulumi.runtime.invoke(
        REQUIRE_AVAILABLE, _args(vps_id, wait_timeout), opts, GetVpsAgentAvailabilityResult
    )
    return result.value  # type: ignore[no-any-return]


def require_agent_available_output(
    vps_id: pulumi.Input[str],
    *,
    wait_timeout: float | None = None,
    opts: pulumi.InvokeOptions | None = None,
) -> pulumi.Output[GetVpsAgentAvailabilityResult]:
    """The ``Output`` form of :func:`require_agent_available`."""
    return pulumi.runtime.invoke_output(
        REQUIRE_AVAILABLE, _args(vps_id, wait_timeout), opts, GetVpsAgentAvailabilityResult
    )
