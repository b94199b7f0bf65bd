"""Shared by the benchmark scripts: the simulator in its own process, a watchdog, targets and
the machine-readable last line, and a sampler of child processes' memory and CPU.

The simulator runs as ``python -m hostup_pulumi.testing`` in a child process, so its server
threads do not compete with the client under measurement for the GIL. Its counts are read
from ``GET /_simulator/stats`` over one keep-alive connection, opened before any measurement
(so it adds nothing to the connection counts taken between two readings).

Every benchmark prints its figures and, last, one machine-readable line ``name: ...``: either
``key=value`` pairs (fleet, fleet-limited, load, poll) or, from :func:`target_line`, a JSON
object whose ``targets`` list says for each figure its value, limit and whether it was met
(engine). ``bench/summary.py`` reads those lines back with :func:`parse_line`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

STARTUP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Stats:
    """Counts the simulator reports (``GET /_simulator/stats``)."""

    requests: int
    by_route: dict[str, int]
    by_status: dict[str, int]
    connections: int

    def __sub__(self, earlier: Stats) -> Stats:
        """What happened between ``earlier`` and this reading."""

        def diff(now: dict[str, int], then: dict[str, int]) -> dict[str, int]:
            return {k: v - then.get(k, 0) for k, v in now.items() if v - then.get(k, 0)}

        return Stats(
            self.requests - earlier.requests,
            diff(self.by_route, earlier.by_route),
            diff(self.by_status, earlier.by_status),
            self.connections - earlier.connections,
        )

    def status(self, code: int) -> int:
        """How many responses had status ``code``."""
        return self.by_status.get(str(code), 0)


class SimulatorProcess:
    """``python -m hostup_pulumi.testing ARGS`` as a context manager; always stopped on exit."""

    def __init__(self, args: Sequence[str]) -> None:
        self.args = list(args)
        self.base_url = ""
        self.api_key = ""
        self._process: subprocess.Popen[str] | None = None
        self._stats_client: httpx.Client | None = None

    def __enter__(self) -> SimulatorProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "hostup_pulumi.testing", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            ready = self._first_line(self._process)
            info = json.loads(ready)
            self.base_url, self.api_key = info["base_url"], info["api_key"]
            # trust_env=False: never route loopback traffic through a configured proxy; no
            # keep-alive expiry, so that the stats connection is opened once and never again.
            limits = httpx.Limits(max_connections=1, keepalive_expiry=None)
            self._stats_client = httpx.Client(
                base_url=self.base_url, trust_env=False, limits=limits
            )
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _first_line(process: subprocess.Popen[str]) -> str:
        # Read on a thread so that a simulator that never starts cannot hang the benchmark.
        lines: list[str] = []
        reader = threading.Thread(
            target=lambda: lines.append(process.stdout.readline() if process.stdout else ""),
            daemon=True,
        )
        reader.start()
        reader.join(STARTUP_TIMEOUT)
        if not lines or not lines[0].strip():
            raise RuntimeError("the simulator did not start (no ready line)")
        return lines[0]

    def stats(self) -> Stats:
        """The simulator's counts now."""
        assert self._stats_client is not None
        data: dict[str, Any] = self._stats_client.get("/_simulator/stats").json()
        return Stats(data["requests"], data["byRoute"], data["byStatus"], data["connectionsOpened"])

    def request_span(self, since: float) -> float | None:
        """Seconds from the first to the last request received since epoch time ``since``
        (``None``: fewer than one)."""
        assert self._stats_client is not None
        window = self._stats_client.get("/_simulator/stats", params={"since": since}).json()
        first, last = window["since"]["firstAt"], window["since"]["lastAt"]
        return None if first is None else float(last - first)

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL) and reap it. Idempotent."""
        if self._stats_client is not None:
            self._stats_client.close()
            self._stats_client = None
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_children: list[SimulatorProcess] = []
_on_expire: list[Callable[[], None]] = []


def watchdog(seconds: float, on_expire: Callable[[], None] | None = None) -> None:
    """Bound the benchmark's run time: after ``seconds``, call ``on_expire`` (e.g. kill the
    process trees the benchmark started), stop every simulator started with
    :func:`simulator` and exit with status 2."""
    if on_expire is not None:
        _on_expire.append(on_expire)

    def expire() -> None:
        print(f"benchmark: gave up after {seconds:g}s", file=sys.stderr, flush=True)
        for hook in _on_expire:
            try:
                hook()
            except Exception as exc:  # still stop the rest and exit
                print(f"benchmark: cleanup failed: {exc}", file=sys.stderr, flush=True)
        for child in list(_children):
            child.stop()
        os._exit(2)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    # SIGTERM (e.g. from make or CI) stops the children too, via the context managers.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))


def simulator(args: Sequence[str]) -> SimulatorProcess:
    """A :class:`SimulatorProcess` that the watchdog knows about."""
    child = SimulatorProcess(args)
    _children.append(child)
    return child


def rotated(items: Iterable[T], by: int) -> list[T]:
    """``items`` starting ``by`` places later (wrapping round): the order of round ``by``, so
    that no variant always runs right after the same one."""
    seq = list(items)
    shift = by % len(seq) if seq else 0
    return seq[shift:] + seq[:shift]


def python_project(name: str, description: str, venv: Path) -> str:
    """The Pulumi.yaml of a generated benchmark project: a Python program run in ``venv``."""
    return (
        f"name: {name}\ndescription: {description}\nruntime:\n  name: python\n  options:\n"
        f"    toolchain: pip\n    virtualenv: {venv}\n"
    )


# --- targets and the machine-readable last line ----------------------------------------


@dataclass(frozen=True)
class Paired:
    """A ratio measured once per pair of runs made side by side (the same round and read)."""

    values: tuple[float, ...]

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def spread(self) -> str:
        if not self.values:
            return ""
        if len(self.values) == 1:
            return "1 pair"
        return f"{len(self.values)} pairs {min(self.values):.2f}-{max(self.values):.2f}"


@dataclass(frozen=True)
class Target:
    """One figure against its target: ``value op limit`` (``op`` is ``<=`` or ``>=``).

    ``gated=False`` figures are reported only (they never fail a run). A figure that could
    not be measured (``value`` None) is missed when gated.
    """

    figure: str
    value: float | None
    op: str
    limit: float
    gated: bool = True
    note: str = ""

    @property
    def met(self) -> bool | None:
        """True or False for a gated figure, None for a reported one."""
        if not self.gated:
            return None
        if self.value is None or math.isnan(self.value):
            return False
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    @property
    def verdict(self) -> str:
        met = self.met
        return "reported" if met is None else "met" if met else "MISSED"

    def as_json(self) -> dict[str, Any]:
        return {"figure": self.figure, "value": self.value, "op": self.op,
                "limit": self.limit, "gated": self.gated, "note": self.note}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Target:
        value = data.get("value")
        return cls(str(data["figure"]), None if value is None else float(value),
                   str(data.get("op", "<=")), float(data["limit"]),
                   bool(data.get("gated", True)), str(data.get("note", "")))  # fmt: skip


def format_value(value: float | None) -> str:
    """A figure as the tables show it."""
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "-"
    if value == int(value) and (abs(value) >= 10 or value == 0):
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) >= 0.1 or value == 0 else f"{value:.3g}"


def _value_text(target: Target) -> str:
    # A miss must not look like a hit: 1.3019 against 1.30 shows as 1.302.
    text = format_value(target.value)
    if target.met is False and target.value is not None and text == format_value(target.limit):
        text = f"{target.value:.3f}"
    return text


def _target_text(target: Target) -> str:
    return "-" if math.isinf(target.limit) else f"{target.op} {format_value(target.limit)}"


def target_table(targets: Sequence[Target], labels: Sequence[str] | None = None) -> str:
    """A plain-text table of figure, value, target, met; ``labels`` (one a target) add a
    first column, ``bench``."""
    lead = list(labels) if labels is not None else None
    cells = [(t.figure, _value_text(t), _target_text(t), t.verdict) for t in targets]
    rows = [((lead[i],) if lead else ()) + row for i, row in enumerate(cells)]
    header = (("bench",) if lead else ()) + ("figure", "value", "target", "met")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    notes = ["note", *(t.note for t in targets)] if any(t.note for t in targets) else None
    lines = []
    for k, row in enumerate([header, *rows]):
        line = [c.ljust(w) if i < len(header) - 3 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))]  # fmt: skip
        if notes is not None:
            line.append(notes[k])  # e.g. a ratio's spread over its rounds
        lines.append("  ".join(line).rstrip())
    return "\n".join(lines)


def target_line(name: str, targets: Sequence[Target], **fields: Any) -> str:
    """The machine-readable last line: ``name: {"targets": [...], "met": ..., ...}``."""
    met = all(t.met is not False for t in targets)
    payload = {"met": met, "targets": [t.as_json() for t in targets], **fields}
    return f"{name}: {json.dumps(payload, separators=(',', ':'))}"


def parse_line(line: str) -> tuple[str, dict[str, Any]]:
    """``name: k=v k=v`` or ``name: {json}`` -> (name, fields). Numbers become floats;
    a JSON line's ``targets`` become :class:`Target` values."""
    name, _, rest = line.strip().partition(":")
    rest = rest.strip()
    if rest.startswith("{"):
        data: dict[str, Any] = json.loads(rest)
        data["targets"] = [Target.from_json(t) for t in data.get("targets", [])]
        return name, data
    fields: dict[str, Any] = {}
    for pair in rest.split():
        key, sep, value = pair.partition("=")
        if not sep:
            continue
        try:
            fields[key] = float(value)
        except ValueError:
            fields[key] = value
    return name, fields


# --- child processes: memory and CPU ----------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: str) -> tuple[int, float, float] | None:
    """(ppid, CPU seconds, start time in seconds since boot) of ``pid`` from /proc, or None
    when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    # After "pid (comm)", counting state as 1: ppid 2, utime 12, stime 13, starttime 20.
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS
    return int(fields[1]), cpu, int(fields[19]) / _TICKS


def _uptime() -> float:
    """Seconds since boot (the clock of /proc/<pid>/stat's start times)."""
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def _hwm_mb(pid: int) -> float | None:
    """Peak resident set size (VmHWM) of ``pid`` in MB, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def descendants(root: int | None = None) -> list[int]:
    """Every live descendant of ``root`` (default: this process), from Linux /proc."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        info = _stat(entry.name)
        if info is not None:
            children.setdefault(info[0], []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_descendants(root: int | None = None, *, keep: Iterable[int] = ()) -> None:
    """SIGKILL every descendant of ``root`` (default: this process) except ``keep``."""
    kept = set(keep)
    for pid in descendants(root):
        if pid not in kept:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class ProcessUsage:
    """What the processes of one role used: the highest peak RSS of any one of them, their
    CPU seconds together, how many there were, and when the first started and the last was
    last seen (seconds from the sampler's start; a start before it counts as 0)."""

    peak_mb: float = 0.0
    cpu_s: float = 0.0
    count: int = 0
    started_s: float = math.inf
    ended_s: float = 0.0


@dataclass
class ProcessSampler:
    """Samples this process's descendants every ``interval`` s on a thread, by role.

    ``roles`` maps a role name to a test on a process's command line (the first that
    matches wins; unmatched processes are not recorded). Per process it keeps the last
    VmHWM (the kernel's own peak, so a peak between two samples is not missed) and CPU time
    seen; a process that exits between two samples loses at most ``interval`` of CPU time.
    A process already running at the start (the simulator) counts only the CPU time it used
    from its first sample on; its VmHWM is still its peak since it started.
    Use as a context manager around the work to measure; read :meth:`usage` after.
    """

    roles: Sequence[tuple[str, Callable[[list[str]], bool]]]
    interval: float = 0.1
    _seen: dict[int, tuple[str, float, float, float, float]] = field(default_factory=dict)
    _roles_of: dict[int, str] = field(default_factory=dict)
    _cpu_before: dict[int, float] = field(default_factory=dict)  # used before the start
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _boot_offset: float = 0.0  # uptime minus perf_counter
    _started: float = 0.0  # perf_counter at the start

    def _role(self, pid: int) -> str | None:
        # Only a match is remembered: a process seen between fork and exec, or an exec'ing
        # launcher (sh, then python), shows another command line first.
        role = self._roles_of.get(pid)
        if role is None:
            argv = _cmdline(pid)
            role = next((name for name, test in self.roles if argv and test(argv)), None)
            if role is not None:
                self._roles_of[pid] = role
        return role

    def _since_start(self, uptime: float) -> float:
        return max(0.0, uptime - self._boot_offset - self._started)

    def sample(self) -> None:
        """One reading of every descendant."""
        now = self._since_start(self._boot_offset + time.perf_counter())
        for pid in descendants():
            role = self._role(pid)
            if role is None:
                continue
            hwm, stat = _hwm_mb(pid), _stat(str(pid))
            if hwm is None or stat is None:
                continue
            started = self._since_start(stat[2])
            if pid not in self._cpu_before:
                self._cpu_before[pid] = stat[1] if started == 0 else 0.0
            cpu = stat[1] - self._cpu_before[pid]
            self._seen[pid] = (role, hwm, cpu, started, now)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            self.sample()
            self._stop.wait(max(0.0, self.interval - (time.perf_counter() - started)))

    def __enter__(self) -> ProcessSampler:
        self._started = time.perf_counter()
        self._boot_offset = _uptime() - self._started
        self._seen.clear()
        self._roles_of.clear()
        self._cpu_before.clear()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def usage(self) -> dict[str, ProcessUsage]:
        """Per role: peak RSS (MB) of its largest process, CPU seconds of all, count."""
        result: dict[str, ProcessUsage] = {}
        for role, hwm, cpu, started, seen in self._seen.values():
            usage = result.setdefault(role, ProcessUsage())
            usage.peak_mb = max(usage.peak_mb, hwm)
            usage.cpu_s += cpu
            usage.count += 1
            usage.started_s = min(usage.started_s, started)
            usage.ended_s = max(usage.ended_s, seen)
        return result
