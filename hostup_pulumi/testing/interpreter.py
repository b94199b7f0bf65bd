"""A tiny stand-in for a guest shell, used for commands nobody scripted.

It knows ``echo``, ``sleep``, ``exit``, ``true``/``false``, ``uname`` and ``hostname``, and
joins them with ``&&`` and ``;``. Anything else "succeeds" silently. It never runs anything.
"""

from __future__ import annotations

import re
import shlex

from .records import CommandResult

_KERNEL = "6.8.0-45-generic"


def _words(segment: str) -> list[str]:
    try:
        return shlex.split(segment)
    except ValueError:  # unbalanced quotes: fall back to plain splitting
        return segment.split()


def run_default(command: str, *, hostname: str) -> CommandResult:
    """Return what ``command`` would print on a fresh Ubuntu guest called ``hostname``."""
    stdout: list[str] = []
    stderr: list[str] = []
    exit_code = 0
    duration = 0.0
    operator = ";"
    # re.split keeps the separators, so operators alternate with segments.
    for part in re.split(r"(&&|;)", command):
        if part in ("&&", ";"):
            operator = part
            continue
        words = _words(part)
        if not words or (operator == "&&" and exit_code != 0):
            continue
        name, args = words[0], words[1:]
        exit_code = 0
        if name == "echo":
            newline = not (args and args[0] == "-n")
            text = " ".join(args[1:] if not newline else args)
            stdout.append(text + ("\n" if newline else ""))
        elif name == "sleep":
            try:
                duration += max(0.0, float(args[0]))
            except (IndexError, ValueError):
                stderr.append("sleep: invalid time interval\n")
                exit_code = 1
        elif name == "exit":
            try:
                code = int(args[0]) if args else 0
            except ValueError:
                stderr.append(f"exit: {args[0]}: numeric argument required\n")
                code = 2
            return CommandResult("".join(stdout), "".join(stderr), code & 255, duration)
        elif name == "false":
            exit_code = 1
        elif name == "uname":
            if args == ["-a"]:
                stdout.append(f"Linux {hostname} {_KERNEL} #45-Ubuntu SMP x86_64 GNU/Linux\n")
            elif args == ["-r"]:
                stdout.append(_KERNEL + "\n")
            else:
                stdout.append("Linux\n")
        elif name == "hostname" or words == ["cat", "/etc/hostname"]:
            stdout.append(hostname + "\n")
        # everything else (true, :, unknown programs) succeeds without output
    return CommandResult("".join(stdout), "".join(stderr), exit_code, duration)
