"""Whole deploys on the real Pulumi engine: a fleet stack through up, preview, refresh, destroy.

The stack has N VPSes; for each it exports the availability (the ``_output`` form), creates
an ``AgentCommand`` (``true``, which exits at once) and its ``AgentExecResult``. It runs
against the simulator (in its own process, latency L), on a local file backend, with the
engine's checkpoints on (the default) or off (``PULUMI_SKIP_CHECKPOINTS=true``), in three
modes:

- ``dynamic``: ``hostup_pulumi.AgentCommand`` / ``AgentExecResult`` /
  ``get_vps_agent_availability_output`` (the dynamic providers; the program probes);
- ``native``: ``hostup_pulumi.native`` (the hostup plugin, its default provider; the probe
  is an invoke served by the plugin);
- ``control``: the same graph and program shape through a dynamic provider that makes no
  requests (create returns fixed outputs) and no availability calls (a fixed export). It is
  what the engine and the Python SDK cost by themselves, so every engine-level target is
  ours / control, or a ratio between two of our runs.

Each phase is timed by wall clock: ``up --yes --skip-preview`` (creates everything),
``preview`` (no changes; checked), ``refresh --yes --skip-preview`` and
``destroy --yes --skip-preview``. For each, the simulator's request counts per route, and
the peak RSS (the kernel's VmHWM) and CPU seconds of the processes involved, sampled from
/proc every 0.1 s: the provider (``python -m pulumi.dynamic`` or the hostup plugin), the
program, the language host, the CLI and the simulator.

The stacks compared by a ratio run in one :class:`Group`, their phases interleaved round by
round; a ratio is the median of its pairs' ratios (two runs side by side: the same round
and read), and the table shows their spread. Each
latency row is gated as the time at L over its floor (:func:`floor_seconds`): the time at
0 ms of the same round plus the waits that HostUp's round trips force through the engine's
slots.

Usage::

    python bench/engine.py              # the full run: N = 100 and 400 (about 32 min)
    python bench/engine.py --quick      # N = 10 and 40, for development (about 3 min)
    python bench/engine.py --sizes 20,80 --repeats 2 --modes control,native

Figures, targets and whether each is met are printed as a table; the last line is
machine-readable (``engine: {json}``, see ``_common.target_line``). Every CLI run is bounded
(its process tree is killed past ``--op-timeout``), and so is the whole run
(``--max-seconds``). Exit status 0 when every gated target is met, 1 otherwise, 2 on timeout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    Paired,
    ProcessSampler,
    ProcessUsage,
    SimulatorProcess,
    Target,
    format_value,
    kill_descendants,
    python_project,
    rotated,
    simulator,
    target_line,
    target_table,
    watchdog,
)

from hostup_pulumi import HostupClient
from hostup_pulumi.testing.engine import EngineNotFoundError, PulumiStack, find_engine

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix) if sys.prefix != sys.base_prefix else REPO / ".venv"
MODES = ("control", "dynamic", "native")
OURS = ("dynamic", "native")
PHASES = ("up", "preview", "refresh", "destroy")
TIMED = ("up", "preview", "refresh")

# Targets (issues 14 and 24).
LATENCY_FLOOR = 1.15  # every mode and timed phase, N small: time at L / its floor (floor_seconds)
FLAT = 1.2  # (ours / control) at N large over (ours / control) at N small
PREVIEW = 1.3  # ours / control, preview at N large
NATIVE_VS_DYNAMIC = 1.05  # up and refresh at N small
PEAK_RSS_MB = 150.0  # provider process at N small
#: Polls for a command that exits at once: the first poll, sent at once, sees it exited.
POLLS_PER_COMMAND = 1

# --- the program --------------------------------------------------------------------------

PROGRAM = '''\
"""N VPSes: availability exported, a command and its result each (bench/engine.py).

bench:probe false leaves the availability calls out, bench:importHostup true makes the
control import hostup_pulumi, bench:coalesce false makes the native program send one invoke per
VPS, and bench:gcStats FILE appends the garbage collector's time in this run to FILE
(bench/engine.py --explain's variants).
"""

import atexit
import gc
import json
import time
from pathlib import Path

import pulumi

config = pulumi.Config("bench")
mode = config.require("mode")
ids = json.loads(Path(config.require("ids")).read_text())
probe = config.get_bool("probe") is not False

gc_stats = config.get("gcStats")
if gc_stats:
    spent = {"seconds": 0.0, "collections": 0, "full": 0}
    began = []

    def on_gc(phase, info):
        if phase == "start":
            began.append(time.perf_counter())
        elif began:
            spent["seconds"] += time.perf_counter() - began.pop()
            spent["collections"] += 1
            spent["full"] += info["generation"] == 2

    gc.callbacks.append(on_gc)
    atexit.register(lambda: Path(gc_stats).write_text(json.dumps(spent)))

if mode in ("dynamic", "native"):
    if mode == "dynamic":
        import hostup_pulumi as hostup
    else:
        from hostup_pulumi import native as hostup

    availability = hostup.get_vps_agent_availability_output
    if mode == "native" and config.get_bool("coalesce") is False:
        def availability(vps_id):
            return pulumi.runtime.invoke_output(
                "hostup:index:getVpsAgentAvailability", {"vpsId": vps_id}
            )

    for i, vps_id in enumerate(ids):
        if probe:
            pulumi.export(f"available-{i}", availability(vps_id))
        cmd = hostup.AgentCommand(f"cmd-{i}", vps_id=vps_id, command="true")
        hostup.AgentExecResult(f"out-{i}", vps_id=cmd.vps_id, pid=cmd.pid, run_id=cmd.run_id)
else:
    import bench_control as control

    if config.get_bool("importHostup"):
        import hostup_pulumi  # noqa: F401

    for i, vps_id in enumerate(ids):
        if probe:
            pulumi.export(f"available-{i}", control.availability(vps_id))
        cmd = control.AgentCommand(f"cmd-{i}", vps_id=vps_id, command="true")
        control.AgentExecResult(f"out-{i}", vps_id=cmd.vps_id, pid=cmd.pid, run_id=cmd.run_id)
'''

# The control's dynamic provider lives in a module (not the program's __main__), so that dill
# pickles it by reference, as it does hostup_pulumi's providers: the same blob size and
# provider start-up work, and no requests.
CONTROL = '''\
"""The control run's resources: the shape of hostup_pulumi's, no requests (bench/engine.py)."""

import zlib

import pulumi
import pulumi.dynamic as dyn

INPUTS = {
    "cmd": ("vps_id", "command", "triggers"),
    "out": ("vps_id", "pid", "run_id", "timeout", "fail_on_nonzero_exit"),
}


class _Provider(dyn.ResourceProvider):
    serialize_as_secret_always = False
    kind = ""

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        pass

    def configure(self, req):
        pass

    def check(self, olds, news):
        return dyn.CheckResult(news, [])

    def diff(self, _id, olds, news):
        changed = [k for k in INPUTS[self.kind] if olds.get(k) != news.get(k)]
        return dyn.DiffResult(changes=bool(changed), replaces=changed,
                              delete_before_replace=False)

    def read(self, id_, props):
        return dyn.ReadResult(id_, props)

    def delete(self, _id, _props):
        pass


class _CommandProvider(_Provider):
    kind = "cmd"

    def create(self, props):
        pid = 1000 + zlib.crc32(props["vps_id"].encode()) % 30000
        outputs = {**props, "pid": pid, "poll_url": f"/agent/exec?pid={pid}",
                   "run_id": "0123456789abcdef"}
        return dyn.CreateResult(f"{props['vps_id']}/{pid}", outputs)


class _ResultProvider(_Provider):
    kind = "out"

    def create(self, props):
        outputs = {**props, "exited": True, "exit_code": 0, "stdout": "", "stderr": "",
                   "signal": None, "truncated": False, "extra_fields": {}}
        return dyn.CreateResult(f"{props['vps_id']}/{int(props['pid'])}", outputs)


class AgentCommand(dyn.Resource, module="hostup", name="AgentCommand"):
    def __init__(self, name, vps_id, command, opts=None):
        props = {"vps_id": vps_id, "command": command, "triggers": None, "pid": None,
                 "poll_url": None, "run_id": None}
        super().__init__(_CommandProvider(), name, props, opts)


class AgentExecResult(dyn.Resource, module="hostup", name="AgentExecResult"):
    def __init__(self, name, vps_id, pid, run_id=None, opts=None):
        props = dict.fromkeys(("exited", "exit_code", "stdout", "stderr", "signal",
                               "truncated", "extra_fields"))
        props.update(vps_id=vps_id, pid=pid, run_id=run_id, timeout=300.0,
                     fail_on_nonzero_exit=False)
        secret = pulumi.ResourceOptions(
            additional_secret_outputs=["stdout", "stderr", "extra_fields"])
        super().__init__(_ResultProvider(), name, props,
                         pulumi.ResourceOptions.merge(opts, secret))


def availability(vps_id):
    return {"vpsId": vps_id, "available": True, "reason": None, "vmRunning": True}
'''


def engine_bin(chosen: str | None) -> Path:
    """``--pulumi-bin``, else ``HOSTUP_PULUMI_BIN`` or PATH, else what tools/install-pulumi
    prints (the engine it built and cached under .tools/)."""
    try:
        return find_engine(chosen)
    except EngineNotFoundError:
        proc = subprocess.run([str(REPO / "tools" / "install-pulumi")], capture_output=True,
                              text=True, timeout=1800, check=True)  # fmt: skip
        return find_engine(proc.stdout.strip().splitlines()[-1])


def write_project(project: Path) -> None:
    """The generated project: Pulumi.yaml, the program, the control's module."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "Pulumi.yaml").write_text(python_project(
        "hostup-bench-engine", "bench/engine.py's fleet stack (generated; see that file)",
        VENV.absolute(),
    ))  # fmt: skip
    (project / "__main__.py").write_text(PROGRAM)
    (project / "bench_control.py").write_text(CONTROL)


# --- measuring ----------------------------------------------------------------------------


def _is_python_with(marker: str) -> Callable[[list[str]], bool]:
    return lambda argv: any(marker in arg for arg in argv[1:]) and "python" in argv[0]


ROLES: tuple[tuple[str, Callable[[list[str]], bool]], ...] = (
    ("simulator", _is_python_with("hostup_pulumi.testing")),
    ("provider", _is_python_with("pulumi.dynamic")),
    ("provider", _is_python_with("hostup_pulumi.provider")),
    ("program", _is_python_with("pulumi-language-python-exec")),
    ("language-host", lambda argv: Path(argv[0]).name.startswith("pulumi-language-")),
    ("cli", lambda argv: Path(argv[0]).name == "pulumi"),
)

_SUMMARY_LINE = re.compile(r"^\s*(?:[+~-]+\s*)?(\d+)\s+(to \w+|\w+)\s*$")


def resource_summary(text: str) -> dict[str, int]:
    """The CLI's last ``Resources:`` block as ``{"created": 201}``."""
    blocks = text.split("\nResources:\n")
    counts: dict[str, int] = {}
    for line in blocks[-1].splitlines() if len(blocks) > 1 else []:
        match = _SUMMARY_LINE.match(line)
        if match:
            counts[match.group(2)] = int(match.group(1))
        elif counts:
            break
    return counts


@dataclass
class Phase:
    """One CLI run: wall seconds, requests per route, processes by role, resource summary."""

    seconds: float
    requests: dict[str, int]
    usage: dict[str, ProcessUsage]
    summary: dict[str, int]
    #: Seconds from the first request the simulator received in this run to the last.
    request_span: float | None = None

    def route(self, name: str) -> int:
        return self.requests.get(name, 0)


@dataclass(frozen=True)
class Cycle:
    """One stack's settings."""

    mode: str
    n: int
    latency: float
    checkpoints: bool

    @property
    def stack(self) -> str:
        ckpt = "ckpt" if self.checkpoints else "nockpt"
        return f"{self.mode}-n{self.n}-l{self.latency * 1000:g}-{ckpt}"

    def describe(self) -> str:
        ckpt = "on" if self.checkpoints else "off"
        return f"{self.mode} N={self.n} L={self.latency * 1000:g}ms checkpoints {ckpt}"


@dataclass
class CycleResult:
    """Every repetition's phases of one cycle (or the error that stopped it)."""

    cycle: Cycle
    runs: list[dict[str, Phase]] = field(default_factory=list)
    error: str | None = None

    def seconds(self, phase: str) -> float | None:
        """The fastest repetition's time (the least disturbed by other load)."""
        times = [run[phase].seconds for run in self.runs if phase in run]
        return min(times) if times else None

    def first(self, phase: str) -> Phase | None:
        return next((run[phase] for run in self.runs if phase in run), None)

    def samples(self, phase: str) -> list[float | None]:
        """Each run of ``phase``, round by round and read by read (the rounds of one group ran
        interleaved, so the same position on two variants ran side by side)."""
        out: list[float | None] = []
        for run in self.runs:
            reads = sorted((key for key in run if key.startswith(phase + "#")),
                           key=lambda key: int(key.partition("#")[2]))  # fmt: skip
            out += [run[key].seconds for key in reads] if reads else [None]
        return out


@dataclass(frozen=True)
class Group:
    """Cycles measured together: the same N and checkpoint setting, one stack per variant
    (mode, latency), their phases interleaved. Round r runs every variant's up, then every
    variant's preview (``reads`` times), refresh (``reads`` times) and destroy, in an order
    rotated by r; so each ratio compares runs made within the same minute, and drift of the
    machine's speed over the run cancels instead of landing on one side of a ratio."""

    n: int
    checkpoints: bool
    variants: tuple[tuple[str, float], ...]
    rounds: int
    reads: int = 1

    def cycles(self) -> list[Cycle]:
        return [Cycle(mode, self.n, latency, self.checkpoints) for mode, latency in self.variants]


class BenchError(RuntimeError):
    """A CLI run failed or did something other than expected."""


class EngineBench:
    """The stacks of one benchmark run, in one project, backend and PULUMI_HOME."""

    def __init__(
        self, state_dir: Path, bin_dir: Path, op_timeout: float, flags: Sequence[str] = ()
    ) -> None:
        self.flags = list(flags)  # added to every up, preview, refresh and destroy
        self.state_dir = state_dir
        self.project = state_dir / "project"
        self.bin_dir = bin_dir
        self.op_timeout = op_timeout
        self.home = state_dir / "pulumi-home"

    def prepare(self) -> None:
        """A fresh project and backend; the hostup plugin in this run's PULUMI_HOME."""
        for stale in (self.project, self.state_dir / "backend"):
            shutil.rmtree(stale, ignore_errors=True)
        write_project(self.project)
        proc = subprocess.run(
            [str(REPO / "tools" / "install-plugin"), "--pulumi-bin", str(self.bin_dir),
             "--python", str(VENV / "bin" / "python")],
            env={**os.environ, "PULUMI_HOME": str(self.home)},
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise BenchError(f"tools/install-plugin failed:\n{proc.stdout}{proc.stderr}")

    def stack(
        self, cycle: Cycle, sim: SimulatorProcess, ids: Sequence[str], name: str | None = None
    ) -> PulumiStack:
        env = {"PULUMI_SKIP_CHECKPOINTS": "true"} if not cycle.checkpoints else {}
        stack = PulumiStack.create(
            self.project, self.state_dir, name or cycle.stack, bin_dir=self.bin_dir, env=env,
            timeout=self.op_timeout,
        )  # fmt: skip
        ids_file = self.project / f"ids-{name or cycle.stack}.json"
        ids_file.write_text(json.dumps(list(ids)))
        stack.configure_hostup(sim.base_url, sim.api_key)
        stack.set_config("bench:mode", cycle.mode)
        stack.set_config("bench:ids", str(ids_file))
        return stack

    def phase(self, stack: PulumiStack, sim: SimulatorProcess, *args: str) -> Phase:
        before = sim.stats()
        since = time.time()
        with ProcessSampler(ROLES) as sampler:
            started = time.perf_counter()
            try:
                proc = stack.run(*args, *self.flags, check=False)
            except subprocess.TimeoutExpired as exc:
                raise BenchError(f"pulumi {' '.join(args)} took over {exc.timeout:g} s") from None
            seconds = time.perf_counter() - started
        spent = sim.stats() - before
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
            raise BenchError(f"pulumi {' '.join(args)} failed ({proc.returncode}):\n{tail}")
        return Phase(seconds, dict(spent.by_route), sampler.usage(),
                     resource_summary(proc.stdout), sim.request_span(since))  # fmt: skip

    def run_group(self, group: Group, log: Callable[[str], None]) -> list[CycleResult]:
        """``group.rounds`` rounds of up, preview, refresh and destroy of every variant,
        interleaved (see :class:`Group`); preview and refresh run ``group.reads`` times per
        round and the faster counts. One simulator per latency, shared by the variants (each
        phase runs alone, so the simulator's counts per phase stay each run's own)."""
        cycles = group.cycles()
        results = [CycleResult(cycle) for cycle in cycles]
        sims: dict[float, SimulatorProcess] = {}
        try:
            stacks = []
            ids: dict[float, list[str]] = {}
            for cycle in cycles:
                if cycle.latency not in sims:
                    sim = simulator(["--latency", str(cycle.latency), "--vps-count", str(group.n)])
                    sims[cycle.latency] = sim.__enter__()
                    with HostupClient(sim.api_key, base_url=sim.base_url) as client:
                        ids[cycle.latency] = [vps.id for vps in client.list_vps()]
                    if len(ids[cycle.latency]) != group.n:
                        raise BenchError(f"the simulator lists {len(ids[cycle.latency])} "
                                         f"VPSes, not {group.n}")  # fmt: skip
                stacks.append(self.stack(cycle, sims[cycle.latency], ids[cycle.latency]))
            for r in range(group.rounds):
                runs: list[dict[str, Phase]] = [{} for _ in cycles]

                def each(
                    name: str,
                    *args: str,
                    shift: int = 0,
                    _r: int = r,
                    _runs: list[dict[str, Phase]] = runs,
                ) -> None:
                    # Reads rotate too: a one-round group must not always run its variants
                    # in one order (the same one always after the same one).
                    for k in rotated(range(len(cycles)), _r + shift):
                        got = self.phase(stacks[k], sims[cycles[k].latency], *args)
                        # Each read is also kept on its own ("preview#1"): a ratio pairs the
                        # reads that ran side by side.
                        done = sum(key.startswith(f"{name}#") for key in _runs[k])
                        _runs[k][f"{name}#{done}"] = got
                        _runs[k][name] = _faster(_runs[k].get(name), got)

                each("up", "up", "--yes", "--skip-preview")
                for k, cycle in enumerate(cycles):
                    expect(runs[k]["up"], "created", 2 * cycle.n, f"{cycle.describe()}: up")
                for read in range(group.reads):
                    each("preview", "preview", shift=read)
                for k, cycle in enumerate(cycles):
                    changes = {key: v for key, v in runs[k]["preview"].summary.items()
                               if key.startswith("to ")}  # fmt: skip
                    if changes:
                        raise BenchError(f"{cycle.describe()}: preview after up is not a "
                                         f"no-change one: {changes}")  # fmt: skip
                for read in range(group.reads):
                    each("refresh", "refresh", "--yes", "--skip-preview", shift=read)
                each("destroy", "destroy", "--yes", "--skip-preview")
                for k, cycle in enumerate(cycles):
                    expect(runs[k]["destroy"], "deleted", 2 * cycle.n,
                           f"{cycle.describe()}: destroy")  # fmt: skip
                    results[k].runs.append(runs[k])
                    log(cycle_line(cycle, runs[k]))
        except (BenchError, RuntimeError, subprocess.SubprocessError) as exc:
            for result in results:
                result.error = str(exc)
            log(f"N={group.n} checkpoints {'on' if group.checkpoints else 'off'}: FAILED: {exc}")
        finally:
            for sim in sims.values():
                sim.stop()
        return results

    def warm_up(self, log: Callable[[str], None]) -> None:
        """An unmeasured up and destroy of two VPSes per mode: pyc files, page cache,
        plugin discovery."""
        for mode in MODES:
            cycle = Cycle(mode, 2, 0.0, True)
            with simulator(["--vps-count", "2"]) as sim:
                with HostupClient(sim.api_key, base_url=sim.base_url) as client:
                    ids = [vps.id for vps in client.list_vps()]
                stack = self.stack(cycle, sim, ids, name=f"warmup-{mode}")
                self.phase(stack, sim, "up", "--yes", "--skip-preview")
                self.phase(stack, sim, "destroy", "--yes", "--skip-preview")
            log(f"warm-up {cycle.mode}: done")


def _faster(kept: Phase | None, new: Phase) -> Phase:
    return new if kept is None or new.seconds < kept.seconds else kept


def expect(phase: Phase, kind: str, count: int, what: str) -> None:
    """The run's summary says ``count`` resources ``kind`` (the stack resource aside)."""
    got = phase.summary.get(kind, 0)
    if got < count:
        raise BenchError(f"{what}: {got} {kind}, expected {count}: {phase.summary}")


def cycle_line(cycle: Cycle, run: dict[str, Phase]) -> str:
    times = " ".join(f"{name} {run[name].seconds:6.2f}s" for name in PHASES)
    up = run["up"]
    provider = up.usage.get("provider", ProcessUsage())
    return (
        f"{cycle.describe():<42} {times}  up requests {sum(up.requests.values())} "
        f"provider {provider.peak_mb:.0f} MB"
    )


# --- requests -----------------------------------------------------------------------------


def allowed_requests(phase: str, n: int, mode: str) -> dict[str, int]:
    """The most requests per route that a phase of N VPSes needs (issue 14)."""
    if mode == "control":
        return {}
    if phase == "up":
        # The program's probe, the probe before the start (the API asks for it), one start
        # and the polls of a command that exits at once. The plugin's creates reuse the
        # program's fresh answers (PROBE_REUSE_SECONDS), so native usually makes N probes,
        # but a create that comes before its VPS's answer still probes: 2N is the bound.
        return {"probe": 2 * n, "exec_start": n, "exec_output": POLLS_PER_COMMAND * n}
    if phase == "refresh":
        return {"exec_output": n}  # one read per result; a command's refresh reads nothing
    if phase == "preview":
        return {"probe": n}  # the program's probe (an Output that previews show)
    return {}


def excess_requests(result: CycleResult, phase: str) -> dict[str, int]:
    """Requests beyond :func:`allowed_requests`, per route, worst repetition."""
    worst: dict[str, int] = {}
    allowed = allowed_requests(phase, result.cycle.n, result.cycle.mode)
    for run in result.runs:
        for route, count in run[phase].requests.items():
            extra = count - allowed.get(route, 0)
            if extra > 0:
                worst[route] = max(worst.get(route, 0), extra)
    return worst


# --- targets ------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


class Results:
    """Lookups over the cycles of one run."""

    def __init__(self, results: Sequence[CycleResult]) -> None:
        self.by_cycle = {r.cycle: r for r in results}

    def get(self, mode: str, n: int, latency: float, checkpoints: bool) -> CycleResult | None:
        found = self.by_cycle.get(Cycle(mode, n, latency, checkpoints))
        return found if found is not None and found.error is None and found.runs else None

    def samples(self, cycle: Cycle, phase: str) -> list[float | None]:
        found = self.get(cycle.mode, cycle.n, cycle.latency, cycle.checkpoints)
        return [] if found is None else found.samples(phase)


def paired(results: Results, top: Cycle, bottom: Cycle, phase: str, add: float = 0.0) -> Paired:
    """Pair by pair (round by round, read by read): ``top``'s time over (``bottom``'s time +
    ``add``); pairs either side lacks are left out (both sides of one group ran alike)."""
    values = tuple(
        a / (b + add)
        for a, b in zip(results.samples(top, phase), results.samples(bottom, phase), strict=False)
        if a is not None and b is not None and b + add > 0
    )
    return Paired(values)


def targets(
    results: Results,
    small: int,
    large: int,
    latency: float,
    modes: Sequence[str],
    checkpoints_runs: Sequence[bool] = (True, False),
    slots: int = 8,
) -> list[Target]:
    """Every figure of issues 14 and 24 that this run's modes, checkpoint settings and
    latency measure (``slots``: the engine's ``--parallel``)."""
    ran = set(modes)
    found: list[Target] = []
    for needs, target in _all_targets(results, small, large, latency, slots):
        figure = target.figure
        if not needs <= ran or (latency <= 0 and ("/ 0ms" in figure or "floor" in figure)):
            continue
        on_only = ("(ckpt on)" in figure or "/ 0ms" in figure or "floor" in figure
                   or "native / dynamic" in figure)  # fmt: skip
        if (on_only and True not in checkpoints_runs) or (
            "(ckpt off)" in figure and False not in checkpoints_runs
        ):
            continue
        if small == large and f"N={large}" in target.figure and "flat" in target.figure:
            continue  # one size: nothing to scale
        if small == large and f"N={large} /" in target.figure:
            continue  # one size: its preview ratio is reported as the small size's
        if small == large and not target.gated and "RSS" in target.figure:
            continue
        found.append(target)
    return found


def engine_slots() -> int:
    """The engine's default ``--parallel``: 4 x the CPUs Go sees (``defaultParallel()`` in
    pkg/cmd/pulumi/operations/up.go)."""
    return 4 * len(os.sched_getaffinity(0))


def dynamic_server_workers() -> int:
    """How many calls the Pulumi SDK's dynamic provider server serves at once: the
    ``ThreadPoolExecutor(max_workers=...)`` of ``pulumi/dynamic/__main__.py``, read from the
    installed SDK (4 in the pinned versions), so that a new SDK cannot make the floor wrong."""
    spec = importlib.util.find_spec("pulumi.dynamic.__main__")
    source = Path(spec.origin).read_text() if spec and spec.origin else ""
    found = re.search(r"ThreadPoolExecutor\(max_workers=(\d+)\)", source)
    if found is None:
        raise BenchError("cannot find the dynamic provider server's max_workers in the SDK")
    return int(found.group(1))


#: Per VPS, (round trips a phase cannot avoid inside the engine's steps, rounds of them it
#: must wait for outside any step). HostUp's documented precondition is to probe (GET without
#: a pid) and start only when ``available`` is true, so a start follows a probe's answer:
#:
#: - up, dynamic: the command's create probes, then starts (two in a row, in one step: the
#:   program's own probe was answered in another process), and the result's create polls
#:   once (a command that exits at once is seen exited on the first poll);
#: - up, native: the program's availability calls are the probes, made up front and all at
#:   once (one round outside the steps); the plugin serves them and the creates with one
#:   client, so each create only starts (PROBE_REUSE_SECONDS), then the result polls once;
#: - refresh: one read per result (the command's read makes no request);
#: - preview: none in steps; the program waits one round for its availability calls before
#:   it can export them.
TRIPS: dict[tuple[str, str], tuple[int, int]] = {
    ("up", "dynamic"): (3, 0),
    ("up", "native"): (2, 1),
    ("refresh", "dynamic"): (1, 0),
    ("refresh", "native"): (1, 0),
    ("preview", "dynamic"): (0, 1),
    ("preview", "native"): (0, 1),
}


def floor_seconds(t0: float, phase: str, mode: str, n: int, latency: float, slots: int) -> float:
    """The floor of ``phase`` at ``latency``: its time at 0 ms in the same round, plus the
    least time that HostUp's round trips add (TRIPS): R in-step round trips each hold one of
    the engine's ``slots`` for ``latency``, so they take ceil(R / slots) latencies at the
    least; a round outside the steps takes one.

    A run below its floor hid part of those waits behind the engine's own work (the engine
    works on other steps while a slot waits); above it, the waits cost more than the slots
    force."""
    in_steps, rounds = TRIPS[phase, mode]
    return t0 + (math.ceil(in_steps * n / slots) + rounds) * latency


def _target(needs: set[str], figure: str, pair: Paired, op: str, limit: float,
            gated: bool = True, note: str = "") -> tuple[set[str], Target]:  # fmt: skip
    spread = pair.spread()
    text = f"{spread}; {note}" if note and spread else spread or note
    return needs, Target(figure, pair.median, op, limit, gated=gated, note=text)


def _all_targets(
    results: Results, small: int, large: int, latency: float, slots: int
) -> list[tuple[set[str], Target]]:
    out: list[tuple[set[str], Target]] = []
    ckpt_on = True

    # (1) Latency: each mode's time at L over its floor (gated), and over its time at 0 ms
    # (reported: a fixed wait divided by a time that moves with the machine).
    for mode in OURS:
        mode_slots = slots if mode == "native" else min(slots, dynamic_server_workers())
        slow, fast = Cycle(mode, small, latency, ckpt_on), Cycle(mode, small, 0.0, ckpt_on)
        for phase in TIMED:
            extra = floor_seconds(0.0, phase, mode, small, latency, mode_slots)
            note = f"floor: 0ms + {extra:.2f}s ({mode_slots} slots)"
            out.append(_target({mode}, f"{mode} {phase} N={small}: {latency * 1000:g}ms / floor",
                               paired(results, slow, fast, phase, add=extra), "<=",
                               LATENCY_FLOOR, note=note))  # fmt: skip
        for phase in TIMED:
            out.append(_target({mode}, f"{mode} {phase} N={small}: {latency * 1000:g}ms / 0ms",
                               paired(results, slow, fast, phase), "<=", math.inf,
                               gated=False))  # fmt: skip

    # (2) Flat scaling: (ours / control) at the large N over the same at the small N; each
    # side's ratio round by round, the spread the widest the two sides' spreads allow.
    for checkpoints in (True, False):
        ckpt = "on" if checkpoints else "off"
        for mode in OURS:
            for phase in TIMED:
                big = paired(results, Cycle(mode, large, 0.0, checkpoints),
                             Cycle("control", large, 0.0, checkpoints), phase)  # fmt: skip
                little = paired(results, Cycle(mode, small, 0.0, checkpoints),
                                Cycle("control", small, 0.0, checkpoints), phase)  # fmt: skip
                value = _ratio(big.median, little.median)
                note = ""
                if big.values and little.values:
                    note = (f"{min(big.values) / max(little.values):.2f}-"
                            f"{max(big.values) / min(little.values):.2f}")  # fmt: skip
                out.append(({mode, "control"},
                            Target(f"{mode} {phase} flat N={large}/N={small} (ckpt {ckpt})",
                                   value, "<=", FLAT, note=note)))  # fmt: skip

    # (3) Preview against the control's.
    for checkpoints in (True, False):
        ckpt = "on" if checkpoints else "off"
        for mode in OURS:
            pair = paired(results, Cycle(mode, large, 0.0, checkpoints),
                          Cycle("control", large, 0.0, checkpoints), "preview")  # fmt: skip
            out.append(_target({mode, "control"},
                               f"{mode} preview N={large} / control (ckpt {ckpt})", pair, "<=",
                               PREVIEW))  # fmt: skip

    # (4) No wasted requests, over every cycle of ours.
    for mode in OURS:
        for phase in ("up", "refresh"):
            mine = [r for c, r in results.by_cycle.items() if c.mode == mode]
            failed = any(r.error or not r.runs for r in mine)
            excess: dict[str, int] = {}
            for result in mine:
                if result.runs:
                    for route, extra in excess_requests(result, phase).items():
                        excess[route] = excess.get(route, 0) + extra
            note = ", ".join(f"{route} +{extra}" for route, extra in sorted(excess.items()))
            value = None if failed or not mine else float(sum(excess.values()))
            out.append(({mode}, Target(f"{mode} {phase} --skip-preview: requests over minimum",
                                       value, "<=", 0, note=note)))  # fmt: skip

    # (5) Native plugin / dynamic providers, round by round in the same group.
    for lat in sorted({0.0, latency}):
        for phase in ("up", "refresh"):
            pair = paired(results, Cycle("native", small, lat, ckpt_on),
                          Cycle("dynamic", small, lat, ckpt_on), phase)  # fmt: skip
            out.append(_target({"native", "dynamic"},
                               f"native / dynamic {phase} N={small} {lat * 1000:g}ms", pair,
                               "<=", NATIVE_VS_DYNAMIC))  # fmt: skip

    # (6) Provider peak RSS.
    for n, gated in ((small, True), (large, False)):
        for mode in OURS:
            peaks = [
                phase.usage["provider"].peak_mb
                for cycle, result in results.by_cycle.items()
                if cycle.mode == mode and cycle.n == n and result.runs
                for run in result.runs
                for phase in run.values()
                if "provider" in phase.usage
            ]
            out.append(({mode}, Target(f"{mode} provider peak RSS N={n} (MB)",
                                       max(peaks) if peaks else None, "<=", PEAK_RSS_MB,
                                       gated=gated)))  # fmt: skip
    return out


# --- where preview time goes (--explain) -----------------------------------------------

#: Program variants: (label, mode, extra stack config).
EXPLAIN_VARIANTS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("control", "control", {}),
    ("control + import hostup_pulumi", "control", {"bench:importHostup": "true"}),
    ("dynamic without the availability calls", "dynamic", {"bench:probe": "false"}),
    ("dynamic", "dynamic", {}),
    ("native without the availability invokes", "native", {"bench:probe": "false"}),
    ("native, one invoke per VPS (no coalescing)", "native", {"bench:coalesce": "false"}),
    ("native", "native", {}),
)


def startup_seconds(module: str, tries: int = 3) -> float:
    """How long ``python -m module`` takes to print its port (a provider plugin is ready
    then); the fastest of ``tries``."""
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        with subprocess.Popen(
            [str(VENV / "bin" / "python"), "-u", "-m", module, "127.0.0.1:1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        ) as proc:  # fmt: skip
            assert proc.stdout is not None
            ready = proc.stdout.readline().strip().isdigit()
            best = min(best, time.perf_counter() - started) if ready else best
            proc.kill()
    return best


def import_seconds(statement: str, tries: int = 3) -> float:
    """Wall time of ``python -c statement`` minus that of ``python -c pass``."""

    def run(code: str) -> float:
        best = float("inf")
        for _ in range(tries):
            started = time.perf_counter()
            subprocess.run([str(VENV / "bin" / "python"), "-c", code], check=True)
            best = min(best, time.perf_counter() - started)
        return best

    return run(statement) - run("pass")


DILL_PROBE = """
import json, sys, time
from pulumi.dynamic.dynamic import serialize_provider
sys.path.insert(0, sys.argv[1])
if sys.argv[2] == "hostup":
    from hostup_pulumi.resources import _AgentCommandProvider as A, _AgentExecResultProvider as B
else:
    from bench_control import _CommandProvider as A, _ResultProvider as B
a, b = A(), B()
times, size = [], 0
try:
    for i in range(int(sys.argv[3])):
        started = time.perf_counter()
        size = len(serialize_provider(a if i % 2 == 0 else b))
        times.append(time.perf_counter() - started)
except RecursionError:
    pass
print(json.dumps({"times": times, "size": size}))
"""


def dill_costs(project: Path, registrations: int) -> dict[str, dict[str, Any]]:
    """What the SDK's ``serialize_provider`` (dill, run for every dynamic resource the
    program registers) costs in a fresh process: ``registrations`` calls alternating the two
    providers, ours and the control's. Returns per kind the calls made before a
    RecursionError (if any), the mean ms of the first and of the last 100 calls, the blob's
    size."""
    out = {}
    for kind in ("hostup", "control"):
        proc = subprocess.run(
            [str(VENV / "bin" / "python"), "-c", DILL_PROBE, str(project), kind,
             str(registrations)],
            capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        data = json.loads(proc.stdout)
        times = data["times"]
        out[kind] = {
            "calls": len(times),
            "first_ms": 1000 * sum(times[:100]) / max(1, len(times[:100])),
            "last_ms": 1000 * sum(times[-100:]) / max(1, len(times[-100:])),
            "bytes": data["size"],
        }
    return out


def explain(bench: EngineBench, n: int, repeats: int, log: Callable[[str], None]) -> str:
    """Preview at N of each variant (checkpoints off: preview writes no state anyway), and
    the parts measured alone; returns the report."""
    lines = [f"where preview time goes, N={n} (fastest of {repeats} previews each)",
             f"{'variant':<44} {'preview s':>9} {'vs control':>10} {'program CPU s':>13} "
             f"{'program GC s':>12} {'provider CPU s':>14} {'providers':>9}  requests"]  # fmt: skip
    control: float | None = None
    for i, (label, mode, config) in enumerate(EXPLAIN_VARIANTS):
        cycle = Cycle(mode, n, 0.0, False)
        with simulator(["--vps-count", str(n)]) as sim:
            with HostupClient(sim.api_key, base_url=sim.base_url) as client:
                ids = [vps.id for vps in client.list_vps()]
            stack = bench.stack(cycle, sim, ids, name=f"explain-{i}-{mode}-n{n}")
            gc_file = bench.state_dir / f"gc-{i}.json"
            for key, value in {**config, "bench:gcStats": str(gc_file)}.items():
                stack.set_config(key, value)
            bench.phase(stack, sim, "up", "--yes", "--skip-preview")
            previews, gc_seconds = [], []
            for _ in range(repeats):
                gc_file.unlink(missing_ok=True)
                previews.append(bench.phase(stack, sim, "preview"))
                gc_seconds.append(json.loads(gc_file.read_text())["seconds"])
            bench.phase(stack, sim, "destroy", "--yes", "--skip-preview")
        fastest = min(range(repeats), key=lambda k: previews[k].seconds)
        best, best_gc = previews[fastest], gc_seconds[fastest]
        control = best.seconds if control is None else control
        program = min(ph.usage.get("program", ProcessUsage()).cpu_s for ph in previews)
        provider = min(ph.usage.get("provider", ProcessUsage()).cpu_s for ph in previews)
        count = best.usage.get("provider", ProcessUsage()).count
        requests = ", ".join(f"{k} {v}" for k, v in sorted(best.requests.items())) or "none"
        lines.append(f"{label:<44} {best.seconds:>9.2f} {best.seconds / control:>10.2f} "
                     f"{program:>13.2f} {best_gc:>12.2f} {provider:>14.2f} {count:>9}  "
                     f"{requests}")  # fmt: skip
        log(lines[-1])
    lines.append("")
    lines.append("start-up of a provider process until it serves (fastest of 3):")
    for module in ("pulumi.dynamic", "hostup_pulumi.provider"):
        lines.append(f"  python -m {module}: {startup_seconds(module):.2f} s")
    lines.append("imports (python -c, minus an empty python's start):")
    for module in ("pulumi", "pulumi.dynamic", "hostup_pulumi", "hostup_pulumi.resources",
                   "hostup_pulumi.provider._experimental"):  # fmt: skip
        statement = f"import {module}"
        lines.append(f"  {statement}: {import_seconds(statement):.2f} s")
    registrations = max(2 * n, 1200)
    lines.append(f"dill: the SDK's serialize_provider, once per dynamic resource; "
                 f"{registrations} in one process:")  # fmt: skip
    for kind, cost in dill_costs(bench.project, registrations).items():
        failed = cost["calls"] < registrations
        lines.append(
            f"  {kind}: {cost['bytes']} bytes; first 100 {cost['first_ms']:.2f} ms each, last "
            f"100 {cost['last_ms']:.2f} ms each"
            + (f"; RecursionError at registration {cost['calls'] + 1}" if failed else "")
        )
    return "\n".join(lines)


# --- reporting ----------------------------------------------------------------------------


def report(results: Sequence[CycleResult]) -> str:
    """Per cycle: seconds per phase, requests per route, the provider's peak RSS and CPU."""
    lines = [
        f"{'cycle':<42} {'up':>7} {'preview':>7} {'refresh':>7} {'destroy':>7}  "
        f"{'up requests (probe/start/poll)':>30}  {'refresh reads':>13}  "
        f"{'provider MB':>11}  provider CPU s (up/preview/refresh)"
    ]
    for result in results:
        if result.error or not result.runs:
            lines.append(f"{result.cycle.describe():<42} FAILED: {result.error}")
            continue
        cells = [format_value(result.seconds(p)) for p in PHASES]
        up, refresh = result.first("up"), result.first("refresh")
        assert up is not None
        assert refresh is not None
        requests = "/".join(str(up.route(r)) for r in ("probe", "exec_start", "exec_output"))
        others = sum(up.requests.values()) - sum(
            up.route(r) for r in ("probe", "exec_start", "exec_output")
        )
        if others:
            requests += f" +{others}"
        peak = max(
            (ph.usage["provider"].peak_mb for run in result.runs for ph in run.values()
             if "provider" in ph.usage),
            default=0.0,
        )  # fmt: skip
        cpu = "/".join(
            f"{min(run[p].usage.get('provider', ProcessUsage()).cpu_s for run in result.runs):.1f}"
            for p in TIMED
        )
        lines.append(
            f"{result.cycle.describe():<42} {cells[0]:>7} {cells[1]:>7} {cells[2]:>7} "
            f"{cells[3]:>7}  {requests:>30}  {sum(refresh.requests.values()):>13}  "
            f"{peak:>11.0f}  {cpu}"
        )
    return "\n".join(lines)


def to_json(result: CycleResult) -> dict[str, Any]:
    return {
        "cycle": asdict(result.cycle),
        "error": result.error,
        "runs": [{name: asdict(phase) for name, phase in run.items()} for run in result.runs],
    }


#: Rounds of the small N's groups.
SMALL_ROUNDS = 5
#: Reads (previews, refreshes) a round of the small N: five, so each preview and refresh ratio
#: is the median of 25 pairs. The native / dynamic refresh median, whose two sides do the same
#: work, moved 0.06 from run to run with 10 pairs and 0.04 with 15, against a margin of about
#: 0.05 under 1.05.
SMALL_READS = 5
#: Reads of the large N with checkpoints on: one round only (its up and destroy take a minute
#: each), so its preview / control ratio (gated at 1.3) is the median of these pairs. Nine, so
#: that they span three minutes, not one: with five, one slow minute moved all five (1.04-1.29).
LARGE_CHECKPOINTED_READS = 9
#: Rounds and reads a round of the large N with checkpoints off (an up takes seconds there).
LARGE_ROUNDS, LARGE_READS = 3, 2


def plan(
    sizes: Sequence[int],
    latency: float,
    modes: Sequence[str],
    checkpoints_runs: Sequence[bool],
    rounds: int | None = None,
) -> list[Group]:
    """The groups of a run. The small N with checkpoints on holds every gated latency and
    native / dynamic ratio: control and ours at 0 ms and ours at L. Each group's previews and
    refreshes run more than once a round (they are short, so one stall of the machine is a
    large part of one), and each read is paired with the reads beside it: a ratio is the
    median of its pairs. The large N with checkpoints on takes a minute per up and destroy:
    one round, LARGE_CHECKPOINTED_READS reads. Otherwise SMALL_ROUNDS rounds of the small N
    with SMALL_READS reads, LARGE_ROUNDS of the large with LARGE_READS. ``rounds`` overrides
    every group's rounds (reads then once)."""
    small = sizes[0]
    groups = []
    for checkpoints in checkpoints_runs:
        for n in sizes:
            variants = [(mode, 0.0) for mode in modes]
            if latency > 0 and checkpoints and n == small:
                variants += [(mode, latency) for mode in modes if mode in OURS]
            if n == small:
                count, reads = SMALL_ROUNDS, SMALL_READS
            else:
                count, reads = LARGE_ROUNDS, LARGE_READS
            if checkpoints and n != small:
                count, reads = 1, LARGE_CHECKPOINTED_READS
            if rounds is not None:
                count, reads = rounds, 1
            groups.append(Group(n, checkpoints, tuple(variants), count, reads))
    return groups


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every gated target is met, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 10 and 40 (development)")
    parser.add_argument("--sizes", help="the two fleet sizes, small,large (default 100,400)")
    parser.add_argument("--latency", type=float, default=0.05, help="the slow run's latency, s")
    parser.add_argument("--modes", default=",".join(MODES), help="control,dynamic,native")
    parser.add_argument("--repeats", type=int, default=None,
                        help="rounds of every group, previews and refreshes once each "
                             "(each ratio is the median of its pairs); default: "
                             f"{SMALL_ROUNDS} for the small N with previews and refreshes "
                             f"{SMALL_READS} times a round, 1 with them "
                             f"{LARGE_CHECKPOINTED_READS} times for the large N with "
                             f"checkpoints on, else {LARGE_ROUNDS} with them {LARGE_READS} "
                             "times")  # fmt: skip
    parser.add_argument("--explain", action="store_true",
                        help="instead: where preview time goes at the large N (7 min)")  # fmt: skip
    parser.add_argument("--no-warm-up", action="store_true", help="skip the warm-up")
    parser.add_argument("--checkpoints", choices=("both", "on", "off"), default="both",
                        help="the engine's checkpoints: both runs (default), or one")  # fmt: skip
    parser.add_argument("--parallel", type=int,
                        help="pulumi's --parallel (default: its own, 4 x the CPUs)")  # fmt: skip
    parser.add_argument("--pulumi-bin", help="the engine's bin dir (default: see engine_bin)")
    parser.add_argument("--state-dir", type=Path, default=REPO / ".state" / "bench-engine")
    parser.add_argument("--results", type=Path, help="write every measurement here (JSON)")
    parser.add_argument("--op-timeout", type=float, default=None,
                        help="seconds one CLI run may take (default 120 + 2 s a VPS)")  # fmt: skip
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="give up after this (default 3600; 900 with --quick)")  # fmt: skip
    args = parser.parse_args(argv)

    sizes = [int(x) for x in (args.sizes or ("10,40" if args.quick else "100,400")).split(",")]
    small, large = min(sizes), max(sizes)
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    max_seconds = args.max_seconds or (900.0 if args.quick else 3600.0)
    watchdog(max_seconds, on_expire=kill_descendants)
    op_timeout = args.op_timeout or 120.0 + 2.0 * large

    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    flags = ["--parallel", str(args.parallel)] if args.parallel else []
    bench = EngineBench(args.state_dir.resolve(), engine_bin(args.pulumi_bin), op_timeout, flags)
    bench.prepare()
    log(f"engine {bench.bin_dir}; state {bench.state_dir}; sizes {small},{large}; "
        f"latency 0 and {args.latency * 1000:g} ms; modes {','.join(modes)}")  # fmt: skip
    if not args.no_warm_up:
        bench.warm_up(log)
    if args.explain:
        print(explain(bench, large, args.repeats or 3, log))
        return 0

    results = []
    checkpoints_runs = {"both": (True, False), "on": (True,), "off": (False,)}[args.checkpoints]
    for group in plan(sorted(set(sizes)), args.latency, modes, checkpoints_runs, args.repeats):
        results.extend(bench.run_group(group, log))

    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps([to_json(r) for r in results], indent=1))
    (bench.state_dir / "results.json").write_text(json.dumps([to_json(r) for r in results]))

    print()
    print("seconds per phase (fastest of the repetitions); requests the simulator saw")
    print(report(results))
    print()
    found = targets(Results(results), small, large, args.latency, modes, checkpoints_runs,
                    args.parallel or engine_slots())  # fmt: skip
    print(target_table(found))
    missed = [t.figure for t in found if t.met is False]
    print(f"missed: {'; '.join(missed)}" if missed else "every gated target met")
    print(target_line("engine", found, sizes=[small, large], latency=args.latency,
                      seconds=round(time.perf_counter() - started, 1)))  # fmt: skip
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
