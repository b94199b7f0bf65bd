"""Seed files: JSON that pre-loads keys, VPSes, scripted commands and blocked commands.

Shape::

    {"apiKeys": [{"key": "...", "scopes": ["read:vm"], "account"?: "acme"}],
     "vps": [{"id"?, "name", "primaryIp", "powerState", "serviceStatus",
              "agentAvailable"?, "agentReason"?, "account"?,
              ...any other member is served as-is}],
     "generate": [{"count": 3, "idSeed"?: "...", "account"?: "acme"}],
     "commands": [{"match", "stdout", "stderr", "exitCode", "duration", "extra"?}],
     "blocked": ["rm -rf /"]}

``account`` defaults to ``"default"``, the account of the simulator's own key. A VPS entry
without an ``id`` gets a stable one, derived from its account and name (and, for repeated
names, how many came before), so a seed gives the same ids on every start. ``generate``
(an object or a list of them) adds generated VPSes as ``HostupSimulator.add_generated_vps``
does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .ids import stable_vps_id
from .records import DEFAULT_ACCOUNT, CommandResult
from .state import DEFAULT_ID_SEED, SimState

#: The packaged demo seed: web-01 (agent up), db-01 (agent silent), old-01 (stopped).
DEMO_SEED = Path(__file__).with_name("seeds") / "demo.json"

SeedSource = str | Path | Mapping[str, Any]

_TOP_LEVEL = frozenset({"apiKeys", "vps", "generate", "commands", "blocked", "description"})
_VPS_FIELDS = {
    "id": "vps_id",
    "name": "name",
    "primaryIp": "primary_ip",
    "powerState": "power_state",
    "serviceStatus": "service_status",
    "agentAvailable": "agent_available",
    "agentReason": "agent_reason",
    "account": "account",
}


def read_seed(seed: SeedSource) -> dict[str, Any]:
    """Return seed data from a mapping or a JSON file; the string ``"demo"`` means ``DEMO_SEED``."""
    if isinstance(seed, Mapping):
        return dict(seed)
    path = DEMO_SEED if seed == "demo" and not Path(seed).exists() else Path(seed)
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"seed {path} must hold a JSON object")
    return data


def _seed_vps_id(entry: Mapping[str, Any], seen: dict[tuple[str, str], int]) -> str:
    # Stable across starts: the account, the name and its occurrence, not the position, so
    # adding a VPS to a seed leaves the others' ids alone.
    account = str(entry.get("account", DEFAULT_ACCOUNT))
    name = str(entry.get("name", ""))
    occurrence = seen.get((account, name), 0) + 1
    seen[(account, name)] = occurrence
    return stable_vps_id(f"seed\0{account}\0{name}", occurrence)


def apply_seed(state: SimState, data: Mapping[str, Any]) -> None:
    """Load seed ``data`` into ``state``; unknown top-level members are an error."""
    unknown = set(data) - _TOP_LEVEL
    if unknown:
        raise ValueError(f"unknown seed members: {sorted(unknown)}")
    for key in data.get("apiKeys", []):
        state.add_api_key(key["key"], key.get("scopes", []), key.get("account", DEFAULT_ACCOUNT))
    seen: dict[tuple[str, str], int] = {}
    for entry in data.get("vps", []):
        kwargs = {_VPS_FIELDS[k]: v for k, v in entry.items() if k in _VPS_FIELDS}
        if "vps_id" not in kwargs:
            kwargs["vps_id"] = _seed_vps_id(entry, seen)
        extra = {k: v for k, v in entry.items() if k not in _VPS_FIELDS}
        state.add_vps(**kwargs, extra=extra)
    generate = data.get("generate", [])
    for batch in [generate] if isinstance(generate, Mapping) else generate:
        state.add_generated_vps(
            int(batch["count"]),
            id_seed=batch.get("idSeed", DEFAULT_ID_SEED),
            account=batch.get("account", DEFAULT_ACCOUNT),
        )
    for command in data.get("commands", []):
        result = CommandResult(
            stdout=command.get("stdout", ""),
            stderr=command.get("stderr", ""),
            exit_code=int(command.get("exitCode", 0)),
            duration=float(command.get("duration", 0.0)),
            extra=dict(command.get("extra", {})),
        )
        state.script_command(command["match"], result)
    for substring in data.get("blocked", []):
        state.block_command(substring)
