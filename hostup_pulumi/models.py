"""Wire models (pydantic): what the API returns, read tolerantly.

Fields are snake_case in Python and camelCase on the wire. Unknown fields are kept (see
``extras``) and unknown enum values are accepted as plain strings, because the API's
documentation is incomplete (see the README's "What we assumed" section).
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "AgentAvailability",
    "AgentExecOutput",
    "AgentExecStarted",
    "Billing",
    "OperatingSystem",
    "Resources",
    "Vps",
    "VpsPage",
]

#: Documented ``powerState`` values; others are accepted too.
POWER_STATES = ("running", "stopped", "starting", "stopping", "paused", "provisioning", "error",
                "unknown")  # fmt: skip


class _WireModel(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        defer_build=True,
    )

    @property
    def extras(self) -> dict[str, Any]:
        """Fields the API sent that this model does not declare, under their wire names."""
        return dict(self.model_extra or {})


class AgentAvailability(_WireModel):
    """Whether guest-agent command execution is available (``GET .../agent/exec`` without pid).

    ``available`` is the gate; ``vm_running`` is for display only.
    """

    available: bool
    reason: str | None = None
    vm_running: bool | None = None


class AgentExecStarted(_WireModel):
    """A started command (``POST .../agent/exec``): its ``pid`` and where to poll for output.

    ``poll_url`` is absolute: the API's relative ``pollUrl`` resolved against the base URL.
    """

    pid: int = Field(gt=0)
    poll_url: str | None = None


class AgentExecOutput(_WireModel):
    """The state of a command (``GET .../agent/exec?pid=``).

    Assumptions where the API is silent: ``exitCode`` or the legacy ``exitcode`` both fill
    ``exit_code``; a missing ``exited`` means not exited; missing or null ``stdout`` and
    ``stderr`` are empty; truncation or signal fields, when sent, are in ``truncated`` /
    ``signal`` or ``extras``. stdout and stderr are left out of ``repr()``: they may be secret.
    """

    exited: bool = False
    exit_code: int | None = Field(
        default=None, validation_alias=AliasChoices("exitCode", "exitcode", "exit_code")
    )
    stdout: str = Field(default="", repr=False)
    stderr: str = Field(default="", repr=False)
    pid: int | None = None
    signal: int | str | None = None
    truncated: bool | None = None

    def __repr_args__(self) -> Any:
        # Undocumented fields may hold output too: repr shows declared fields only.
        extra = self.model_extra or {}
        return [(k, v) for k, v in super().__repr_args__() if k not in extra]

    @field_validator("stdout", "stderr", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("exited", mode="before")
    @classmethod
    def _null_is_not_exited(cls, value: Any) -> Any:
        return False if value is None else value


class OperatingSystem(_WireModel):
    """``operatingSystem`` of a VPS."""

    display_name: str | None = None
    family: str | None = None
    version: str | None = None
    variant: str | None = None


class Billing(_WireModel):
    """``billing`` of a VPS (``is_payg`` tells PAYG Cloud VPS from fixed-cycle)."""

    amount: float | None = None
    currency_code: str | None = None
    billing_cycle: str | None = None
    is_payg: bool | None = None
    period_years: int | None = None


class Resources(_WireModel):
    """``resources`` of a VPS."""

    cpu_cores: float | None = None
    memory_gb: float | None = None
    storage_gb: float | None = None


class Vps(_WireModel):
    """A VPS as ``GET /api/v2/vps`` and ``GET /api/v2/vps/{id}`` return it.

    Every field but ``id`` is optional, as documented; ``service_status`` and ``power_state``
    are plain strings so that values added by the API later still parse.
    """

    id: str
    name: str | None = None
    primary_ip: str | None = None
    service_status: str | None = None
    power_state: str | None = None
    operating_system: OperatingSystem | None = None
    billing: Billing | None = None
    resources: Resources | None = None


class VpsPage(_WireModel):
    """One page of ``GET /api/v2/vps``."""

    data: list[Vps] = Field(default_factory=list)
    has_more: bool = False
    next_cursor: str | None = None
