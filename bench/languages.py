"""The same fleet stack from TypeScript, Go and Python, on the real engine and the hostup plugin.

For each VPS of N (simulator, no latency): its availability exported, an ``AgentCommand``
(``true``) and its ``AgentExecResult``, all through the plugin's generated SDKs:

- ``python``: a normal Python program on ``hostup_pulumi.native`` (the generated classes),
  ``pulumi up --yes --skip-preview`` through the Python language host;
- ``typescript``: ``bench/languages/fleet.js`` on ``@hostup-pulumi/hostup``, inline through
  the Automation API (``examples/typescript/bin/inline.js``; its ``up`` skips the preview too);
- ``go``: ``bench/languages/go`` on ``sdk/go/hostup``, inline through ``sdk/v3/go/auto``.

Python's figure is the wall time of its ``pulumi up`` (CLI, language host, program, plugin).
An inline figure is the time of the Automation API's ``up`` call, as the runner reports it: the
same CLI run, with the runtime already started and without the workspace's set-up around it
(``stack select``, ``config set-all``, reading the outputs), which a ``pulumi up`` does not do.

TypeScript and Go run inline because their language hosts cannot be built here (see
docs/languages.md). Each ``up`` creates the whole stack in a fresh stack; ``destroy``
follows, untimed. The variants are interleaved, ``--repeats`` rounds, each round in an order
rotated by one, so a slow minute of the machine hits them alike. Gated: each language's ``up``
/ Python's ``up`` <= 1.2, as the median of one ratio per round (the two runs side by side),
with their spread in the note; the fastest of each language is reported.

Usage::

    python bench/languages.py                 # N = 100, 3 rounds (about 3 minutes)
    python bench/languages.py --n 10 --repeats 1

Needs ``make sdk`` (the TypeScript package and the example's ``node_modules``; this script
runs ``npm ci`` and ``tsc`` in examples/typescript when they are missing) and Go. The last
line is machine-readable (``languages: {json}``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from _common import (
    Paired,
    Target,
    kill_descendants,
    python_project,
    rotated,
    simulator,
    target_line,
    target_table,
    watchdog,
)

from hostup_pulumi import HostupClient
from hostup_pulumi.testing.engine import PulumiStack, find_engine

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
TYPESCRIPT = REPO / "examples" / "typescript"
LANGUAGES = ("python", "typescript", "go")
TARGET = 1.2

PROGRAM = '''\
"""bench/languages.py's fleet stack: the same as bench/languages/fleet.js and go/main.go."""

import json

import pulumi

from hostup_pulumi import native as hostup

ids = json.loads(pulumi.Config().require("vpsIds"))
for i, vps_id in enumerate(ids):
    pulumi.export(f"available-{i}", hostup.get_vps_agent_availability_output(vps_id).available)
    cmd = hostup.AgentCommand(f"cmd-{i}", vps_id=vps_id, command="true")
    hostup.AgentExecResult(f"out-{i}", vps_id=cmd.vps_id, pid=cmd.pid, run_id=cmd.run_id)
'''


def _run(argv: Sequence[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    return proc.stdout


def build(state: Path, timeout: float) -> dict[str, list[str]]:
    """The TypeScript runner and the Go program, built; the command of each."""
    for tool in ("node", "npm", "go"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"bench/languages.py needs {tool} on PATH")
    if not (TYPESCRIPT / "node_modules" / ".package-lock.json").is_file():
        _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], TYPESCRIPT, timeout)
    _run(["npm", "exec", "--no", "--", "tsc"], TYPESCRIPT, timeout)
    binary = state / "fleet-go"
    env = {**os.environ, "GOWORK": "off", "GOFLAGS": "-mod=readonly"}
    _run(["go", "build", "-o", str(binary), "."], REPO / "bench" / "languages" / "go", timeout, env)
    return {
        "typescript": ["node", str(TYPESCRIPT / "bin" / "inline.js")],
        "go": [str(binary)],
    }


class Variant:
    """One language's fleet stack, in a state directory of its own."""

    def __init__(self, language: str, root: Path, bin_dir: Path, command: list[str] | None,
                 ids: list[str], base_url: str, api_key: str, timeout: float) -> None:  # fmt: skip
        self.language = language
        self.command = command
        self.timeout = timeout
        project = root / "project"
        project.mkdir(parents=True, exist_ok=True)
        (project / "Pulumi.yaml").write_text(python_project(
            "hostup-bench-languages", "bench/languages.py's fleet stack in Python (generated)",
            VENV.absolute(),
        ))  # fmt: skip
        (project / "__main__.py").write_text(PROGRAM)
        # The Python stack; its environment (PULUMI_HOME, backend, offline settings) serves
        # the inline runs too.
        self.stack = PulumiStack.create(project, root, "bench", bin_dir=bin_dir, timeout=timeout)
        self.stack.configure_hostup(base_url, api_key)
        self.stack.set_config("vpsIds", json.dumps(ids))
        self.workdir = root / "inline"
        self.workdir.mkdir(exist_ok=True)
        self.config = {
            "hostup:baseUrl": {"value": base_url},
            "hostup:apiKey": {"value": api_key, "secret": True},
            "vpsIds": {"value": json.dumps(ids)},
        }

    def _inline(self, action: str) -> float:
        assert self.command is not None
        env = {
            **self.stack.env,
            "PULUMI_ROOT": str(self.stack.bin_dir.parent),
            "HOSTUP_INLINE_WORKDIR": str(self.workdir),
            "HOSTUP_INLINE_CONFIG": json.dumps(self.config),
            "HOSTUP_INLINE_STACK": "bench",
            "HOSTUP_INLINE_PROGRAM": str(REPO / "bench" / "languages" / "fleet.js"),
            "NODE_PATH": str(TYPESCRIPT / "node_modules"),
        }
        out = _run([*self.command, action], self.workdir, self.timeout, env)
        # The TypeScript runner marks its line; the Go program prints only its result.
        line = [text for text in out.splitlines() if text.strip()][-1]
        return float(json.loads(line.removeprefix("HOSTUP_INLINE_RESULT "))["seconds"])

    def up(self) -> float:
        """Seconds of one ``up`` that creates the whole stack."""
        if self.command is not None:
            return self._inline("up")
        started = time.perf_counter()
        self.stack.run("up", "--yes", "--skip-preview")
        return time.perf_counter() - started

    def destroy(self) -> None:
        if self.command is None:
            self.stack.run("destroy", "--yes", "--skip-preview")
        else:
            self._inline("destroy")


def install_plugin(bin_dir: Path, pulumi_home: Path, timeout: float) -> None:
    env = {**os.environ, "PULUMI_HOME": str(pulumi_home)}
    _run([str(REPO / "tools" / "install-plugin"), "--pulumi-bin", str(bin_dir),
          "--python", str(VENV / "bin" / "python")], REPO, timeout, env)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every gated target is met, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="VPSes in the stack (default 100)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="rounds (each gated ratio is the median of one per round)",
    )
    parser.add_argument("--pulumi-bin", help="the engine's bin dir (default: as the e2e tests)")
    parser.add_argument("--state-dir", type=Path, default=REPO / ".state" / "bench-languages")
    parser.add_argument("--op-timeout", type=float, default=300.0, help="seconds a run may take")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="give up after this")
    args = parser.parse_args(argv)
    watchdog(args.max_seconds, on_expire=kill_descendants)

    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    bin_dir = find_engine(args.pulumi_bin)
    state = args.state_dir.resolve()
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    commands = build(state, args.op_timeout)
    log(f"engine {bin_dir}; N = {args.n}; {args.repeats} rounds")

    times: dict[str, list[float]] = {language: [] for language in LANGUAGES}
    with simulator(["--vps-count", str(args.n)]) as sim:
        with HostupClient(api_key=sim.api_key, base_url=sim.base_url) as client:
            ids = [vps.id for vps in client.list_vps()]
        variants: dict[str, Variant] = {}
        for language in LANGUAGES:
            root = state / language
            variants[language] = Variant(language, root, bin_dir, commands.get(language), ids,
                                         sim.base_url, sim.api_key, args.op_timeout)  # fmt: skip
            install_plugin(bin_dir, root / "pulumi-home", args.op_timeout)
        # Round 0 is untimed: plugin, SDK and runtime caches warm for every variant.
        for round_no in range(args.repeats + 1):
            # Rotated each round: no language always runs right after the same one.
            for language in rotated(LANGUAGES, round_no):
                seconds = variants[language].up()
                variants[language].destroy()
                if round_no > 0:
                    times[language].append(seconds)
                log(f"round {round_no}{' (warm-up)' if round_no == 0 else ''}: "
                    f"{language} up {seconds:.2f} s")  # fmt: skip

    best = {language: min(values) for language, values in times.items()}
    found = [Target(f"{language} up N={args.n} (s)", best[language], "<=", float("inf"),
                    gated=False) for language in LANGUAGES]  # fmt: skip
    for language in ("typescript", "go"):
        # Round by round: a ratio of two fastest times could pair two different minutes.
        pair = Paired(tuple(a / b for a, b in zip(times[language], times["python"], strict=True)))
        found.append(Target(f"{language} up / python up N={args.n}", pair.median, "<=", TARGET,
                            note=pair.spread()))  # fmt: skip
    print()
    print(target_table(found))
    missed = [t.figure for t in found if t.met is False]
    print(f"missed: {'; '.join(missed)}" if missed else "every gated target met")
    print(target_line("languages", found, n=args.n, repeats=args.repeats,
                      runs={k: [round(v, 3) for v in vs] for k, vs in times.items()},
                      seconds=round(time.perf_counter() - started, 1)))  # fmt: skip
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
