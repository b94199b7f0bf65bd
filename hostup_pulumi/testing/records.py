"""What the simulator's world is made of, as values: who asks (a principal), a VPS, a
command's result and a running process, each with the JSON body HostUp answers with.
:mod:`.state` holds them, behind its lock."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_ACCOUNT", "CommandResult", "Principal", "Process", "Vps"]

#: The account of the default key, the session cookie and every VPS added without one.
DEFAULT_ACCOUNT = "default"

_DEFAULT_OS: dict[str, Any] = {
    "displayName": "Ubuntu 24.04",
    "family": "ubuntu",
    "version": "24.04",
    "variant": None,
}
_DEFAULT_BILLING: dict[str, Any] = {
    "amount": 199,
    "currencyCode": "SEK",
    "billingCycle": "monthly",
    "isPayg": False,
    "periodYears": None,
}
_DEFAULT_RESOURCES: dict[str, Any] = {"cpuCores": 2, "memoryGb": 4, "storageGb": 80}


@dataclass(frozen=True)
class Principal:
    """Who made a request: an API key or the dashboard session."""

    #: Rate-limit bucket identity. Never logged.
    identity: str = field(repr=False)
    #: Granted scopes; ``None`` means every scope (session cookie).
    scopes: frozenset[str] | None
    #: The account the credential belongs to.
    account: str = DEFAULT_ACCOUNT
    #: ``credential_label`` of the key or cookie: safe to log.
    label: str = ""

    def allows(self, scope: str) -> bool:
        """Return whether this principal holds ``scope``."""
        return self.scopes is None or scope in self.scopes


@dataclass
class Vps:
    """One VPS as the inventory stores it."""

    id: str
    name: str
    primary_ip: str | None
    power_state: str
    service_status: str
    agent_available: bool
    agent_reason: str | None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The owning account (not served: HostUp's VPS body has no account member).
    account: str = DEFAULT_ACCOUNT

    @property
    def running(self) -> bool:
        """Whether the VM is powered on."""
        return self.power_state == "running"

    def to_json(self) -> dict[str, Any]:
        """Return the ``GET /api/v2/vps/{id}`` body; ``extra`` overrides and extends it."""
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "primaryIp": self.primary_ip,
            "serviceStatus": self.service_status,
            "powerState": self.power_state,
            "operatingSystem": dict(_DEFAULT_OS),
            "billing": dict(_DEFAULT_BILLING),
            "resources": dict(_DEFAULT_RESOURCES),
        }
        body.update(copy.deepcopy(self.extra))
        return body

    def agent_json(self) -> dict[str, Any]:
        """Return the agent probe body."""
        return {
            "available": self.agent_available,
            "reason": None if self.agent_available else self.agent_reason,
            "vmRunning": self.running,
        }


@dataclass
class CommandResult:
    """What a command prints and how it ends."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    #: Seconds between start and exit.
    duration: float = 0.0
    #: Extra members of the finished output body (e.g. ``truncated``, ``signal``).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Process:
    """A command started through ``POST .../agent/exec``."""

    pid: int
    vps_id: str
    started: float
    result: CommandResult

    @property
    def ends_at(self) -> float:
        """Clock time at which the command exits."""
        return self.started + self.result.duration

    def to_json(self, now: float) -> dict[str, Any]:
        """Return the pid-poll body as seen at clock time ``now``."""
        if now < self.ends_at:
            return {"pid": self.pid, "exited": False, "stdout": "", "stderr": ""}
        body: dict[str, Any] = {
            "pid": self.pid,
            "exited": True,
            "exitCode": self.result.exit_code,
            "stdout": self.result.stdout,
            "stderr": self.result.stderr,
        }
        body.update(copy.deepcopy(self.result.extra))
        return body
