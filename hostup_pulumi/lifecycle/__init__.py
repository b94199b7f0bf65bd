"""The rules of the resources and functions, written once for every host.

Both hosts, the dynamic providers (:mod:`hostup_pulumi.resources`) and the native ``hostup``
plugin (:mod:`hostup_pulumi.provider`), translate the engine's requests into calls of the
rules here and the answers back. What a property means, what is checked, what replaces a
resource, what create, refresh, update and delete do, and what the functions return is
decided here and nowhere else.

Values are plain Python (``str``, ``int``/``float``, ``bool``, ``list``, ``dict``, ``None``)
under snake_case names (``vps_id``, ``exit_code``); a value not known yet (preview) is
:data:`UNKNOWN`. Each host maps its own names and unknowns to these.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._rules import (
    SILENT,
    UNKNOWN,
    Created,
    Diff,
    Failure,
    Props,
    Refreshed,
    Report,
    ResourceRules,
    parse_id,
)  # fmt: skip
from .agent_command import AGENT_COMMAND
from .agent_exec_result import AGENT_EXEC_RESULT, DEFAULT_RESULT_TIMEOUT, MAX_RESULT_TIMEOUT
from .functions import FUNCTIONS, Function

__all__ = [
    "AGENT_COMMAND",
    "AGENT_EXEC_RESULT",
    "DEFAULT_RESULT_TIMEOUT",
    "FUNCTIONS",
    "MAX_RESULT_TIMEOUT",
    "RESOURCES",
    "SILENT",
    "UNKNOWN",
    "Created",
    "Diff",
    "Failure",
    "Function",
    "Props",
    "Refreshed",
    "Report",
    "ResourceRules",
    "parse_id",
]

#: The rules of each resource type, by schema token.
RESOURCES: Mapping[str, ResourceRules] = {r.token: r for r in (AGENT_COMMAND, AGENT_EXEC_RESULT)}
