"""Local checks of arguments, so that bad input fails before any request is sent."""

from __future__ import annotations

import ipaddress
import math
import re

from .errors import HostupError, ValidationError

__all__ = [
    "MAX_COMMAND_LENGTH",
    "MAX_PID",
    "validate_command",
    "validate_pid",
    "validate_seconds",
    "validate_vps_id",
]

MAX_COMMAND_LENGTH = 4096
# Guest-agent pids are integers; we cap at the signed 32-bit range, far above any Linux pid.
MAX_PID = 2**31 - 1
_VPS_ID = re.compile(r"vps_[0-9A-Za-z]{6,64}")
_HOSTNAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}\.?")
_FIND_ID = (
    "HostUp wants the VPS's public id (like vps_01hxa3b4c5d6e7f8g9h0j1k2m3). "
    "Find it with client.list_vps({hint}) or `hostup-pulumi list-vps {flag}`"
)


def _find_id(hint: str, flag: str) -> str:
    return _FIND_ID.format(hint=hint, flag=flag)


def validate_vps_id(vps_id: object) -> str:
    """Return ``vps_id`` if it is a ``vps_...`` id; otherwise raise a ValidationError that says
    how to find the id (an IP, a hostname or a legacy number each get their own hint)."""
    if not isinstance(vps_id, str):
        raise ValidationError(
            f"vps_id must be a string like 'vps_01hxa3b4...', not {type(vps_id).__name__}"
        )
    if _VPS_ID.fullmatch(vps_id):
        return vps_id
    shown = vps_id if len(vps_id) <= 60 else vps_id[:57] + "..."
    text = vps_id.strip()
    if not text:
        raise ValidationError("vps_id is empty. " + _find_id("name='...'", "--name NAME"))
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        raise ValidationError(
            f"vps_id {shown!r} is an IP address, not a VPS id. "
            + _find_id(f"primary_ip={text!r}", f"--primary-ip {text}")
        )
    if text.isdigit():
        raise ValidationError(
            f"vps_id {shown!r} is a bare number (a legacy numeric VM id?); the v2 API takes "
            "the public vps_... id. " + _find_id("name='...'", "--name NAME")
        )
    if _HOSTNAME.fullmatch(text):
        raise ValidationError(
            f"vps_id {shown!r} looks like a hostname, not a VPS id. "
            + _find_id(f"name={text.split('.')[0]!r}", f"--name {text.split('.')[0]}")
        )
    if len(vps_id) > 68:
        problem = f"is {len(vps_id)} characters long; VPS ids are 'vps_' plus up to 64 letters"
    elif any(ch in vps_id for ch in "/\\?#%") or ".." in vps_id:
        problem = "contains path or URL characters; a VPS id has only letters and digits"
    elif not vps_id.startswith("vps_"):
        problem = "does not start with 'vps_'"
    else:
        problem = "has characters other than letters and digits after 'vps_', or is too short"
    raise ValidationError(f"vps_id {shown!r} {problem}. " + _find_id("name='...'", "--name NAME"))


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
