"""Seed files: JSON that pre-loads keys, VPSes, scripted commands and blocked commands.

Shape::

    {"apiKeys": [{"key": "...", "scopes": ["read:vm"]}],
     "vps": [{"id"?, "name", "primaryIp", "powerState", "serviceStatus",
              "agentAvailable"?, "agentReason"?, ...any other member is served as-is}],
     "commands": [{"match", "stdout", "stderr", "exitCode", "duration", "extra"?}],
     "blocked": ["rm -rf /"]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .state import CommandResult, SimState

#: The packaged demo seed: web-01 (agent up), db-01 (agent silent), old-01 (stopped).
DEMO_SEED = Path(__file__).with_name("seeds") / "demo.json"

SeedSource = str | Path | Mapping[str, Any]

_TOP_LEVEL = frozenset({"apiKeys", "vps", "commands", "blocked", "description"})
_VPS_FIELDS = {
    "id": "vps_id",
    "name": "name",
    "primaryIp": "primary_ip",
    "powerState": "power_state",
    "serviceStatus": "service_status",
    "agentAvailable": "agent_available",
    "agentReason": "agent_reason",
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


def apply_seed(state: SimState, data: Mapping[str, Any]) -> None:
    """Load seed ``data`` into ``state``; unknown top-level members are an error."""
    unknown = set(data) - _TOP_LEVEL
    if unknown:
        raise ValueError(f"unknown seed members: {sorted(unknown)}")
    for key in data.get("apiKeys", []):
        state.add_api_key(key["key"], key.get("scopes", []))
    for entry in data.get("vps", []):
        kwargs = {_VPS_FIELDS[k]: v for k, v in entry.items() if k in _VPS_FIELDS}
        extra = {k: v for k, v in entry.items() if k not in _VPS_FIELDS}
        state.add_vps(**kwargs, extra=extra)
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
