"""A tiny stand-in for a guest shell, used for commands nobody scripted.

It knows the commands people run first on a new VPS: ``echo``, ``sleep``, ``exit``,
``true``/``false``/``:``, ``uname``, ``hostname``, ``uptime``, ``whoami``, ``cat`` of
``/etc/os-release`` and ``/etc/hostname``, and ``ls /``. It joins them with ``&&``, ``||``
and ``;``, and sends a command's output to stderr with ``>&2`` (or ``1>&2``). Anything else
fails as a shell would: ``<name>: command not found`` on stderr, exit 127. It never runs
anything. docs/simulator.md lists what it understands.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

from .records import CommandResult

_KERNEL = "6.8.0-45-generic"
_OS_RELEASE = """\
PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
"""
_ROOT = "bin boot dev etc home lib lib64 media mnt opt proc root run sbin srv sys tmp usr var"
_TO_STDERR = re.compile(r"\s+1?>&2\s*$")


def _words(segment: str) -> list[str]:
    try:
        return shlex.split(segment)
    except ValueError:  # unbalanced quotes: fall back to plain splitting
        return segment.split()


class _Shell:
    """One command line's run: its output so far, its exit code, the time it sleeps."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.duration = 0.0

    def result(self, exit_code: int) -> CommandResult:
        return CommandResult("".join(self.stdout), "".join(self.stderr), exit_code & 255,
                             self.duration)  # fmt: skip

    # Each builtin gets its arguments and where its standard output goes; returns the code.
    def echo(self, args: list[str], out: list[str]) -> int:
        newline = not (args and args[0] == "-n")
        out.append(" ".join(args if newline else args[1:]) + ("\n" if newline else ""))
        return 0

    def sleep(self, args: list[str], out: list[str]) -> int:
        try:
            self.duration += max(0.0, float(args[0]))
        except (IndexError, ValueError):
            self.stderr.append("sleep: invalid time interval\n")
            return 1
        return 0

    def uname(self, args: list[str], out: list[str]) -> int:
        if args == ["-a"]:
            out.append(f"Linux {self.hostname} {_KERNEL} #45-Ubuntu SMP x86_64 GNU/Linux\n")
        else:
            out.append(_KERNEL + "\n" if args == ["-r"] else "Linux\n")
        return 0

    def hostname_(self, args: list[str], out: list[str]) -> int:
        out.append(self.hostname + "\n")
        return 0

    def uptime(self, args: list[str], out: list[str]) -> int:
        out.append(" 12:00:00 up 3 days,  4:05,  0 users,  load average: 0.01, 0.03, 0.00\n")
        return 0

    def whoami(self, args: list[str], out: list[str]) -> int:
        out.append("root\n")
        return 0

    def cat(self, args: list[str], out: list[str]) -> int:
        files = {"/etc/os-release": _OS_RELEASE, "/etc/hostname": self.hostname + "\n"}
        code = 0
        for path in args:
            if path in files:
                out.append(files[path])
            else:
                self.stderr.append(f"cat: {path}: No such file or directory\n")
                code = 1
        return code

    def ls(self, args: list[str], out: list[str]) -> int:
        paths = [a for a in args if not a.startswith("-")] or ["/"]
        if paths != ["/"]:
            self.stderr.append(f"ls: cannot access '{paths[0]}': No such file or directory\n")
            return 2
        out.append("\n".join(_ROOT.split()) + "\n")
        return 0

    def constant(self, code: int) -> Callable[[list[str], list[str]], int]:
        return lambda args, out: code

    def builtin(self, name: str) -> Callable[[list[str], list[str]], int] | None:
        table: dict[str, Callable[[list[str], list[str]], int]] = {
            "echo": self.echo, "sleep": self.sleep, "uname": self.uname,
            "hostname": self.hostname_, "uptime": self.uptime, "whoami": self.whoami,
            "cat": self.cat, "ls": self.ls, "true": self.constant(0), ":": self.constant(0),
            "false": self.constant(1),
        }  # fmt: skip
        return table.get(name)


def run_default(command: str, *, hostname: str) -> CommandResult:
    """Return what ``command`` would print on a fresh Ubuntu guest called ``hostname``."""
    shell = _Shell(hostname)
    exit_code = 0
    operator = ";"
    # re.split keeps the separators, so operators alternate with segments.
    for part in re.split(r"(&&|\|\||;)", command):
        if part in ("&&", "||", ";"):
            operator = part
            continue
        if (operator == "&&" and exit_code != 0) or (operator == "||" and exit_code == 0):
            continue
        to_stderr = _TO_STDERR.search(part) is not None
        words = _words(_TO_STDERR.sub("", part))
        if not words:
            continue
        name, args = words[0], words[1:]
        out = shell.stderr if to_stderr else shell.stdout
        if name == "exit":
            try:
                return shell.result(int(args[0]) if args else exit_code)
            except ValueError:
                shell.stderr.append(f"exit: {args[0]}: numeric argument required\n")
                return shell.result(2)
        run = shell.builtin(name)
        if run is None:
            shell.stderr.append(f"{name}: command not found\n")
            exit_code = 127
        else:
            exit_code = run(args, out)
    return shell.result(exit_code)
