"""The simulator's world: API keys, VPS inventory, agent state, commands and processes.

Everything is guarded by one lock; callers get copies or JSON snapshots, never live objects.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .ids import VPS_ID_RE, new_vps_id

#: Scopes of the simulator's default API key.
DEFAULT_SCOPES: tuple[str, ...] = ("read:vm", "write:vm")
NOT_RUNNING_REASON = "VM is not running"
AGENT_SILENT_REASON = "QEMU guest agent is not responding"
FIRST_PID = 1000

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
    identity: str
    #: Granted scopes; ``None`` means every scope (session cookie).
    scopes: frozenset[str] | None

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


def _default_reason(power_state: str, available: bool, reason: str | None) -> str | None:
    if available:
        return None
    if reason is not None:
        return reason
    return AGENT_SILENT_REASON if power_state == "running" else NOT_RUNNING_REASON


class SimState:
    """Thread-safe inventory, credentials, scripted commands and live processes."""

    def __init__(
        self, *, pid_retention: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Create an empty world; processes are forgotten ``pid_retention`` s after exit."""
        self._lock = threading.Lock()
        self._clock = clock
        self.pid_retention = pid_retention
        self._keys: dict[str, frozenset[str]] = {}
        self._sessions: set[str] = set()
        self._vps: dict[str, Vps] = {}  # insertion order is list order
        self._scripts: dict[str, CommandResult] = {}
        self._blocked: list[str] = []
        self._processes: dict[int, Process] = {}
        self._next_pid = FIRST_PID

    # -- credentials -------------------------------------------------------------------
    def add_api_key(self, key: str, scopes: Iterable[str]) -> None:
        """Accept ``key`` as a Bearer token with exactly ``scopes``."""
        if not key:
            raise ValueError("API key must be a non-empty string")
        with self._lock:
            self._keys[key] = frozenset(scopes)

    def add_session(self, cookie: str) -> None:
        """Accept ``cookie`` as a ``hostup_session`` value with every scope."""
        with self._lock:
            self._sessions.add(cookie)

    def principal_for_key(self, key: str) -> Principal | None:
        """Return the principal behind an API key, or ``None`` when unknown."""
        with self._lock:
            scopes = self._keys.get(key)
        return None if scopes is None else Principal("key:" + key, scopes)

    def principal_for_session(self, cookie: str) -> Principal | None:
        """Return the principal behind a session cookie, or ``None`` when unknown."""
        with self._lock:
            known = cookie in self._sessions
        return Principal("session:" + cookie, None) if known else None

    # -- inventory ---------------------------------------------------------------------
    def add_vps(
        self,
        *,
        name: str,
        primary_ip: str | None = None,
        vps_id: str | None = None,
        power_state: str = "running",
        service_status: str = "active",
        agent_available: bool | None = None,
        agent_reason: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Add a VPS and return its id; see ``HostupSimulator.add_vps``."""
        if vps_id is not None and not VPS_ID_RE.fullmatch(vps_id):
            raise ValueError(f"vps_id must look like vps_ + 26 lowercase alphanumerics: {vps_id!r}")
        available = power_state == "running" if agent_available is None else agent_available
        vps = Vps(
            id=vps_id or new_vps_id(),
            name=name,
            primary_ip=primary_ip,
            power_state=power_state,
            service_status=service_status,
            agent_available=available,
            agent_reason=_default_reason(power_state, available, agent_reason),
            extra=copy.deepcopy(dict(extra or {})),
        )
        with self._lock:
            if vps.id in self._vps:
                raise ValueError(f"duplicate VPS id {vps.id!r}")
            self._vps[vps.id] = vps
        return vps.id

    def set_agent(
        self,
        vps_id: str,
        *,
        available: bool,
        reason: str | None = None,
        vm_running: bool | None = None,
    ) -> None:
        """Change agent availability (and optionally power) of a VPS; ``KeyError`` if unknown."""
        with self._lock:
            vps = self._vps[vps_id]
            if vm_running is not None:
                vps.power_state = "running" if vm_running else "stopped"
            vps.agent_available = available
            vps.agent_reason = _default_reason(vps.power_state, available, reason)

    def get_vps(self, vps_id: str) -> Vps | None:
        """Return a copy of the VPS, or ``None`` when unknown."""
        with self._lock:
            vps = self._vps.get(vps_id)
            return None if vps is None else replace(vps, extra=copy.deepcopy(vps.extra))

    def list_vps_json(
        self, *, name: str | None = None, primary_ip: str | None = None
    ) -> list[dict[str, Any]]:
        """Return list items matching the exact (name case-insensitive) filters."""
        with self._lock:
            items = list(self._vps.values())
        if name is not None:
            items = [v for v in items if v.name.casefold() == name.casefold()]
        if primary_ip is not None:
            items = [v for v in items if v.primary_ip == primary_ip]
        return [v.to_json() for v in items]

    # -- commands and processes ----------------------------------------------------------
    def script_command(self, match: str, result: CommandResult) -> None:
        """Make the exact command string ``match`` produce ``result``."""
        with self._lock:
            self._scripts[match] = result

    def scripted(self, command: str) -> CommandResult | None:
        """Return the scripted result for ``command``, if any."""
        with self._lock:
            return self._scripts.get(command)

    def block_command(self, substring: str) -> None:
        """Reject any command that contains ``substring``."""
        if not substring:
            raise ValueError("blocked substring must be non-empty")
        with self._lock:
            self._blocked.append(substring)

    def is_blocked(self, command: str) -> bool:
        """Return whether ``command`` trips the safety check."""
        with self._lock:
            return any(part in command for part in self._blocked)

    def start_process(self, vps_id: str, result: CommandResult) -> int:
        """Start a process that will end as ``result`` says; return its pid."""
        with self._lock:
            self._prune(self._clock())
            pid = self._next_pid
            self._next_pid += 1
            self._processes[pid] = Process(pid, vps_id, self._clock(), result)
            return pid

    def process_json(self, vps_id: str, pid: int) -> dict[str, Any] | None:
        """Return the poll body for ``pid`` on ``vps_id``; ``None`` if unknown or expired."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            process = self._processes.get(pid)
            if process is None or process.vps_id != vps_id:
                return None
            return process.to_json(now)

    def _prune(self, now: float) -> None:
        # Forget pids whose output has been kept longer than the retention window.
        expired = [
            pid for pid, proc in self._processes.items() if now - proc.ends_at > self.pid_retention
        ]
        for pid in expired:
            del self._processes[pid]
