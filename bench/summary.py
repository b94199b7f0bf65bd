"""Run every benchmark and print one table of figure / target / met (``make bench``).

Runs, one after the other (each alone, as its own process, with its own simulator):

- ``bench/fleet.py``                                   N availability checks, no rate limit
- ``bench/fleet.py --rate-limit 100 --burst 20``       the same, rate-limited
- ``bench/poll.py``                                    the exec poll schedule
- ``bench/load.py``                                    a faulty, rate-limited simulator
- ``bench/engine.py``                                  whole deploys on the real engine
- ``bench/languages.py``                               the same stack from TypeScript, Go, Python

Each prints its own figures (shown as they come) and, last, one machine-readable line. This
script reads that line: a JSON line (``engine: {...}``, see ``_common.target_line``) brings
its own targets; for the ``key=value`` lines of the others the targets are those of the
issues that set them (below). A benchmark that exits non-zero, or prints no such line, is a
missed row of its own: each benchmark's exit status is its own verdict too.

Exit status 0 only when every gated target is met; otherwise 1, after a line naming the
missed ones.

Usage::

    python bench/summary.py                       # everything (about 20 minutes)
    python bench/summary.py --only fleet,poll     # some of them
    python bench/summary.py --engine-args=--quick # a quick engine run (development)
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import Target, parse_line, target_table

from hostup_pulumi.settings import Settings

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bench:
    """One benchmark run: its name (the prefix of its last line), script and arguments."""

    name: str
    args: tuple[str, ...]
    timeout: float  # seconds; past it the run's process group is killed

    @property
    def command(self) -> str:
        return "python bench/" + " ".join(self.args)


BENCHES = (
    Bench("fleet", ("fleet.py",), 1200),
    Bench("fleet-limited", ("fleet.py", "--rate-limit", "100", "--burst", "20"), 1200),
    Bench("poll", ("poll.py",), 900),
    Bench("load", ("load.py",), 600),
    Bench("engine", ("engine.py",), 4000),
    Bench("languages", ("languages.py",), 1800),
)


# --- targets of the key=value lines --------------------------------------------------------


def _num(fields: dict[str, Any], key: str) -> float | None:
    value = fields.get(key)
    return value if isinstance(value, float) else None


def fleet_targets(fields: dict[str, Any]) -> list[Target]:
    """Issue: ours within 1.5 x the bound N * L / C, 10 x the naive loop, at most C
    connections."""
    concurrency = Settings.resolve(api_key="unused", env=os.environ).max_concurrency
    out = [Target("time / bound (N*L/C)", _num(fields, "ratio"), "<=", 1.5)]
    if "speedup" in fields and fields["speedup"] != "n/a":
        out.append(Target("speedup over sequential httpx", _num(fields, "speedup"), ">=", 10.0))
    out.append(Target("TCP connections", _num(fields, "connections"), "<=", concurrency))
    return out


def fleet_limited_targets(fields: dict[str, Any]) -> list[Target]:
    """Issue: within 1.3 x the bound N / R; no request beyond N and the 429s."""
    n, requests, r429 = (_num(fields, k) for k in ("N", "requests", "429s"))
    budget = None if None in (n, requests, r429) else requests / (n + r429)  # type: ignore[operator]
    return [
        Target("time / bound (N/R)", _num(fields, "ratio"), "<=", 1.3),
        Target("requests / (N + 429s)", budget, "<=", 1.0),
    ]


def load_targets(fields: dict[str, Any]) -> list[Target]:
    """Issue: every check succeeds; requests <= 1.2 N + the 429s. Peak RSS reported."""
    n, ok, requests, r429 = (_num(fields, k) for k in ("N", "ok", "requests", "r429"))
    known = None not in (n, ok, requests, r429)
    return [
        Target("checks succeeded / N", ok / n if known else None, ">=", 1.0),  # type: ignore[operator]
        Target("(requests - 429s) / N", (requests - r429) / n if known else None, "<=", 1.2),  # type: ignore[operator]
        Target("peak RSS (MB)", _num(fields, "peak_rss_mb"), "<=", math.inf, gated=False),
    ]


def fewest_polls(seconds: float) -> int:
    """P_min(T): polls at t0 = 0, t_{k+1} = 1.1 t_k + 0.5, up to the first past T."""
    polls, t = 1, 0.0
    while t <= seconds:
        t = 1.1 * t + 0.5
        polls += 1
    return polls


def poll_targets(fields: dict[str, Any]) -> list[Target]:
    """Issue 14: for a T-second command, the poll seeing the exit is sent within
    0.1 T + 0.5 s, with at most ceil(1.1 P_min(T)) + 1 polls. Whatever else the line
    carries (a ratio, the average rate) is reported."""
    out = []
    for key, value in fields.items():
        if not isinstance(value, float):
            continue
        if key.startswith("lag_") and key.endswith("s"):
            seconds = float(key[4:-1])
            out.append(Target(f"lag, {seconds:g} s command (s)", value, "<=", 0.1 * seconds + 0.5))
        elif key.startswith("polls_") and key.endswith("s") and key != "polls_per_s":
            seconds = float(key[6:-1])
            bound = math.ceil(1.1 * fewest_polls(seconds)) + 1
            out.append(Target(f"polls, {seconds:g} s command", value, "<=", bound))
        elif "ratio" in key or key == "polls_per_s":
            out.append(Target(key, value, "<=", math.inf, gated=False))
    return out


TARGETS: dict[str, Callable[[dict[str, Any]], list[Target]]] = {
    "fleet": fleet_targets,
    "fleet-limited": fleet_limited_targets,
    "load": load_targets,
    "poll": poll_targets,
}


# --- running --------------------------------------------------------------------------------


@dataclass
class Outcome:
    """A finished benchmark: exit status, last machine-readable line, seconds."""

    bench: Bench
    returncode: int
    line: str | None
    seconds: float


def run(bench: Bench, extra: Sequence[str]) -> Outcome:
    """Run ``bench`` (its output passed through as it comes); bounded by its timeout."""
    argv = [sys.executable, "-u", str(HERE / bench.args[0]), *bench.args[1:], *extra]
    print(f"\n=== {bench.command} {' '.join(extra)}".rstrip(), flush=True)
    started = time.perf_counter()
    lines: list[str] = []
    with subprocess.Popen(
        argv,
        cwd=HERE.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as proc:
        timer = threading.Timer(bench.timeout, lambda: _kill(proc))
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                lines.append(line.rstrip("\n"))
            returncode = proc.wait()
        except BaseException:
            _kill(proc)
            raise
        finally:
            timer.cancel()
    prefix = f"{bench.name}:"
    last = next((line for line in reversed(lines) if line.startswith(prefix)), None)
    return Outcome(bench, returncode, last, time.perf_counter() - started)


def _kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the benchmark's process group (it kills its own children on SIGTERM, but a
    run past its time may be stuck)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def rows(outcome: Outcome) -> list[Target]:
    """The outcome's targets, and a row for a failed run or a missing line."""
    name = outcome.bench.name
    found: list[Target] = []
    if outcome.line is not None:
        _, fields = parse_line(outcome.line)
        if "targets" in fields:
            found = list(fields["targets"])
        elif name in TARGETS:
            found = TARGETS[name](fields)
    else:
        found.append(Target(f"machine-readable line '{name}:'", None, "<=", 0))
    if outcome.returncode != 0:
        found.append(Target("exit status", float(outcome.returncode), "<=", 0))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    names = [b.name for b in BENCHES]
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(names)}")
    parser.add_argument("--engine-args", default="", help="extra arguments for engine.py")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else names
    unknown = set(chosen) - set(names)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")

    outcomes = []
    for bench in BENCHES:
        if bench.name in chosen:
            extra = shlex.split(args.engine_args) if bench.name == "engine" else []
            outcomes.append(run(bench, extra))

    print("\n=== summary")
    table: list[tuple[str, Target]] = []
    for outcome in outcomes:
        for target in rows(outcome):
            table.append((outcome.bench.name, target))
    print(target_table([t for _, t in table], [name for name, _ in table]))
    for outcome in outcomes:
        print(f"{outcome.seconds:6.0f} s  exit {outcome.returncode}  {outcome.bench.command}")
    missed = [f"{name}: {t.figure}" for name, t in table if t.met is False]
    if missed:
        print(f"MISSED ({len(missed)}): " + "; ".join(missed))
        return 1
    print("every gated target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
