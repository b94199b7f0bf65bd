"""The provider functions: ``getVpsAgentAvailability`` and the precondition
``requireAgentAvailable``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._names import to_camel
from .._validation import validate_seconds, validate_vps_id, validate_vps_ids
from ..client import AsyncHostupClient
from ..errors import HostupError
from ..models import AgentAvailability
from ._rules import Failure, Input, Props

__all__ = [
    "FUNCTIONS",
    "GET_VPS_AGENT_AVAILABILITIES",
    "GET_VPS_AGENT_AVAILABILITY",
    "REQUIRE_AGENT_AVAILABLE",
    "Function",
]


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
    args: tuple[Input, ...]
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


async def _get_availabilities(client: AsyncHostupClient, args: Props) -> Props:
    vps_ids = validate_vps_ids(args["vps_ids"])
    # The client bounds how many are in flight; the first failure fails the call, as one
    # getVpsAgentAvailability would (the others are not waited for).
    found = await asyncio.gather(*(client.get_agent_availability(v) for v in vps_ids))
    # Items are nested objects: they carry the schema's names (the host renames only the
    # top level).
    return {
        "availabilities": [
            {to_camel(key): value for key, value in _availability(v, a).items()}
            for v, a in zip(vps_ids, found, strict=True)
        ]
    }


_VPS_ARG = Input("vps_id", validate_vps_id, required=True)
GET_VPS_AGENT_AVAILABILITY = Function(
    "hostup:index:getVpsAgentAvailability", (_VPS_ARG,), _get_availability
)
REQUIRE_AGENT_AVAILABLE = Function(
    "hostup:index:requireAgentAvailable",
    (_VPS_ARG, Input("wait_timeout", _validate_wait)),
    _require_available,
)
GET_VPS_AGENT_AVAILABILITIES = Function(
    "hostup:index:getVpsAgentAvailabilities",
    (Input("vps_ids", validate_vps_ids, required=True),),
    _get_availabilities,
)
FUNCTIONS: Mapping[str, Function] = {
    f.token: f
    for f in (GET_VPS_AGENT_AVAILABILITY, GET_VPS_AGENT_AVAILABILITIES, REQUIRE_AGENT_AVAILABLE)
}
