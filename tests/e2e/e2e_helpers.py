"""Shared pieces of the end-to-end tests: the copied-example layout, a stack wrapper that
records every CLI run (for leak checks) and fails clearly, and the demo seed's facts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hostup_pulumi.testing import HostupSimulator
from hostup_pulumi.testing.engine import PulumiStack

REPO = Path(__file__).resolve().parents[2]
#: The virtualenv the programs run in (the examples name it ../../.venv): the one running
#: these tests, so that the programs import this checkout's hostup_pulumi.
VENV = Path(sys.prefix) if sys.prefix != sys.base_prefix else REPO / ".venv"
#: Each CLI run must end within this many seconds (a run takes 2-6 s here).
RUN_TIMEOUT = 120.0
#: A key that is easy to find in any text it leaks into.
API_KEY = "hsk_test_e2e_DISTINCTIVE_7f3a91c2d4e6b805"

# Demo seed (hostup_pulumi/testing/seeds): the three VPSes and what their agents say.
WEB = "vps_01jdemo0web000000000000001"
DB = "vps_01jdemo00db000000000000002"
OLD = "vps_01jdemo0old000000000000003"
DB_REASON = "QEMU guest agent is not responding"
OLD_REASON = "VM is not running"

# A second HostUp account (the two-account programs).
BETA_KEY = "hsk_test_e2e_BETA_ACCOUNT_c0ffee112233445566"
SCOPES = ["read:vm", "write:vm"]


def beta_account(sim: HostupSimulator, key: str = BETA_KEY) -> str:
    """A second account with its own key and VPS; returns the VPS id."""
    sim.add_api_key(key, SCOPES, account="beta")
    return sim.add_vps(name="beta-web", account="beta")


def assert_each_vps_saw_only_its_key(sim: HostupSimulator, expected: dict[str, set[str]]) -> None:
    """Every request for a VPS carried one of that VPS's account keys, and each VPS was used."""
    seen: dict[str, set[str]] = {vps: set() for vps in expected}
    for request in sim.requests:
        if request.vps_id in expected:
            seen[request.vps_id].add(str(request.key_label))
            assert request.account == request.vps_account, request
    labels = {vps: {sim.key_label(key) for key in keys} for vps, keys in expected.items()}
    for vps in expected:
        assert seen[vps], f"no request reached {vps}"
        assert seen[vps] <= labels[vps], f"{vps} saw another account's key"


@dataclass
class Run:
    """One finished CLI run."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def summary(self) -> dict[str, int]:
        """The ``Resources:`` block: ``{"created": 3}``, ``{"to replace": 2, "unchanged": 1}``."""
        return resource_summary(self.stdout)


_SUMMARY_LINE = re.compile(r"^\s*(?:[+~-]+\s*)?(\d+)\s+(to \w+|\w+)\s*$")


def resource_summary(text: str) -> dict[str, int]:
    """Parse the last ``Resources:`` block of CLI output into ``{kind: count}``."""
    blocks = text.split("\nResources:\n")
    if len(blocks) < 2:
        return {}
    counts: dict[str, int] = {}
    for line in blocks[-1].splitlines():
        match = _SUMMARY_LINE.match(line)
        if not match:
            if counts:
                break
            continue
        counts[match.group(2)] = int(match.group(1))
    return counts


@dataclass
class Stack:
    """A stack of a copied example, and every CLI run's output (for leak checks)."""

    stack: PulumiStack
    root: Path
    runs: list[Run] = field(default_factory=list)

    @property
    def project_dir(self) -> Path:
        return self.stack.project_dir

    def run(self, *args: str, ok: bool | None = True) -> Run:
        """``pulumi ARGS``: ``ok=True`` requires success, ``False`` failure, ``None`` either."""
        try:
            proc = self.stack.run(*args, check=False)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(
                f"pulumi {' '.join(args)} did not finish within {exc.timeout:g}s:\n"
                f"{_text(exc.stdout)}{_text(exc.stderr)}"
            )
        run = Run(args, proc.returncode, proc.stdout, proc.stderr)
        self.runs.append(run)
        if ok is not None and (run.returncode == 0) != ok:
            expected = "succeed" if ok else "fail"
            pytest.fail(
                f"expected `pulumi {' '.join(args)}` to {expected}; "
                f"exit code {run.returncode}:\n{run.output}"
            )
        return run

    def set(self, key: str, value: str) -> None:
        """``pulumi config set KEY VALUE`` (plain, project namespace unless ``ns:key``)."""
        self.run("config", "set", key, "--", value)

    def outputs(self, *, show_secrets: bool = False) -> dict[str, Any]:
        """``pulumi stack output --json`` (the ``--show-secrets`` run stays out of
        :meth:`transcript`)."""
        args = ["stack", "output", "--json"] + (["--show-secrets"] if show_secrets else [])
        run = self.run(*args)
        if show_secrets:
            self.runs.remove(run)
        return json.loads(run.stdout)  # type: ignore[no-any-return]

    def export(self) -> tuple[str, dict[str, Any]]:
        """``pulumi stack export``: the raw text and the parsed deployment."""
        text = self.run("stack", "export").stdout
        return text, json.loads(text)

    def resources(self, type_suffix: str = "") -> list[dict[str, Any]]:
        """Resources in the state whose type ends with ``type_suffix``."""
        resources = self.export()[1].get("deployment", {}).get("resources") or []
        return [r for r in resources if str(r.get("type")).endswith(type_suffix)]

    def transcript(self) -> str:
        """Everything the CLI printed so far, except what ``--show-secrets`` revealed."""
        return "\n".join(run.output for run in self.runs)


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value or ""


def files_under(root: Path) -> list[Path]:
    """Every regular file below ``root``, not following links (the .venv links)."""
    return [
        Path(d) / name
        for d, _, names in os.walk(root)
        for name in names
        if (Path(d) / name).is_file() and not (Path(d) / name).is_symlink()
    ]


def copy_example(root: Path, name: str) -> Path:
    """Lay out ``root`` like the repo for example ``name``; return its project dir.

    ``flagship`` is the top-level project (``Pulumi.yaml`` at ``root``, ``main:
    examples/flagship/`` with its ``.venv`` link, as ``make install`` makes it); the others
    live in ``root/examples/<name>`` and name ``../../.venv``.
    """
    ignore = shutil.ignore_patterns(".venv", "__pycache__", "Pulumi.*.yaml")
    shutil.copytree(REPO / "examples" / name, root / "examples" / name, ignore=ignore)
    (root / ".venv").symlink_to(VENV, target_is_directory=True)
    if name != "flagship":
        return root / "examples" / name
    shutil.copy2(REPO / "Pulumi.yaml", root / "Pulumi.yaml")
    (root / "examples" / "flagship" / ".venv").symlink_to(Path("../../.venv"))
    return root


def install_plugin(pulumi_bin: Path, pulumi_home: Path) -> None:
    """The README's way to make the hostup plugin discoverable, into ``pulumi_home``."""
    proc = subprocess.run(
        [str(REPO / "tools" / "install-plugin"), "--pulumi-bin", str(pulumi_bin),
         "--python", str(VENV / "bin" / "python")],
        env={**os.environ, "PULUMI_HOME": str(pulumi_home)},
        capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"tools/install-plugin failed:\n{proc.stdout}{proc.stderr}", pytrace=False)


def assert_refresh_keeps_a_finished_result(stack: Stack, sim: Any, api_key: str) -> None:
    """HostUp gives a finished command's pid (output ``pid``, on ``WEB``) to another command
    (``echo other``, scripted by the caller): refresh keeps the recorded result and says so."""
    from hostup_pulumi import HostupClient

    recorded = stack.outputs(show_secrets=True)
    sim.set_next_pid(recorded["pid"], vps_id=WEB)
    with HostupClient(api_key=api_key, base_url=sim.base_url) as client:
        assert client.start_agent_exec(WEB, "echo other").pid == recorded["pid"]

    refresh = stack.run("refresh", "--yes")

    assert (
        f"HostUp now reports other output for pid {recorded['pid']} on {WEB} than the finished "
        "command recorded in the state"
    ) in " ".join(refresh.output.split())
    assert stack.outputs(show_secrets=True) == recorded
    stack.run("preview", "--expect-no-changes")
