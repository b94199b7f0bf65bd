"""Local checks of arguments, so that bad input fails before any request is sent."""

from __future__ import annotations

import ipaddress
import math
import re

from .errors import HostupError, ValidationError

__all__ = [
    "MAX_COMMAND_LENGTH",
    "MAX_PID",
    "MAX_VPS_IDS",
    "validate_command",
    "validate_pid",
    "validate_seconds",
    "validate_vps_id",
    "validate_vps_ids",
]

MAX_COMMAND_LENGTH = 4096
# Guest-agent pids are integers; we cap at the signed 32-bit range, far above any Linux pid.
MAX_PID = 2**31 - 1
#: How many VPSes one ``get_vps_agent_availabilities`` call may probe.
MAX_VPS_IDS = 1000
# The rule: `vps_` and then letters and digits. The API's are 26 (ULID-like); 6 to 64 is
# our sanity bound (no length is documented).
_MIN_ID_BODY, _MAX_ID_BODY = 6, 64
_VPS_ID = re.compile(rf"vps_[0-9A-Za-z]{{{_MIN_ID_BODY},{_MAX_ID_BODY}}}")
_HOSTNAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}\.?")
_RULE = (
    "A VPS id is `vps_` followed by letters and digits (it contains `_`), e.g. "
    "vps_01hxa3b4c5d6e7f8g9h0j1k2m3"
)
_FIND = (
    "Find it with `hostup-pulumi list-vps --name NAME` (or `--primary-ip IP`), or "
    "client.list_vps(name=...) / client.list_vps(primary_ip=...)"
)


def validate_vps_id(vps_id: object) -> str:
    """Return ``vps_id`` if it is a ``vps_...`` id; otherwise raise a ValidationError that
    states the rule and says how to find the id (an IP, a hostname or a legacy number each
    get their own hint)."""
    if not isinstance(vps_id, str):
        raise ValidationError(
            f"vps_id must be a string like 'vps_01hxa3b4...', not {type(vps_id).__name__}"
        )
    if _VPS_ID.fullmatch(vps_id):
        return vps_id
    raise ValidationError(_why_not_an_id(vps_id))


def validate_vps_ids(vps_ids: object) -> list[str]:
    """Return ``vps_ids`` as a list if it is a list of at most :data:`MAX_VPS_IDS` VPS ids,
    each checked by :func:`validate_vps_id`."""
    if isinstance(vps_ids, str) or not isinstance(vps_ids, list | tuple):
        raise ValidationError(f"vps_ids must be a list of VPS ids, not {type(vps_ids).__name__}")
    if len(vps_ids) > MAX_VPS_IDS:
        raise ValidationError(
            f"vps_ids has {len(vps_ids)} ids; at most {MAX_VPS_IDS} per call: split the list"
        )
    return [validate_vps_id(vps_id) for vps_id in vps_ids]


def _why_not_an_id(vps_id: str) -> str:
    shown = repr(vps_id if len(vps_id) <= 60 else vps_id[:57] + "...")
    text = vps_id.strip()
    find = _FIND
    if not text:
        problem = "vps_id is empty"
    elif _is_ip(text):
        problem = f"vps_id {shown} is an IP address, not a VPS id"
        find = (
            f"Find it with `hostup-pulumi list-vps --primary-ip {text}` or "
            f"client.list_vps(primary_ip={text!r})"
        )
    elif text.isdigit():
        problem = f"vps_id {shown} is a bare number (a legacy numeric VM id?), not a VPS id"
    elif _HOSTNAME.fullmatch(text):
        name = text.split(".")[0]
        problem = f"vps_id {shown} looks like a hostname, not a VPS id"
        find = (
            f"Find it with `hostup-pulumi list-vps --name {name}` or client.list_vps(name={name!r})"
        )
    elif len(vps_id) > len("vps_") + _MAX_ID_BODY:
        problem = (
            f"vps_id {shown} is {len(vps_id)} characters long; a VPS id has {_MIN_ID_BODY} to "
            f"{_MAX_ID_BODY} letters and digits after `vps_`"
        )
    elif any(ch in vps_id for ch in "/\\?#%") or ".." in vps_id:
        problem = f"vps_id {shown} contains path or URL characters"
    elif vps_id[:4].lower() == "vps_" and not vps_id.startswith("vps_"):
        problem = f"vps_id {shown} starts with {vps_id[:4]!r}; the prefix is lowercase `vps_`"
    elif not vps_id.startswith("vps_"):
        problem = f"vps_id {shown} does not start with `vps_`"
    elif vps_id[4:] and not (vps_id[4:].isascii() and vps_id[4:].isalnum()):
        problem = f"vps_id {shown} has characters other than letters and digits after `vps_`"
    else:
        problem = (
            f"vps_id {shown} is too short: a VPS id has {_MIN_ID_BODY} to {_MAX_ID_BODY} "
            "letters and digits after `vps_`"
        )
    return f"{problem}. {_RULE}. {find}"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def validate_pid(pid: object) -> int:
    """Return ``pid`` as an int if it is a positive whole number.

    A float with no fraction is accepted, because Pulumi passes every number as a float.
    """
    if isinstance(pid, bool) or not isinstance(pid, int | float):
        raise ValidationError(
            f"pid must be a positive whole number (the pid that start_agent_exec returned), "
            f"not {type(pid).__name__} {pid!r}"[:200]
        )
    if isinstance(pid, float):
        if not math.isfinite(pid) or not pid.is_integer():
            raise ValidationError(f"pid must be a whole number, got {pid!r}")
        pid = int(pid)
    if not 1 <= pid <= MAX_PID:
        raise ValidationError(f"pid must be between 1 and {MAX_PID}, got {pid}")
    return pid


def validate_command(command: object) -> str:
    """Return ``command`` if the API would accept it: a non-blank string of at most 4096
    characters with no NUL character."""
    if not isinstance(command, str):
        raise ValidationError(f"command must be a string, not {type(command).__name__}")
    if not command.strip():
        raise ValidationError("command is empty; pass the shell command to run, e.g. 'uname -a'")
    if len(command) > MAX_COMMAND_LENGTH:
        raise ValidationError(
            f"command is {len(command)} characters long; the API accepts at most "
            f"{MAX_COMMAND_LENGTH}. Put a longer script on the VPS and run that instead"
        )
    if "\x00" in command:
        raise ValidationError("command contains a NUL character, which the API cannot carry")
    return command


def validate_seconds(
    value: object,
    name: str = "timeout",
    maximum: float | None = None,
    *,
    text: bool = False,
    error: type[HostupError] = ValidationError,
) -> float:
    """Return ``value`` as float seconds if it is a positive, finite number (at most
    ``maximum``); otherwise raise ``error``. With ``text``, a string holding a number is read
    too (Pulumi config values and command-line arguments are strings)."""
    number: object = value
    if text and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise error(f"{name} must be a number of seconds, got {value!r}") from None
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise error(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(number) or number <= 0:
        raise error(f"{name} must be a positive number of seconds, got {value!r}")
    if maximum is not None and number > maximum:
        raise error(f"{name} must be at most {maximum:g} seconds, got {value!r}")
    return float(number)
