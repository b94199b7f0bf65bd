"""The simulator's world: accounts, API keys, VPS inventory, agent state, commands and
processes.

Every API key, session and VPS belongs to an account (``DEFAULT_ACCOUNT`` unless told
otherwise). A request sees only its own account's VPSes: another account's VPS is answered
as if it did not exist, as the real API hides foreign VPSes.

Everything is guarded by one lock; callers get copies or JSON snapshots, never live objects.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .ids import VPS_ID_RE, credential_label, new_vps_id, stable_vps_id
from .records import DEFAULT_ACCOUNT, CommandResult, Principal, Process, Vps

#: Scopes of the simulator's default API key.
DEFAULT_SCOPES: tuple[str, ...] = ("read:vm", "write:vm")
NOT_RUNNING_REASON = "VM is not running"
AGENT_SILENT_REASON = "QEMU guest agent is not responding"
FIRST_PID = 1000
#: The id seed of ``add_generated_vps`` (and ``--vps-count``) unless another is given.
DEFAULT_ID_SEED = "hostup-simulator"
#: Largest pid ``set_next_pid`` takes (the signed 32-bit range, as the client accepts).
MAX_PID = 2**31 - 1


@dataclass(frozen=True)
class _Key:
    scopes: frozenset[str]
    account: str


def _check_account(account: str) -> str:
    if not isinstance(account, str) or not account:
        raise ValueError(f"account must be a non-empty string, not {account!r}")
    return account


def generated_ip(index: int) -> str:
    """The primary IP of the ``index``-th generated VPS: ``10.x.y.z`` from the index."""
    return f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"


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
        self._keys: dict[str, _Key] = {}
        self._sessions: dict[str, str] = {}  # cookie -> account
        self._vps: dict[str, Vps] = {}  # insertion order is list order
        self._scripts: dict[str, CommandResult] = {}
        self._blocked: list[str] = []
        # Keyed by (vps id, pid): a pid names a process on one VPS.
        self._processes: dict[tuple[str, int], Process] = {}
        self._next_pid = FIRST_PID
        # One-shot pids for the next start: per VPS id, or for any VPS (key None).
        self._pid_overrides: dict[str | None, int] = {}
        # How many VPSes each id seed has generated so far.
        self._generated: dict[str, int] = {}

    # -- credentials -------------------------------------------------------------------
    def add_api_key(self, key: str, scopes: Iterable[str], account: str = DEFAULT_ACCOUNT) -> None:
        """Accept ``key`` as a Bearer token of ``account`` with exactly ``scopes``."""
        if not key:
            raise ValueError("API key must be a non-empty string")
        record = _Key(frozenset(scopes), _check_account(account))
        with self._lock:
            self._keys[key] = record

    def add_session(self, cookie: str, account: str = DEFAULT_ACCOUNT) -> None:
        """Accept ``cookie`` as a ``hostup_session`` value of ``account`` with every scope."""
        _check_account(account)
        with self._lock:
            self._sessions[cookie] = account

    def principal_for_key(self, key: str) -> Principal | None:
        """Return the principal behind an API key, or ``None`` when unknown."""
        with self._lock:
            record = self._keys.get(key)
        if record is None:
            return None
        return Principal("key:" + key, record.scopes, record.account, credential_label(key))

    def principal_for_session(self, cookie: str) -> Principal | None:
        """Return the principal behind a session cookie, or ``None`` when unknown."""
        with self._lock:
            account = self._sessions.get(cookie)
        if account is None:
            return None
        return Principal("session:" + cookie, None, account, credential_label(cookie))

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
        account: str = DEFAULT_ACCOUNT,
    ) -> str:
        """Add a VPS and return its id; see ``HostupSimulator.add_vps``."""
        _check_account(account)
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
            account=account,
        )
        with self._lock:
            if vps.id in self._vps:
                raise ValueError(f"duplicate VPS id {vps.id!r}")
            self._vps[vps.id] = vps
        return vps.id

    def add_generated_vps(
        self, count: int, *, id_seed: str = DEFAULT_ID_SEED, account: str = DEFAULT_ACCOUNT
    ) -> list[str]:
        """Add ``count`` running VPSes named ``vps-0001``, ... with ids from ``id_seed``.

        The n-th VPS generated from an id seed (counting across calls) is always named
        ``vps-{n:04d}``, has primary IP ``generated_ip(n)`` and id ``stable_vps_id(id_seed, n)``,
        so the same calls give the same ids on every start.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a whole number >= 0, not {count!r}")
        if not isinstance(id_seed, str):
            raise ValueError(f"id_seed must be a string, not {id_seed!r}")
        with self._lock:
            first = self._generated.get(id_seed, 0) + 1
            self._generated[id_seed] = first - 1 + count
        return [
            self.add_vps(
                name=f"vps-{index:04d}",
                primary_ip=generated_ip(index),
                vps_id=stable_vps_id(id_seed, index),
                account=account,
            )
            for index in range(first, first + count)
        ]

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

    def get_vps(self, vps_id: str, account: str | None = None) -> Vps | None:
        """Return a copy of the VPS, or ``None`` when unknown or (with ``account``) owned by
        another account."""
        with self._lock:
            vps = self._vps.get(vps_id)
            if vps is None or account not in (None, vps.account):
                return None
            return replace(vps, extra=copy.deepcopy(vps.extra))

    def all_vps(self) -> list[Vps]:
        """Copies of every VPS of every account, in the order they were added."""
        with self._lock:
            return [replace(v, extra=copy.deepcopy(v.extra)) for v in self._vps.values()]

    def list_vps_json(
        self,
        *,
        name: str | None = None,
        primary_ip: str | None = None,
        account: str | None = None,
    ) -> list[dict[str, Any]]:
        """Return list items matching the exact (name case-insensitive) filters; with
        ``account``, only that account's VPSes."""
        with self._lock:
            items = [v for v in self._vps.values() if account in (None, v.account)]
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

    def set_next_pid(self, pid: int, vps_id: str | None = None) -> None:
        """Give the next process started (on ``vps_id``, or on any VPS) the pid ``pid``.

        One-shot. Starting it replaces whatever that VPS still remembers under ``pid``, as a
        guest whose pid was reused by another command would. Later pids continue above it.
        """
        if isinstance(pid, bool) or not isinstance(pid, int) or not 1 <= pid <= MAX_PID:
            raise ValueError(f"pid must be a whole number from 1 to {MAX_PID}, not {pid!r}")
        with self._lock:
            if vps_id is not None and vps_id not in self._vps:
                raise KeyError(vps_id)
            self._pid_overrides[vps_id] = pid

    def start_process(self, vps_id: str, result: CommandResult) -> int:
        """Start a process that will end as ``result`` says; return its pid."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            pid = self._pid_overrides.pop(vps_id, None)
            if pid is None:
                pid = self._pid_overrides.pop(None, None)
            if pid is None:
                pid = self._next_pid
            # Never hand out a pid again by counting: only set_next_pid reuses one.
            self._next_pid = max(self._next_pid, pid + 1)
            self._processes[(vps_id, pid)] = Process(pid, vps_id, now, result)
            return pid

    def process_json(self, vps_id: str, pid: int) -> dict[str, Any] | None:
        """Return the poll body for ``pid`` on ``vps_id``; ``None`` if unknown or expired."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            process = self._processes.get((vps_id, pid))
            return None if process is None else process.to_json(now)

    def _prune(self, now: float) -> None:
        # Forget pids whose output has been kept longer than the retention window.
        expired = [
            key for key, proc in self._processes.items() if now - proc.ends_at > self.pid_retention
        ]
        for key in expired:
            del self._processes[key]
